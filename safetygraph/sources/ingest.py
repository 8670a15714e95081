"""Ingest: read a registry source into canonical records plus a quarantine table.

The readers (``readers.py``) stream each file in blocks; the mapper (``mapping.py``) turns parsed
rows into canonical records; rows that cannot be used (malformed JSON, bytes that are not UTF-8, a
wrong field count, a missing or wrongly typed mapped field) go to the quarantine with source, file,
line, reason and raw text, and the good rows arrive. Problems that no row can survive (a missing
file, an unknown format, a mapped column the file does not have) raise :class:`SourceError` with
one message that names the source, the file and the fix.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from safetygraph.core import duck
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

__all__ = ["IngestResult", "SourceError", "ingest"]


@dataclass
class IngestResult:
    table: pa.Table
    quarantine: pa.Table
    stats: dict[str, Any] = field(default_factory=dict)


def _sample(table: pa.Table, row_limit: int, seed: int) -> pa.Table:
    """A deterministic sample of ``row_limit`` rows (same ids, seed and limit give the same rows)."""
    if table.num_rows <= row_limit:
        return table
    con = duck.connect(t=table.append_column("__pos", pa.array(range(table.num_rows), pa.int64())))
    picked = duck.query(
        con,
        "SELECT __pos FROM t ORDER BY sha256(id || ':' || CAST(? AS VARCHAR)) LIMIT ?",
        [seed, row_limit],
    )
    return table.take(picked.column("__pos").sort())


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
    """Read one source into (canonical records, quarantine)."""
    q = Quarantine(spec.name)
    mapper = Mapper(spec, q)
    files: list[str] = []
    fmt = spec.format
    if spec.kind == "hf":
        files.append(spec.describe_location())
        for block in read_hf(spec, mapper.check_header):
            mapper.add_block(block)
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
    table = mapper.finish(files)
    rows_ok = table.num_rows
    if spec.row_limit:
        table = _sample(table, spec.row_limit, spec.seed)
    quarantine = q.table()
    return IngestResult(
        table=table,
        quarantine=quarantine,
        stats={
            "files": files,
            "rows_read": mapper.rows_in + q.unparsed,
            "rows_ok": rows_ok,
            "rows_kept": table.num_rows,
            "rows_quarantined": quarantine.num_rows,
            "quarantine_reasons": dict(q.reasons),
        },
    )
