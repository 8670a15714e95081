"""Leak-free train/eval splits, shared by the recipes: a holdout stratified by (source, class)
drawn per prompt cluster (exact copies and near duplicates together), and the leakage checks."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from safetygraph.audit.neardup import (
    PairCache,
    cluster_keys,
    distinct_prompts,
    near_duplicate_pairs,
)
from safetygraph.core import duck
from safetygraph.core.records import SHARD_SCHEMA, SPLIT_SCHEMA, conform
from safetygraph.core.tables import StoredTable, read_columns, table_batches
from safetygraph.sources.thresholds import Thresholds


def assign_splits(
    keys: pa.Table,
    eval_fraction: float,
    seed: int,
    near_dup_threshold: float = Thresholds.near_dup_threshold,
    eval_only: pa.Array | None = None,
    cache: PairCache | None = None,
) -> pa.Table:
    """``(prompt_hash, split)`` for every prompt of ``keys`` (columns prompt_hash, prompt, stratum).
    A cluster holding a prompt hash of ``eval_only`` (the rows of an evaluation set the profile
    builds from) goes to eval whole, whatever the fraction.

    Prompts are grouped into clusters (exact copies share a ``prompt_hash``; near duplicates, by
    MinHash/Jaccard >= ``near_dup_threshold``, are joined to them); each cluster belongs to one
    stratum (the smallest of its rows'), and clusters drawn in a seeded order go to eval until they
    hold ``eval_fraction`` of the stratum's rows (a cluster counted at its midpoint). So no prompt, exact or near duplicate, can sit on both sides.
    The near-duplicate pairs come from ``cache`` where the build already paired these prompts.
    """
    prompts = distinct_prompts(keys)
    pairs = near_duplicate_pairs(
        prompts.column("prompt_hash"),
        prompts.column("prompt"),
        threshold=near_dup_threshold,
        cache=cache,
    )
    clusters = cluster_keys(prompts.column("prompt_hash"), pairs)
    held = eval_only if eval_only is not None else pa.array([], pa.string())
    con = duck.connect(
        k=keys.select(["prompt_hash", "stratum"]),
        cl=clusters,
        held=pa.table({"prompt_hash": held.cast(pa.string())}),
    )
    con.execute(
        """
        CREATE TABLE g AS SELECT cl.cluster, min(k.stratum) AS stratum, count(*) AS n,
                                 bool_or(k.prompt_hash IN (SELECT prompt_hash FROM held)) AS held
                          FROM k JOIN cl ON cl.key = k.prompt_hash GROUP BY cl.cluster;
        """
    )
    return duck.query(
        con,
        """
        WITH ordered AS (
          SELECT cluster, n,
                 sum(n) OVER (PARTITION BY stratum ORDER BY sha256(cluster || ':' || CAST(? AS VARCHAR))
                              ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS before,
                 sum(n) OVER (PARTITION BY stratum) AS total
          FROM g WHERE NOT held
        ), assign AS (
          -- clusters in seeded order until their rows reach the fraction of the stratum's rows,
          -- a cluster counted at its midpoint: each stratum's share is as close as whole clusters allow
          SELECT cluster,
                 CASE WHEN coalesce(before, 0) + n / 2 <= total * ? THEN 'eval' ELSE 'train' END AS split
          FROM ordered
          UNION ALL SELECT cluster, 'eval' FROM g WHERE held
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
    near_dup_threshold: float = Thresholds.near_dup_threshold,
) -> tuple[pa.Table, pa.Table]:
    """A holdout of the stage-2 samples stratified by (source, class), drawn per prompt cluster
    (``assign_splits``), so no prompt can sit in both train and eval."""
    samples = pa.concat_tables([conform(harmful, SHARD_SCHEMA), conform(retain, SHARD_SCHEMA)])
    assignment = split_assignment(samples, eval_fraction, seed, near_dup_threshold)

    def side(split: str) -> pa.Table:
        parts = list(split_batches(samples, assignment, split, max(samples.num_rows, 1)))
        table = pa.concat_tables(parts) if parts else SPLIT_SCHEMA.empty_table()
        return table.sort_by([("source", "ascending"), ("id", "ascending")])

    return side("train"), side("eval")


def split_assignment(
    samples: pa.Table | StoredTable,
    eval_fraction: float,
    seed: int,
    near_dup_threshold: float = Thresholds.near_dup_threshold,
    class_column: str = "cb_class",
    eval_only: tuple[str, ...] = (),
    held: pa.Array | None = None,
    cache: PairCache | None = None,
) -> pa.Table:
    """``(prompt_hash, split, source, <class_column>)`` for every sample of a recipe's set, from its
    narrow columns only (a stored set: four columns read): the same holdout as
    ``train_eval_split``, without the rows. Strata are (source, ``class_column``): the stage-2
    class for the circuit breaker, the outcome (head A) for the refusal dataset. The prompts of
    the ``eval_only`` sources (evaluation sets the profile builds from) go to eval only, and so do
    the prompt hashes of ``held`` (the decontamination's eval-only prompts: a copy of an evaluation
    set's prompt in another source goes with it, even where the evaluation set's own row is not
    in this set)."""
    keys = read_columns(samples, ["prompt_hash", "prompt", "source", class_column])
    con = duck.connect(k=keys)
    keys = duck.query(
        con,
        f"SELECT prompt_hash, prompt, source || '/' || coalesce({class_column}, '') AS stratum, "
        f"source, {class_column} FROM k",
    )
    held = pc.unique(
        pa.chunked_array(
            [
                keys.filter(pc.is_in(keys.column("source"), pa.array(eval_only, pa.string())))
                .column("prompt_hash")
                .combine_chunks(),
                pa.array(held if held is not None else [], pa.string()),
            ],
            pa.string(),
        )
    )
    plan = assign_splits(keys, eval_fraction, seed, near_dup_threshold, held, cache)
    duck.register(con, "a", plan)
    duck.register(con, "kk", keys)
    return duck.query(
        con,
        f"SELECT kk.prompt_hash, a.split, kk.source, kk.{class_column} FROM kk JOIN a USING (prompt_hash)",
    )


@dataclass(frozen=True)
class Holdout:
    """A recipe's holdout, decided on the narrow columns: the assignment of every prompt hash,
    each side's narrow rows, and the report of the share reached."""

    assignment: pa.Table
    train: pa.Table
    eval: pa.Table
    report: dict


def holdout(
    samples: pa.Table | StoredTable,
    eval_fraction: float,
    seed: int,
    near_dup_threshold: float = Thresholds.near_dup_threshold,
    class_column: str = "cb_class",
    eval_only: tuple[str, ...] = (),
    held: pa.Array | None = None,
    cache: PairCache | None = None,
) -> Holdout:
    """``split_assignment`` with each side's rows and ``holdout_report``; raises when a row is on
    neither side (nothing may be left out silently)."""
    assignment = split_assignment(
        samples, eval_fraction, seed, near_dup_threshold, class_column, eval_only, held, cache
    )
    side = assignment.column("split")
    train = assignment.filter(pc.equal(side, "train"))
    evals = assignment.filter(pc.equal(side, "eval"))
    if train.num_rows + evals.num_rows != samples.num_rows:
        raise RuntimeError(
            f"split lost rows: {samples.num_rows} rows, {train.num_rows} train + "
            f"{evals.num_rows} eval"
        )
    report = holdout_report(train, evals, eval_fraction, class_column)
    return Holdout(assignment, train, evals, report)


def split_batches(
    samples: pa.Table | StoredTable,
    assignment: pa.Table,
    split: str,
    batch_rows: int,
    schema: pa.Schema = SPLIT_SCHEMA,
) -> Iterator[pa.Table]:
    """The samples of ``split`` (train or eval) with their ``split`` column, batch by batch in the
    set's order; ``assignment`` maps each prompt hash to its side (``split_assignment``)."""
    plan = duck.query(duck.connect(a=assignment), "SELECT DISTINCT prompt_hash, split FROM a")
    hashes, sides = plan.column("prompt_hash"), plan.column("split")
    for batch in table_batches(samples, batch_rows):
        at = pc.index_in(batch.column("prompt_hash"), value_set=hashes)
        side = pc.take(sides, at)
        keep = pc.equal(side, split)
        rows = batch.filter(keep)
        if rows.num_rows:
            yield conform(rows.append_column("split", side.filter(keep)), schema)


def leaked_prompts(train: pa.Table | StoredTable, evals: pa.Table | StoredTable) -> list[str]:
    """Prompt hashes present on both sides of the split."""
    con = duck.connect(
        a=read_columns(train, ["prompt_hash"]), b=read_columns(evals, ["prompt_hash"])
    )
    return [
        r[0]
        for r in duck.rows(
            con, "SELECT DISTINCT prompt_hash FROM a INTERSECT SELECT DISTINCT prompt_hash FROM b"
        )
    ]


def near_duplicate_leaks(
    train: pa.Table | StoredTable,
    evals: pa.Table | StoredTable,
    threshold: float = 0.8,
    cache: PairCache | None = None,
) -> list[dict]:
    """Near-duplicate prompt pairs with one side in train and the other in eval (the pairs of both
    sides' prompts: from ``cache`` where the split paired the same prompts)."""
    prompts = distinct_prompts(train, evals)
    pairs = near_duplicate_pairs(
        prompts.column("prompt_hash"), prompts.column("prompt"), threshold=threshold, cache=cache
    )
    con = duck.connect(
        p=pairs, tr=read_columns(train, ["prompt_hash"]), ev=read_columns(evals, ["prompt_hash"])
    )
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


def holdout_report(
    train: pa.Table, evals: pa.Table, eval_fraction: float, class_column: str = "cb_class"
) -> dict:
    """The eval share reached and why it differs from ``eval_fraction``: the (source/class) strata
    whose clusters are too few or too large to hold out a part without splitting a cluster."""
    con = duck.connect(
        a=train.select(["source", class_column]), b=evals.select(["source", class_column])
    )
    stratum = f"source || '/' || coalesce({class_column}, '')"
    rows = duck.rows(
        con,
        f"""
        WITH s AS (
          SELECT {stratum} AS stratum, count(*) AS n, 0 AS e FROM a GROUP BY 1
          UNION ALL SELECT {stratum}, count(*), count(*) FROM b GROUP BY 1
        )
        SELECT stratum, sum(n)::BIGINT, sum(e)::BIGINT FROM s GROUP BY 1 ORDER BY 1
        """,
    )
    total = sum(r[1] for r in rows)
    held = sum(r[2] for r in rows)
    off = {
        stratum: {"rows": int(n), "eval": int(e), "share": round(e / n, 3)}
        for stratum, n, e in rows
        if abs(e / n - eval_fraction) > 0.05
    }
    return {
        "eval_fraction": eval_fraction,
        "eval_share": round(held / total, 4) if total else 0.0,
        "strata_off_target": off,
        "why": "whole prompt clusters (exact and near duplicates) stay on one side; a stratum with "
        "few or large clusters cannot hold out its exact share"
        if off
        else "",
    }
