"""Gates on the preference recipe: per source, the share of pairs lost to failed requests and to
drops; on the merged split, well-formed pairs, no duplicates, the over-refusal ceiling on benign
prompts and no prompt on both sides. All blocking: preference_files is written only below them."""

import pyarrow as pa
import pyarrow.compute as pc
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    MetadataValue,
    PartitionsDefinition,
)
from safetygraph.location.checks.factories import (
    blocking_check,
    files_qa_check,
    gate,
    min_rows_check,
    no_duplicates_check,
    no_eval_prompts_check,
    no_leakage_check,
    schema_check,
    unique_ids_check,
    well_formed_check,
)
from safetygraph.location.pipeline_assets.keys import (
    PREFERENCE_EVAL,
    PREFERENCE_FILES,
    PREFERENCE_PAIRS,
    PREFERENCE_TRAIN,
)
from safetygraph.location.resources import BuildConfig
from safetygraph.location.schemas import PreferencePairRecord

from safetygraph.recipes.preference.dataset import (
    benign_chosen_refusals,
    duplicate_pairs,
    malformed_pairs,
)
from safetygraph.recipes.preference.files import PREFERENCE_ROOT
from safetygraph.recipes.preference.pairs import summary


def _rate_result(count: int, total: int, limit: float, **metadata) -> AssetCheckResult:
    rate = count / total if total else 0.0
    return gate(
        rate <= limit,
        {
            "count": count,
            "candidates": total,
            "rate": round(rate, 6),
            "max": limit,
            **metadata,
        },
    )


def preference_error_rate(preference_pairs: pa.Table, settings: BuildConfig) -> AssetCheckResult:
    errors = summary(preference_pairs).dropped.get("error", 0)
    failed = preference_pairs.filter(pc.equal(preference_pairs.column("drop_reason"), "error"))
    examples = [
        e
        for col in ("chosen_error", "rejected_error")
        for e in failed.column(col).drop_null().to_pylist()[:3]
    ]
    total = preference_pairs.num_rows
    rate = errors / total if total else 0.0
    warn = float(settings.thresholds().preference_error_rate_warn)
    block = float(settings.thresholds().preference_error_rate_max)
    return AssetCheckResult(
        passed=rate <= warn,
        severity=AssetCheckSeverity.ERROR if rate > block else AssetCheckSeverity.WARN,
        metadata={
            "count": errors,
            "candidates": total,
            "rate": round(rate, 6),
            "warn_over": warn,
            "max": block,
            # what the errors cost: the questions left without a pair in this build
            "questions_dropped": MetadataValue.json(failed.column("prompt").to_pylist()[:50]),
            "examples": MetadataValue.json(examples),
        },
    )


def preference_drop_rate(preference_pairs: pa.Table, settings: BuildConfig) -> AssetCheckResult:
    s = summary(preference_pairs)
    return _rate_result(
        sum(n for reason, n in s.dropped.items() if reason != "error"),
        s.candidates - s.dropped.get("error", 0),
        float(settings.thresholds().preference_drop_rate_max),
        by_reason=MetadataValue.json(s.dropped),
    )


def per_source(partitions: PartitionsDefinition) -> list:
    """The gates over the source partitions."""

    def gate_on(description: str):
        return blocking_check(PREFERENCE_PAIRS, description, partitions_def=partitions)

    return [
        schema_check(PREFERENCE_PAIRS, PreferencePairRecord, partitions),
        unique_ids_check(PREFERENCE_PAIRS, partitions),
        gate_on(
            "Pairs lost to a failed request (either side, after the backend's retries; a re-run "
            "sends them again). Over preference_error_rate_warn (5%) the check fails as a warning: "
            "those questions are dropped, counted and named, and the recipe goes on. Over "
            "preference_error_rate_max (50%: the API is down, not flaky) it fails as an error and "
            "blocks."
        )(preference_error_rate),
        gate_on(
            "Candidate pairs dropped for a reason in the data (empty, identical sides, the chosen "
            "side judged less safe, prompts that differ, no contrast) stay under "
            "preference_drop_rate_max; failed requests have their own gate (preference_error_rate) "
            "and are not counted twice."
        )(preference_drop_rate),
    ]


@blocking_check(
    PREFERENCE_TRAIN,
    "Refusals among the chosen answers to benign prompts stay under "
    "preference_benign_refusal_max: a safety tune must not teach refusing ordinary questions.",
)
def preference_over_refusal(preference_train: pa.Table, settings: BuildConfig) -> AssetCheckResult:
    refusals, benign = benign_chosen_refusals(preference_train)
    share = refusals / benign if benign else 0.0
    limit = float(settings.thresholds().preference_benign_refusal_max)
    return gate(
        share <= limit,
        {
            "benign_pairs": benign,
            "chosen_refusals": refusals,
            "share": round(share, 4),
            "max": limit,
        },
    )


def dataset() -> list:
    """The gates on the merged split."""
    return [
        schema_check(PREFERENCE_TRAIN, PreferencePairRecord),
        unique_ids_check(PREFERENCE_TRAIN),
        min_rows_check(PREFERENCE_TRAIN, "preference_train_min"),
        well_formed_check(
            PREFERENCE_TRAIN,
            "preference_pairs_well_formed",
            malformed_pairs,
            "Every training pair is usable: both sides present and without a generation error, "
            "chosen differs from rejected, and the chosen side is not judged harmful where the "
            "rejected is not.",
        ),
        no_duplicates_check(
            PREFERENCE_TRAIN,
            "preference_no_duplicate_pairs",
            duplicate_pairs,
            "No pair (same prompt, chosen and rejected) appears twice.",
        ),
        preference_over_refusal,
        no_eval_prompts_check(PREFERENCE_TRAIN),
        min_rows_check(PREFERENCE_EVAL, "preference_eval_min"),
        no_leakage_check(PREFERENCE_EVAL, PREFERENCE_TRAIN, "preference_no_leakage"),
        files_qa_check(PREFERENCE_FILES, PREFERENCE_ROOT),
    ]
