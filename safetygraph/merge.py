"""Cross-source datasets: the merged refusal dataset and the leak-free train/eval split (the
circuit-breaker shards themselves are in stage2.py).

All set-wise in DuckDB over Arrow tables.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pyarrow as pa

from . import duck
from .neardup import cluster_keys, near_duplicate_pairs
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


def _distinct_prompts(*tables: pa.Table) -> pa.Table:
    con = duck.connect(
        **{f"t{i}": t.select(["prompt_hash", "prompt"]) for i, t in enumerate(tables)}
    )
    union = " UNION ALL ".join(f"SELECT prompt_hash, prompt FROM t{i}" for i in range(len(tables)))
    return duck.query(
        con,
        f"SELECT prompt_hash, any_value(prompt) AS prompt FROM ({union}) GROUP BY prompt_hash ORDER BY prompt_hash",
    )


def train_eval_split(
    harmful: pa.Table,
    retain: pa.Table,
    eval_fraction: float,
    seed: int,
    near_dup_threshold: float = 0.8,
) -> tuple[pa.Table, pa.Table]:
    """A holdout stratified by (source, class) where a prompt and its near duplicates land on one side.

    Prompts are grouped into clusters (exact copies share a ``prompt_hash``; near duplicates, by
    MinHash/Jaccard >= ``near_dup_threshold``, are joined to them); the split is drawn per cluster,
    each cluster belonging to one stratum, so no prompt can sit in both train and eval.
    """
    harmful, retain = conform(harmful, SHARD_SCHEMA), conform(retain, SHARD_SCHEMA)
    prompts = _distinct_prompts(harmful, retain)
    pairs = near_duplicate_pairs(
        prompts.column("prompt_hash"), prompts.column("prompt"), threshold=near_dup_threshold
    )
    clusters = cluster_keys(prompts.column("prompt_hash"), pairs)
    con = duck.connect(h=harmful, r=retain, cl=clusters)
    con.execute(
        """
        CREATE TABLE u AS SELECT u.*, cl.cluster FROM (SELECT * FROM h UNION ALL SELECT * FROM r) u
                          JOIN cl ON cl.key = u.prompt_hash;
        CREATE TABLE g AS SELECT cluster, min(source || '/' || cb_class) AS stratum FROM u GROUP BY cluster;
        """
    )
    con.execute(
        """
        CREATE TABLE assign AS
        SELECT cluster,
               CASE WHEN row_number() OVER (PARTITION BY stratum ORDER BY sha256(cluster || ':' || CAST(? AS VARCHAR)))
                         <= round(count(*) OVER (PARTITION BY stratum) * ?) THEN 'eval' ELSE 'train' END AS split
        FROM g
        """,
        [seed, eval_fraction],
    )
    out = duck.query(
        con,
        "SELECT u.* EXCLUDE (cluster), a.split FROM u JOIN assign a USING (cluster) ORDER BY u.source, u.id",
    )
    duck.register(con, "out", out)
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


def near_duplicate_leaks(train: pa.Table, evals: pa.Table, threshold: float = 0.8) -> list[dict]:
    """Near-duplicate prompt pairs with one side in train and the other in eval."""
    prompts = _distinct_prompts(train, evals)
    pairs = near_duplicate_pairs(
        prompts.column("prompt_hash"), prompts.column("prompt"), threshold=threshold
    )
    con = duck.connect(p=pairs, tr=train.select(["prompt_hash"]), ev=evals.select(["prompt_hash"]))
    rows = duck.rows(
        con,
        """
        SELECT a, b, jaccard FROM p
        WHERE (a IN (SELECT prompt_hash FROM tr) AND b IN (SELECT prompt_hash FROM ev))
           OR (a IN (SELECT prompt_hash FROM ev) AND b IN (SELECT prompt_hash FROM tr))
        ORDER BY jaccard DESC LIMIT 50
        """,
    )
    return [{"a": a, "b": b, "jaccard": round(j, 3)} for a, b, j in rows]


def near_duplicate_rate(table: pa.Table, threshold: float = 0.8) -> dict[str, int]:
    """Near-duplicate prompt pairs within one source and across sources."""
    prompts = table.select(["id", "source", "prompt"])
    pairs = near_duplicate_pairs(
        prompts.column("id"), prompts.column("prompt"), threshold=threshold
    )
    con = duck.connect(p=pairs, t=prompts.select(["id", "source"]))
    within, across = duck.one(
        con,
        "SELECT count(*) FILTER (WHERE x.source = y.source), count(*) FILTER (WHERE x.source <> y.source) "
        "FROM p JOIN t x ON x.id = p.a JOIN t y ON y.id = p.b",
    )
    return {
        "near_duplicate_pairs_within_source": int(within),
        "near_duplicate_pairs_across_sources": int(across),
    }


def duplicate_ids(table: pa.Table) -> list[str]:
    con = duck.connect(t=table.select(["id"]))
    return [
        r[0]
        for r in duck.rows(
            con, "SELECT id FROM t GROUP BY id HAVING count(*) > 1 ORDER BY id LIMIT 50"
        )
    ]
