"""Gates on generation (per source): schema, unique ids, the failed-request rate."""

from dagster import (
    AssetCheckResult,
    MetadataValue,
    PartitionsDefinition,
)
from safetygraph.location.checks.factories import (
    blocking_check,
    gate,
    schema_check,
    unique_ids_check,
)
from safetygraph.location.pipeline_assets.keys import (
    GENERATED,
)
from safetygraph.location.resources import BuildConfig
from safetygraph.location.schemas import (
    GeneratedRecord,
)

from safetygraph.core.tables import StoredTable
from safetygraph.generation.planning import error_summary


def per_source(partitions: PartitionsDefinition) -> list:
    @blocking_check(
        GENERATED,
        partitions_def=partitions,
        description="Failed generation requests stay under generation_error_rate_max of the requests made.",
    )
    def generation_errors(
        generated_responses: StoredTable, settings: BuildConfig
    ) -> AssetCheckResult:
        requested, n_err, examples = error_summary(generated_responses)
        rate = n_err / requested if requested else 0.0
        limit = float(settings.thresholds().generation_error_rate_max)
        return gate(
            rate <= limit,
            {
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
