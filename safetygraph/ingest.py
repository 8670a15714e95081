"""Source adapters: read a registry source into canonical records plus a quarantine table.

Every file is streamed in blocks through fsspec (local paths, ``https://``, ``s3://``; gzip by
suffix) or, for ``kind: hf``, through ``datasets.load_dataset``. Rows that cannot be used (malformed
JSON, bytes that are not UTF-8, a wrong field count, a missing or wrongly typed mapped field) go to
the quarantine with source, file, line, reason and raw text; the good rows arrive. Problems that no
row can survive (a missing file, an unknown format, a mapped column the file does not have) raise
:class:`SourceError` with one message that names the source, the file and the fix.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq

from . import duck
from .records import QUARANTINE_SCHEMA, RAW_SCHEMA, canonical_json
from .registry import SourceSpec

BLOCK_ROWS = 10_000
MAX_RAW_CHARS = 4_000
_MISSING = object()
_ROLE_ALIASES = {
    "human": "user",
    "gpt": "assistant",
    "bot": "assistant",
    "model": "assistant",
    "function": "tool",
}
_TRANSCRIPT_RE = re.compile(r"\n\n(Human|Assistant):[ ]?")

csv.field_size_limit(1 << 30)


class SourceError(RuntimeError):
    """A source that cannot be read at all; the message names the source, file and fix."""


@dataclass
class Block:
    rows: list[dict[str, Any]]
    refs: list[str]  # "file:line" / "file#record" / "hf:...#index", one per row
    lines: list[int]
    file: str
    raws: list[str] | None = None  # raw text per row, where the format has it


@dataclass
class IngestResult:
    table: pa.Table
    quarantine: pa.Table
    stats: dict[str, Any] = field(default_factory=dict)


class _Quarantine:
    def __init__(self, source: str):
        self.source = source
        self.rows: dict[str, list] = {n: [] for n in QUARANTINE_SCHEMA.names}
        self.reasons: Counter[str] = Counter()
        self.unparsed = 0  # rows that never became a parsed row (counted apart from mapped rows)

    def add(self, file: str, line: int, reason: str, raw: str, parsed: bool = False) -> None:
        self.unparsed += not parsed
        self.rows["source"].append(self.source)
        self.rows["file"].append(file)
        self.rows["line"].append(int(line))
        self.rows["reason"].append(reason)
        self.rows["raw"].append(raw[:MAX_RAW_CHARS])
        self.reasons[reason.split(":")[0]] += 1

    def table(self) -> pa.Table:
        """Ordered by file and line (parse and mapping failures are found in different passes)."""
        return pa.table(self.rows, schema=QUARANTINE_SCHEMA).sort_by(
            [("file", "ascending"), ("line", "ascending")]
        )


# ---------------------------------------------------------------- readers (file -> blocks)


def _open_files(spec: SourceSpec) -> list[tuple[str, Any]]:
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


def _decode(raw: bytes, q: _Quarantine, file: str, line: int) -> str | None:
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


def _read_jsonl(name: str, f: Any, file: str, q: _Quarantine) -> Iterator[Block]:
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


def _read_json_document(spec: SourceSpec, f: Any, file: str, q: _Quarantine) -> Iterator[Block]:
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


def _read_csv(spec: SourceSpec, f: Any, file: str, q: _Quarantine, header_check) -> Iterator[Block]:
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


def _read_parquet(f: Any, file: str, header_check) -> Iterator[Block]:
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


def _read_hf(spec: SourceSpec, header_check) -> Iterator[Block]:
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


# ---------------------------------------------------------------- mapping (rows -> canonical)


def _get(row: dict[str, Any], path: str) -> Any:
    if path in row:
        return row[path]
    cur: Any = row
    for part in path.split("."):
        if isinstance(cur, dict) and part in cur:
            cur = cur[part]
        elif isinstance(cur, list) and part.isdigit() and int(part) < len(cur):
            cur = cur[int(part)]
        else:
            return _MISSING
    return cur


class _RowError(ValueError):
    pass


def _text(value: Any, fld: str, column: str, required: bool) -> str | None:
    if value is _MISSING or value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise _RowError(f"missing mapped field: '{fld}' (column '{column}') is empty or absent")
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise _RowError(
            f"wrong type: '{fld}' (column '{column}') is {type(value).__name__}, expected text"
        )
    return str(value)


def _message(m: Any, i: int, column: str) -> dict[str, Any]:
    if not isinstance(m, dict):
        raise _RowError(
            f"malformed messages: item {i} of column '{column}' is {type(m).__name__}, expected an object"
        )
    role = m.get("role", m.get("from"))
    role = _ROLE_ALIASES.get(role, role)
    if role not in ("system", "user", "assistant", "tool"):
        raise _RowError(f"malformed messages: item {i} of column '{column}' has role {role!r}")
    content = m.get("content", m.get("value"))
    if content is not None and not isinstance(content, str):
        content = canonical_json(content)
    tool_calls = m.get("tool_calls")
    if tool_calls:
        tool_calls = canonical_json([_tool_call(tc, i, column) for tc in tool_calls])
    else:
        tool_calls = None
    if content is None and tool_calls is None:
        raise _RowError(
            f"malformed messages: item {i} of column '{column}' has neither content nor tool_calls"
        )
    return {
        "role": role,
        "content": content,
        "tool_calls": tool_calls,
        "tool_call_id": m.get("tool_call_id"),
        "name": m.get("name"),
    }


def _tool_call(tc: Any, i: int, column: str) -> dict[str, Any]:
    if not isinstance(tc, dict):
        raise _RowError(
            f"malformed messages: a tool call of item {i} in '{column}' is not an object"
        )
    fn = tc.get("function", tc)
    if isinstance(fn, str):  # AgentDojo style: {"function": "name", "args": {...}}
        fn = {"name": fn, "arguments": tc.get("args", {})}
    args = fn.get("arguments", fn.get("args", {}))
    if not isinstance(args, str):
        args = canonical_json(args)
    return {"id": tc.get("id"), "name": fn.get("name"), "arguments": args}


def _parse_transcript(text: str) -> list[dict[str, Any]]:
    parts = _TRANSCRIPT_RE.split(
        "\n\n" + text.lstrip("\n") if not text.startswith("\n\n") else text
    )
    turns = []
    for who, body in zip(parts[1::2], parts[2::2], strict=False):
        turns.append({"role": "user" if who == "Human" else "assistant", "content": body.strip()})
    if not turns:
        raise _RowError("malformed transcript: no 'Human:'/'Assistant:' turns found")
    return [_message(t, i, "transcript") for i, t in enumerate(turns)]


def _single_turn(spec: SourceSpec, row: dict[str, Any]) -> list[dict[str, Any]]:
    m = spec.mapping
    msgs = []
    if "system" in m:
        system = _text(_get(row, m["system"]), "system", m["system"], required=False)
        if system:
            msgs.append(_message({"role": "system", "content": system}, 0, m["system"]))
    prompt = _text(_get(row, m["prompt"]), "prompt", m["prompt"], required=True)
    if "context" in m:
        context = _text(_get(row, m["context"]), "context", m["context"], required=False)
        if context:
            prompt = f"{context}\n\n{prompt}"
    msgs.append(_message({"role": "user", "content": prompt}, len(msgs), m["prompt"]))
    return msgs


TAU2_SYSTEM = (
    "You are a customer service agent. Help the user with their request, following the policy of "
    "your domain and using the tools available to you."
)
TAU2_TOOL_RESULT = canonical_json({"note": "tool output not recorded in tau2 tasks.json"})


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "string"


def _tau2_trace(row: dict[str, Any]) -> tuple[list[dict[str, Any]], str | None]:
    """A tau2-bench task as a chat trace: the customer's request, then the agent's expected actions
    (evaluation_criteria.actions, requestor other than the user) as one tool call per assistant turn.
    tasks.json records no tool outputs: the turns between calls say so instead of inventing them,
    and the trace ends with the last call. Tool schemas are inferred from the recorded arguments.
    A task without agent actions becomes a prompt-only row (answered by the generation step)."""
    instructions = _get(row, "user_scenario.instructions")
    if isinstance(instructions, dict):
        parts = [instructions.get("reason_for_call"), instructions.get("known_info")]
        request = "\n\n".join(str(x).strip() for x in parts if x)
    elif isinstance(instructions, str):
        request = instructions.strip()
    else:
        request = ""
    if not request:
        raise _RowError(
            "missing mapped field: tau2 task has no user_scenario.instructions (reason_for_call)"
        )
    criteria = row.get("evaluation_criteria") or {}
    actions = [
        a
        for a in (criteria.get("actions") or [])
        if isinstance(a, dict) and a.get("name") and a.get("requestor", "assistant") != "user"
    ]
    messages = [
        _message({"role": "system", "content": TAU2_SYSTEM}, 0, "tau2"),
        _message({"role": "user", "content": request}, 1, "tau2"),
    ]
    schemas: dict[str, dict[str, Any]] = {}
    for k, action in enumerate(actions):
        args = action.get("arguments") or {}
        if not isinstance(args, dict):
            raise _RowError(f"wrong type: tau2 action {k} arguments are not an object")
        call_ids = [f"call_{a.get('action_id', i)}" for i, a in enumerate(actions)]
        call_id = call_ids[k]
        if k:
            messages.append(
                _message(
                    {
                        "role": "tool",
                        "content": TAU2_TOOL_RESULT,
                        "tool_call_id": call_ids[k - 1],
                        "name": actions[k - 1]["name"],
                    },
                    len(messages),
                    "tau2",
                )
            )
        messages.append(
            _message(
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {"id": call_id, "function": {"name": action["name"], "arguments": args}}
                    ],
                },
                len(messages),
                "tau2",
            )
        )
        fn = schemas.setdefault(
            action["name"],
            {
                "name": action["name"],
                "description": action.get("info")
                or f"{action['name']} (schema inferred from the task's recorded arguments)",
                "parameters": {"type": "object", "properties": {}, "required": []},
            },
        )
        for key, value in args.items():
            fn["parameters"]["properties"].setdefault(key, {"type": _json_type(value)})
            if key not in fn["parameters"]["required"]:
                fn["parameters"]["required"].append(key)
    tools = (
        canonical_json([{"type": "function", "function": f} for f in schemas.values()])
        if schemas
        else None
    )
    return messages, tools


def _conversation(spec: SourceSpec, row: dict[str, Any]) -> list[dict[str, Any]]:
    m = spec.mapping
    if spec.builder == "tau2_trace":
        return _tau2_trace(row)[0]
    if "messages" in m:
        value = _get(row, m["messages"])
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError as exc:
                raise _RowError(
                    f"malformed messages: column '{m['messages']}' is not valid JSON ({exc.msg})"
                ) from exc
        if value is _MISSING or not value:
            raise _RowError(
                f"missing mapped field: 'messages' (column '{m['messages']}') is empty or absent"
            )
        if not isinstance(value, list):
            raise _RowError(
                f"wrong type: 'messages' (column '{m['messages']}') is {type(value).__name__}, expected a list"
            )
        return [_message(x, i, m["messages"]) for i, x in enumerate(value)]
    if "transcript" in m:
        text = _text(_get(row, m["transcript"]), "transcript", m["transcript"], required=True)
        return _parse_transcript(text)
    return _single_turn(spec, row)


def _views(messages: list[dict[str, Any]]) -> tuple[str, str | None]:
    """(prompt, response): the last user turn before the final assistant turn, and that turn."""
    response = None
    end = len(messages)
    if messages and messages[-1]["role"] == "assistant":
        last = messages[-1]
        response = last["content"] or (
            f"[tool_calls] {last['tool_calls']}" if last["tool_calls"] else None
        )
        end -= 1
    prompt = next(
        (x["content"] for x in reversed(messages[:end]) if x["role"] == "user" and x["content"]),
        None,
    )
    if prompt is None:
        raise _RowError("malformed conversation: no user turn with text")
    return prompt, response


def _tools(spec: SourceSpec, row: dict[str, Any]) -> str | None:
    if spec.builder == "tau2_trace":
        return _tau2_trace(row)[1]
    if "tools" not in spec.mapping:
        return None
    value = _get(row, spec.mapping["tools"])
    if value is _MISSING or value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise _RowError(
                f"malformed tools: column '{spec.mapping['tools']}' is not valid JSON ({exc.msg})"
            ) from exc
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list):
        raise _RowError(
            f"wrong type: 'tools' (column '{spec.mapping['tools']}') is {type(value).__name__}, expected a list"
        )
    return canonical_json(value)


class _Mapper:
    """Turns parsed rows into canonical columns; one instance per ingest (it keeps the id counter)."""

    def __init__(self, spec: SourceSpec, q: _Quarantine):
        self.spec = spec
        self.q = q
        self.cols: dict[str, list] = {n: [] for n in RAW_SCHEMA.names}
        self.seen: Counter[bytes] = Counter()
        self.present: set[str] = set()  # mapped columns seen at least once
        cols = list(spec.mapping.values()) + list(spec.responses.values())
        cols += [t.format(model=mdl) for t in spec.response_meta.values() for mdl in spec.responses]
        if spec.label:
            cols.append(spec.label.column)
        self.mapped = cols
        self.roots = {p.split(".")[0] for p in cols}
        self.rows_in = 0

    def check_header(self, names: list[str], file: str) -> None:
        missing = [c for c in self.mapped if c not in names]
        if missing:
            raise SourceError(
                f"source '{self.spec.name}': {file} has no column(s) {missing} (it has {names[:30]}); "
                "fix the mapping of this source in config/sources.yaml"
            )
        self.present.update(self.mapped)

    def add_block(self, block: Block) -> None:
        spec = self.spec
        for j, row in enumerate(block.rows):
            self.rows_in += 1
            if len(self.present) < len(self.mapped):
                self.present.update(
                    c for c in self.mapped if c not in self.present and _get(row, c) is not _MISSING
                )
            try:
                variants = self._variants(row)
                tools = _tools(spec, row)
                views = [_views(messages) for _, messages, _ in variants]
            except _RowError as exc:
                raw = (
                    block.raws[j]
                    if block.raws and block.raws[j]
                    else json.dumps(row, default=str, ensure_ascii=False)
                )
                self.q.add(block.file, block.lines[j], str(exc), raw, parsed=True)
                continue
            meta_base = {k: v for k, v in row.items() if k not in self.roots}
            for (model, messages, meta_extra), (prompt, response) in zip(
                variants, views, strict=True
            ):
                key = canonical_json([messages, tools])
                digest = hashlib.sha256(f"{spec.name}\x1f{key}".encode()).digest()
                occurrence = self.seen[digest]
                self.seen[digest] += 1
                tags = list(spec.roles)
                if spec.label:
                    lv = _get(row, spec.label.column)
                    tag = (
                        spec.label.tag_for(str(lv))
                        if lv is not _MISSING and lv is not None
                        else None
                    )
                    if tag and tag not in tags:
                        tags.append(tag)
                meta = dict(meta_base)
                meta.update(meta_extra)
                if model:
                    meta["response_model"] = model
                c = self.cols
                c["id"].append(hashlib.sha256(digest + f":{occurrence}".encode()).hexdigest()[:24])
                c["source"].append(spec.name)
                c["source_ref"].append(block.refs[j] + (f"@{model}" if model else ""))
                c["messages"].append(messages)
                c["tools"].append(tools)
                c["prompt"].append(prompt)
                c["response"].append(response)
                c["tags"].append(tags)
                cat = _get(row, spec.mapping["category"]) if "category" in spec.mapping else None
                c["category"].append(None if cat is _MISSING or cat in (None, "") else str(cat))
                c["meta"].append(canonical_json(_jsonable(meta)) if meta else None)

    def _variants(self, row: dict[str, Any]) -> list[tuple[str | None, list[dict], dict]]:
        spec = self.spec
        base = _conversation(spec, row)
        if spec.responses:
            out = []
            for model, column in spec.responses.items():
                text = _text(_get(row, column), "response", column, required=False)
                if text is None:
                    continue  # that model has no response for this row
                extra = {k: _get(row, t.format(model=model)) for k, t in spec.response_meta.items()}
                extra = {k: v for k, v in extra.items() if v is not _MISSING}
                out.append(
                    (
                        model,
                        base
                        + [_message({"role": "assistant", "content": text}, len(base), column)],
                        extra,
                    )
                )
            if not out:
                raise _RowError(
                    f"missing mapped field: none of the response columns {list(spec.responses.values())} has text"
                )
            return out
        if "response" in spec.mapping:
            text = _text(
                _get(row, spec.mapping["response"]),
                "response",
                spec.mapping["response"],
                required=False,
            )
            if text is not None:
                base = base + [
                    _message(
                        {"role": "assistant", "content": text}, len(base), spec.mapping["response"]
                    )
                ]
        return [(None, base, {})]

    def finish(self, files: list[str]) -> pa.Table:
        absent = [c for c in self.mapped if c not in self.present]
        if absent and self.rows_in:
            raise SourceError(
                f"source '{self.spec.name}': no row of {', '.join(files)} has the mapped column(s) {absent}; "
                "fix the mapping of this source in config/sources.yaml"
            )
        return pa.table(self.cols, schema=RAW_SCHEMA)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


def _sample(table: pa.Table, row_limit: int, seed: int) -> pa.Table:
    """A deterministic sample of ``row_limit`` rows (same ids, seed and limit give the same rows)."""
    if table.num_rows <= row_limit:
        return table
    con = duck.connect(t=table.append_column("__pos", pa.array(range(table.num_rows), pa.int64())))
    picked = duck.query(
        con,
        "SELECT __pos FROM t ORDER BY sha256(id || ':' || CAST(? AS VARCHAR)) LIMIT ?",
        [seed, row_limit],
    )
    return table.take(picked.column("__pos").sort())


def ingest(spec: SourceSpec) -> IngestResult:
    """Read one source into (canonical records, quarantine)."""
    q = _Quarantine(spec.name)
    mapper = _Mapper(spec, q)
    files: list[str] = []
    fmt = spec.format
    if spec.kind == "hf":
        files.append(spec.describe_location())
        for block in _read_hf(spec, mapper.check_header):
            mapper.add_block(block)
    else:
        if fmt not in ("jsonl", "json", "json.gz", "jsonl.gz", "csv", "parquet"):
            raise SourceError(
                f"source '{spec.name}': unknown format {fmt!r}; use jsonl, json, json.gz, csv or parquet"
            )
        for file, of in _open_files(spec):
            files.append(file)
            try:
                with of as f:
                    if fmt in ("jsonl", "jsonl.gz"):
                        blocks = _read_jsonl(spec.name, f, file, q)
                    elif fmt in ("json", "json.gz"):
                        blocks = _read_json_document(spec, f, file, q)
                    elif fmt == "csv":
                        blocks = _read_csv(spec, f, file, q, mapper.check_header)
                    else:
                        blocks = _read_parquet(f, file, mapper.check_header)
                    for block in blocks:
                        mapper.add_block(block)
            except FileNotFoundError as exc:
                raise SourceError(
                    f"source '{spec.name}': file {file} does not exist; fix location in config/sources.yaml"
                ) from exc
            except (OSError, EOFError) as exc:
                if isinstance(exc, SourceError):
                    raise
                raise SourceError(
                    f"source '{spec.name}': cannot read {file}: {exc}; check the file and its format ({fmt})"
                ) from exc
    table = mapper.finish(files)
    rows_ok = table.num_rows
    if spec.row_limit:
        table = _sample(table, spec.row_limit, spec.seed)
    quarantine = q.table()
    return IngestResult(
        table=table,
        quarantine=quarantine,
        stats={
            "files": files,
            "rows_read": mapper.rows_in + q.unparsed,
            "rows_ok": rows_ok,
            "rows_kept": table.num_rows,
            "rows_quarantined": quarantine.num_rows,
            "quarantine_reasons": dict(q.reasons),
        },
    )
