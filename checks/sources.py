"""Gates on ingestion (per source): schema, minimum rows, unique ids, the quarantine rate; and a
warning for upstream ids reused with different content."""

import pyarrow.compute as pc
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetIn,
    MetadataValue,
    PartitionsDefinition,
    asset_check,
)
from safetygraph.location.checks.factories import (
    blocking_check,
    gate,
    min_rows_check,
    schema_check,
    unique_ids_check,
)
from safetygraph.location.pipeline_assets.keys import (
    RAW_QUARANTINE,
    RAW_SAMPLES,
)
from safetygraph.location.resources import BuildConfig
from safetygraph.location.schemas import (
    RawRecord,
)

from safetygraph.core.tables import StoredTable, read_columns
from safetygraph.sources.errors import SKIPPED
from safetygraph.sources.quality import reused_source_ids as source_ids_reused


def per_source(partitions: PartitionsDefinition) -> list:
    @blocking_check(
        RAW_SAMPLES,
        partitions_def=partitions,
        additional_ins={"raw_quarantine": AssetIn(RAW_QUARANTINE.path)},
        description="Quarantined rows stay under the profile's quarantine_rate_max share of rows read.",
    )
    def quarantine_rate(
        raw_samples: StoredTable, raw_quarantine: StoredTable, settings: BuildConfig
    ) -> AssetCheckResult:
        # rows a builder skips by design (reason "skipped: ...") are kept and shown, not counted
        reasons = read_columns(raw_quarantine, ["reason"]).column("reason")
        skipped = pc.sum(pc.starts_with(reasons, f"{SKIPPED}:")).as_py() or 0
        bad = raw_quarantine.num_rows - skipped
        read = raw_samples.num_rows + bad
        rate = bad / read if read else 0.0
        limit = float(settings.thresholds().quarantine_rate_max)
        return gate(
            rate <= limit,
            {
                "quarantined": bad,
                "skipped": skipped,
                "rows": raw_samples.num_rows,
                "rate": round(rate, 6),
                "max": limit,
            },
        )

    @asset_check(
        asset=RAW_SAMPLES,
        blocking=False,
        partitions_def=partitions,
        description="Upstream ids (the source_id mapping, kept in meta.source_id) that name rows with "
        "different prompts: an id reused upstream makes rows untraceable. A warning, not a gate.",
    )
    def reused_source_ids(raw_samples: StoredTable) -> AssetCheckResult:
        found = source_ids_reused(raw_samples)
        return AssetCheckResult(
            passed=found["reused"] == 0,
            severity=AssetCheckSeverity.WARN,
            metadata={"reused": found["reused"], "examples": MetadataValue.json(found["examples"])},
        )

    return [
        reused_source_ids,
        schema_check(RAW_SAMPLES, RawRecord, partitions),
        min_rows_check(RAW_SAMPLES, "min_rows_per_source", partitions),
        unique_ids_check(RAW_SAMPLES, partitions),
        quarantine_rate,
    ]
