"""Leak-free train/eval splits, shared by the recipes: a holdout stratified by (source, class)
drawn per prompt cluster (exact copies and near duplicates together), and the leakage checks."""

from __future__ import annotations

import pyarrow as pa

from safetygraph.audit.neardup import cluster_keys, near_duplicate_pairs
from safetygraph.core import duck
from safetygraph.core.records import SHARD_SCHEMA, SPLIT_SCHEMA, conform


def _distinct_prompts(*tables: pa.Table) -> pa.Table:
    con = duck.connect(
        **{f"t{i}": t.select(["prompt_hash", "prompt"]) for i, t in enumerate(tables)}
    )
    union = " UNION ALL ".join(f"SELECT prompt_hash, prompt FROM t{i}" for i in range(len(tables)))
    return duck.query(
        con,
        f"SELECT prompt_hash, any_value(prompt) AS prompt FROM ({union}) GROUP BY prompt_hash ORDER BY prompt_hash",
    )


def assign_splits(
    keys: pa.Table, eval_fraction: float, seed: int, near_dup_threshold: float = 0.8
) -> pa.Table:
    """``(prompt_hash, split)`` for every prompt of ``keys`` (columns prompt_hash, prompt, stratum).

    Prompts are grouped into clusters (exact copies share a ``prompt_hash``; near duplicates, by
    MinHash/Jaccard >= ``near_dup_threshold``, are joined to them); each cluster belongs to one
    stratum (the smallest of its rows'), and ``eval_fraction`` of each stratum's clusters, drawn by
    a seeded hash, go to eval. So no prompt, exact or near duplicate, can sit on both sides.
    """
    prompts = _distinct_prompts(keys)
    pairs = near_duplicate_pairs(
        prompts.column("prompt_hash"), prompts.column("prompt"), threshold=near_dup_threshold
    )
    clusters = cluster_keys(prompts.column("prompt_hash"), pairs)
    con = duck.connect(k=keys.select(["prompt_hash", "stratum"]), cl=clusters)
    con.execute(
        """
        CREATE TABLE g AS SELECT cl.cluster, min(k.stratum) AS stratum
                          FROM k JOIN cl ON cl.key = k.prompt_hash GROUP BY cl.cluster;
        """
    )
    return duck.query(
        con,
        """
        WITH assign AS (
          SELECT cluster,
                 CASE WHEN row_number() OVER (PARTITION BY stratum ORDER BY sha256(cluster || ':' || CAST(? AS VARCHAR)))
                           <= round(count(*) OVER (PARTITION BY stratum) * ?) THEN 'eval' ELSE 'train' END AS split
          FROM g
        )
        SELECT cl.key AS prompt_hash, a.split FROM cl JOIN assign a USING (cluster) ORDER BY 1
        """,
        [seed, eval_fraction],
    )


def train_eval_split(
    harmful: pa.Table,
    retain: pa.Table,
    eval_fraction: float,
    seed: int,
    near_dup_threshold: float = 0.8,
) -> tuple[pa.Table, pa.Table]:
    """A holdout of the stage-2 samples stratified by (source, class), drawn per prompt cluster
    (``assign_splits``), so no prompt can sit in both train and eval."""
    harmful, retain = conform(harmful, SHARD_SCHEMA), conform(retain, SHARD_SCHEMA)
    con = duck.connect(h=harmful, r=retain)
    con.execute("CREATE TABLE u AS SELECT * FROM h UNION ALL SELECT * FROM r")
    keys = duck.query(
        con, "SELECT prompt_hash, prompt, source || '/' || cb_class AS stratum FROM u"
    )
    duck.register(con, "a", assign_splits(keys, eval_fraction, seed, near_dup_threshold))
    out = duck.query(
        con,
        "SELECT u.*, a.split FROM u JOIN a USING (prompt_hash) ORDER BY u.source, u.id",
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
