"""Gates on circuit-breaker stage 2: the shards, the merge gates on stage2_samples (Dr:Ds ratio,
adversarial-safe count, tools carried, tokenizer preflight), strict validation, and the splits
(no train/eval leakage, no PII)."""

import pyarrow as pa
import pyarrow.compute as pc
from dagster import (
    AssetCheckResult,
    AssetIn,
    MetadataValue,
)
from safetygraph.location.checks.audit import no_pii_left
from safetygraph.location.checks.factories import (
    at_least,
    blocking_check,
    gate,
    min_rows_check,
    no_eval_prompts_check,
    no_leakage_check,
    schema_check,
    unique_ids_check,
)
from safetygraph.location.pipeline_assets.keys import (
    EVAL_SPLIT,
    HARMFUL_SHARD,
    REFUSAL_DATASET,
    RETAIN_SHARD,
    STAGE2_SAMPLES,
    TRAIN_SPLIT,
    VALIDATION_REPORT,
)
from safetygraph.location.resources import BuildConfig
from safetygraph.location.schemas import (
    ShardRecord,
    SplitRecord,
)

from safetygraph.core.tables import StoredTable, read_columns, table_batches
from safetygraph.recipes import circuit_breaker as cb


@blocking_check(
    STAGE2_SAMPLES,
    description="Dr:Ds, retain samples per harmful sample, is at least retain_harmful_ratio_min (4.0 in production).",
)
def dr_ds_ratio(stage2_samples: StoredTable, settings: BuildConfig) -> AssetCheckResult:
    minimum = float(settings.thresholds().retain_harmful_ratio_min)
    s = cb.stats(stage2_samples)
    ratio = s.dr_ds_ratio or 0.0
    return gate(
        s.harmful > 0 and ratio >= minimum,
        {
            "retain": s.retain,
            "harmful": s.harmful,
            "ratio": round(ratio, 4),
            "minimum": minimum,
        },
    )


@blocking_check(
    STAGE2_SAMPLES,
    description="At least adversarial_safe_min attack prompts answered safely (400 in production).",
)
def adversarial_safe_count(stage2_samples: StoredTable, settings: BuildConfig) -> AssetCheckResult:
    flags = read_columns(stage2_samples, ["is_adversarial_safe"]).column("is_adversarial_safe")
    n = int(pc.sum(flags).as_py() or 0)
    return at_least("adversarial_safe", n, int(settings.thresholds().adversarial_safe_min))


@blocking_check(
    STAGE2_SAMPLES,
    description="At least agent_trace_min agent traces that use tools (tau2-bench and support logs; "
    "the plan asks TAU2 >= 300; 0 turns the gate off).",
)
def agent_trace_count(stage2_samples: StoredTable, settings: BuildConfig) -> AssetCheckResult:
    kinds = read_columns(stage2_samples, ["cb_kind"]).column("cb_kind")
    is_trace = pc.equal(kinds, "agent_trace")
    n = int(pc.sum(is_trace).as_py() or 0)
    return at_least("agent_trace", n, int(settings.thresholds().agent_trace_min))


@blocking_check(
    STAGE2_SAMPLES,
    description="Every sample that uses tools (a tool call or a tool result), or comes from an attack "
    "source, carries its tool schemas.",
)
def tools_carried(stage2_samples: StoredTable) -> AssetCheckResult:
    missing = cb.tools_missing(stage2_samples)
    return gate(
        not missing,
        {"without_tools": len(missing), "ids": MetadataValue.json(missing[:50])},
    )


@blocking_check(
    STAGE2_SAMPLES,
    description="Tokenizer preflight on the rows as exported: every row renders with the target chat "
    "template (preflight_tokenizer / preflight_chat_template, through transformers), the model maker's "
    "reference encoder accepts it (preflight_target: llama3, mistral-v3, ...), the assistant turns are "
    "found for the loss mask, and none exceeds max_seq_length tokens of the real tokenizer.",
)
def tokenizer_preflight(stage2_samples: StoredTable, settings: BuildConfig) -> AssetCheckResult:
    name = str(settings.thresholds().preflight_tokenizer)
    limit = int(settings.thresholds().max_seq_length)
    run = settings.preflight()
    # batch by batch; rows the stage-2 step rendered come from the build's preflight cache
    with run:
        parts = [
            run.report(batch, rows_expected=stage2_samples.num_rows)
            for batch in table_batches(stage2_samples, settings.batch_rows)
        ]
    report = pa.concat_tables(parts)
    tok, references = run.loaded()
    failed = report.filter(pc.is_valid(report.column("error")))
    ok = report.filter(pc.is_null(report.column("error")))
    tokens = pc.sum(ok.column("tokens")).as_py() or 0
    trained = pc.sum(ok.column("trained_tokens")).as_py() or 0
    sample = ok.slice(0, 10).to_pylist()
    return gate(
        failed.num_rows == 0,
        {
            "tokenizer": name,
            "template_renderer": tok.renderer,
            "reference_encoders": ", ".join(r.name for r in references)
            or "(none: set preflight_target)",
            "max_seq_length": limit,
            "samples": report.num_rows,
            "rendered": run.rendered,
            "from_cache": run.from_cache,
            "failed": failed.num_rows,
            "max_tokens": int(pc.max(report.column("tokens")).as_py() or 0),
            "trained_tokens": int(trained),
            "masked_tokens": int(tokens - trained),
            "failures": MetadataValue.md(
                "| id | source | error |\n|---|---|---|\n"
                + "\n".join(
                    f"| {r['id']} | {r['source']} | {r['error']} |"
                    for r in failed.slice(0, 20).to_pylist()
                )
                if failed.num_rows
                else "none"
            ),
            "trained_spans": MetadataValue.md(
                "Token spans trained (the rest is masked), first samples:\n\n"
                "| id | tokens | trained | spans |\n|---|---|---|---|\n"
                + "\n".join(
                    f"| {r['id']} | {r['tokens']} | {r['trained_tokens']} | {r['trained_spans']} |"
                    for r in sample
                )
            ),
        },
    )


@blocking_check(
    VALIDATION_REPORT,
    description="Strict validation: no stage-2 sample breaks a rule R1-R6.",
)
def no_validation_errors(validation_report: pa.Table) -> AssetCheckResult:
    summary = cb.validation_summary(validation_report, 0)
    return gate(
        validation_report.num_rows == 0,
        {
            "errors": validation_report.num_rows,
            "samples_with_errors": summary["samples_with_errors"],
            **{f"errors_{r}": n for r, n in summary["errors_by_rule"].items()},
        },
    )


@blocking_check(
    HARMFUL_SHARD,
    additional_ins={"refusal_dataset": AssetIn(REFUSAL_DATASET.path)},
    description="Attack rows whose outcome (succeeded / resisted) is missing at the source's "
    "attack_outcome paths are at most attack_outcome_missing_max (10%) of the attack rows.",
)
def attack_outcome_recorded(
    harmful_shard: StoredTable, refusal_dataset: StoredTable, settings: BuildConfig
) -> AssetCheckResult:
    limit = float(settings.thresholds().attack_outcome_missing_max)
    counts = cb.attack_outcome_counts(refusal_dataset, settings.attack_outcome_paths())
    n, missing = counts["attack_rows"], counts["attack_outcome_missing"]
    share = missing / n if n else 0.0
    return gate(
        share <= limit,
        {
            "attack_rows": n,
            "missing": missing,
            "share": round(share, 4),
            "max_share": limit,
        },
    )


def dataset() -> list:
    """Every circuit-breaker gate, in graph order."""
    return [
        schema_check(HARMFUL_SHARD, ShardRecord),
        unique_ids_check(HARMFUL_SHARD),
        min_rows_check(HARMFUL_SHARD, "harmful_min"),
        schema_check(RETAIN_SHARD, ShardRecord),
        unique_ids_check(RETAIN_SHARD),
        attack_outcome_recorded,
        schema_check(STAGE2_SAMPLES, ShardRecord),
        unique_ids_check(STAGE2_SAMPLES),
        dr_ds_ratio,
        adversarial_safe_count,
        agent_trace_count,
        tools_carried,
        tokenizer_preflight,
        no_validation_errors,
        schema_check(TRAIN_SPLIT, SplitRecord),
        unique_ids_check(TRAIN_SPLIT),
        min_rows_check(TRAIN_SPLIT, "train_min"),
        no_pii_left(TRAIN_SPLIT),
        no_eval_prompts_check(TRAIN_SPLIT),
        unique_ids_check(EVAL_SPLIT),
        min_rows_check(EVAL_SPLIT, "eval_min"),
        no_pii_left(EVAL_SPLIT),
        no_leakage_check(EVAL_SPLIT, TRAIN_SPLIT, "no_train_eval_leakage"),
    ]
