"""``--target-samples N`` (the export seed's flag): the export holds N rows of the refusal dataset,
drawn in a seeded order within each outcome (head A) in proportion to its share, and its train and
eval files are those rows' sides of the split. The whole dataset stays in the pipeline (the circuit
breaker and the audit read it); only the export's files are sampled."""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from safetygraph.core import duck
from safetygraph.core.tables import StoredTable, connect


@dataclass(frozen=True)
class TargetSample:
    dataset: pa.Table
    train: pa.Table
    eval: pa.Table
    rows_before: int


def target_sample(
    dataset: pa.Table | StoredTable,
    train: pa.Table | StoredTable,
    evals: pa.Table | StoredTable,
    n: int,
    seed: int,
) -> TargetSample:
    """The ``n`` rows (all of them when there are fewer) and their train/eval sides."""
    if n <= 0:
        raise ValueError(f"--target-samples {n}: give a positive number of rows")
    con = connect(d=dataset, tr=train, ev=evals)
    total = int(duck.one(con, "SELECT count(*) FROM d")[0])
    # largest remainder per outcome: quotas that add up to n exactly
    con.execute(
        f"""
        CREATE TEMP TABLE keep AS
        WITH shares AS (
          SELECT label_outcome, count(*) AS k,
                 count(*) * {min(n, total)}::DOUBLE / {max(total, 1)} AS q
          FROM d GROUP BY 1
        ), floors AS (
          SELECT label_outcome, k, floor(q)::BIGINT AS base, q - floor(q) AS rest FROM shares
        ), quotas AS (
          SELECT label_outcome, least(k, base + CASE WHEN row_number() OVER (ORDER BY rest DESC, label_outcome)
                 <= {min(n, total)} - (SELECT sum(base) FROM floors) THEN 1 ELSE 0 END) AS quota
          FROM floors
        ), ranked AS (
          SELECT id, label_outcome,
                 row_number() OVER (PARTITION BY label_outcome ORDER BY sha256(id || ':' || CAST(? AS VARCHAR))) AS r
          FROM d
        )
        SELECT id FROM ranked JOIN quotas USING (label_outcome) WHERE r <= quota
        """,
        [seed],
    )

    def side(name: str) -> pa.Table:
        return duck.query(
            con, f"SELECT * FROM {name} WHERE id IN (SELECT id FROM keep) ORDER BY id"
        )

    return TargetSample(side("d"), side("tr"), side("ev"), total)
