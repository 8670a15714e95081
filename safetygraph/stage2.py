"""Circuit-breaker stage-2 data: the harmful set (Ds) and the retain set (Dr), strict format
validation, the merge gates, stats and the file layout the training plan expects.

All set-wise in DuckDB over Arrow tables (messages are unnested for the per-turn rules).

Which rows go where (first rule that applies; ``cb_kind`` records it):

| rows                                                         | set     | cb_kind               |
|--------------------------------------------------------------|---------|-----------------------|
| attack prompts answered anew (tag ``adversarial_candidate``) | retain  | adversarial_safe      |
|   ... but the answer calls a tool not called before          | left out (unsafe candidate)     |
| recorded attack runs, attack succeeded (``attack_outcome``)  | harmful | attack_success        |
| recorded attack runs, attack resisted                        | retain  | attack_resisted       |
| recorded attack runs, outcome missing                        | left out (counted; gate: 10%)   |
| responses judged harmful                                     | harmful | harmful_completion    |
| refusals of benign prompts (over-refusals)                   | left out                        |
| general conversation (tag ``general_chat``)                  | retain  | general_chat          |
| agent traces (tag ``agentic``: tau2, support logs)           | retain  | agent_trace           |
| borderline prompts answered (tag ``borderline``: XSTest)     | retain  | borderline_compliance |
| harmful prompts refused                                      | retain  | harmful_refusal       |
| anything else answered                                       | retain  | benign_answer         |

An adversarial-safe answer is one that does not act on the injection: it calls no tool that the
conversation had not already called before the injected tool output (the text judge is not asked:
in an agent the harm is the action, not the words).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

import pyarrow as pa

from . import duck
from .records import SHARD_SCHEMA, canonical_json, conform
from .storage import Storage

CANDIDATE_TAG = "adversarial_candidate"
HARMFUL_KINDS = ("attack_success", "harmful_completion")
RETAIN_KINDS = (
    "adversarial_safe",
    "attack_resisted",
    "agent_trace",
    "general_chat",
    "borderline_compliance",
    "harmful_refusal",
    "benign_answer",
)
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


def _sql_str(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def attack_outcome_sql(paths_by_source: Mapping[str, Sequence[str]]) -> str:
    """SQL: whether the attack of a row succeeded, read from ``meta`` at the source's declared paths
    (first non-null wins); NULL where the source declares none or the row has none."""
    cases = []
    for source, paths in sorted(paths_by_source.items()):
        if not paths:
            continue
        reads = ", ".join(
            f"TRY_CAST(json_extract_string(meta, {_sql_str('$.' + p)}) AS BOOLEAN)" for p in paths
        )
        cases.append(f"WHEN {_sql_str(source)} THEN coalesce({reads})")
    if not cases:
        return "CAST(NULL AS BOOLEAN)"
    return f"CASE source {' '.join(cases)} END"


def attack_outcome_counts(
    table: pa.Table, outcome_paths: Mapping[str, Sequence[str]]
) -> dict[str, int]:
    """Recorded attack rows (answers generated anew aside) and how many of them have no outcome at
    the source's ``attack_outcome`` paths: the attack_outcome_recorded gate reads these."""
    con = duck.connect(t=table.select(["source", "tags", "meta"]))
    rows, missing = duck.one(
        con,
        f"""SELECT count(*), count(*) FILTER (WHERE {attack_outcome_sql(outcome_paths)} IS NULL)
            FROM t WHERE list_contains(tags, 'attack') AND NOT list_contains(tags, '{CANDIDATE_TAG}')""",
    )
    return {"attack_rows": int(rows), "attack_outcome_missing": int(missing)}


def shards(
    table: pa.Table, outcome_paths: Mapping[str, Sequence[str]]
) -> tuple[pa.Table, pa.Table, dict[str, Any]]:
    """(harmful Ds, retain Dr, info) from the merged, labelled, audited rows; see the module table."""
    con = duck.connect(t=table)
    con.execute(
        f"""
        CREATE TABLE c AS
        WITH b AS (
          SELECT *, {attack_outcome_sql(outcome_paths)} AS __succeeded,
                 list_contains(tags, '{CANDIDATE_TAG}') AS __candidate,
                 list_contains(tags, 'attack') AS __attack,
                 -- tools called before the agent's final turn, and the new ones that turn calls
                 list_distinct(flatten(list_transform(messages[1:len(messages) - 1],
                     lambda m: coalesce(json_extract_string(m.tool_calls, '$[*].name'), [])))) AS __before,
                 coalesce(json_extract_string(messages[len(messages)].tool_calls, '$[*].name'), []) AS __final
          FROM t
        )
        SELECT * EXCLUDE (__before, __final),
          CASE
            WHEN response IS NULL THEN 'no_response'
            WHEN __candidate THEN
              CASE WHEN len(list_filter(__final, lambda x: NOT list_contains(__before, x))) = 0
                   THEN 'retain:adversarial_safe' ELSE 'out:adversarial_candidate_unsafe' END
            WHEN __attack AND __succeeded IS NULL THEN 'out:attack_outcome_missing'
            WHEN __attack AND __succeeded THEN 'harmful:attack_success'
            WHEN __attack THEN 'retain:attack_resisted'
            WHEN response_harmful THEN 'harmful:harmful_completion'
            WHEN response_refusal AND NOT prompt_harmful THEN 'out:over_refusal'
            WHEN list_contains(tags, 'general_chat') THEN 'retain:general_chat'
            WHEN list_contains(tags, 'agentic') THEN 'retain:agent_trace'
            WHEN list_contains(tags, 'borderline') THEN 'retain:borderline_compliance'
            WHEN prompt_harmful THEN 'retain:harmful_refusal'
            ELSE 'retain:benign_answer'
          END AS __place
        FROM b
        """
    )

    def part(cls: str) -> pa.Table:
        return duck.query(
            con,
            f"""SELECT * EXCLUDE (__succeeded, __candidate, __attack, __place),
                       '{cls}' AS cb_class, split_part(__place, ':', 2) AS cb_kind,
                       __place = 'retain:adversarial_safe' AS is_adversarial_safe
                FROM c WHERE split_part(__place, ':', 1) = '{cls}'""",
        )

    harmful, retain = part("harmful"), part("retain")
    left_out = dict(
        duck.rows(
            con,
            "SELECT coalesce(nullif(split_part(__place, ':', 2), ''), __place), count(*) FROM c "
            "WHERE __place NOT LIKE 'harmful:%' AND __place NOT LIKE 'retain:%' GROUP BY 1 ORDER BY 1",
        )
    )
    info = {
        "left_out": {k: int(v) for k, v in left_out.items()},
        **attack_outcome_counts(table, outcome_paths),
        "candidates": int(duck.one(con, "SELECT count(*) FROM c WHERE __candidate")[0]),
    }
    return conform(harmful, SHARD_SCHEMA), conform(retain, SHARD_SCHEMA), info


def samples(harmful: pa.Table, retain: pa.Table) -> pa.Table:
    """Ds and Dr as one table of stage-2 samples (harmful first), in shard schema."""
    return pa.concat_tables([conform(harmful, SHARD_SCHEMA), conform(retain, SHARD_SCHEMA)])


def validate(table: pa.Table) -> pa.Table:
    """Every violation of R1-R6 (see ``RULES``), one row each: sample id, source, rule, turn, message.
    Empty when the set is valid."""
    cols = ["id", "source", "messages", "tools", "cb_class", "cb_kind", "is_adversarial_safe"]
    cols += ["label_outcome"]
    t = table.select([c for c in cols if c in table.column_names])
    t = t.append_column("__k", pa.array(range(t.num_rows), pa.int64()))
    con = duck.connect(t=t)
    has = set(t.column_names)

    def col(name: str) -> str:
        return name if name in has else "NULL"

    kinds = ", ".join(_sql_str(k) for k in HARMFUL_KINDS + RETAIN_KINDS)
    out = duck.query(
        con,
        f"""
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
        ),
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
        ),
        r5 AS (
          SELECT id, any_value(source), 'R5', NULL::BIGINT, 'id used by ' || count(*) || ' samples'
          FROM t GROUP BY id HAVING count(*) > 1 OR id IS NULL
        ),
        r6 AS (
          SELECT id, source, 'R6', NULL::BIGINT,
                 'missing or invalid: ' || concat_ws(', ',
                   CASE WHEN id IS NULL THEN 'id' END,
                   CASE WHEN source IS NULL THEN 'source' END,
                   CASE WHEN {col("cb_class")} IS NULL OR {col("cb_class")} NOT IN ('harmful', 'retain') THEN 'cb_class' END,
                   CASE WHEN {col("cb_kind")} IS NULL OR {col("cb_kind")} NOT IN ({kinds}) THEN 'cb_kind' END,
                   CASE WHEN {col("is_adversarial_safe")} IS NULL THEN 'is_adversarial_safe' END,
                   CASE WHEN {col("label_outcome")} IS NULL THEN 'label_outcome' END)
          FROM t
          WHERE id IS NULL OR source IS NULL
             OR {col("cb_class")} IS NULL OR {col("cb_class")} NOT IN ('harmful', 'retain')
             OR {col("cb_kind")} IS NULL OR {col("cb_kind")} NOT IN ({kinds})
             OR {col("is_adversarial_safe")} IS NULL OR {col("label_outcome")} IS NULL
        )
        SELECT * FROM (
          SELECT * FROM r1 UNION ALL SELECT * FROM r2 UNION ALL SELECT * FROM r3
          UNION ALL SELECT * FROM r4 UNION ALL SELECT * FROM r5 UNION ALL SELECT * FROM r6
        ) ORDER BY rule, id, turn
        """,
    )
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


def tools_missing(table: pa.Table) -> list[str]:
    """Ids of samples outside general conversation that use tools (or come from an agentic or attack
    source) but carry no tool schemas."""
    con = duck.connect(t=table.select(["id", "tags", "messages", "tools"]))
    return [
        r[0]
        for r in duck.rows(
            con,
            """
            SELECT id FROM t
            WHERE (tools IS NULL OR tools IN ('', '[]'))
              AND NOT list_contains(tags, 'general_chat')
              AND (list_contains(tags, 'agentic') OR list_contains(tags, 'attack')
                   OR len(list_filter(messages, lambda m: m.tool_calls IS NOT NULL OR m.role = 'tool')) > 0)
            ORDER BY id
            """,
        )
    ]


def stats(table: pa.Table) -> dict[str, Any]:
    """Counts by source, class and kind, the Dr:Ds ratio and the adversarial-safe count."""
    con = duck.connect(t=table.select(["source", "cb_class", "cb_kind", "is_adversarial_safe"]))

    def counts(expr: str) -> dict[str, int]:
        return {
            str(k): int(n)
            for k, n in duck.rows(con, f"SELECT {expr}, count(*) FROM t GROUP BY 1 ORDER BY 1")
        }

    by_class = counts("cb_class")
    harmful, retain = by_class.get("harmful", 0), by_class.get("retain", 0)
    by_source_class: dict[str, dict[str, int]] = {}
    for source, cls, n in duck.rows(
        con, "SELECT source, cb_class, count(*) FROM t GROUP BY ALL ORDER BY ALL"
    ):
        by_source_class.setdefault(source, {})[cls] = int(n)
    return {
        "samples": table.num_rows,
        "harmful": harmful,
        "retain": retain,
        "dr_ds_ratio": round(retain / harmful, 4) if harmful else None,
        "adversarial_safe": int(
            duck.one(con, "SELECT count(*) FROM t WHERE is_adversarial_safe")[0]
        ),
        "by_class": by_class,
        "by_kind": counts("cb_kind"),
        "by_source": by_source_class,
    }


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
                    f"FROM {shard} WHERE source = {_sql_str(source)} ORDER BY",
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
