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

from pipeline_assets.keys import OWNER
from pipeline_assets.metadata import counts_table
from resources import BuildConfig
from safetygraph.sources.errors import SourceError
from safetygraph.sources.ingest import ingest
from safetygraph.sources.registry import RegistryError


def build(partitions: PartitionsDefinition):
    @multi_asset(
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
        partitions_def=partitions,
    )
    def ingest_source(context: AssetExecutionContext, settings: BuildConfig):
        name = context.partition_key
        try:
            spec = settings.source(name)
            result = ingest(spec)
        except (SourceError, RegistryError) as exc:
            raise Failure(description=str(exc), metadata={"source": name}) from exc
        stats = result.stats
        context.log.info(
            f"{name}: {stats['rows_kept']} rows kept, {stats['rows_quarantined']} quarantined of {stats['rows_read']} read"
        )
        yield Output(
            result.table,
            "raw_samples",
            metadata={
                "source": name,
                "location": spec.describe_location(),
                "licence": spec.licence,
                "roles": ", ".join(spec.roles),
                "rows_read": stats["rows_read"],
                "rows_kept": stats["rows_kept"],
                "rows_sampled_out": stats["rows_ok"] - stats["rows_kept"],
                "rows_quarantined": stats["rows_quarantined"],
            },
        )
        yield Output(
            result.quarantine,
            "raw_quarantine",
            metadata={
                "rows_read": stats["rows_read"],
                "rows_quarantined": stats["rows_quarantined"],
                "reasons": counts_table("reason", stats["quarantine_reasons"]),
                "preview": MetadataValue.md(_preview(result.quarantine)),
            },
        )

    return [ingest_source]


def _preview(quarantine, limit: int = 10) -> str:
    if quarantine.num_rows == 0:
        return "No rows quarantined."
    rows = quarantine.slice(0, limit).to_pylist()
    body = "\n".join(
        f"| {r['file'].rsplit('/', 1)[-1]} | {r['line']} | {r['reason'].replace('|', '/')} |"
        for r in rows
    )
    return f"| file | line | reason |\n|---|---:|---|\n{body}"
