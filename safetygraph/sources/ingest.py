"""Ingest: read a registry source into canonical records plus a quarantine table.

The readers (``readers.py``) stream each file in blocks; the mapper (``mapping.py``) turns parsed
rows into canonical records; rows that cannot be used (malformed JSON, bytes that are not UTF-8, a
wrong field count, a missing or wrongly typed mapped field) go to the quarantine with source, file,
line, reason and raw text, and the good rows arrive. Problems that no row can survive (a missing
file, an unknown format, a mapped column the file does not have) raise :class:`SourceError` with
one message that names the source, the file and the fix.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from safetygraph.core import duck
from safetygraph.core.records import RAW_SCHEMA
from safetygraph.sources.errors import SourceError
from safetygraph.sources.mapping import Mapper
from safetygraph.sources.quarantine import Quarantine
from safetygraph.sources.readers import (
    open_files,
    read_csv,
    read_hf,
    read_json_document,
    read_jsonl,
    read_parquet,
)
from safetygraph.sources.registry import SourceSpec

__all__ = ["Ingest", "IngestResult", "IngestStats", "SourceError", "ingest"]


@dataclass(frozen=True)
class IngestStats:
    """One source's ingestion: rows read (parsed or not), rows that mapped (``rows_ok``), rows kept
    after the source's sample (``rows_kept``), rows quarantined and why."""

    files: list[str] = field(default_factory=list)
    rows_read: int = 0
    rows_ok: int = 0
    rows_kept: int = 0
    rows_quarantined: int = 0
    quarantine_reasons: dict[str, int] = field(default_factory=dict)

    @property
    def rows_sampled_out(self) -> int:
        return self.rows_ok - self.rows_kept


@dataclass
class IngestResult:
    table: pa.Table
    quarantine: pa.Table
    stats: IngestStats = field(default_factory=IngestStats)


class _Sampler:
    """A deterministic sample of ``row_limit`` rows (same ids, seed and limit give the same rows),
    chosen without holding the source: batches are spilled to a local Parquet file while DuckDB
    keeps one sampling key per row; the chosen rows are then streamed back in source order."""

    def __init__(self, row_limit: int, seed: int):
        self.row_limit, self.seed = row_limit, seed
        self.folder = tempfile.TemporaryDirectory(prefix="safetygraph-sample-")
        self.path = os.path.join(self.folder.name, "rows.parquet")
        self.writer: pq.ParquetWriter | None = None
        self.con = duck.connect()
        self.con.execute("CREATE TABLE keys (pos BIGINT, k VARCHAR)")
        self.rows = 0

    def add(self, table: pa.Table) -> None:
        if self.writer is None:
            self.writer = pq.ParquetWriter(self.path, table.schema, compression="zstd")
        self.writer.write_table(table)
        ids = pa.table(
            {
                "id": table.column("id"),
                "pos": pa.array(range(self.rows, self.rows + table.num_rows), pa.int64()),
            }
        )
        self.con.register("b", ids)
        self.con.execute(
            "INSERT INTO keys SELECT pos, sha256(id || ':' || CAST(? AS VARCHAR)) FROM b",
            [self.seed],
        )
        self.con.unregister("b")
        self.rows += table.num_rows

    def chosen(self, batch_rows: int) -> Iterator[pa.Table]:
        try:
            if self.writer is None:
                return
            self.writer.close()
            if self.rows <= self.row_limit:
                picked = None
            else:
                picked = duck.query(
                    self.con, "SELECT pos FROM keys ORDER BY k LIMIT ?", [self.row_limit]
                ).column("pos")
                picked = pa.array(sorted(picked.to_numpy()), pa.int64())
            start = 0
            for batch in pq.ParquetFile(self.path).iter_batches(batch_size=batch_rows):
                table = pa.Table.from_batches([batch])
                if picked is not None:
                    positions = pa.array(range(start, start + table.num_rows), pa.int64())
                    table = table.filter(pc.is_in(positions, value_set=picked))
                start += batch.num_rows
                if table.num_rows:
                    yield table
        finally:
            self.con.close()
            self.folder.cleanup()


class Ingest:
    """One source read as a stream: ``batches()`` yields canonical records (``RAW_SCHEMA``) at most
    ``batch_rows`` at a time while the files are read; once it is exhausted, ``quarantine()`` and
    ``stats`` hold the rows that could not be used and the counts. A problem no row can survive
    raises :class:`SourceError` from ``batches()``."""

    def __init__(self, spec: SourceSpec, batch_rows: int = 50_000):
        self.spec = spec
        self.batch_rows = batch_rows
        self.q = Quarantine(spec.name)
        self.mapper = Mapper(spec, self.q)
        self.files: list[str] = []
        self.rows_ok = 0
        self.rows_kept = 0
        self.done = False

    def _mapped(self) -> Iterator[pa.Table]:
        """Every canonical row of the source, in batches (before a row_limit sample)."""
        spec, q, mapper = self.spec, self.q, self.mapper
        files, fmt = self.files, spec.format

        def flush() -> Iterator[pa.Table]:
            if mapper.pending >= self.batch_rows:
                table = mapper.take()
                for start in range(0, table.num_rows, self.batch_rows):
                    yield table.slice(start, self.batch_rows)

        if spec.kind == "hf":
            files.append(spec.describe_location())
            for block in read_hf(spec, mapper.check_header):
                mapper.add_block(block)
                yield from flush()
        else:
            if fmt not in ("jsonl", "json", "json.gz", "jsonl.gz", "csv", "parquet"):
                raise SourceError(
                    f"source '{spec.name}': unknown format {fmt!r}; use jsonl, json, json.gz, csv or parquet"
                )
            for file, of in open_files(spec):
                files.append(file)
                rows_before, quarantined_before = mapper.rows_in, len(q.rows["line"])
                try:
                    with of as f:
                        if fmt in ("jsonl", "jsonl.gz"):
                            blocks = read_jsonl(spec.name, f, file, q)
                        elif fmt in ("json", "json.gz"):
                            blocks = read_json_document(spec, f, file, q, mapper.roots)
                        elif fmt == "csv":
                            blocks = read_csv(spec, f, file, q, mapper.check_header)
                        else:
                            blocks = read_parquet(f, file, mapper.check_header)
                        for block in blocks:
                            mapper.add_block(block)
                            yield from flush()
                except FileNotFoundError as exc:
                    raise SourceError(
                        f"source '{spec.name}': file {file} does not exist; fix location in config/sources.yaml"
                    ) from exc
                except (OSError, EOFError) as exc:
                    if isinstance(exc, SourceError):
                        raise
                    raise SourceError(
                        f"source '{spec.name}': cannot read {file}: {exc}; check the file and its format ({fmt})"
                    ) from exc
                _check_format(spec, file, q, mapper.rows_in - rows_before, quarantined_before)
            if not mapper.rows_in and not q.unparsed:
                raise SourceError(
                    f"source '{spec.name}': {', '.join(files)} {'is' if len(files) == 1 else 'are'} empty "
                    "(no rows); fix location.path in config/sources.yaml or point it at the data"
                )
        last = mapper.finish(files)
        for start in range(0, last.num_rows, self.batch_rows):
            yield last.slice(start, self.batch_rows)

    def batches(self) -> Iterator[pa.Table]:
        sampler = _Sampler(self.spec.row_limit, self.spec.seed) if self.spec.row_limit else None
        for table in self._mapped():
            self.rows_ok += table.num_rows
            if sampler:
                sampler.add(table)
            else:
                self.rows_kept += table.num_rows
                yield table
        if sampler:
            for table in sampler.chosen(self.batch_rows):
                self.rows_kept += table.num_rows
                yield table
        self.done = True

    def quarantine(self) -> pa.Table:
        return self.q.table()

    @property
    def stats(self) -> IngestStats:
        return IngestStats(
            files=list(self.files),
            rows_read=self.mapper.rows_in + self.q.unparsed,
            rows_ok=self.rows_ok,
            rows_kept=self.rows_kept,
            rows_quarantined=len(self.q.rows["line"]),
            quarantine_reasons=dict(self.q.reasons),
        )


def _check_format(
    spec: SourceSpec, file: str, q: Quarantine, rows: int, quarantined_before: int
) -> None:
    """A file of which no line parsed, every line failing the format's parser, is in another
    format: one error naming it, instead of a quarantine of every line."""
    reasons = q.rows["reason"][quarantined_before:]
    if rows or len(reasons) < 2 or not all(r.startswith("malformed JSON") for r in reasons):
        return
    first = q.rows["raw"][quarantined_before]
    looks = "csv" if first.count(",") >= 1 and not first.lstrip().startswith("{") else "json"
    raise SourceError(
        f"source '{spec.name}': no line of {file} parses as {spec.format} (line "
        f"{q.rows['line'][quarantined_before]}: {reasons[0]}); the file looks like {looks}: "
        f"set format: {looks if looks != 'json' else 'json (a JSON document)'} in config/sources.yaml"
    )


def ingest(spec: SourceSpec) -> IngestResult:
    """Read one source into (canonical records, quarantine), whole: for small sources and tests
    (the pipeline streams ``Ingest.batches()``)."""
    run = Ingest(spec)
    parts = list(run.batches())
    table = pa.concat_tables(parts) if parts else RAW_SCHEMA.empty_table()
    quarantine = run.quarantine()
    return IngestResult(table=table, quarantine=quarantine, stats=run.stats)
