"""Gates on the steering recipe, per trait (partitioned like steering_pairs): the question layout
and distinct options, the position balance of the options, minimum pairs, duplicate scenarios and
the share of candidates dropped (the judge's trait_not_expressed flags included). All blocking:
steering_files reads only traits whose gates passed."""

import pyarrow as pa
from dagster import AssetCheckResult, MetadataValue, PartitionsDefinition
from safetygraph.location.checks.factories import (
    at_least,
    blocking_check,
    gate,
    no_duplicates_check,
    no_eval_prompts_check,
    unique_ids_check,
    well_formed_check,
)
from safetygraph.location.pipeline_assets.keys import STEERING_PAIRS
from safetygraph.location.resources import BuildConfig

from safetygraph.recipes.steering.pairs import duplicate_scenarios, malformed, summary


def steering_position_balance(steering_pairs: pa.Table, settings: BuildConfig) -> AssetCheckResult:
    s = summary(steering_pairs)
    tolerance = float(settings.thresholds().steering_balance_tolerance)
    share = s.positive_first_share
    return gate(
        share is not None and abs(share - 0.5) <= tolerance,
        {
            "pairs": s.kept,
            "positive_first": s.positive_first,
            "share": MetadataValue.float(share or 0.0),
            "tolerance": tolerance,
        },
    )


def steering_min_pairs(steering_pairs: pa.Table, settings: BuildConfig) -> AssetCheckResult:
    kept = summary(steering_pairs).kept
    return at_least("pairs", kept, int(settings.thresholds().steering_min_pairs))


def steering_drop_rate(steering_pairs: pa.Table, settings: BuildConfig) -> AssetCheckResult:
    s = summary(steering_pairs)
    dropped = sum(s.dropped.values())
    rate = dropped / s.candidates if s.candidates else 0.0
    limit = float(settings.thresholds().steering_drop_rate_max)
    return gate(
        rate <= limit,
        {
            "candidates": s.candidates,
            "dropped": dropped,
            "rate": round(rate, 4),
            "max": limit,
            "by_reason": MetadataValue.json(s.dropped),
        },
    )


def per_trait(traits: PartitionsDefinition) -> list:
    """The gates over the trait partitions."""

    def gate_on(description: str):
        return blocking_check(STEERING_PAIRS, description, partitions_def=traits)

    return [
        unique_ids_check(STEERING_PAIRS, traits),
        well_formed_check(
            STEERING_PAIRS,
            "steering_well_formed",
            malformed,
            "Every usable pair's question is in the [Situation]/[Question]/1./2./[Answer] layout, "
            "its two options parse and differ, and its labels are (1 and (2.",
            traits,
        ),
        gate_on(
            "The trait-positive option comes first in 50% +- steering_balance_tolerance of the "
            "usable pairs, so a vector cannot learn the letter."
        )(steering_position_balance),
        gate_on("At least steering_min_pairs usable pairs for the trait.")(steering_min_pairs),
        no_duplicates_check(
            STEERING_PAIRS,
            "steering_no_duplicate_scenarios",
            duplicate_scenarios,
            "No scenario text appears in two usable pairs of the trait.",
            traits,
        ),
        gate_on(
            "Candidates dropped (failed requests, empty or identical options, length mismatch, "
            "the positive answer not expressing the trait, duplicate scenarios) stay under "
            "steering_drop_rate_max."
        )(steering_drop_rate),
        no_eval_prompts_check(STEERING_PAIRS, traits, key="scenario_id", text="question"),
    ]
