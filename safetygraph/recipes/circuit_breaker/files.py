"""The stage-2 files the training plan reads: per-source shard files, the train and eval files, the
validation report and stats, then a manifest (written last) and ``LATEST``."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pyarrow as pa

from safetygraph.core import duck
from safetygraph.core.duck import sql_literal
from safetygraph.core.records import canonical_json
from safetygraph.core.storage import Storage


def _records_sql(table_name: str) -> str:
    """Stage-2 JSONL records: OpenAI-style messages (tool calls as objects), tools as JSON."""
    return f"""
    SELECT id, source, cb_class, cb_kind, is_adversarial_safe, category,
      list_transform(messages, lambda m: struct_pack(
        role := m.role, content := m.content,
        tool_calls := CASE WHEN m.tool_calls IS NULL THEN NULL ELSE
          list_transform(json_extract(m.tool_calls, '$[*]'), lambda c: json_object(
            'id', json_extract_string(c, '$.id'), 'type', 'function',
            'function', json_object('name', json_extract_string(c, '$.name'),
                                    'arguments', json_extract_string(c, '$.arguments')))) END,
        tool_call_id := m.tool_call_id, name := m.name)) AS messages,
      CASE WHEN tools IS NULL THEN NULL ELSE json(tools) END AS tools,
      struct_pack(outcome := label_outcome, prompt_harmful := prompt_harmful,
                  response_harmful := response_harmful, response_refusal := response_refusal,
                  confidence := label_confidence, judge := judge) AS labels
      {{split}}
    FROM {table_name} ORDER BY id
    """


def _jsonl_bytes(con, sql: str) -> bytes:
    rows = duck.rows(con, f"SELECT to_json(r)::VARCHAR FROM ({sql}) r")
    return "".join(r[0] + "\n" for r in rows).encode("utf-8")


STAGE2_ROOT = "circuit_breaker"


def write_files(
    storage: Storage,
    build_id: str,
    harmful: pa.Table,
    retain: pa.Table,
    train: pa.Table,
    evals: pa.Table,
    validation_report: dict[str, Any],
    stats_body: dict[str, Any],
) -> dict[str, Any]:
    """The stage-2 layout under ``circuit_breaker/<build_id>/``: harmful/<source>.jsonl,
    retain/<source>.jsonl, stage2/train.jsonl, stage2/eval.jsonl, validation_report.json,
    stats.json, then manifest.json (sha256 and rows per file) last and ``LATEST`` after it: a
    folder without a manifest is incomplete. Every file is written atomically."""
    con = duck.connect(h=harmful, r=retain, tr=train, ev=evals)
    files: list[tuple[tuple[str, ...], bytes, int]] = []
    for name, shard in (("harmful", "h"), ("retain", "r")):
        for (source,) in duck.rows(con, f"SELECT DISTINCT source FROM {shard} ORDER BY source"):
            sql = (
                _records_sql(shard)
                .format(split="")
                .replace(
                    f"FROM {shard} ORDER BY",
                    f"FROM {shard} WHERE source = {sql_literal(source)} ORDER BY",
                )
            )
            n = duck.one(con, f"SELECT count(*) FROM {shard} WHERE source = ?", [source])[0]
            files.append(((name, f"{source}.jsonl"), _jsonl_bytes(con, sql), int(n)))
    for name, t, table in (("train", "tr", train), ("eval", "ev", evals)):
        sql = _records_sql(t).format(split=", split")
        files.append((("stage2", f"{name}.jsonl"), _jsonl_bytes(con, sql), table.num_rows))
    files.append((("validation_report.json",), json.dumps(validation_report, indent=2).encode(), 0))
    files.append((("stats.json",), json.dumps(stats_body, indent=2).encode(), 0))
    entries = []
    for parts, data, rows in files:
        storage.write_bytes(data, STAGE2_ROOT, build_id, *parts)
        entries.append(
            {
                "path": "/".join(parts),
                "rows": rows,
                "bytes": len(data),
                "sha256": hashlib.sha256(data).hexdigest(),
            }
        )
    manifest = {"build_id": build_id, "files": entries}
    storage.write_bytes(canonical_json(manifest).encode(), STAGE2_ROOT, build_id, "manifest.json")
    storage.write_bytes(build_id.encode(), STAGE2_ROOT, "LATEST")
    return manifest
