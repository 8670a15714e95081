"""Asset checks. Those that guard training data are blocking (severity ERROR): a failure skips
every downstream asset in the run and fails the run, which the alert sensors report."""

import warnings

import pyarrow as pa
import pyarrow.compute as pc
from dagster import (
    AssetCheckKey,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetIn,
    MetadataValue,
    PartitionsDefinition,
    PreviewWarning,
    asset_check,
)

from checks.factories import min_rows_check, schema_check, unique_ids_check
from pipeline_assets.circuit_breaker import outcome_paths
from pipeline_assets.keys import (
    AUDITED,
    EVAL_SPLIT,
    EXPORT,
    GENERATED,
    HARMFUL_SHARD,
    JUDGE_QUALITY,
    LABELS,
    QA_REPORT,
    RAW_QUARANTINE,
    RAW_SAMPLES,
    REFUSAL_DATASET,
    RETAIN_SHARD,
    STAGE2_SAMPLES,
    TRAIN_SPLIT,
    VALIDATION_REPORT,
)
from pipeline_assets.metadata import value_counts
from resources import BuildConfig
from safetygraph import stage2
from safetygraph.audit import residual_pii
from safetygraph.export import EXPORT_ROOT, verify_export
from safetygraph.merge import leaked_prompts, near_duplicate_leaks
from safetygraph.preflight import ChatTokenizer, preflight
from safetygraph.registry import resolve_repo_path
from schemas import (
    AuditedRecord,
    GeneratedRecord,
    LabeledRecord,
    RawRecord,
    ShardRecord,
    SplitRecord,
)

warnings.filterwarnings(
    "ignore", category=PreviewWarning
)  # partitioned asset checks are preview in 1.13


def per_source_checks(partitions: PartitionsDefinition) -> list:
    @asset_check(
        asset=RAW_SAMPLES,
        blocking=True,
        partitions_def=partitions,
        additional_ins={"raw_quarantine": AssetIn(RAW_QUARANTINE.path)},
        description="Quarantined rows stay under the profile's quarantine_rate_max share of rows read.",
    )
    def quarantine_rate(
        raw_samples: pa.Table, raw_quarantine: pa.Table, settings: BuildConfig
    ) -> AssetCheckResult:
        read = raw_samples.num_rows + raw_quarantine.num_rows
        rate = raw_quarantine.num_rows / read if read else 0.0
        limit = float(settings.threshold("quarantine_rate_max"))
        return AssetCheckResult(
            passed=rate <= limit,
            severity=AssetCheckSeverity.ERROR,
            metadata={
                "quarantined": raw_quarantine.num_rows,
                "rows": raw_samples.num_rows,
                "rate": round(rate, 6),
                "max": limit,
            },
        )

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
        schema_check(RAW_SAMPLES, RawRecord, partitions),
        min_rows_check(RAW_SAMPLES, "min_rows_per_source", partitions),
        unique_ids_check(RAW_SAMPLES, partitions),
        quarantine_rate,
        schema_check(GENERATED, GeneratedRecord, partitions),
        unique_ids_check(GENERATED, partitions),
        generation_errors,
        schema_check(LABELS, LabeledRecord, partitions),
        schema_check(AUDITED, AuditedRecord, partitions),
    ]


def dataset_checks() -> list:
    @asset_check(
        asset=STAGE2_SAMPLES,
        blocking=True,
        description="Dr:Ds, retain samples per harmful sample, is at least retain_harmful_ratio_min (4.0 in production).",
    )
    def dr_ds_ratio(stage2_samples: pa.Table, settings: BuildConfig) -> AssetCheckResult:
        minimum = float(settings.threshold("retain_harmful_ratio_min"))
        s = stage2.stats(stage2_samples)
        ratio = s["dr_ds_ratio"] or 0.0
        return AssetCheckResult(
            passed=s["harmful"] > 0 and ratio >= minimum,
            severity=AssetCheckSeverity.ERROR,
            metadata={
                "retain": s["retain"],
                "harmful": s["harmful"],
                "ratio": round(ratio, 4),
                "minimum": minimum,
            },
        )

    @asset_check(
        asset=STAGE2_SAMPLES,
        blocking=True,
        description="At least adversarial_safe_min attack prompts answered safely (400 in production).",
    )
    def adversarial_safe_count(stage2_samples: pa.Table, settings: BuildConfig) -> AssetCheckResult:
        minimum = int(settings.threshold("adversarial_safe_min"))
        n = int(pc.sum(stage2_samples.column("is_adversarial_safe")).as_py() or 0)
        return AssetCheckResult(
            passed=n >= minimum,
            severity=AssetCheckSeverity.ERROR,
            metadata={"adversarial_safe": n, "minimum": minimum},
        )

    @asset_check(
        asset=STAGE2_SAMPLES,
        blocking=True,
        description="Every sample outside general conversation that uses tools (or comes from an agentic "
        "or attack source) carries its tool schemas.",
    )
    def tools_carried(stage2_samples: pa.Table) -> AssetCheckResult:
        missing = stage2.tools_missing(stage2_samples)
        return AssetCheckResult(
            passed=not missing,
            severity=AssetCheckSeverity.ERROR,
            metadata={"without_tools": len(missing), "ids": MetadataValue.json(missing[:50])},
        )

    @asset_check(
        asset=STAGE2_SAMPLES,
        blocking=True,
        description="Tokenizer preflight against the target chat template (preflight_tokenizer): every "
        "sample renders and tokenizes, the assistant turns are found for the loss mask, tool JSON "
        "parses, and none exceeds max_seq_length tokens.",
    )
    def tokenizer_preflight(stage2_samples: pa.Table, settings: BuildConfig) -> AssetCheckResult:
        name = str(settings.threshold("preflight_tokenizer"))
        limit = int(settings.active().thresholds.get("max_seq_length", 2048))
        tok = ChatTokenizer.load(resolve_repo_path(name))
        report = preflight(stage2_samples, tok, limit)
        failed = report.filter(pc.is_valid(report.column("error")))
        ok = report.filter(pc.is_null(report.column("error")))
        tokens = pc.sum(ok.column("tokens")).as_py() or 0
        trained = pc.sum(ok.column("trained_tokens")).as_py() or 0
        sample = ok.slice(0, 10).to_pylist()
        return AssetCheckResult(
            passed=failed.num_rows == 0,
            severity=AssetCheckSeverity.ERROR,
            metadata={
                "tokenizer": name,
                "max_seq_length": limit,
                "samples": report.num_rows,
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

    @asset_check(
        asset=VALIDATION_REPORT,
        blocking=True,
        description="Strict validation: no stage-2 sample breaks a rule R1-R6.",
    )
    def no_validation_errors(validation_report: pa.Table) -> AssetCheckResult:
        summary = stage2.validation_summary(validation_report, 0)
        return AssetCheckResult(
            passed=validation_report.num_rows == 0,
            severity=AssetCheckSeverity.ERROR,
            metadata={
                "errors": validation_report.num_rows,
                "samples_with_errors": summary["samples_with_errors"],
                **{f"errors_{r}": n for r, n in summary["errors_by_rule"].items()},
            },
        )

    @asset_check(
        asset=HARMFUL_SHARD,
        blocking=True,
        additional_ins={"refusal_dataset": AssetIn(REFUSAL_DATASET.path)},
        description="Attack rows whose outcome (succeeded / resisted) is missing at the source's "
        "attack_outcome paths are at most attack_outcome_missing_max (10%) of the attack rows.",
    )
    def attack_outcome_recorded(
        harmful_shard: pa.Table, refusal_dataset: pa.Table, settings: BuildConfig
    ) -> AssetCheckResult:
        limit = float(settings.active().thresholds.get("attack_outcome_missing_max", 0.1))
        counts = stage2.attack_outcome_counts(refusal_dataset, outcome_paths(settings))
        n, missing = counts["attack_rows"], counts["attack_outcome_missing"]
        share = missing / n if n else 0.0
        return AssetCheckResult(
            passed=share <= limit,
            severity=AssetCheckSeverity.ERROR,
            metadata={
                "attack_rows": n,
                "missing": missing,
                "share": round(share, 4),
                "max_share": limit,
            },
        )

    @asset_check(
        asset=EVAL_SPLIT,
        blocking=True,
        additional_ins={"train_split": AssetIn(TRAIN_SPLIT.path)},
        description="No prompt appears in both train and eval, exactly (normalised) or as a near duplicate "
        "(MinHash/Jaccard >= near_dup_threshold, 0.8 by default).",
    )
    def no_train_eval_leakage(
        eval_split: pa.Table, train_split: pa.Table, settings: BuildConfig
    ) -> AssetCheckResult:
        leaked = leaked_prompts(train_split, eval_split)
        threshold = float(settings.active().thresholds.get("near_dup_threshold", 0.8))
        near = near_duplicate_leaks(train_split, eval_split, threshold)
        return AssetCheckResult(
            passed=not leaked and not near,
            severity=AssetCheckSeverity.ERROR,
            metadata={
                "leaked_prompts": len(leaked),
                "near_duplicate_leaks": len(near),
                "near_dup_threshold": threshold,
                "examples": MetadataValue.json({"exact": leaked[:10], "near": near[:10]}),
            },
        )

    @asset_check(
        asset=QA_REPORT,
        blocking=True,
        description="Every QA metric meets its threshold and every expectation holds.",
    )
    def qa_thresholds(qa_report: pa.Table) -> AssetCheckResult:
        failed = qa_report.filter(pc.invert(qa_report.column("passed"))).to_pylist()
        return AssetCheckResult(
            passed=not failed,
            severity=AssetCheckSeverity.ERROR,
            metadata={"metrics": qa_report.num_rows, "failed": MetadataValue.json(failed)},
        )

    @asset_check(
        asset=EXPORT, description="Every exported file matches its manifest (sha256 and row count)."
    )
    def export_matches_manifest(export: pa.Table, settings: BuildConfig) -> AssetCheckResult:
        build_id = export.column("build_id")[0].as_py()
        problems = verify_export(settings.storage(), build_id)
        return AssetCheckResult(
            passed=not problems,
            severity=AssetCheckSeverity.ERROR,
            metadata={
                "build_id": build_id,
                "export_dir": settings.storage().uri(EXPORT_ROOT, build_id),
                "problems": MetadataValue.json(problems),
            },
        )

    def no_pii_left(asset_key):
        @asset_check(
            asset=asset_key,
            name=f"{asset_key.path[-1]}_no_pii",
            blocking=True,
            description="No PII (email, phone, SSN, card, IP, street address, API key) left in any turn.",
        )
        def _check(table: pa.Table) -> AssetCheckResult:
            left = residual_pii(table)
            return AssetCheckResult(
                passed=not any(left.values()),
                severity=AssetCheckSeverity.ERROR,
                metadata={"rows_with_pii_by_type": MetadataValue.json(left)},
            )

        return _check

    @asset_check(
        asset=JUDGE_QUALITY,
        blocking=True,
        description="The judge's held-out figures meet the profile's judge_floors (e.g. refusal_accuracy, refusal_kappa); "
        "a profile with floors but no human-labelled rows fails.",
    )
    def judge_meets_floors(judge_quality: pa.Table, settings: BuildConfig) -> AssetCheckResult:
        floors = dict(settings.active().thresholds.get("judge_floors") or {})
        halves = set(judge_quality.column("half").to_pylist())
        half = "report" if "report" in halves else "all"
        by_method: dict[str, dict[str, float]] = {"judge": {}, "baseline": {}}
        for r in judge_quality.to_pylist():
            if r["half"] == half:
                by_method[r["method"]][f"{r['task']}_{r['metric']}"] = r["value"]
        figures, baseline = by_method["judge"], by_method["baseline"]
        below = {
            k: {"value": figures.get(k), "floor": v}
            for k, v in floors.items()
            if figures.get(k) is None or figures[k] < v
        }
        return AssetCheckResult(
            passed=not below,
            severity=AssetCheckSeverity.ERROR,
            metadata={
                "half": half,
                "floors": MetadataValue.json(floors),
                "judge": MetadataValue.json(figures),
                "baseline": MetadataValue.json(baseline),
                "below_floor": MetadataValue.json(below),
            },
        )

    @asset_check(
        asset=REFUSAL_DATASET,
        blocking=True,
        description="Every outcome has at least the profile's coverage_min rows (e.g. REFUSAL.DIRECT: 10).",
    )
    def coverage_minimums(refusal_dataset: pa.Table, settings: BuildConfig) -> AssetCheckResult:
        minimums = dict(settings.active().thresholds.get("coverage_min") or {})
        counts = value_counts(refusal_dataset, "label_outcome")
        short = {
            k: {"rows": counts.get(k, 0), "minimum": v}
            for k, v in minimums.items()
            if counts.get(k, 0) < v
        }
        return AssetCheckResult(
            passed=not short,
            severity=AssetCheckSeverity.ERROR,
            metadata={"by_outcome": MetadataValue.json(counts), "short": MetadataValue.json(short)},
        )

    @asset_check(
        asset=REFUSAL_DATASET,
        blocking=True,
        description="The share of rows under the confidence floor (confidence_floor, 0.6) stays under max_low_confidence_share.",
    )
    def confidence_floor(refusal_dataset: pa.Table, settings: BuildConfig) -> AssetCheckResult:
        t = settings.active().thresholds
        floor, limit = (
            float(t.get("confidence_floor", 0.6)),
            float(t.get("max_low_confidence_share", 0.2)),
        )
        n = refusal_dataset.num_rows
        low = (
            int(pc.sum(pc.less(refusal_dataset.column("label_confidence"), floor)).as_py() or 0)
            if n
            else 0
        )
        share = low / n if n else 0.0
        return AssetCheckResult(
            passed=share <= limit,
            severity=AssetCheckSeverity.ERROR,
            metadata={
                "below_floor": low,
                "share": round(share, 4),
                "floor": floor,
                "max_share": limit,
            },
        )

    return [
        coverage_minimums,
        confidence_floor,
        judge_meets_floors,
        no_pii_left(TRAIN_SPLIT),
        no_pii_left(EVAL_SPLIT),
        schema_check(REFUSAL_DATASET, AuditedRecord),
        unique_ids_check(REFUSAL_DATASET),
        min_rows_check(REFUSAL_DATASET, "refusal_min_rows"),
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
        tools_carried,
        tokenizer_preflight,
        no_validation_errors,
        schema_check(TRAIN_SPLIT, SplitRecord),
        unique_ids_check(TRAIN_SPLIT),
        min_rows_check(TRAIN_SPLIT, "train_min"),
        unique_ids_check(EVAL_SPLIT),
        min_rows_check(EVAL_SPLIT, "eval_min"),
        no_train_eval_leakage,
        qa_thresholds,
        export_matches_manifest,
    ]


def blocking_check_keys(checks: list, assets: tuple) -> dict:
    """{asset key: [blocking check keys]} for the given assets, read off the check definitions."""
    out: dict = {key: [] for key in assets}
    for c in checks:
        for spec in c.check_specs:
            if spec.blocking and spec.asset_key in out:
                out[spec.asset_key].append(AssetCheckKey(spec.asset_key, spec.name))
    return out
