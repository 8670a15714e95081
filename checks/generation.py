"""Gates on generation (per source): schema, unique ids, the failed-request rate."""

import pyarrow as pa
import pyarrow.compute as pc
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
    def generation_errors(generated_responses: pa.Table, settings: BuildConfig) -> AssetCheckResult:
        errors = generated_responses.column("generation_error")
        n_err = len(errors) - errors.null_count
        requested = (
            len(generated_responses.column("request_hash"))
            - generated_responses.column("request_hash").null_count
        )
        rate = n_err / requested if requested else 0.0
        limit = float(settings.threshold("generation_error_rate_max"))
        examples = (
            generated_responses.filter(pc.is_valid(errors))
            .column("generation_error")
            .to_pylist()[:5]
        )
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
