"""Circuit-breaker stage 2: harmful (Ds) and retain (Dr) shards, the merged sample set with its
gates, strict validation, the stratified train/eval split and the files the training plan reads.

The files asset is downstream of every gate: a blocking check that fails on stage2_samples,
validation_report or the splits skips it, so no file of a bad set is ever written."""

import uuid
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.compute as pc
from dagster import AssetExecutionContext, AssetOut, MetadataValue, Output, asset, multi_asset

from pipeline_assets.keys import OWNER
from pipeline_assets.metadata import counts_table, manifest_files, value_counts
from resources import BuildConfig
from safetygraph.core.paths import resolve_repo_path
from safetygraph.recipes import circuit_breaker as cb
from safetygraph.recipes.circuit_breaker.preflight_run import PreflightRun, PreflightSetup
from safetygraph.recipes.splits import holdout_report, train_eval_split


def preflight_setup(settings: BuildConfig) -> PreflightRun:
    """The profile's preflight, shared by the stage-2 step and its gate through the build's cache:
    its chat tokenizer (``preflight_tokenizer``, with ``preflight_chat_template`` replacing its
    template when given), the reference encoder of ``preflight_target`` (``llama3``,
    ``mistral-v3``, ...; none when unset) and ``max_seq_length``."""
    thresholds = settings.active().thresholds
    template = thresholds.get("preflight_chat_template")
    target = thresholds.get("preflight_target")
    setup = PreflightSetup(
        tokenizer=resolve_repo_path(str(settings.threshold("preflight_tokenizer"))),
        chat_template=resolve_repo_path(str(template)) if template else None,
        target=str(target) if target else None,
        max_seq_length=int(thresholds.get("max_seq_length", 2048)),
    )
    return PreflightRun(setup, settings.storage())


def build():
    @multi_asset(
        name="cb_shards",
        outs={
            "harmful_shard": AssetOut(
                group_name="circuit_breaker",
                kinds={"duckdb", "parquet"},
                owners=[OWNER],
                description="Ds: attacks that succeeded (attack logs, failed agent runs) and responses "
                "judged harmful.",
            ),
            "retain_shard": AssetOut(
                group_name="circuit_breaker",
                kinds={"duckdb", "parquet"},
                owners=[OWNER],
                description="Dr: adversarial-safe answers to the attack prompts, agent runs that resisted, "
                "agent traces (tau2), general chat, borderline prompts answered, harmful prompts refused "
                "and benign answers; over-refusals are left out.",
            ),
        },
    )
    def cb_shards(context: AssetExecutionContext, refusal_dataset: pa.Table, settings: BuildConfig):
        harmful, retain, info = cb.cut_shards(refusal_dataset, settings.attack_outcome_paths())
        context.log.info(f"Ds={harmful.num_rows} Dr={retain.num_rows} left out: {info['left_out']}")
        yield Output(
            harmful,
            "harmful_shard",
            metadata={
                "rows": harmful.num_rows,
                "by_kind": counts_table("kind", value_counts(harmful, "cb_kind")),
                "by_source": counts_table("source", value_counts(harmful, "source")),
                "attack_rows": info["attack_rows"],
                "attack_outcome_missing": info["attack_outcome_missing"],
                # merged rows in neither shard, by reason (over_refusal, no_response, ...)
                "left_out": counts_table("reason", info["left_out"]),
                "merged_rows": refusal_dataset.num_rows,
            },
        )
        yield Output(
            retain,
            "retain_shard",
            metadata={
                "rows": retain.num_rows,
                "adversarial_safe": int(pc.sum(retain.column("is_adversarial_safe")).as_py() or 0),
                "adversarial_candidates": info["candidates"],
                "left_out": counts_table("reason", info["left_out"]),
                "by_kind": counts_table("kind", value_counts(retain, "cb_kind")),
                "by_source": counts_table("source", value_counts(retain, "source")),
            },
        )

    @asset(
        group_name="circuit_breaker",
        kinds={"duckdb", "parquet"},
        owners=[OWNER],
        description="The merged stage-2 set (Ds then Dr), where the merge gates sit: Dr:Ds ratio, "
        "adversarial-safe count, unique ids, tools carried, tokenizer preflight.",
    )
    def stage2_samples(
        context: AssetExecutionContext,
        harmful_shard: pa.Table,
        retain_shard: pa.Table,
        settings: BuildConfig,
    ) -> pa.Table:
        retain, downsampled = retain_shard, {}
        dr_ratio = settings.active().thresholds.get("dr_ratio")
        if dr_ratio:  # the plan's --dr-ratio: the retain set cut to dr_ratio x Ds
            retain, downsampled = cb.downsample_retain(
                retain_shard, harmful_shard.num_rows, float(dr_ratio), settings.active().seed
            )
        out = cb.samples(harmful_shard, retain)
        dropped: dict[str, int] = {}
        if settings.active().thresholds.get("over_length", "fail") == "drop":
            # longer than max_seq_length with the target tokenizer: left out and counted here
            # (the default, "fail", keeps them, and the preflight gate blocks the set)
            run = preflight_setup(settings)
            report = run.report(out)
            limit = run.setup.max_seq_length
            over = report.column("over_length")
            dropped = value_counts(report.filter(over), "source")
            out = out.filter(pc.invert(over))
            context.log.info(f"left out over max_seq_length {limit}: {dropped}")
        s = cb.stats(out)
        context.add_output_metadata(
            {
                "rows": out.num_rows,
                "harmful": s["harmful"],
                "retain": s["retain"],
                "dr_ds_ratio": MetadataValue.float(s["dr_ds_ratio"] or 0.0),
                "adversarial_safe": s["adversarial_safe"],
                "over_length_left_out": counts_table("source", dropped),
                "dr_ratio": str(dr_ratio or "off"),
                "retain_downsampled": counts_table("kind", downsampled),
            }
        )
        return out

    @asset(
        group_name="circuit_breaker",
        kinds={"duckdb", "parquet"},
        owners=[OWNER],
        description="Stage-2 counts by source, class and kind (stats.json of the files).",
    )
    def stage2_stats(context: AssetExecutionContext, stage2_samples: pa.Table) -> pa.Table:
        s = cb.stats(stage2_samples)
        rows = [
            {"source": src, "cb_class": cls, "rows": n}
            for src, by in s["by_source"].items()
            for cls, n in by.items()
        ]
        context.add_output_metadata(
            {
                "harmful": s["harmful"],
                "retain": s["retain"],
                "dr_ds_ratio": MetadataValue.float(s["dr_ds_ratio"] or 0.0),
                "adversarial_safe": s["adversarial_safe"],
                "by_kind": counts_table("kind", s["by_kind"]),
                "by_source": MetadataValue.md(
                    "| source | class | rows |\n|---|---|---|\n"
                    + "\n".join(f"| {r['source']} | {r['cb_class']} | {r['rows']} |" for r in rows)
                ),
            }
        )
        return pa.Table.from_pylist(
            rows,
            schema=pa.schema(
                [("source", pa.string()), ("cb_class", pa.string()), ("rows", pa.int64())]
            ),
        )

    @asset(
        group_name="circuit_breaker",
        kinds={"duckdb", "parquet"},
        owners=[OWNER],
        description="Strict format validation of every stage-2 sample (rules R1-R6): one row per "
        "error, with the rule, the sample id and the turn. Empty when the set is valid.",
    )
    def validation_report(context: AssetExecutionContext, stage2_samples: pa.Table) -> pa.Table:
        errors = cb.validate(stage2_samples)
        summary = cb.validation_summary(errors, stage2_samples.num_rows)
        first = errors.slice(0, 20).to_pylist()
        context.add_output_metadata(
            {
                "samples_checked": summary["samples_checked"],
                "samples_with_errors": summary["samples_with_errors"],
                "errors_by_rule": counts_table("rule", summary["errors_by_rule"]),
                "rules": MetadataValue.md(
                    "\n".join(f"- **{r}** {text}" for r, text in cb.RULES.items())
                ),
                "first_errors": MetadataValue.md(
                    "| rule | id | turn | message |\n|---|---|---|---|\n"
                    + "\n".join(
                        f"| {e['rule']} | {e['id']} | {e['turn'] or ''} | {e['message']} |"
                        for e in first
                    )
                    if first
                    else "no errors"
                ),
            }
        )
        return errors

    @multi_asset(
        name="cb_split",
        outs={
            "train_split": AssetOut(
                group_name="circuit_breaker",
                kinds={"duckdb", "parquet"},
                owners=[OWNER],
                description="Training samples (Ds and Dr), the 90% side of a holdout stratified by "
                "source and class.",
            ),
            "eval_split": AssetOut(
                group_name="circuit_breaker",
                kinds={"duckdb", "parquet"},
                owners=[OWNER],
                description="The eval holdout; no prompt, exact or near duplicate, appears on both sides.",
            ),
        },
        deps=["validation_report"],
    )
    def cb_split(context: AssetExecutionContext, stage2_samples: pa.Table, settings: BuildConfig):
        fraction = float(settings.threshold("eval_fraction"))
        threshold = float(settings.active().thresholds.get("near_dup_threshold", 0.8))
        is_harmful = pc.equal(stage2_samples.column("cb_class"), "harmful")
        train, evals = train_eval_split(
            stage2_samples.filter(is_harmful),
            stage2_samples.filter(pc.invert(is_harmful)),
            fraction,
            settings.active().seed,
            threshold,
        )
        holdout = holdout_report(train, evals, fraction)
        if (
            train.num_rows + evals.num_rows != stage2_samples.num_rows
        ):  # the split leaves nothing out
            raise RuntimeError(
                f"split lost rows: {stage2_samples.num_rows} samples, {train.num_rows} train + {evals.num_rows} eval"
            )
        context.log.info(
            f"train={train.num_rows} eval={evals.num_rows} (eval share {holdout['eval_share']}, "
            f"fraction {fraction})"
        )
        for name, table in (("train_split", train), ("eval_split", evals)):
            yield Output(
                table,
                name,
                metadata={
                    "rows": table.num_rows,
                    "holdout": MetadataValue.json(holdout),
                    "rows_in": stage2_samples.num_rows,
                    "left_out": MetadataValue.md(
                        "none: every stage-2 sample is in train or eval. Rows left out before: "
                        "harmful_shard `left_out` (the cut, by reason), stage2_samples "
                        "`over_length_left_out` and `retain_downsampled`."
                    ),
                    "by_class": counts_table("class", value_counts(table, "cb_class")),
                    "by_source": counts_table("source", value_counts(table, "source")),
                },
            )

    @asset(
        group_name="circuit_breaker",
        kinds={"json", "file"},
        owners=[OWNER],
        description="The stage-2 files: harmful/<source>.jsonl, retain/<source>.jsonl, "
        "stage2/train.jsonl, stage2/eval.jsonl, validation_report.json, stats.json and a manifest; "
        "written only when every gate upstream passed.",
    )
    def stage2_files(
        context: AssetExecutionContext,
        harmful_shard: pa.Table,
        retain_shard: pa.Table,
        stage2_samples: pa.Table,
        validation_report: pa.Table,
        train_split: pa.Table,
        eval_split: pa.Table,
        settings: BuildConfig,
    ) -> pa.Table:
        build_id = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:8]
        report = cb.validation_summary(validation_report, stage2_samples.num_rows)
        report["errors_list"] = validation_report.to_pylist()
        body = cb.stats(stage2_samples)
        body["train"], body["eval"] = train_split.num_rows, eval_split.num_rows
        manifest = cb.write_files(
            settings.storage(),
            build_id,
            harmful_shard,
            retain_shard,
            train_split,
            eval_split,
            report,
            body,
        )
        storage = settings.storage()
        files_md, files_table = manifest_files(manifest)
        context.add_output_metadata(
            {
                "build_id": build_id,
                "path": MetadataValue.path(storage.uri(cb.STAGE2_ROOT, build_id)),
                "files": files_md,
            }
        )
        return files_table

    return [cb_shards, stage2_samples, stage2_stats, validation_report, cb_split, stage2_files]
