"""Cross-source datasets: the merged refusal dataset, circuit-breaker shards and the train/eval split.

All set-wise in DuckDB over Arrow tables.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pyarrow as pa

from . import duck
from .records import AUDITED_SCHEMA, SHARD_SCHEMA, SPLIT_SCHEMA, conform


def merge_sources(
    tables: Mapping[str, pa.Table], order: Sequence[str]
) -> tuple[pa.Table, dict[str, Any]]:
    """Union the audited sources; a row whose content already came from an earlier source is dropped."""
    parts = [
        conform(tables[name], AUDITED_SCHEMA).append_column(
            "__rank", pa.array([i] * tables[name].num_rows, pa.int32())
        )
        for i, name in enumerate(order)
        if name in tables
    ]
    union = (
        pa.concat_tables(parts)
        if parts
        else AUDITED_SCHEMA.empty_table().append_column("__rank", pa.array([], pa.int32()))
    )
    union = union.append_column("__pos", pa.array(range(union.num_rows), pa.int64()))
    con = duck.connect(u=union)
    merged = duck.query(
        con,
        "SELECT * EXCLUDE (__rank, __pos) FROM u "
        "QUALIFY row_number() OVER (PARTITION BY content_hash ORDER BY __rank, __pos) = 1 ORDER BY __rank, __pos",
    )
    return conform(merged, AUDITED_SCHEMA), {
        "rows_in": union.num_rows,
        "cross_source_duplicates_removed": union.num_rows - merged.num_rows,
    }


def dataset_info(table: pa.Table) -> dict[str, Any]:
    """Counts by source, outcome, style, harm category and flags: what a dataset card needs."""
    con = duck.connect(t=table)

    def counts(expr: str, unnest: bool = False) -> dict[str, int]:
        col = f"unnest({expr})" if unnest else expr
        rows = duck.rows(
            con, f"SELECT k, count(*) FROM (SELECT {col} AS k FROM t) GROUP BY k ORDER BY k"
        )
        return {str(k): int(n) for k, n in rows}

    flags = duck.one(
        con,
        "SELECT count(*), sum(prompt_harmful::INT), sum(response_harmful::INT), sum(response_refusal::INT), "
        "round(avg(label_confidence), 4) FROM t",
    )
    return {
        "rows": int(flags[0]),
        "by_source": counts("source"),
        "by_outcome": counts("label_outcome"),
        "by_style": counts("label_style"),
        "by_harm_category": counts("harm_categories", unnest=True),
        "by_harmless_topic": counts("harmless_topics", unnest=True),
        "prompt_harmful": int(flags[1] or 0),
        "response_harmful": int(flags[2] or 0),
        "response_refusal": int(flags[3] or 0),
        "mean_confidence": float(flags[4]) if flags[4] is not None else None,
    }


def circuit_breaker_shards(table: pa.Table) -> tuple[pa.Table, pa.Table, int]:
    """(harmful Ds, retain Dr, over-refusals left out).

    Ds are responses that comply with a harmful request. Dr is the behaviour to keep: benign
    requests answered and harmful ones refused. A refusal of a benign request (over-refusal) is
    in neither shard. A retain row is adversarial-safe when it refuses an attack prompt.
    """
    con = duck.connect(t=table)
    sql = (
        "SELECT *, CASE WHEN response_harmful THEN 'harmful' ELSE 'retain' END AS cb_class, "
        "(NOT response_harmful AND response_refusal AND list_contains(tags, 'attack')) AS is_adversarial_safe "
        "FROM t WHERE response IS NOT NULL AND {cond}"
    )
    harmful = duck.query(con, sql.format(cond="response_harmful"))
    retain = duck.query(
        con,
        sql.format(cond="NOT response_harmful AND NOT (response_refusal AND NOT prompt_harmful)"),
    )
    over_refusals = duck.one(
        con, "SELECT count(*) FROM t WHERE response_refusal AND NOT prompt_harmful"
    )[0]
    return conform(harmful, SHARD_SCHEMA), conform(retain, SHARD_SCHEMA), int(over_refusals)


def train_eval_split(
    harmful: pa.Table, retain: pa.Table, eval_fraction: float, seed: int
) -> tuple[pa.Table, pa.Table]:
    """A holdout stratified by (source, class) where every copy of a prompt lands on the same side.

    The split is drawn per distinct prompt (``prompt_hash``), each prompt belonging to one stratum,
    so a prompt can never sit in both train and eval, whatever its responses.
    """
    con = duck.connect(h=conform(harmful, SHARD_SCHEMA), r=conform(retain, SHARD_SCHEMA))
    con.execute(
        """
        CREATE TABLE u AS SELECT * FROM h UNION ALL SELECT * FROM r;
        CREATE TABLE g AS
          SELECT prompt_hash, min(source || '/' || cb_class) AS stratum FROM u GROUP BY prompt_hash;
        """
    )
    con.execute(
        """
        CREATE TABLE assign AS
        SELECT prompt_hash,
               CASE WHEN row_number() OVER (PARTITION BY stratum ORDER BY sha256(prompt_hash || ':' || CAST(? AS VARCHAR)))
                         <= round(count(*) OVER (PARTITION BY stratum) * ?) THEN 'eval' ELSE 'train' END AS split
        FROM g
        """,
        [seed, eval_fraction],
    )
    out = duck.query(
        con, "SELECT u.*, a.split FROM u JOIN assign a USING (prompt_hash) ORDER BY u.source, u.id"
    )
    con.register("out", out)
    train = duck.query(con, "SELECT * FROM out WHERE split = 'train'")
    evals = duck.query(con, "SELECT * FROM out WHERE split = 'eval'")
    return conform(train, SPLIT_SCHEMA), conform(evals, SPLIT_SCHEMA)


def leaked_prompts(train: pa.Table, evals: pa.Table) -> list[str]:
    """Prompt hashes present on both sides of the split."""
    con = duck.connect(a=train.select(["prompt_hash"]), b=evals.select(["prompt_hash"]))
    return [
        r[0]
        for r in duck.rows(
            con, "SELECT DISTINCT prompt_hash FROM a INTERSECT SELECT DISTINCT prompt_hash FROM b"
        )
    ]


def duplicate_ids(table: pa.Table) -> list[str]:
    con = duck.connect(t=table.select(["id"]))
    return [
        r[0]
        for r in duck.rows(
            con, "SELECT id FROM t GROUP BY id HAVING count(*) > 1 ORDER BY id LIMIT 50"
        )
    ]
