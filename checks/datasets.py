"""Gates on the merged refusal dataset: schema, unique ids, minimum rows, outcome coverage and the
confidence floor."""

import pyarrow.compute as pc
from dagster import (
    AssetCheckResult,
    MetadataValue,
)
from safetygraph.location.checks.factories import (
    blocking_check,
    gate,
    min_rows_check,
    no_eval_prompts_check,
    no_leakage_check,
    schema_check,
    unique_ids_check,
)
from safetygraph.location.pipeline_assets.keys import REFUSAL_DATASET, REFUSAL_EVAL, REFUSAL_TRAIN
from safetygraph.location.pipeline_assets.metadata import value_counts
from safetygraph.location.resources import BuildConfig
from safetygraph.location.schemas import AuditedRecord, RefusalSplitRecord

from safetygraph.core.tables import StoredTable, read_columns


def dataset() -> list:
    @blocking_check(
        REFUSAL_DATASET,
        description="Every outcome has at least the profile's coverage_min rows (e.g. REFUSAL.DIRECT: 10).",
    )
    def coverage_minimums(refusal_dataset: StoredTable, settings: BuildConfig) -> AssetCheckResult:
        minimums = dict(settings.thresholds().coverage_min)
        counts = value_counts(read_columns(refusal_dataset, ["label_outcome"]), "label_outcome")
        short = {
            k: {"rows": counts.get(k, 0), "minimum": v}
            for k, v in minimums.items()
            if counts.get(k, 0) < v
        }
        return gate(
            not short,
            {"by_outcome": MetadataValue.json(counts), "short": MetadataValue.json(short)},
        )

    @blocking_check(
        REFUSAL_DATASET,
        description="The share of rows under the confidence floor (confidence_floor, 0.6) stays under max_low_confidence_share.",
    )
    def confidence_floor(refusal_dataset: StoredTable, settings: BuildConfig) -> AssetCheckResult:
        t = settings.thresholds()
        floor, limit = t.confidence_floor, t.max_low_confidence_share
        confidence = read_columns(refusal_dataset, ["label_confidence"]).column("label_confidence")
        n = len(confidence)
        low = int(pc.sum(pc.less(confidence, floor)).as_py() or 0) if n else 0
        share = low / n if n else 0.0
        return gate(
            share <= limit,
            {
                "below_floor": low,
                "share": round(share, 4),
                "floor": floor,
                "max_share": limit,
            },
        )

    return [
        coverage_minimums,
        confidence_floor,
        schema_check(REFUSAL_DATASET, AuditedRecord),
        unique_ids_check(REFUSAL_DATASET),
        min_rows_check(REFUSAL_DATASET, "refusal_min_rows"),
        schema_check(REFUSAL_TRAIN, RefusalSplitRecord),
        unique_ids_check(REFUSAL_TRAIN),
        schema_check(REFUSAL_EVAL, RefusalSplitRecord),
        unique_ids_check(REFUSAL_EVAL),
        no_leakage_check(REFUSAL_EVAL, REFUSAL_TRAIN, "refusal_no_leakage"),
        no_eval_prompts_check(REFUSAL_TRAIN),
    ]
