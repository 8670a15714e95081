"""Strict format validation of stage-2 samples (rules R1-R6), set-wise in DuckDB: messages are
unnested for the per-turn rules; one row per violation."""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from safetygraph.core import duck
from safetygraph.core.duck import sql_literal
from safetygraph.core.tables import StoredTable, table_batches
from safetygraph.recipes.circuit_breaker.shards import HARMFUL_KINDS, RETAIN_KINDS

RULES = {
    "R1": "roles alternate: optional system first, then user -> assistant; an assistant turn with "
    "tool calls is followed by tool results, a tool result by another result or the assistant",
    "R2": "the sample ends with an assistant turn",
    "R3": "every tool call names a tool the sample declares",
    "R4": "tool-call arguments parse as a JSON object (and the tool-call list itself as JSON)",
    "R5": "sample ids are unique",
    "R6": "the required labels are present (source, cb_class, cb_kind, is_adversarial_safe, outcome)",
}
VALIDATION_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string()),
        pa.field("source", pa.string()),
        pa.field("rule", pa.string(), nullable=False),
        pa.field("turn", pa.int64()),
        pa.field("message", pa.string(), nullable=False),
    ]
)


def validate(table: pa.Table | StoredTable, batch_rows: int = 50_000) -> pa.Table:
    """Every violation of R1-R6 (see ``RULES``), one row each: sample id, source, rule, turn, message.
    Empty when the set is valid. The rules read one sample at a time, so a table is validated
    ``batch_rows`` samples at a time (a stored one streamed from its file)."""
    parts = [_validate(batch) for batch in table_batches(table, batch_rows)]
    return pa.concat_tables(parts) if parts else _validate(table.schema.empty_table())


def _turn_rules_sql() -> str:
    """SQL: the CTEs of the unnested messages (m, mm) and of rules R1 and R2 (r1, r2)."""
    return """
        WITH m AS (
          SELECT __k, id, source, tools, unnest(messages) AS m, generate_subscripts(messages, 1) AS i
          FROM t
        ),
        mm AS (
          SELECT __k, id, source, tools, i, m.role AS role, m.tool_calls AS calls,
                 m.tool_calls IS NOT NULL AS has_calls,
                 lag(m.role) OVER w AS prev_role, lag(m.tool_calls IS NOT NULL) OVER w AS prev_calls
          FROM m WINDOW w AS (PARTITION BY __k ORDER BY i)
        ),
        r1 AS (
          SELECT id, source, 'R1' AS rule, i AS turn,
                 'turn ' || i || ': ' || role || ' after ' ||
                 coalesce(prev_role || CASE WHEN prev_calls THEN ' (with tool calls)' ELSE '' END, 'the start') AS message
          FROM mm
          WHERE NOT coalesce(
            (prev_role IS NULL AND role IN ('system', 'user'))
            OR (prev_role = 'system' AND role = 'user')
            OR (prev_role = 'user' AND role = 'assistant')
            OR (prev_role = 'assistant' AND prev_calls AND role = 'tool')
            OR (prev_role = 'assistant' AND NOT prev_calls AND role = 'user')
            OR (prev_role = 'tool' AND role IN ('tool', 'assistant')), FALSE)
        ),
        r2 AS (
          SELECT id, source, 'R2', len(messages),
                 CASE WHEN len(messages) = 0 THEN 'no messages'
                      ELSE 'last turn is ' || messages[len(messages)].role || ', not assistant' END
          FROM t WHERE len(messages) = 0 OR messages[len(messages)].role <> 'assistant'
        ),"""


def _tool_rules_sql() -> str:
    """SQL: the CTEs of the turns with tool calls (c) and of rules R4 and R3 (r4, r3)."""
    return """
        c AS (
          SELECT __k, id, source, tools, i, calls FROM mm WHERE has_calls
        ),
        r4 AS (
          SELECT id, source, 'R4', i, 'tool calls are not a JSON list' FROM c
          WHERE NOT CASE WHEN json_valid(calls) THEN json_type(calls) = 'ARRAY' ELSE FALSE END
          UNION ALL
          SELECT id, source, 'R4', i, 'arguments of ' || coalesce(name, '?') || ' are not a JSON object: ' || left(coalesce(args, 'null'), 80)
          FROM (
            SELECT id, source, i, unnest(json_extract_string(calls, '$[*].name')) AS name,
                   unnest(json_extract_string(calls, '$[*].arguments')) AS args
            FROM c WHERE CASE WHEN json_valid(calls) THEN json_type(calls) = 'ARRAY' ELSE FALSE END
          )
          WHERE NOT CASE WHEN json_valid(args) THEN json_type(args) = 'OBJECT' ELSE FALSE END
        ),
        r3 AS (
          SELECT id, source, 'R3', i,
                 CASE WHEN tools IS NULL THEN 'calls ' || coalesce(name, '?') || ' but the sample declares no tools'
                      WHEN NOT json_valid(tools) THEN 'calls ' || coalesce(name, '?') || ' but the tools are not valid JSON'
                      ELSE 'calls ' || coalesce(name, '?') || ', which the sample does not declare' END
          FROM (
            SELECT id, source, tools, i, unnest(json_extract_string(calls, '$[*].name')) AS name
            FROM c WHERE CASE WHEN json_valid(calls) THEN json_type(calls) = 'ARRAY' ELSE FALSE END
          )
          WHERE CASE WHEN tools IS NULL OR NOT json_valid(tools) THEN TRUE
                     ELSE NOT list_contains(json_extract_string(tools, '$[*].function.name'), name) END
        ),"""


def _label_rules_sql(has: set[str]) -> str:
    """SQL: the CTEs of rules R5 and R6 (r5, r6) over the columns ``has``, then every violation."""
    cls, kind, adv, outcome = (
        name if name in has else "NULL"
        for name in ("cb_class", "cb_kind", "is_adversarial_safe", "label_outcome")
    )
    kinds = ", ".join(sql_literal(k) for k in HARMFUL_KINDS + RETAIN_KINDS)
    return f"""
        r5 AS (
          SELECT id, any_value(source), 'R5', NULL::BIGINT, 'id used by ' || count(*) || ' samples'
          FROM t GROUP BY id HAVING count(*) > 1 OR id IS NULL
        ),
        r6 AS (
          SELECT id, source, 'R6', NULL::BIGINT,
                 'missing or invalid: ' || concat_ws(', ',
                   CASE WHEN id IS NULL THEN 'id' END,
                   CASE WHEN source IS NULL THEN 'source' END,
                   CASE WHEN {cls} IS NULL OR {cls} NOT IN ('harmful', 'retain') THEN 'cb_class' END,
                   CASE WHEN {kind} IS NULL OR {kind} NOT IN ({kinds}) THEN 'cb_kind' END,
                   CASE WHEN {adv} IS NULL THEN 'is_adversarial_safe' END,
                   CASE WHEN {outcome} IS NULL THEN 'label_outcome' END)
          FROM t
          WHERE id IS NULL OR source IS NULL
             OR {cls} IS NULL OR {cls} NOT IN ('harmful', 'retain')
             OR {kind} IS NULL OR {kind} NOT IN ({kinds})
             OR {adv} IS NULL OR {outcome} IS NULL
        )
        SELECT * FROM (
          SELECT * FROM r1 UNION ALL SELECT * FROM r2 UNION ALL SELECT * FROM r3
          UNION ALL SELECT * FROM r4 UNION ALL SELECT * FROM r5 UNION ALL SELECT * FROM r6
        ) ORDER BY rule, id, turn
        """


def _validate(table: pa.Table) -> pa.Table:
    cols = ["id", "source", "messages", "tools", "cb_class", "cb_kind", "is_adversarial_safe"]
    cols += ["label_outcome"]
    t = table.select([c for c in cols if c in table.column_names])
    t = t.append_column("__k", pa.array(range(t.num_rows), pa.int64()))
    con = duck.connect(t=t)
    has = set(t.column_names)
    out = duck.query(con, _turn_rules_sql() + _tool_rules_sql() + _label_rules_sql(has))
    return pa.Table.from_arrays(
        [out.column(i).cast(f.type) for i, f in enumerate(VALIDATION_SCHEMA)],
        schema=VALIDATION_SCHEMA,
    )


def validation_summary(errors: pa.Table, samples_checked: int) -> dict[str, Any]:
    con = duck.connect(e=errors)
    by_rule = dict(duck.rows(con, "SELECT rule, count(*) FROM e GROUP BY rule ORDER BY rule"))
    bad = duck.one(con, "SELECT count(DISTINCT id) FROM e")[0]
    return {
        "samples_checked": samples_checked,
        "samples_with_errors": int(bad),
        "errors": errors.num_rows,
        "errors_by_rule": {r: int(by_rule.get(r, 0)) for r in RULES},
        "rules": RULES,
    }
