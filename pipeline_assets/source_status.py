"""Whether a source is ready to be merged: its per-source chain built, not blocked by a failed
blocking check, and not stale. The merges (refusal_dataset, the preference split) read it before
reading any partition, so they never half-merge silently."""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from dagster import (
    AssetCheckKey,
    AssetCheckSeverity,
    AssetKey,
    AssetRecordsFilter,
    Config,
    DagsterInstance,
    Failure,
    MetadataValue,
)
from dagster._core.event_api import PartitionKeyFilter
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus
from pydantic import Field
from safetygraph.location.pipeline_assets.keys import SOURCE_CHAIN


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
    chain: Sequence[AssetKey] = SOURCE_CHAIN,
) -> dict[str, SourceStatus]:
    """The state of each source's ``chain`` (by default raw_samples -> ... -> audited) in the
    instance: not built, blocked by a failed blocking check, stale, or ok."""
    out = {}
    all_checks = [k for keys in blocking_checks.values() for k in keys]
    for source in sources:
        ids = {key: _latest_storage_id(instance, key, source) for key in chain}
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


def status_markdown(statuses: Mapping[str, SourceStatus]) -> str:
    rows = "\n".join(f"| {s.source} | {s.state} | {s.detail} |" for s in statuses.values())
    return f"| source | state | detail |\n|---|---|---|\n{rows}"


def ready_sources(
    instance: DagsterInstance,
    sources: Sequence[str],
    blocking_checks: Mapping[AssetKey, Sequence[AssetCheckKey]],
    allow_partial: bool,
    chain: Sequence[AssetKey] = SOURCE_CHAIN,
) -> tuple[list[str], dict[str, SourceStatus]]:
    """(the sources ready to merge, every source's status); raises a Failure naming the sources
    that are not ready unless ``allow_partial``."""
    statuses = source_status(instance, sources, blocking_checks, chain)
    bad = [s for s in statuses.values() if not s.ok]
    if bad and not allow_partial:
        raise Failure(
            description="cannot merge: "
            + "; ".join(f"{s.source} is {s.state} ({s.detail})" for s in bad)
            + ". Materialize (or fix) those partitions, or set allow_partial (safetygraph demo --allow-partial; in the launchpad: allow_partial: true) to merge the others.",
            metadata={"sources": MetadataValue.md(status_markdown(statuses))},
        )
    return [s for s in sources if statuses[s].ok], statuses
