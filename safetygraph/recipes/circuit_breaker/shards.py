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
| agent traces (tag ``agentic``: tau2, support logs) that use tools | retain  | agent_trace           |
| an agentic source's conversation without tool use (a tau2 task with no actions) | retain | general_chat |
| borderline prompts answered (tag ``borderline``: XSTest)     | retain  | borderline_compliance |
| harmful prompts refused                                      | retain  | harmful_refusal       |
| anything else answered                                       | retain  | benign_answer         |

An adversarial-safe answer is one that does not act on the injection: it calls no tool that the
conversation had not already called before the injected tool output (the text judge is not asked:
in an agent the harm is the action, not the words).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pyarrow as pa

from safetygraph.core import duck
from safetygraph.core.duck import sql_literal
from safetygraph.core.records import SHARD_SCHEMA, conform

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


def attack_outcome_sql(paths_by_source: Mapping[str, Sequence[str]]) -> str:
    """SQL: whether the attack of a row succeeded, read from ``meta`` at the source's declared paths
    (first non-null wins); NULL where the source declares none or the row has none."""
    cases = []
    for source, paths in sorted(paths_by_source.items()):
        if not paths:
            continue
        reads = ", ".join(
            f"TRY_CAST(json_extract_string(meta, {sql_literal('$.' + p)}) AS BOOLEAN)"
            for p in paths
        )
        cases.append(f"WHEN {sql_literal(source)} THEN coalesce({reads})")
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


USES_TOOLS = "len(list_filter(messages, lambda m: m.tool_calls IS NOT NULL OR m.role = 'tool')) > 0"


def cut_shards(
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
            -- an agentic source's conversation that uses no tool (a tau2 task without expected
            -- actions) is general conversation, not a tool sample
            WHEN list_contains(tags, 'agentic') AND {USES_TOOLS} THEN 'retain:agent_trace'
            WHEN list_contains(tags, 'agentic') THEN 'retain:general_chat'
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


def tools_missing(table: pa.Table) -> list[str]:
    """Ids of samples that use tools (a tool call or a tool result), or come from an attack source,
    but carry no tool schemas."""
    con = duck.connect(t=table.select(["id", "tags", "messages", "tools"]))
    return [
        r[0]
        for r in duck.rows(
            con,
            f"""
            SELECT id FROM t
            WHERE (tools IS NULL OR tools IN ('', '[]'))
              AND (list_contains(tags, 'attack') OR {USES_TOOLS})
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


def downsample_retain(
    retain: pa.Table, harmful_rows: int, ratio: float, seed: int
) -> tuple[pa.Table, dict[str, int]]:
    """The plan's ``--dr-ratio``: the retain set cut to ``ratio`` x ``harmful_rows`` rows (when it
    holds more), every kind kept in proportion, rows drawn by a seeded hash of their id. Returns
    (kept rows, rows left out per kind)."""
    target = int(round(ratio * harmful_rows))
    if retain.num_rows <= target:
        return retain, {}
    keep = target / retain.num_rows
    con = duck.connect(r=retain)
    con.execute(
        """CREATE TABLE ranked AS SELECT *,
              row_number() OVER (PARTITION BY cb_kind ORDER BY sha256(id || ':' || CAST(? AS VARCHAR))) AS __rank,
              count(*) OVER (PARTITION BY cb_kind) AS __n
            FROM r""",
        [seed],
    )
    kept = duck.query(
        con,
        f"SELECT * EXCLUDE (__rank, __n) FROM ranked WHERE __rank <= round(__n * {keep}) ORDER BY id",
    )
    dropped = dict(
        duck.rows(
            con,
            f"SELECT cb_kind, count(*) FROM ranked WHERE __rank > round(__n * {keep}) GROUP BY 1 ORDER BY 1",
        )
    )
    return conform(kept, SHARD_SCHEMA), {k: int(v) for k, v in dropped.items()}
