"""raw_samples and raw_quarantine: one partition per registry source."""

from dagster import (
    AssetExecutionContext,
    AssetOut,
    Failure,
    MetadataValue,
    Output,
    PartitionsDefinition,
    multi_asset,
)
from safetygraph.location.pipeline_assets.keys import OWNER
from safetygraph.location.pipeline_assets.metadata import counts_table
from safetygraph.location.resources import BuildConfig

from safetygraph.core.records import RAW_SCHEMA
from safetygraph.core.tables import StoredTable, TableStream
from safetygraph.sources.errors import SourceError
from safetygraph.sources.ingest import Ingest
from safetygraph.sources.registry import RegistryError

INGEST_SPEC = dict(
    name="ingest_source",
    outs={
        "raw_samples": AssetOut(
            group_name="sources",
            description="Canonical records of one dataset source, as read through its registry entry.",
            kinds={"parquet", "duckdb"},
            owners=[OWNER],
        ),
        "raw_quarantine": AssetOut(
            group_name="sources",
            description="Rows of the source that could not be used: file, line, reason and raw text.",
            kinds={"parquet"},
            owners=[OWNER],
        ),
    },
)


def ingest_source(context: AssetExecutionContext, settings: BuildConfig):
    name = context.partition_key
    try:
        spec = settings.source(name)
    except RegistryError as exc:
        raise Failure(description=str(exc), metadata={"source": name}) from exc
    run = Ingest(spec, batch_rows=settings.batch_rows)

    def batches():
        try:
            yield from run.batches()
        except (SourceError, RegistryError) as exc:
            raise Failure(description=str(exc), metadata={"source": name}) from exc

    def figures(_written: StoredTable) -> dict:
        stats = run.stats
        context.log.info(
            f"{name}: {stats.rows_kept} rows kept, {stats.rows_quarantined} quarantined of {stats.rows_read} read"
        )
        return {
            "source": name,
            "location": spec.describe_location(),
            "licence": spec.licence,
            "roles": ", ".join(spec.roles),
            "rows_read": stats.rows_read,
            "rows_kept": stats.rows_kept,
            "rows_sampled_out": stats.rows_sampled_out,
            "rows_quarantined": stats.rows_quarantined,
        }

    # written batch by batch as the files are read; the quarantine is complete once it is
    yield Output(TableStream(RAW_SCHEMA, batches(), figures), "raw_samples")
    stats, quarantine = run.stats, run.quarantine()
    yield Output(
        quarantine,
        "raw_quarantine",
        metadata={
            "rows_read": stats.rows_read,
            "rows_quarantined": stats.rows_quarantined,
            "reasons": counts_table("reason", stats.quarantine_reasons),
            "preview": MetadataValue.md(_preview(quarantine)),
        },
    )


def build(partitions: PartitionsDefinition) -> list:
    """ingest_source over the registry's partitions (one per source)."""
    return [multi_asset(partitions_def=partitions, **INGEST_SPEC)(ingest_source)]


def _preview(quarantine, limit: int = 10) -> str:
    if quarantine.num_rows == 0:
        return "No rows quarantined."
    rows = quarantine.slice(0, limit).to_pylist()
    body = "\n".join(
        f"| {r['file'].rsplit('/', 1)[-1]} | {r['line']} | {r['reason'].replace('|', '/')} |"
        for r in rows
    )
    return f"| file | line | reason |\n|---|---:|---|\n{body}"
