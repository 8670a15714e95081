"""Mapping: parsed rows -> canonical records, following a source's registry entry.

A row becomes one conversation (from ``prompt``/``system``/``context`` columns, a ``messages``
column, a "Human:/Assistant:" ``transcript``, or a builder such as ``tau2_trace``), one canonical
row per response (``responses`` unpivots one column per model). A row that cannot be mapped goes
to the quarantine with the reason; a mapped column that no row has raises :class:`SourceError`.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

import numpy as np
import pyarrow as pa

from safetygraph.core import duck
from safetygraph.core.records import RAW_SCHEMA, canonical_json
from safetygraph.sources.errors import RowError, SourceError
from safetygraph.sources.lookup import load_lookup
from safetygraph.sources.quarantine import Quarantine
from safetygraph.sources.readers import Block
from safetygraph.sources.registry import SourceSpec
from safetygraph.sources.rows import MISSING, get_path, jsonable, text_field, to_message
from safetygraph.sources.tau2 import tau2_trace

_TRANSCRIPT_RE = re.compile(r"\n\n(Human|Assistant):[ ]?")


def parse_transcript(text: str) -> list[dict[str, Any]]:
    parts = _TRANSCRIPT_RE.split(
        "\n\n" + text.lstrip("\n") if not text.startswith("\n\n") else text
    )
    turns = []
    for who, body in zip(parts[1::2], parts[2::2], strict=False):
        turns.append({"role": "user" if who == "Human" else "assistant", "content": body.strip()})
    if not turns:
        raise RowError("malformed transcript: no 'Human:'/'Assistant:' turns found")
    for k in range(1, len(turns)):
        if turns[k]["role"] == turns[k - 1]["role"]:
            who = "Human" if turns[k]["role"] == "user" else "Assistant"
            raise RowError(
                f"malformed transcript: two '{who}:' turns in a row (turns {k} and {k + 1}); "
                "a chat cannot alternate there"
            )
    return [to_message(t, i, "transcript") for i, t in enumerate(turns)]


def _single_turn(spec: SourceSpec, row: dict[str, Any]) -> list[dict[str, Any]]:
    m = spec.mapping
    msgs = []
    if "system" in m:
        system = text_field(
            get_path(row, m["system"]), "system", m["system"], required=False, coerce=spec.coerce
        )
        if system:
            msgs.append(to_message({"role": "system", "content": system}, 0, m["system"]))
    prompt = text_field(
        get_path(row, m["prompt"]), "prompt", m["prompt"], required=True, coerce=spec.coerce
    )
    if "context" in m:
        context = text_field(
            get_path(row, m["context"]), "context", m["context"], required=False, coerce=spec.coerce
        )
        if context:
            prompt = f"{context}\n\n{prompt}"
    msgs.append(to_message({"role": "user", "content": prompt}, len(msgs), m["prompt"]))
    return msgs


def _conversation(spec: SourceSpec, row: dict[str, Any]) -> list[dict[str, Any]]:
    m = spec.mapping
    if spec.builder == "tau2_trace":
        return tau2_trace(row)[0]
    if "messages" in m:
        value = get_path(row, m["messages"])
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError as exc:
                raise RowError(
                    f"malformed messages: column '{m['messages']}' is not valid JSON ({exc.msg})"
                ) from exc
        if value is MISSING or not value:
            raise RowError(
                f"missing mapped field: 'messages' (column '{m['messages']}') is empty or absent"
            )
        if not isinstance(value, list):
            raise RowError(
                f"wrong type: 'messages' (column '{m['messages']}') is {type(value).__name__}, expected a list"
            )
        return [to_message(x, i, m["messages"]) for i, x in enumerate(value)]
    if "transcript" in m:
        text = text_field(
            get_path(row, m["transcript"]),
            "transcript",
            m["transcript"],
            required=True,
            coerce=spec.coerce,
        )
        return parse_transcript(text)
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
        raise RowError("malformed conversation: no user turn with text")
    return prompt, response


def _tools(spec: SourceSpec, row: dict[str, Any]) -> str | None:
    if spec.builder == "tau2_trace":
        return tau2_trace(row)[1]
    if "tools" not in spec.mapping:
        return None
    value = get_path(row, spec.mapping["tools"])
    if value is MISSING or value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise RowError(
                f"malformed tools: column '{spec.mapping['tools']}' is not valid JSON ({exc.msg})"
            ) from exc
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list):
        raise RowError(
            f"wrong type: 'tools' (column '{spec.mapping['tools']}') is {type(value).__name__}, expected a list"
        )
    return canonical_json(value)


def _within_limit(messages: list[dict[str, Any]], tools: str | None, limit: int) -> None:
    """A row whose text is longer than the source's ``max_text_chars`` is quarantined: it would be
    sent to a model and kept to the end otherwise (a 10 MB string is a broken export, not a prompt)."""
    for k, m in enumerate(messages):
        for part in (m.get("content"), m.get("tool_calls")):
            if part is not None and len(part) > limit:
                raise RowError(
                    f"too long: turn {k + 1} ({m['role']}) has {len(part):,} characters, over "
                    f"max_text_chars {limit:,}; raise max_text_chars for this source if it is real"
                )
    if tools is not None and len(tools) > limit:
        raise RowError(f"too long: the tool schemas have {len(tools):,} characters, over {limit:,}")


def _source_id(spec: SourceSpec, row: dict[str, Any]) -> str | None:
    """The upstream id (``mapping.source_id``), kept in ``meta.source_id`` for tracing."""
    if "source_id" not in spec.mapping:
        return None
    value = get_path(row, spec.mapping["source_id"])
    if value is MISSING or value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise RowError(
            f"wrong type: 'source_id' (column '{spec.mapping['source_id']}') is {type(value).__name__}"
        )
    return str(value)


def _raw_text(block: Block, j: int, row: dict[str, Any]) -> str:
    """The raw text of the block's row ``j`` for the quarantine (the row as JSON if none kept)."""
    return (
        block.raws[j]
        if block.raws and block.raws[j]
        else json.dumps(row, default=str, ensure_ascii=False)
    )


def _row_tags(spec: SourceSpec, row: dict[str, Any]) -> list[str]:
    """The row's tags: the source's roles, plus the harm tag of its label column's value."""
    tags = list(spec.roles)
    if spec.label:
        lv = get_path(row, spec.label.column)
        tag = spec.label.tag_for(str(lv)) if lv is not MISSING and lv is not None else None
        if tag and tag not in tags:
            tags.append(tag)
    return tags


def _variant_meta(
    meta_base: dict[str, Any],
    meta_extra: dict[str, Any],
    source_id: str | None,
    model: str | None,
) -> dict[str, Any]:
    """The meta of one canonical row: unmapped columns, the model's extras, source id, model."""
    meta = dict(meta_base)
    meta.update(meta_extra)
    if source_id is not None:
        meta["source_id"] = source_id
    if model:
        meta["response_model"] = model
    return meta


def _category(spec: SourceSpec, row: dict[str, Any]) -> str | None:
    """The row's category column as text (None when unmapped, absent or empty)."""
    cat = get_path(row, spec.mapping["category"]) if "category" in spec.mapping else None
    return None if cat is MISSING or cat in (None, "") else str(cat)


class Occurrences:
    """How often each content digest was seen before, across batches, kept in DuckDB (not in
    Python objects): memory does not grow with the source. ``number`` gives each digest of a batch
    its occurrence number (0 for the first), in order."""

    def __init__(self) -> None:
        self.con = duck.connect()
        # a digest's first 16 bytes as two integers: 16 bytes of state a distinct row
        self.con.execute("CREATE TABLE seen (k1 UBIGINT, k2 UBIGINT, n BIGINT)")

    def number(self, digests: list[bytes]) -> list[int]:
        if not digests:
            return []
        keys = np.frombuffer(b"".join(d[:16] for d in digests), dtype=">u8").reshape(-1, 2)
        batch = pa.table(
            {
                "k1": pa.array(keys[:, 0].astype(np.uint64)),
                "k2": pa.array(keys[:, 1].astype(np.uint64)),
                "pos": pa.array(range(len(digests)), pa.int64()),
            }
        )
        self.con.register("b", batch)
        out = duck.query(
            self.con,
            """
            SELECT pos,
                   coalesce(s.n, 0) + row_number() OVER (PARTITION BY b.k1, b.k2 ORDER BY pos) - 1 AS k
            FROM b LEFT JOIN (
              SELECT k1, k2, sum(n) AS n FROM seen SEMI JOIN b USING (k1, k2) GROUP BY k1, k2
            ) s USING (k1, k2)
            ORDER BY pos
            """,
        )
        self.con.execute("INSERT INTO seen SELECT k1, k2, count(*) FROM b GROUP BY k1, k2")
        self.con.unregister("b")
        return out.column("k").to_pylist()


class Mapper:
    """Turns parsed rows into canonical columns; one instance per ingest (it keeps the id counter)."""

    def __init__(self, spec: SourceSpec, q: Quarantine):
        self.spec = spec
        self.q = q
        self.cols: dict[str, list] = {n: [] for n in RAW_SCHEMA.names}
        self.occurrences = Occurrences()
        self._digests: list[
            bytes
        ] = []  # per pending row: its content digest (the id comes in take)
        self.present: set[str] = set()  # mapped columns seen at least once
        cols = list(spec.mapping.values()) + list(spec.responses.values())
        cols += [t.format(model=mdl) for t in spec.response_meta.values() for mdl in spec.responses]
        if spec.label:
            cols.append(spec.label.column)
        self.lookup: dict[str, str] = {}
        if spec.lookup:
            cols = [c for c in cols if c != spec.lookup["as"]] + [spec.lookup["column"]]
            self.lookup = load_lookup(spec)
        self.mapped = cols
        self.roots = {p.split(".")[0] for p in cols} | (
            {spec.lookup["as"]} if spec.lookup else set()
        )
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
                    c
                    for c in self.mapped
                    if c not in self.present and get_path(row, c) is not MISSING
                )
            try:
                if spec.lookup:
                    row = self._looked_up(row)
                variants = self._variants(row)
                tools = _tools(spec, row)
                views = [_views(messages) for _, messages, _ in variants]
                for _, messages, _ in variants:
                    _within_limit(messages, tools, spec.max_text_chars)
                source_id = _source_id(spec, row)
            except RowError as exc:
                raw = _raw_text(block, j, row)
                self.q.add(block.file, block.lines[j], str(exc), raw, parsed=True)
                continue
            meta_base = {k: v for k, v in row.items() if k not in self.roots}
            for (model, messages, meta_extra), (prompt, response) in zip(
                variants, views, strict=True
            ):
                key = canonical_json([messages, tools])
                digest = hashlib.sha256(f"{spec.name}\x1f{key}".encode()).digest()
                tags = _row_tags(spec, row)
                meta = _variant_meta(meta_base, meta_extra, source_id, model)
                c = self.cols
                self._digests.append(digest)
                c["source"].append(spec.name)
                c["source_ref"].append(block.refs[j] + (f"@{model}" if model else ""))
                c["messages"].append(messages)
                c["tools"].append(tools)
                c["prompt"].append(prompt)
                c["response"].append(response)
                c["tags"].append(tags)
                c["category"].append(_category(spec, row))
                c["meta"].append(canonical_json(jsonable(meta)) if meta else None)

    def _looked_up(self, row: dict[str, Any]) -> dict[str, Any]:
        lk = self.spec.lookup
        value = get_path(row, lk["column"])
        found = self.lookup.get(str(value)) if value is not MISSING and value is not None else None
        if found is None:
            raise RowError(
                f"lookup: no row with {lk['key']} = {value!r} in {lk['path']} "
                f"(column '{lk['column']}'); fix the row or the lookup file"
            )
        return {**row, lk["as"]: found}

    def _variants(self, row: dict[str, Any]) -> list[tuple[str | None, list[dict], dict]]:
        spec = self.spec
        base = _conversation(spec, row)
        if spec.responses:
            out = []
            for model, column in spec.responses.items():
                text = text_field(
                    get_path(row, column), "response", column, required=False, coerce=spec.coerce
                )
                if text is None:
                    continue  # that model has no response for this row
                extra = {
                    k: get_path(row, t.format(model=model)) for k, t in spec.response_meta.items()
                }
                extra = {k: v for k, v in extra.items() if v is not MISSING}
                out.append(
                    (
                        model,
                        base
                        + [to_message({"role": "assistant", "content": text}, len(base), column)],
                        extra,
                    )
                )
            if not out:
                raise RowError(
                    f"missing mapped field: none of the response columns {list(spec.responses.values())} has text"
                )
            return out
        if "response" in spec.mapping:
            text = text_field(
                get_path(row, spec.mapping["response"]),
                "response",
                spec.mapping["response"],
                required=False,
                coerce=spec.coerce,
            )
            if text is not None:
                base = base + [
                    to_message(
                        {"role": "assistant", "content": text}, len(base), spec.mapping["response"]
                    )
                ]
        return [(None, base, {})]

    @property
    def pending(self) -> int:
        """Canonical rows mapped and not yet taken."""
        return len(self._digests)

    def take(self) -> pa.Table:
        """The rows mapped since the last ``take``, as a table (and forget them). A row's id is the
        hash of its content digest and its occurrence (0 for the first row with that content, 1
        for the next, ... across the whole source), so identical rows get distinct, stable ids."""
        digests, self._digests = self._digests, []
        occurrence = self.occurrences.number(digests)
        self.cols["id"] = [
            hashlib.sha256(d + f":{k}".encode()).hexdigest()[:24]
            for d, k in zip(digests, occurrence, strict=True)
        ]
        table = pa.table(self.cols, schema=RAW_SCHEMA)
        self.cols = {n: [] for n in RAW_SCHEMA.names}
        return table

    def finish(self, files: list[str]) -> pa.Table:
        absent = [c for c in self.mapped if c not in self.present]
        if absent and self.rows_in:
            raise SourceError(
                f"source '{self.spec.name}': no row of {', '.join(files)} has the mapped column(s) {absent}; "
                "fix the mapping of this source in config/sources.yaml"
            )
        return self.take()
