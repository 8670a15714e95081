"""Which scenarios a trait is answered for: at most the profile's limit, the same ones every run."""

from __future__ import annotations

import pyarrow as pa

from safetygraph.core import duck


def sample_scenarios(table: pa.Table, limit: int | None, seed: int) -> pa.Table:
    """At most ``limit`` scenarios in table order, chosen by a seeded hash of ``scenario_id`` (the
    same seed and ids give the same rows; a new seed, another sample)."""
    if not limit or table.num_rows <= limit:
        return table
    con = duck.connect(t=table.append_column("__pos", pa.array(range(table.num_rows), pa.int64())))
    picked = duck.query(
        con,
        "SELECT __pos FROM t ORDER BY sha256(scenario_id || ':' || CAST(? AS VARCHAR)) LIMIT ?",
        [seed, int(limit)],
    )
    return table.take(picked.column("__pos").sort())
