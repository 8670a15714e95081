"""Gates on the steering recipe, per trait (partitioned like steering_pairs): the question layout
and distinct options, the position balance of the options, minimum pairs, duplicate scenarios and
the share of candidates dropped (the judge's trait_not_expressed flags included). All blocking:
steering_files reads only traits whose gates passed."""

import pyarrow as pa
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    MetadataValue,
    PartitionsDefinition,
    asset_check,
)

from checks.factories import no_eval_prompts_check, unique_ids_check
from pipeline_assets.keys import STEERING_PAIRS
from resources import BuildConfig
from safetygraph.recipes.steering.pairs import duplicate_scenarios, malformed, summary


def per_trait(traits: PartitionsDefinition) -> list:
    @asset_check(
        asset=STEERING_PAIRS,
        blocking=True,
        partitions_def=traits,
        description="Every usable pair's question is in the [Situation]/[Question]/1./2./[Answer] layout, "
        "its two options parse and differ, and its labels are (1 and (2.",
    )
    def steering_well_formed(steering_pairs: pa.Table) -> AssetCheckResult:
        bad = malformed(steering_pairs)
        return AssetCheckResult(
            passed=not bad,
            severity=AssetCheckSeverity.ERROR,
            metadata={"malformed": len(bad), "examples": MetadataValue.json(bad)},
        )

    @asset_check(
        asset=STEERING_PAIRS,
        blocking=True,
        partitions_def=traits,
        description="The trait-positive option comes first in 50% +- steering_balance_tolerance of the "
        "usable pairs, so a vector cannot learn the letter.",
    )
    def steering_position_balance(
        steering_pairs: pa.Table, settings: BuildConfig
    ) -> AssetCheckResult:
        s = summary(steering_pairs)
        tolerance = float(settings.threshold("steering_balance_tolerance"))
        share = s["positive_first_share"]
        return AssetCheckResult(
            passed=share is not None and abs(share - 0.5) <= tolerance,
            severity=AssetCheckSeverity.ERROR,
            metadata={
                "pairs": s["kept"],
                "positive_first": s["positive_first"],
                "share": MetadataValue.float(share or 0.0),
                "tolerance": tolerance,
            },
        )

    @asset_check(
        asset=STEERING_PAIRS,
        blocking=True,
        partitions_def=traits,
        description="At least steering_min_pairs usable pairs for the trait.",
    )
    def steering_min_pairs(steering_pairs: pa.Table, settings: BuildConfig) -> AssetCheckResult:
        kept = summary(steering_pairs)["kept"]
        minimum = int(settings.threshold("steering_min_pairs"))
        return AssetCheckResult(
            passed=kept >= minimum,
            severity=AssetCheckSeverity.ERROR,
            metadata={"pairs": kept, "minimum": minimum},
        )

    @asset_check(
        asset=STEERING_PAIRS,
        blocking=True,
        partitions_def=traits,
        description="No scenario text appears in two usable pairs of the trait.",
    )
    def steering_no_duplicate_scenarios(steering_pairs: pa.Table) -> AssetCheckResult:
        n = duplicate_scenarios(steering_pairs)
        return AssetCheckResult(
            passed=n == 0, severity=AssetCheckSeverity.ERROR, metadata={"duplicates": n}
        )

    @asset_check(
        asset=STEERING_PAIRS,
        blocking=True,
        partitions_def=traits,
        description="Candidates dropped (failed requests, empty or identical options, length mismatch, "
        "the positive answer not expressing the trait, duplicate scenarios) stay under "
        "steering_drop_rate_max.",
    )
    def steering_drop_rate(steering_pairs: pa.Table, settings: BuildConfig) -> AssetCheckResult:
        s = summary(steering_pairs)
        dropped = sum(s["dropped"].values())
        rate = dropped / s["candidates"] if s["candidates"] else 0.0
        limit = float(settings.threshold("steering_drop_rate_max"))
        return AssetCheckResult(
            passed=rate <= limit,
            severity=AssetCheckSeverity.ERROR,
            metadata={
                "candidates": s["candidates"],
                "dropped": dropped,
                "rate": round(rate, 4),
                "max": limit,
                "by_reason": MetadataValue.json(s["dropped"]),
            },
        )

    return [
        unique_ids_check(STEERING_PAIRS, traits),
        steering_well_formed,
        steering_position_balance,
        steering_min_pairs,
        steering_no_duplicate_scenarios,
        steering_drop_rate,
        no_eval_prompts_check(STEERING_PAIRS, traits, key="scenario_id", text="question"),
    ]
