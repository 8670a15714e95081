"""Gates on the audit: the audited schema per source, and no PII left in a training table."""

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    MetadataValue,
    PartitionsDefinition,
    asset_check,
)

from checks.factories import schema_check
from pipeline_assets.keys import (
    AUDITED,
)
from safetygraph.audit.pii import residual_pii
from safetygraph.core.tables import StoredTable
from schemas import (
    AuditedRecord,
)


def per_source(partitions: PartitionsDefinition) -> list:
    return [schema_check(AUDITED, AuditedRecord, partitions)]


def no_pii_left(asset_key):
    """A blocking check on ``asset_key``: no PII of any type in any turn."""

    @asset_check(
        asset=asset_key,
        name=f"{asset_key.path[-1]}_no_pii",
        blocking=True,
        description="No PII (email, phone, SSN, card, IP, street address, API key) left in any turn.",
    )
    def _check(table: StoredTable) -> AssetCheckResult:
        left = residual_pii(table)  # DuckDB over the file
        return AssetCheckResult(
            passed=not any(left.values()),
            severity=AssetCheckSeverity.ERROR,
            metadata={"rows_with_pii_by_type": MetadataValue.json(left)},
        )

    return _check
