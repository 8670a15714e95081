"""Readers: one file (or Hugging Face split) in, blocks of parsed rows out.

Every file is streamed in blocks through fsspec (local paths, ``https://``, ``s3://``; gzip by
suffix) or, for ``kind: hf``, through ``datasets.load_dataset``. A row that cannot be parsed
(malformed JSON, bytes that are not UTF-8, a wrong field count) goes to the quarantine with its
line; problems no row can survive raise :class:`SourceError`.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import json
import lzma
import os
import re
import zlib
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq

from safetygraph.sources.errors import SourceError
from safetygraph.sources.quarantine import MAX_RAW_CHARS, Quarantine
from safetygraph.sources.registry import SourceSpec

BLOCK_ROWS = 10_000

csv.field_size_limit(1 << 30)


@dataclass
class Block:
    rows: list[dict[str, Any]]
    refs: list[str]  # "file:line" / "file#record" / "hf:...#index", one per row
    lines: list[int]
    file: str
    raws: list[str] | None = None  # raw text per row, where the format has it


def open_files(spec: SourceSpec) -> list[tuple[str, Any]]:
    """The fsspec OpenFiles for a local path or glob, or a URL; a clear error when there are none."""
    uri = spec.location["url"] if spec.kind == "url" else spec.resolved_path()
    try:
        files = fsspec.open_files(uri, mode="rb", compression="infer")
    except Exception as exc:  # noqa: BLE001 - any fsspec failure becomes one clear message
        raise SourceError(
            f"source '{spec.name}': cannot open {uri}: {exc}; fix location in config/sources.yaml"
        ) from exc
    if not files:
        raise SourceError(
            f"source '{spec.name}': no file matches {uri}; fix location.path in config/sources.yaml "
            "or the profile override (relative paths resolve against the registry file's folder)"
        )
    out = []
    for of in files:
        if spec.kind == "local" and "://" not in of.path and not os.path.exists(of.path):
            raise SourceError(
                f"source '{spec.name}': file {of.path} does not exist; fix location.path"
            )
        out.append((_display_path(of.path, spec) if spec.kind == "local" else uri, of))
    return out


def _display_path(path: str, spec: SourceSpec) -> str:
    """A file's path relative to the registry's project folder when inside it (stable across machines)."""
    root = str(spec.base_dir.parent)
    return os.path.relpath(path, root) if path.startswith(root + os.sep) else path


def _decode(raw: bytes, q: Quarantine, file: str, line: int) -> str | None:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        q.add(
            file,
            line,
            f"not valid UTF-8: byte 0x{raw[exc.start]:02x} at offset {exc.start}; re-encode the file as UTF-8",
            raw.decode("utf-8", "backslashreplace"),
        )
        return None


class Lines:
    """The physical lines of one file as ``(line number, bytes)``, with a UTF-8 byte-order mark
    dropped from line 1 and a pushback buffer (readers that resynchronise give lines back).

    A compressed file that ends early or is damaged (a truncated ``.gz``) stops the lines at the
    damage: every complete line before it arrives, and the tail is quarantined with its line number
    instead of failing the source."""

    def __init__(self, f: Any, file: str, q: Quarantine):
        self._it = enumerate(f, 1)
        self._back: deque[tuple[int, bytes]] = deque()
        self.file, self.q = file, q
        self.last = 0

    def __iter__(self) -> Iterator[tuple[int, bytes]]:
        while (item := self.next()) is not None:
            yield item

    def next(self) -> tuple[int, bytes] | None:
        if self._back:
            return self._back.popleft()
        try:
            lineno, raw = next(self._it)
        except StopIteration:
            return None
        except (EOFError, zlib.error, gzip.BadGzipFile, lzma.LZMAError) as exc:
            self.q.add(
                self.file,
                self.last + 1,
                f"truncated or damaged compressed file: nothing after line {self.last} can be read "
                f"({exc}); the {self.last} lines before were kept; re-download or re-compress the file",
                "",
            )
            self._it = iter(())
            return None
        if lineno == 1 and raw.startswith(codecs.BOM_UTF8):
            raw = raw[len(codecs.BOM_UTF8) :]
        self.last = lineno
        return lineno, raw

    def push(self, items: list[tuple[int, bytes]]) -> None:
        self._back.extendleft(reversed(items))


def read_jsonl(name: str, f: Any, file: str, q: Quarantine) -> Iterator[Block]:
    block = Block([], [], [], file, [])
    for lineno, raw in Lines(f, file, q):
        if not raw.strip():
            continue
        text = _decode(raw.rstrip(b"\r\n"), q, file, lineno)
        if text is None:
            continue
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            q.add(file, lineno, f"malformed JSON: {exc.msg} at column {exc.colno}", text)
            continue
        if not isinstance(obj, dict):
            q.add(
                file, lineno, f"malformed JSON: expected an object, got {type(obj).__name__}", text
            )
            continue
        block.rows.append(obj)
        block.lines.append(lineno)
        block.refs.append(f"{file}:{lineno}")
        block.raws.append(text)
        if len(block.rows) >= BLOCK_ROWS:
            yield block
            block = Block([], [], [], file, [])
    if block.rows:
        yield block


def _records_under(doc: dict) -> list[tuple[str, int]]:
    """Keys of ``doc`` that hold a list of objects, with the list's length (largest first)."""
    keys = [
        (k, len(v))
        for k, v in doc.items()
        if isinstance(v, list) and v and all(isinstance(x, dict) for x in v[:20])
    ]
    return sorted(keys, key=lambda kv: -kv[1])


def _load_document(spec: SourceSpec, data: bytes, file: str, q: Quarantine) -> Any:
    """The parsed JSON document (None for an empty file), or a SourceError naming the problem."""
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8) :]
    head = data.lstrip()[:1]
    if not head:
        return None  # an empty file
    if head not in (b"[", b"{"):
        raise SourceError(
            f"source '{spec.name}': {file} line 1 is not a JSON document (starts with {head!r}); "
            "set format: jsonl (one object per line) or csv"
        )
    text = _decode(data, q, file, 1)
    if text is None:
        raise SourceError(f"source '{spec.name}': {file} is not valid UTF-8; re-encode it as UTF-8")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise SourceError(
            f"source '{spec.name}': {file} line {exc.lineno} column {exc.colno}: {exc.msg}; "
            "a JSON document cannot be read past a syntax error: fix the file or convert it to JSONL"
        ) from exc


def _document_records(spec: SourceSpec, doc: Any, file: str, mapped_roots: set[str]) -> Any:
    """The document's records: the list itself, the list under records_key, or [the object]."""
    if isinstance(doc, dict):
        key = spec.location.get("records_key")
        if key:
            if not isinstance(doc.get(key), list):
                raise SourceError(
                    f"source '{spec.name}': {file} has no list under records_key '{key}' (its keys: "
                    f"{sorted(doc)[:20]}); fix location.records_key"
                )
            doc = doc[key]
        else:
            lists = _records_under(doc)
            if mapped_roots and not mapped_roots & set(doc) and lists:
                k, n = lists[0]
                raise SourceError(
                    f"source '{spec.name}': {file} is a JSON object whose records sit under a key "
                    f"(keys: {sorted(doc)[:20]}; '{k}' holds a list of {n} objects): set "
                    f"location.records_key: {k} in config/sources.yaml"
                )
            doc = [doc]  # one object per file (e.g. one agent run per file)
    return doc


def read_json_document(
    spec: SourceSpec, f: Any, file: str, q: Quarantine, mapped_roots: set[str] = frozenset()
) -> Iterator[Block]:
    doc = _load_document(spec, f.read(), file, q)
    if doc is None:
        return  # an empty file: ingest names it if the source has no rows at all
    doc = _document_records(spec, doc, file, mapped_roots)
    block = Block([], [], [], file, [])
    for i, obj in enumerate(doc, 1):
        if not isinstance(obj, dict):
            q.add(
                file,
                i,
                f"malformed record: expected an object, got {type(obj).__name__}",
                json.dumps(obj)[:MAX_RAW_CHARS],
            )
            continue
        block.rows.append(obj)
        block.lines.append(i)
        block.refs.append(f"{file}#{i}")
        block.raws.append(None)  # type: ignore[arg-type]
        if len(block.rows) >= BLOCK_ROWS:
            yield block
            block = Block([], [], [], file, [])
    if block.rows:
        yield block


# A record may span lines only inside a quoted field; one that stays open this long is a broken quote.
MAX_RECORD_LINES = 10_000
_QUOTES = re.compile(r'"+')


def _open_after(text: str, delim: str, inside: bool) -> bool:
    """Whether a quoted field is still open at the end of ``text``, by CSV's quoting: a run of
    quotes at a field's start opens a quoted field when its length is odd (one opening quote, then
    escaped ones; two quotes are an empty field); inside a field, an odd run closes it (doubled
    quotes are literal quotes); anywhere else quotes are literal characters."""
    for m in _QUOTES.finditer(text):
        odd = len(m.group()) % 2 == 1
        if inside:
            inside = not odd
        elif odd and (m.start() == 0 or text[m.start() - 1] == delim):
            inside = True
    return inside


def _all_records(parts: list[tuple[int, str]], delim: str, expected: int) -> bool:
    """Whether every line in ``parts`` is, on its own, a complete record of ``expected`` fields
    (quotes balanced): then the quote that swallowed them is the defect, not a field spanning lines."""
    for _, text in parts:
        if _open_after(text, delim, False):
            return False
        if len(next(csv.reader([text], delimiter=delim), [])) != expected:
            return False
    return True


def _csv_records(
    lines: Lines, delim: str, q: Quarantine, file: str, expected: int | None
) -> Iterator[tuple[int, list[str], str]]:
    """(first line, values, raw text) per CSV record. A quote that never closes, or a record that
    spans lines and then has the wrong field count, is quarantined at its first line with the line
    range, and parsing resumes at the next line: the damage stays with the lines it really affects."""
    while (first := lines.next()) is not None:
        lineno = first[0]
        parts = [(lineno, first[1].decode("utf-8", "surrogateescape"))]
        inside = _open_after(parts[0][1], delim, False)
        while inside and len(parts) < MAX_RECORD_LINES:
            nxt = lines.next()
            if nxt is None:
                break
            parts.append((nxt[0], nxt[1].decode("utf-8", "surrogateescape")))
            inside = _open_after(parts[-1][1], delim, True)
        text = "".join(t for _, t in parts)
        end = parts[-1][0]
        if inside:
            q.add(
                file,
                lineno,
                f"unterminated quote: the quoted field opened on line {lineno} is still open at line "
                f"{end}; the line is left out and reading resumes at line {lineno + 1}; fix the quoting",
                parts[0][1].rstrip("\r\n"),
            )
            lines.push([(n, t.encode("utf-8", "surrogateescape")) for n, t in parts[1:]])
            continue
        values = next(csv.reader([text], delimiter=delim), [])
        if expected is not None and len(parts) > 2 and _all_records(parts[1:-1], delim, expected):
            q.add(
                file,
                lineno,
                f"unbalanced quote: the quoted field opened on line {lineno} closes on line {end}, "
                f"but lines {lineno + 1}-{end - 1} are complete records of their own; line {lineno} is "
                f"left out and reading resumes at line {lineno + 1}; fix the quoting",
                parts[0][1].rstrip("\r\n"),
            )
            lines.push([(n, t.encode("utf-8", "surrogateescape")) for n, t in parts[1:]])
            continue
        if len(parts) > 1 and expected is not None and len(values) != expected:
            q.add(
                file,
                lineno,
                f"unbalanced quote: lines {lineno}-{end} read as one record of {len(values)} fields, "
                f"expected {expected}; line {lineno} is left out and reading resumes at line "
                f"{lineno + 1}; fix the quoting",
                parts[0][1].rstrip("\r\n"),
            )
            lines.push([(n, t.encode("utf-8", "surrogateescape")) for n, t in parts[1:]])
            continue
        yield lineno, values, text.rstrip("\r\n")


def read_csv(spec: SourceSpec, f: Any, file: str, q: Quarantine, header_check) -> Iterator[Block]:
    delim = spec.location.get("delimiter", ",")
    lines = Lines(f, file, q)
    header = None
    block = Block([], [], [], file, [])
    for _line, values, _raw in _csv_records(lines, delim, q, file, None):
        if not any(v.strip() for v in values):
            continue
        if header is None:
            header = values
            header_check(header, file)
            break
    if header is None:
        return
    for lineno, values, raw in _csv_records(lines, delim, q, file, len(header)):
        if not any(v.strip() for v in values):
            continue
        if any(_has_surrogate(v) for v in values):
            q.add(
                file,
                lineno,
                "not valid UTF-8: undecodable bytes in the row; re-encode the file as UTF-8",
                raw.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace"),
            )
            continue
        if len(values) != len(header):
            q.add(
                file,
                lineno,
                f"wrong field count: expected {len(header)} fields, got {len(values)}",
                raw,
            )
            continue
        block.rows.append(dict(zip(header, values, strict=True)))
        block.lines.append(lineno)
        block.refs.append(f"{file}:{lineno}")
        block.raws.append(raw)
        if len(block.rows) >= BLOCK_ROWS:
            yield block
            block = Block([], [], [], file, [])
    if block.rows:
        yield block


def _has_surrogate(s: str) -> bool:
    try:
        s.encode("utf-8")
        return False
    except UnicodeEncodeError:
        return True


def read_parquet(f: Any, file: str, header_check) -> Iterator[Block]:
    pf = pq.ParquetFile(f)
    header_check(_flat_names(pf.schema_arrow), file)
    offset = 0
    for batch in pf.iter_batches(batch_size=BLOCK_ROWS):
        rows = batch.to_pylist()
        idx = list(range(offset + 1, offset + len(rows) + 1))
        offset += len(rows)
        yield Block(rows, [f"{file}#{i}" for i in idx], idx, file, None)


def _flat_names(schema: pa.Schema, prefix: str = "") -> list[str]:
    names = []
    for f in schema:
        names.append(prefix + f.name)
        if pa.types.is_struct(f.type):
            names.extend(_flat_names(pa.schema(list(f.type)), prefix + f.name + "."))
    return names


def read_hf(spec: SourceSpec, header_check) -> Iterator[Block]:
    from datasets import load_dataset  # imported lazily: heavy

    loc = spec.location
    token = os.environ.get(spec.token_env) if spec.token_env else None
    ref = spec.describe_location()
    try:
        ds = load_dataset(
            loc["id"],
            loc.get("config"),
            split=loc.get("split", "train"),
            revision=loc.get("revision"),
            data_files=loc.get("data_files"),
            data_dir=loc.get("data_dir"),
            streaming=bool(loc.get("streaming", False)),
            token=token,
        )
    except Exception as exc:  # noqa: BLE001
        hint = f" (gated dataset: export {spec.token_env})" if spec.token_env and not token else ""
        raise SourceError(
            f"source '{spec.name}': datasets.load_dataset failed for {ref}: {exc}{hint}"
        ) from exc
    features = getattr(ds, "features", None)
    if features is not None:
        header_check(_flat_names(features.arrow_schema), ref)
    offset = 0
    for batch in ds.iter(batch_size=BLOCK_ROWS):
        cols = list(batch)
        n = len(batch[cols[0]]) if cols else 0
        rows = [{c: batch[c][i] for c in cols} for i in range(n)]
        idx = list(range(offset, offset + n))
        offset += n
        yield Block(rows, [f"{ref}#{i}" for i in idx], [i + 1 for i in idx], ref, None)
