"""The refusal recipe's dataset: the profile's audited sources merged into one multi-head dataset
(cross-source duplicates removed) and the counts a dataset card needs. Set-wise in DuckDB."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from safetygraph.core import duck
from safetygraph.core.records import AUDITED_SCHEMA, conform
from safetygraph.core.tables import StoredTable, as_relation


def merge_sources(
    tables: Mapping[str, pa.Table | StoredTable], order: Sequence[str]
) -> tuple[pa.Table, MergeStats]:
    """Union the audited sources; a row whose content already came from an earlier source is
    dropped. The whole merge in memory: for small builds and tests (the pipeline streams
    ``MergeStream``)."""
    stored = {n: t for n, t in tables.items() if isinstance(t, StoredTable)}
    if stored:
        merge = MergeStream(stored, order)
        parts = list(merge.batches())
        merged = pa.concat_tables(parts) if parts else AUDITED_SCHEMA.empty_table()
        return merged, merge.stats
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
    return conform(merged, AUDITED_SCHEMA), MergeStats(
        rows_in=union.num_rows,
        cross_source_duplicates_removed=union.num_rows - merged.num_rows,
    )


@dataclass(frozen=True)
class MergeStats:
    """The merge's figures: rows read from the sources, copies of a prompt already taken from an
    earlier source, rows removed by decontamination."""

    rows_in: int = 0
    cross_source_duplicates_removed: int = 0
    decontamination_removed: int = 0


class MergeStream:
    """The merge of stored audited sources as a stream, in source order then file order: DuckDB
    finds, over the files' narrow ``content_hash`` column, the rows whose content an earlier row
    (an earlier source, or earlier in the same source) already brought; then each source is read
    batch by batch and those rows are left out. Memory: one batch, plus the positions dropped."""

    def __init__(
        self,
        tables: Mapping[str, StoredTable],
        order: Sequence[str],
        exclude: pa.Table | None = None,
    ):
        """``exclude``: (prompt_hash, source) of rows to leave out (the decontamination's removed
        prompts), counted in ``stats``."""
        self.tables = [(i, tables[name]) for i, name in enumerate(order) if name in tables]
        self.exclude = exclude
        self.rows_in = 0
        self.rows_out = 0
        self.rows_excluded = 0

    def _dropped(self) -> dict[int, pa.Array]:
        if not self.tables:
            return {}
        con = duck.connect()
        union = " UNION ALL ".join(
            f"SELECT {i} AS r, file_row_number AS p, content_hash FROM {t.relation(con, file_row_number=True)}"
            for i, t in self.tables
        )
        found = duck.query(
            con,
            f"SELECT r, p FROM ({union}) "
            "QUALIFY row_number() OVER (PARTITION BY content_hash ORDER BY r, p) > 1",
        )
        con.close()
        out: dict[int, pa.Array] = {}
        for i, _ in self.tables:
            mask = pc.equal(found.column("r"), i)
            out[i] = pc.cast(found.column("p").filter(mask), pa.int64()).combine_chunks()
        return out

    def batches(self) -> Iterator[pa.Table]:
        dropped = self._dropped()
        for i, table in self.tables:
            start = 0
            for batch in table.batches():
                n = batch.num_rows
                self.rows_in += n
                if len(dropped[i]):
                    positions = pa.array(range(start, start + n), pa.int64())
                    batch = batch.filter(pc.invert(pc.is_in(positions, value_set=dropped[i])))
                start += n
                if self.exclude is not None and self.exclude.num_rows:
                    before = batch.num_rows
                    batch = batch.filter(pc.invert(self._excluded(batch)))
                    self.rows_excluded += before - batch.num_rows
                self.rows_out += batch.num_rows
                yield conform(batch, AUDITED_SCHEMA)

    def _excluded(self, batch: pa.Table) -> pa.Array:
        keys = pc.binary_join_element_wise(
            batch.column("prompt_hash"), batch.column("source"), "\x1f"
        )
        gone = pc.binary_join_element_wise(
            self.exclude.column("prompt_hash"), self.exclude.column("source"), "\x1f"
        )
        return pc.is_in(keys, value_set=gone)

    @property
    def stats(self) -> MergeStats:
        return MergeStats(
            rows_in=self.rows_in,
            cross_source_duplicates_removed=self.rows_in - self.rows_out - self.rows_excluded,
            decontamination_removed=self.rows_excluded,
        )


@dataclass(frozen=True)
class DatasetInfo:
    """What a dataset card needs: rows by source, outcome, style, harm category and harmless topic,
    the head-D flags' counts and the mean confidence. ``as_dict()`` is ``dataset_info.json``."""

    rows: int
    by_source: dict[str, int]
    by_outcome: dict[str, int]
    by_style: dict[str, int]
    by_harm_category: dict[str, int]
    by_harmless_topic: dict[str, int]
    prompt_harmful: int
    response_harmful: int
    response_refusal: int
    mean_confidence: float | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def dataset_info(table: pa.Table | StoredTable) -> DatasetInfo:
    """Counts by source, outcome, style, harm category and flags: what a dataset card needs."""
    con = duck.connect()
    t = as_relation(con, table, "t")

    def counts(expr: str, unnest: bool = False) -> dict[str, int]:
        col = f"unnest({expr})" if unnest else expr
        rows = duck.rows(
            con, f"SELECT k, count(*) FROM (SELECT {col} AS k FROM {t}) GROUP BY k ORDER BY k"
        )
        return {str(k): int(n) for k, n in rows}

    flags = duck.one(
        con,
        "SELECT count(*), sum(prompt_harmful::INT), sum(response_harmful::INT), sum(response_refusal::INT), "
        f"round(avg(label_confidence), 4) FROM {t}",
    )
    return DatasetInfo(
        rows=int(flags[0]),
        by_source=counts("source"),
        by_outcome=counts("label_outcome"),
        by_style=counts("label_style"),
        by_harm_category=counts("harm_categories", unnest=True),
        by_harmless_topic=counts("harmless_topics", unnest=True),
        prompt_harmful=int(flags[1] or 0),
        response_harmful=int(flags[2] or 0),
        response_refusal=int(flags[3] or 0),
        mean_confidence=float(flags[4]) if flags[4] is not None else None,
    )
