"""The refusal recipe's dataset: the profile's audited sources merged into one multi-head dataset
(cross-source duplicates removed) and the counts a dataset card needs. Set-wise in DuckDB."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pyarrow as pa

from safetygraph.core import duck
from safetygraph.core.records import AUDITED_SCHEMA, conform


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
