"""refusal_dataset: the merge of the active profile's sources, and the status of each source.

The merge reads ``audited`` for the profile's partitions only. Before reading, it asks the Dagster
instance for each source whether it was built, whether a blocking check on its chain failed on
the latest evaluation, and whether its chain is stale (an upstream asset re-materialized after its
downstream, as happens when a blocking check skips the rest of the chain). Such a source is
reported, and the merge fails unless the run config allows a partial merge, in which case the
excluded sources are listed in the metadata. It never half-merges silently.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pyarrow as pa
from dagster import (
    AssetCheckKey,
    AssetCheckSeverity,
    AssetExecutionContext,
    AssetKey,
    AssetRecordsFilter,
    Config,
    DagsterInstance,
    Failure,
    MetadataValue,
    asset,
)
from dagster._core.event_api import PartitionKeyFilter
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus
from pydantic import Field

from pipeline_assets.keys import AUDITED, JUDGE_QUALITY, OWNER, SOURCE_CHAIN
from pipeline_assets.metadata import counts_table, shares
from resources import BuildConfig
from safetygraph.audit.neardup import near_duplicate_rate
from safetygraph.core.storage import asset_parts
from safetygraph.labeling.review import confidence_distribution, coverage
from safetygraph.recipes.refusal.dataset import dataset_info, merge_sources


@dataclass
class SourceStatus:
    source: str
    state: str  # ok | not_built | blocked | stale
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.state == "ok"


def _latest_storage_id(instance: DagsterInstance, key: AssetKey, partition: str) -> int | None:
    records = instance.fetch_materializations(
        AssetRecordsFilter(asset_key=key, asset_partitions=[partition]), limit=1
    ).records
    return records[0].storage_id if records else None


def source_status(
    instance: DagsterInstance,
    sources: Sequence[str],
    blocking_checks: Mapping[AssetKey, Sequence[AssetCheckKey]],
) -> dict[str, SourceStatus]:
    """The state of each source's chain (raw_samples -> ... -> audited) in the instance."""
    out = {}
    all_checks = [k for keys in blocking_checks.values() for k in keys]
    for source in sources:
        ids = {key: _latest_storage_id(instance, key, source) for key in SOURCE_CHAIN}
        latest = (
            instance.event_log_storage.get_latest_asset_check_execution_by_key(
                all_checks, partition_filter=PartitionKeyFilter(key=source)
            )
            if all_checks
            else {}
        )
        failed = [
            f"{k.asset_key.to_user_string()}:{k.name}"
            for k, rec in latest.items()
            if rec.status == AssetCheckExecutionRecordStatus.FAILED
            and rec.evaluation.severity == AssetCheckSeverity.ERROR
        ]
        if failed:
            out[source] = SourceStatus(
                source, "blocked", "blocking check failed: " + ", ".join(sorted(failed))
            )
            continue
        missing = [k.to_user_string() for k, v in ids.items() if v is None]
        if missing:
            out[source] = SourceStatus(
                source, "not_built", "never materialized: " + ", ".join(missing)
            )
            continue
        chain = list(SOURCE_CHAIN)
        stale = [
            f"{up.to_user_string()} is newer than {down.to_user_string()}"
            for up, down in zip(chain, chain[1:], strict=False)
            if ids[up] > ids[down]
        ]
        out[source] = (
            SourceStatus(source, "stale", "; ".join(stale)) if stale else SourceStatus(source, "ok")
        )
    return out


class MergeConfig(Config):
    allow_partial: bool = Field(
        default=False,
        description="Merge the sources that are ready and list the others in the metadata, instead of failing.",
    )


def _status_markdown(statuses: Mapping[str, SourceStatus]) -> str:
    rows = "\n".join(f"| {s.source} | {s.state} | {s.detail} |" for s in statuses.values())
    return f"| source | state | detail |\n|---|---|---|\n{rows}"


def _coverage_markdown(table: pa.Table, limit: int = 60) -> str:
    rows = table.to_pylist()
    body = "\n".join(
        f"| {r['outcome']} | {r['category']} | {r['source']} | {r['rows']} |" for r in rows[:limit]
    )
    more = f"\n\n{len(rows) - limit} more rows in the asset's coverage" if len(rows) > limit else ""
    return f"| outcome | harm category | source | rows |\n|---|---|---|---:|\n{body}{more}"


def build(blocking_checks: Mapping[AssetKey, Sequence[AssetCheckKey]]):
    @asset(
        deps=[AUDITED, JUDGE_QUALITY],
        group_name="datasets",
        kinds={"duckdb", "parquet"},
        owners=[OWNER],
        description="The multi-head refusal dataset: the audited sources of the active profile, merged with "
        "cross-source duplicates removed. Fails (or, with allow_partial, reports) when a source is not built, "
        "blocked by a check or stale.",
    )
    def refusal_dataset(
        context: AssetExecutionContext, config: MergeConfig, settings: BuildConfig
    ) -> pa.Table:
        profile = settings.active()
        statuses = source_status(context.instance, profile.sources, blocking_checks)
        bad = [s for s in statuses.values() if not s.ok]
        if bad and not config.allow_partial:
            raise Failure(
                description="cannot merge: "
                + "; ".join(f"{s.source} is {s.state} ({s.detail})" for s in bad)
                + ". Materialize (or fix) those partitions, or set allow_partial to merge the others.",
                metadata={"sources": MetadataValue.md(_status_markdown(statuses))},
            )
        storage = settings.storage()
        ready = [s for s in profile.sources if statuses[s].ok]
        tables = {s: storage.read_table(*asset_parts(AUDITED.path, s)) for s in ready}
        merged, stats = merge_sources(tables, ready)
        info = dataset_info(merged)
        if bad:
            context.log.warning("partial merge; excluded: " + ", ".join(s.source for s in bad))
        context.add_output_metadata(
            {
                "profile": profile.name,
                "sources": MetadataValue.md(_status_markdown(statuses)),
                "excluded_sources": [s.source for s in bad],
                "cross_source_duplicates_removed": stats["cross_source_duplicates_removed"],
                **near_duplicate_rate(
                    merged, float(profile.thresholds.get("near_dup_threshold", 0.8))
                ),
                "by_source": counts_table("source", info["by_source"]),
                "by_outcome": counts_table("outcome", info["by_outcome"]),
                # numbers the UI plots over materializations (the label mix and the source mix)
                "rows": merged.num_rows,
                **shares("label mix", info["by_outcome"]),
                **shares("source mix", info["by_source"]),
                "by_harm_category": counts_table("harm category", info["by_harm_category"]),
                "dataset_info": MetadataValue.json(info),
                "confidence": counts_table("confidence bucket", confidence_distribution(merged)),
                "coverage": MetadataValue.md(_coverage_markdown(coverage(merged))),
            }
        )
        return merged

    return [refusal_dataset]
