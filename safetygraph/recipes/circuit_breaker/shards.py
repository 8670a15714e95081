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
| responses judged harmful, from a source whose answers may enter Ds (``harmful_set: judged``) | harmful | harmful_completion |
| responses judged harmful, from a ``harmful_set: never`` source (hh-rlhf's chosen answers) | left out (harmful_set_never) |
| attempted compliance (``response_attempted``), where the profile sets ``ds_attempted_compliance`` | harmful | attempted_compliance |
| refusals of benign prompts (over-refusals)                   | left out                        |
| harmful prompts answered without a refusal, not judged harmful | left out (harmful_prompt_answered): neither a refusal to keep nor a harmful completion |
| general conversation (tag ``general_chat``)                  | retain  | general_chat          |
| agent traces (tag ``agentic``: tau2, support logs) that use tools | retain  | agent_trace           |
| an agentic source's conversation without tool use (a tau2 task with no actions) | retain | general_chat |
| harmful prompts refused (also those tagged ``borderline``)    | retain  | harmful_refusal       |
| borderline prompts answered (tag ``borderline``: XSTest)     | retain  | borderline_compliance |
| anything else answered                                       | retain  | benign_answer         |

An adversarial-safe answer is one that does not act on the injection: it calls no tool that the
conversation had not already called before the injected tool output (the text judge is not asked:
in an agent the harm is the action, not the words).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from safetygraph.core import duck
from safetygraph.core.duck import sql_literal
from safetygraph.core.records import SHARD_SCHEMA, conform
from safetygraph.core.tables import StoredTable, connect, narrow, read_columns, table_batches

CANDIDATE_TAG = "adversarial_candidate"
HARMFUL_KINDS = ("attack_success", "harmful_completion", "attempted_compliance")
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
    table: pa.Table | StoredTable, outcome_paths: Mapping[str, Sequence[str]]
) -> dict[str, int]:
    """Recorded attack rows (answers generated anew aside) and how many of them have no outcome at
    the source's ``attack_outcome`` paths: the attack_outcome_recorded gate reads these."""
    con = connect(t=narrow(table, ["source", "tags", "meta"]))
    rows, missing = duck.one(
        con,
        f"""SELECT count(*), count(*) FILTER (WHERE {attack_outcome_sql(outcome_paths)} IS NULL)
            FROM t WHERE list_contains(tags, 'attack') AND NOT list_contains(tags, '{CANDIDATE_TAG}')""",
    )
    return {"attack_rows": int(rows), "attack_outcome_missing": int(missing)}


USES_TOOLS = "len(list_filter(messages, lambda m: m.tool_calls IS NOT NULL OR m.role = 'tool')) > 0"


GOLD_HARMFUL = "TRY_CAST(json_extract_string(meta, '$.gold_harmful') AS INTEGER)"


@dataclass(frozen=True)
class CutInfo:
    """The cut's figures: merged rows in neither set, by reason; attack rows and those whose
    outcome is missing; adversarial candidates; and Ds measured per source with human harm labels
    (rows in Ds, of them harmful by the annotators, precision, the source's harmful rows, recall)."""

    left_out: dict[str, int] = field(default_factory=dict)
    attack_rows: int = 0
    attack_outcome_missing: int = 0
    candidates: int = 0
    ds_precision: dict[str, dict[str, Any]] = field(default_factory=dict)


def _cut_source(con: Any, table: pa.Table | StoredTable) -> str:
    """The relation of the merged rows with their row position ``__pos``, for the cut's SQL."""
    if isinstance(table, StoredTable):
        return (
            f"(SELECT *, file_row_number AS __pos FROM {table.relation(con, file_row_number=True)})"
        )
    con.register(
        "t0",
        table.append_column("__pos", pa.array(range(table.num_rows), pa.int64())),
    )
    return "t0"


def _places_sql(
    source: str,
    outcome_paths: Mapping[str, Sequence[str]],
    never_harmful: Sequence[str],
    take_attempted: bool,
) -> str:
    """SQL that creates table ``c``: each row's place (``set:kind`` or ``out:reason``) and facts."""
    never = ", ".join(sql_literal(x) for x in never_harmful) or "NULL"
    return f"""
            CREATE TABLE c AS
            WITH b AS (
              SELECT __pos, source, response, tags, response_harmful, response_refusal, prompt_harmful,
                     coalesce(response_attempted, FALSE) AS response_attempted,
                     messages, {attack_outcome_sql(outcome_paths)} AS __succeeded, {GOLD_HARMFUL} AS __gold,
                     list_contains(tags, '{CANDIDATE_TAG}') AS __candidate,
                     list_contains(tags, 'attack') AS __attack,
                     -- tools called before the agent's final turn, and the new ones that turn calls
                     list_distinct(flatten(list_transform(messages[1:len(messages) - 1],
                         lambda m: coalesce(json_extract_string(m.tool_calls, '$[*].name'), [])))) AS __before,
                     coalesce(json_extract_string(messages[len(messages)].tool_calls, '$[*].name'), []) AS __final
              FROM {source}
            )
            SELECT __pos, __candidate, source, __gold,
              CASE
                WHEN response IS NULL THEN 'out:no_response'
                WHEN __candidate THEN
                  CASE WHEN len(list_filter(__final, lambda x: NOT list_contains(__before, x))) = 0
                       THEN 'retain:adversarial_safe' ELSE 'out:adversarial_candidate_unsafe' END
                WHEN __attack AND __succeeded IS NULL THEN 'out:attack_outcome_missing'
                WHEN __attack AND __succeeded THEN 'harmful:attack_success'
                WHEN __attack THEN 'retain:attack_resisted'
                WHEN response_harmful AND source IN ({never}) THEN 'out:harmful_set_never'
                WHEN response_harmful THEN 'harmful:harmful_completion'
                WHEN {"TRUE" if take_attempted else "FALSE"} AND response_attempted
                  AND NOT coalesce(source IN ({never}), FALSE) THEN 'harmful:attempted_compliance'
                WHEN response_refusal AND NOT prompt_harmful THEN 'out:over_refusal'
                WHEN prompt_harmful AND NOT response_refusal THEN 'out:harmful_prompt_answered'
                WHEN list_contains(tags, 'general_chat') THEN 'retain:general_chat'
                -- an agentic source's conversation that uses no tool (a tau2 task without expected
                -- actions) is general conversation, not a tool sample
                WHEN list_contains(tags, 'agentic') AND {USES_TOOLS} THEN 'retain:agent_trace'
                WHEN list_contains(tags, 'agentic') THEN 'retain:general_chat'
                -- a harmful prompt refused is a refusal to keep, also when its source tags it
                -- borderline (XSTest's unsafe contrast prompts)
                WHEN prompt_harmful AND response_refusal THEN 'retain:harmful_refusal'
                WHEN list_contains(tags, 'borderline') THEN 'retain:borderline_compliance'
                WHEN prompt_harmful THEN 'retain:harmful_refusal'
                ELSE 'retain:benign_answer'
              END AS __place
            FROM b
            """


def _cut_info(
    con: Any, table: pa.Table | StoredTable, outcome_paths: Mapping[str, Sequence[str]]
) -> CutInfo:
    """The cut's figures (``CutInfo``) from table ``c`` and the attack rows of ``table``."""
    left_out = dict(
        duck.rows(
            con,
            "SELECT coalesce(nullif(split_part(__place, ':', 2), ''), __place), count(*) FROM c "
            "WHERE __place NOT LIKE 'harmful:%' AND __place NOT LIKE 'retain:%' GROUP BY 1 ORDER BY 1",
        )
    )
    attacks = attack_outcome_counts(table, outcome_paths)
    return CutInfo(
        left_out={k: int(v) for k, v in left_out.items()},
        attack_rows=attacks["attack_rows"],
        attack_outcome_missing=attacks["attack_outcome_missing"],
        candidates=int(duck.one(con, "SELECT count(*) FROM c WHERE __candidate")[0]),
        ds_precision={
            str(src): {
                "ds_rows": int(n),
                "ds_gold_harmful": int(h),
                "precision": round(h / n, 4) if n else None,
                "gold_harmful": int(g),
                "recall": round(h / g, 4) if g else None,
            }
            for src, n, h, g in duck.rows(
                con,
                """SELECT source,
                          count(*) FILTER (WHERE __place LIKE 'harmful:%'),
                          count(*) FILTER (WHERE __place LIKE 'harmful:%' AND __gold = 1),
                          count(*) FILTER (WHERE __gold = 1)
                   FROM c WHERE __gold IS NOT NULL GROUP BY 1 ORDER BY 1""",
            )
        },
    )


class ShardCut:
    """The cut of the merged rows into Ds and Dr (see the module table), decided once over the
    narrow columns (a place per row position, in DuckDB), then streamed: ``batches(cls)`` reads the
    merged table batch by batch and yields the rows of that set with ``cb_class``, ``cb_kind`` and
    ``is_adversarial_safe``. Memory: one batch plus a place per row; the merged table is never
    held whole (a stored one is scanned in place). ``never_harmful`` names the sources whose answers
    never enter Ds. ``take_attempted`` adds attempted compliance (``response_attempted``: set out to
    comply, gave nothing usable) to Ds as ``attempted_compliance``; off by default, Ds takes real
    uplift only. ``info.ds_precision`` measures Ds on every source with human harm labels
    (``meta.gold_harmful``)."""

    def __init__(
        self,
        table: pa.Table | StoredTable,
        outcome_paths: Mapping[str, Sequence[str]],
        batch_rows: int = 50_000,
        never_harmful: Sequence[str] = (),
        take_attempted: bool = False,
    ):
        self.table, self.batch_rows = table, batch_rows
        con = duck.connect()
        source = _cut_source(con, table)
        con.execute(_places_sql(source, outcome_paths, never_harmful, take_attempted))
        self.places = duck.query(con, "SELECT __place FROM c ORDER BY __pos").column("__place")
        self.info = _cut_info(con, table, outcome_paths)
        con.close()
        self.places = self.places.combine_chunks()

    def batches(self, cls: str) -> Iterator[pa.Table]:
        """The rows of set ``cls`` (harmful or retain), in table order, in shard schema."""
        start = 0
        for batch in table_batches(self.table, self.batch_rows):
            n = batch.num_rows
            place = self.places.slice(start, n)
            start += n
            parts = pc.split_pattern(place, ":")
            klass = pc.list_element(parts, 0)
            keep = pc.equal(klass, cls)
            rows = batch.filter(keep)
            if rows.num_rows == 0:
                continue
            kind = pc.list_element(parts, 1).filter(keep)
            rows = (
                rows.append_column("cb_class", pa.array([cls] * rows.num_rows, pa.string()))
                .append_column("cb_kind", kind)
                .append_column(
                    "is_adversarial_safe", pc.equal(place.filter(keep), "retain:adversarial_safe")
                )
            )
            yield conform(rows, SHARD_SCHEMA)


def cut_shards(
    table: pa.Table | StoredTable,
    outcome_paths: Mapping[str, Sequence[str]],
    never_harmful: Sequence[str] = (),
    take_attempted: bool = False,
) -> tuple[pa.Table, pa.Table, CutInfo]:
    """(harmful Ds, retain Dr, info) from the merged, labelled, audited rows, whole (the pipeline
    streams ``ShardCut``); see the module table."""
    cut = ShardCut(table, outcome_paths, never_harmful=never_harmful, take_attempted=take_attempted)
    harmful = [t for t in cut.batches("harmful")]
    retain = [t for t in cut.batches("retain")]
    return (
        pa.concat_tables(harmful) if harmful else SHARD_SCHEMA.empty_table(),
        pa.concat_tables(retain) if retain else SHARD_SCHEMA.empty_table(),
        cut.info,
    )


def samples(harmful: pa.Table, retain: pa.Table) -> pa.Table:
    """Ds and Dr as one table of stage-2 samples (harmful first), in shard schema."""
    return pa.concat_tables([conform(harmful, SHARD_SCHEMA), conform(retain, SHARD_SCHEMA)])


def tools_missing(table: pa.Table | StoredTable) -> list[str]:
    """Ids of samples that use tools (a tool call or a tool result), or come from an attack source,
    but carry no tool schemas (a stored table is scanned in place)."""
    con = connect(t=narrow(table, ["id", "tags", "messages", "tools"]))
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


@dataclass(frozen=True)
class Stage2Stats:
    """Counts of a circuit-breaker table: rows, the harmful (Ds) and retain (Dr) sets, Dr:Ds (None
    without Ds), the adversarial-safe answers, and rows by class, kind and source x class.
    ``as_dict()`` is the body of the files' ``stats.json``."""

    samples: int
    harmful: int
    retain: int
    dr_ds_ratio: float | None
    adversarial_safe: int
    by_class: dict[str, int]
    by_kind: dict[str, int]
    by_source: dict[str, dict[str, int]]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def rows_by_source(self) -> dict[str, int]:
        return {source: sum(by.values()) for source, by in self.by_source.items()}


def stats(table: pa.Table | StoredTable) -> Stage2Stats:
    """The counts of ``table`` (a stored table: four narrow columns read from the file)."""
    con = duck.connect(
        t=read_columns(table, ["source", "cb_class", "cb_kind", "is_adversarial_safe"])
    )

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
    return Stage2Stats(
        samples=table.num_rows,
        harmful=harmful,
        retain=retain,
        dr_ds_ratio=round(retain / harmful, 4) if harmful else None,
        adversarial_safe=int(duck.one(con, "SELECT count(*) FROM t WHERE is_adversarial_safe")[0]),
        by_class=by_class,
        by_kind=counts("cb_kind"),
        by_source=by_source_class,
    )


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
