"""Gates on generation (per source): schema, unique ids, the failed-request rate."""

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    MetadataValue,
    PartitionsDefinition,
    asset_check,
)

from checks.factories import schema_check, unique_ids_check
from pipeline_assets.keys import (
    GENERATED,
)
from resources import BuildConfig
from safetygraph.core.tables import StoredTable
from safetygraph.generation.planning import error_summary
from schemas import (
    GeneratedRecord,
)


def per_source(partitions: PartitionsDefinition) -> list:
    @asset_check(
        asset=GENERATED,
        blocking=True,
        partitions_def=partitions,
        description="Failed generation requests stay under generation_error_rate_max of the requests made.",
    )
    def generation_errors(
        generated_responses: StoredTable, settings: BuildConfig
    ) -> AssetCheckResult:
        requested, n_err, examples = error_summary(generated_responses)
        rate = n_err / requested if requested else 0.0
        limit = float(settings.threshold("generation_error_rate_max"))
        return AssetCheckResult(
            passed=rate <= limit,
            severity=AssetCheckSeverity.ERROR,
            metadata={
                "requested": requested,
                "errors": n_err,
                "rate": round(rate, 6),
                "max": limit,
                "examples": MetadataValue.json(examples),
            },
        )

    return [
        schema_check(GENERATED, GeneratedRecord, partitions),
        unique_ids_check(GENERATED, partitions),
        generation_errors,
    ]
