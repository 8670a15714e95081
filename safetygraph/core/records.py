"""The canonical sample record: Arrow schemas for each stage and small helpers around them.

One record per (conversation, response). Chat-first: ``messages`` holds the whole conversation
(system, user, assistant and tool turns, tool calls as JSON); ``prompt`` and ``response`` are the
single-turn views (the last user turn and the final assistant turn).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pyarrow as pa

MESSAGE_TYPE = pa.struct(
    [
        ("role", pa.string()),
        ("content", pa.string()),
        ("tool_calls", pa.string()),  # JSON list of {id, name, arguments} or null
        ("tool_call_id", pa.string()),
        ("name", pa.string()),
    ]
)
MESSAGE_ROLES = ("system", "user", "assistant", "tool")

RAW_FIELDS: list[pa.Field] = [
    pa.field("id", pa.string(), nullable=False),
    pa.field("source", pa.string(), nullable=False),
    pa.field("source_ref", pa.string(), nullable=False),
    pa.field("messages", pa.list_(MESSAGE_TYPE), nullable=False),
    pa.field("tools", pa.string()),  # JSON list of tool schemas
    pa.field("prompt", pa.string(), nullable=False),
    pa.field("response", pa.string()),
    pa.field("tags", pa.list_(pa.string()), nullable=False),
    pa.field("category", pa.string()),
    pa.field("meta", pa.string()),  # JSON object of the source's unmapped columns
]
RAW_SCHEMA = pa.schema(RAW_FIELDS)

GENERATION_FIELDS: list[pa.Field] = [
    pa.field("generation_model", pa.string()),
    pa.field("generation_backend", pa.string()),
    pa.field("generation_role", pa.string()),
    pa.field("generation_params", pa.string()),  # JSON
    pa.field("request_hash", pa.string()),
    pa.field("generation_error", pa.string()),
]
GENERATED_SCHEMA = pa.schema(RAW_FIELDS + GENERATION_FIELDS)

LABEL_FIELDS: list[pa.Field] = [
    pa.field("label_outcome", pa.string(), nullable=False),
    pa.field("label_style", pa.string(), nullable=False),
    pa.field("harm_categories", pa.list_(pa.string()), nullable=False),
    pa.field("harmless_topics", pa.list_(pa.string()), nullable=False),
    pa.field("prompt_harmful", pa.bool_(), nullable=False),
    pa.field("response_harmful", pa.bool_(), nullable=False),
    pa.field("response_refusal", pa.bool_(), nullable=False),
    # attempted compliance: sets out to comply with a harmful request, gives no real uplift
    pa.field("response_attempted", pa.bool_(), nullable=False),
    pa.field("label_confidence", pa.float64(), nullable=False),
    pa.field("label_rationale", pa.string(), nullable=False),
    pa.field("judge", pa.string(), nullable=False),
]
LABELED_SCHEMA = pa.schema(RAW_FIELDS + GENERATION_FIELDS + LABEL_FIELDS)

AUDIT_FIELDS: list[pa.Field] = [
    pa.field("content_hash", pa.string(), nullable=False),
    pa.field("prompt_hash", pa.string(), nullable=False),
    pa.field("pii_types", pa.list_(pa.string()), nullable=False),
    pa.field("pii_count", pa.int32(), nullable=False),
    pa.field("toxicity", pa.float64(), nullable=False),
]
AUDITED_SCHEMA = pa.schema(RAW_FIELDS + GENERATION_FIELDS + LABEL_FIELDS + AUDIT_FIELDS)

SHARD_FIELDS: list[pa.Field] = [
    pa.field("cb_class", pa.string(), nullable=False),  # "harmful" (Ds) or "retain" (Dr)
    pa.field("cb_kind", pa.string(), nullable=False),  # why: recipes/circuit_breaker/shards.py
    pa.field("is_adversarial_safe", pa.bool_(), nullable=False),
]
SHARD_SCHEMA = pa.schema(list(AUDITED_SCHEMA) + SHARD_FIELDS)
SPLIT_SCHEMA = pa.schema(list(SHARD_SCHEMA) + [pa.field("split", pa.string(), nullable=False)])
# the refusal recipe's own train/eval: the merged dataset's rows with their side
REFUSAL_SPLIT_SCHEMA = pa.schema(
    list(AUDITED_SCHEMA) + [pa.field("split", pa.string(), nullable=False)]
)

QUARANTINE_SCHEMA = pa.schema(
    [
        pa.field("source", pa.string(), nullable=False),
        pa.field("file", pa.string(), nullable=False),
        pa.field("line", pa.int64(), nullable=False),
        pa.field("reason", pa.string(), nullable=False),
        pa.field("raw", pa.string(), nullable=False),
    ]
)


def canonical_json(value: Any) -> str:
    """JSON that is byte-identical for equal values, across processes and Python versions."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """Select and cast ``table`` to ``schema`` (same column order); missing nullable columns become null."""
    columns = []
    for f in schema:
        if f.name in table.column_names:
            columns.append(table.column(f.name).cast(f.type))
        elif f.nullable:
            columns.append(pa.nulls(table.num_rows, f.type))
        else:
            raise ValueError(
                f"column '{f.name}' is required by the schema but missing from the table"
            )
    return pa.Table.from_arrays(columns, schema=schema)


def prompt_table(prompts, responses=None) -> pa.Table:
    """RAW_SCHEMA rows of source ``s``: one user turn per prompt, and the answer when ``responses``
    gives one (tests and benchmarks build their inputs with it)."""
    rows = []
    for i, p in enumerate(prompts):
        msgs = [
            {"role": "user", "content": p, "tool_calls": None, "tool_call_id": None, "name": None}
        ]
        r = (responses or [None] * len(prompts))[i]
        if r is not None:
            msgs.append(
                {
                    "role": "assistant",
                    "content": r,
                    "tool_calls": None,
                    "tool_call_id": None,
                    "name": None,
                }
            )
        rows.append(
            {
                "id": f"{i:024d}",
                "source": "s",
                "source_ref": f"f:{i}",
                "messages": msgs,
                "prompt": p,
                "response": r,
                "tags": [],
                "meta": None,
            }
        )
    return pa.Table.from_pylist(rows, schema=RAW_SCHEMA)
