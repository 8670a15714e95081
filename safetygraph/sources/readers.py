"""Readers: one file (or Hugging Face split) in, blocks of parsed rows out.

Every file is streamed in blocks through fsspec (local paths, ``https://``, ``s3://``; gzip by
suffix) or, for ``kind: hf``, through ``datasets.load_dataset``. A row that cannot be parsed
(malformed JSON, bytes that are not UTF-8, a wrong field count) goes to the quarantine with its
line; problems no row can survive raise :class:`SourceError`.
"""

from __future__ import annotations

import csv
import io
import json
import os
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


def read_jsonl(name: str, f: Any, file: str, q: Quarantine) -> Iterator[Block]:
    block = Block([], [], [], file, [])
    for lineno, raw in enumerate(f, 1):
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


def read_json_document(spec: SourceSpec, f: Any, file: str, q: Quarantine) -> Iterator[Block]:
    head = f.read(1)
    while head and head.isspace():
        head = f.read(1)
    if head != b"[" and head != b"{":
        raise SourceError(
            f"source '{spec.name}': {file} is not a JSON document (starts with {head!r}); set format: jsonl"
        )
    data = head + f.read()
    text = _decode(data, q, file, 1)
    if text is None:
        raise SourceError(f"source '{spec.name}': {file} is not valid UTF-8; re-encode it as UTF-8")
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SourceError(
            f"source '{spec.name}': {file} line {exc.lineno} column {exc.colno}: {exc.msg}; "
            "a JSON document cannot be read past a syntax error: fix the file or convert it to JSONL"
        ) from exc
    if isinstance(doc, dict):
        key = spec.location.get("records_key")
        if key:
            if not isinstance(doc.get(key), list):
                raise SourceError(
                    f"source '{spec.name}': {file} has no list under records_key '{key}'; fix location.records_key"
                )
            doc = doc[key]
        else:
            doc = [doc]  # one object per file (e.g. one agent run per file)
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


def read_csv(spec: SourceSpec, f: Any, file: str, q: Quarantine, header_check) -> Iterator[Block]:
    text = io.TextIOWrapper(f, encoding="utf-8", errors="surrogateescape", newline="")
    reader = csv.reader(text, delimiter=spec.location.get("delimiter", ","))
    try:
        header = next(reader)
    except StopIteration:
        return
    header_check(header, file)
    block = Block([], [], [], file, [])
    prev_line = reader.line_num
    for values in reader:
        lineno = prev_line + 1  # first physical line of the record
        prev_line = reader.line_num
        raw = ",".join(values)
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
