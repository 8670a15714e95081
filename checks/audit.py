"""Gates on the audit: the audited schema per source, and no PII left in a training table."""

from dagster import (
    AssetCheckResult,
    MetadataValue,
    PartitionsDefinition,
)
from safetygraph.location.checks.factories import blocking_check, gate, schema_check
from safetygraph.location.pipeline_assets.keys import (
    AUDITED,
)
from safetygraph.location.schemas import (
    AuditedRecord,
)

from safetygraph.audit.pii import residual_pii
from safetygraph.core.tables import StoredTable


def per_source(partitions: PartitionsDefinition) -> list:
    return [schema_check(AUDITED, AuditedRecord, partitions)]


def no_pii_left(asset_key):
    """A blocking check on ``asset_key``: no PII of any type in any turn."""

    @blocking_check(
        asset_key,
        "No PII (email, phone, SSN, card, IP, street address, API key) left in any turn.",
        name=f"{asset_key.path[-1]}_no_pii",
    )
    def _check(table: StoredTable) -> AssetCheckResult:
        left = residual_pii(table)  # DuckDB over the file
        return gate(
            not any(left.values()),
            {"rows_with_pii_by_type": MetadataValue.json(left)},
        )

    return _check
