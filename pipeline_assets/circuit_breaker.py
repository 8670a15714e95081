"""Circuit-breaker stage 2: harmful (Ds) and retain (Dr) shards, the merged sample set with its
gates, strict validation, the stratified train/eval split and the files the training plan reads.

The files asset is downstream of every gate: a blocking check that fails on stage2_samples,
validation_report or the splits skips it, so no file of a bad set is ever written."""

import json
import uuid

import pyarrow as pa
from dagster import AssetExecutionContext, AssetOut, MetadataValue, Output, asset, multi_asset
from safetygraph.location.pipeline_assets.cards import card_hook, decontamination_facts
from safetygraph.location.pipeline_assets.decontamination import eval_only_hashes
from safetygraph.location.pipeline_assets.keys import (
    DATASET_DECONTAMINATION,
    EVAL_PROMPTS,
    EVAL_SPLIT,
    HARMFUL_SHARD,
    OWNER,
    RETAIN_SHARD,
    STAGE2_SAMPLES,
    TRAIN_SPLIT,
    VALIDATION_REPORT,
)
from safetygraph.location.pipeline_assets.metadata import (
    counts_table,
    ds_precision_table,
    manifest_files,
    value_counts,
)
from safetygraph.location.resources import BuildConfig

from safetygraph.core.records import SHARD_SCHEMA, SPLIT_SCHEMA
from safetygraph.core.tables import (
    StoredTable,
    TableStream,
    read_all,
    read_columns,
)
from safetygraph.export.card import generation_summary, judge_rows
from safetygraph.export.files import versioned_build_id
from safetygraph.export.qa import qa_json, recipe_qa, render_markdown
from safetygraph.recipes import circuit_breaker as cb
from safetygraph.recipes.splits import holdout, split_batches

# the assets whose blocking checks guard the stage-2 files (their card lists them)
CB_GATES = (
    EVAL_PROMPTS,
    DATASET_DECONTAMINATION,
    HARMFUL_SHARD,
    RETAIN_SHARD,
    STAGE2_SAMPLES,
    VALIDATION_REPORT,
    TRAIN_SPLIT,
    EVAL_SPLIT,
)
CB_LIMITATIONS = [
    "Ds holds the answers the build's judge calls harmful, from sources whose answers may enter "
    "it (harmful_set); its precision is measured only on sources with human harm labels.",
    "Rows of evaluation sets the profile builds from are in stage2/eval.jsonl only: harmful/, "
    "retain/ and stage2/harmful|retain.jsonl leave them out.",
    "Decontamination compares prompts (the first user request) with the evaluation prompts; "
    "responses and later turns are not compared.",
    "Sources keep their own licences (table above); a row's licence is its source's.",
]


def cb_rows_by_source(samples: StoredTable) -> dict[str, int]:
    return value_counts(read_columns(samples, ["source"]), "source")


@multi_asset(
    name="cb_shards",
    outs={
        "harmful_shard": AssetOut(
            group_name="circuit_breaker",
            kinds={"duckdb", "parquet"},
            owners=[OWNER],
            description="Ds: attacks that succeeded (attack logs, failed agent runs) and responses "
            "judged harmful by the response-harm judge, from sources whose answers may enter Ds "
            "(harmful_set: judged); its precision on every source with human harm labels.",
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
def cb_shards(context: AssetExecutionContext, refusal_dataset: StoredTable, settings: BuildConfig):
    cut = cb.ShardCut(
        refusal_dataset,
        settings.attack_outcome_paths(),
        settings.batch_rows,
        never_harmful=settings.harmful_set_never(),
        take_attempted=settings.thresholds().ds_attempted_compliance,
    )
    info = cut.info

    def by(written: StoredTable) -> dict:
        counts = cb.stats(written)
        return {
            "by_kind": counts_table("kind", counts.by_kind),
            "by_source": counts_table("source", counts.rows_by_source()),
        }

    def harmful_figures(written: StoredTable) -> dict:
        context.log.info(f"Ds={written.num_rows} left out: {info.left_out}")
        return {
            **by(written),
            "attack_rows": info.attack_rows,
            "attack_outcome_missing": info.attack_outcome_missing,
            # merged rows in neither shard, by reason (over_refusal, no_response, ...)
            "left_out": counts_table("reason", info.left_out),
            "merged_rows": refusal_dataset.num_rows,
            # Ds against the annotators, per source with human harm labels (Do-Not-Answer)
            "ds_precision": ds_precision_table(info.ds_precision),
        }

    def retain_figures(written: StoredTable) -> dict:
        return {
            **by(written),
            "adversarial_safe": cb.stats(written).adversarial_safe,
            "adversarial_candidates": info.candidates,
            "left_out": counts_table("reason", info.left_out),
        }

    # each set written batch by batch as the merged table is read (one pass per set)
    yield Output(
        TableStream(SHARD_SCHEMA, cut.batches("harmful"), harmful_figures), "harmful_shard"
    )
    yield Output(TableStream(SHARD_SCHEMA, cut.batches("retain"), retain_figures), "retain_shard")


@asset(
    group_name="circuit_breaker",
    kinds={"duckdb", "parquet"},
    owners=[OWNER],
    description="The merged stage-2 set (Ds then Dr), where the merge gates sit: Dr:Ds ratio, "
    "adversarial-safe count, unique ids, tools carried, tokenizer preflight.",
)
def stage2_samples(
    context: AssetExecutionContext,
    harmful_shard: StoredTable,
    retain_shard: StoredTable,
    settings: BuildConfig,
) -> TableStream:
    thresholds = settings.active().thresholds
    dr_ratio = thresholds.dr_ratio
    downsampled: dict[str, int] = {}
    retain: StoredTable | pa.Table = retain_shard
    if dr_ratio:  # the plan's --dr-ratio: the retain set cut to dr_ratio x Ds
        retain, downsampled = cb.downsample_retain(
            read_all(retain_shard),
            harmful_shard.num_rows,
            float(dr_ratio),
            settings.active().seed,
        )
    drop = thresholds.over_length == "drop"
    stream = cb.Stage2Stream(
        (harmful_shard, retain), settings.batch_rows, settings.preflight() if drop else None
    )

    def figures(written: StoredTable) -> dict:
        context.log.info(stream.log_line())
        s = cb.stats(written)
        return {
            "harmful": s.harmful,
            "retain": s.retain,
            "dr_ds_ratio": MetadataValue.float(s.dr_ds_ratio or 0.0),
            "adversarial_safe": s.adversarial_safe,
            "over_length_left_out": counts_table("source", dict(sorted(stream.dropped.items()))),
            "dr_ratio": str(dr_ratio or "off"),
            "retain_downsampled": counts_table("kind", downsampled),
        }

    return TableStream(SHARD_SCHEMA, stream.batches(), figures)


@asset(
    group_name="circuit_breaker",
    kinds={"duckdb", "parquet"},
    owners=[OWNER],
    description="Stage-2 counts by source, class and kind (stats.json of the files).",
)
def stage2_stats(context: AssetExecutionContext, stage2_samples: StoredTable) -> pa.Table:
    s = cb.stats(stage2_samples)
    rows = [
        {"source": src, "cb_class": cls, "rows": n}
        for src, by in s.by_source.items()
        for cls, n in by.items()
    ]
    context.add_output_metadata(
        {
            "harmful": s.harmful,
            "retain": s.retain,
            "dr_ds_ratio": MetadataValue.float(s.dr_ds_ratio or 0.0),
            "adversarial_safe": s.adversarial_safe,
            "by_kind": counts_table("kind", s.by_kind),
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
def validation_report(
    context: AssetExecutionContext, stage2_samples: StoredTable, settings: BuildConfig
) -> pa.Table:
    errors = cb.validate(stage2_samples, settings.batch_rows)
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
def cb_split(
    context: AssetExecutionContext,
    stage2_samples: StoredTable,
    dataset_decontamination: pa.Table,
    settings: BuildConfig,
):
    fraction = float(settings.thresholds().eval_fraction)
    # the holdout is decided on the narrow columns; the rows are then streamed to each side
    cut = holdout(
        stage2_samples,
        fraction,
        settings.active().seed,
        float(settings.thresholds().near_dup_threshold),
        eval_only=settings.active().decontamination.eval_only,
        held=eval_only_hashes(dataset_decontamination),
        cache=settings.near_dup_cache(),
    )
    context.log.info(
        f"train={cut.train.num_rows} eval={cut.eval.num_rows} (eval share "
        f"{cut.report['eval_share']}, fraction {fraction})"
    )
    for name, split, narrow in (
        ("train_split", "train", cut.train),
        ("eval_split", "eval", cut.eval),
    ):
        metadata = {
            "holdout": MetadataValue.json(cut.report),
            "rows_in": stage2_samples.num_rows,
            "left_out": MetadataValue.md(
                "none: every stage-2 sample is in train or eval. Rows left out before: "
                "harmful_shard `left_out` (the cut, by reason), stage2_samples "
                "`over_length_left_out` and `retain_downsampled`."
            ),
            "by_class": counts_table("class", value_counts(narrow, "cb_class")),
            "by_source": counts_table("source", value_counts(narrow, "source")),
        }
        yield Output(
            TableStream(
                SPLIT_SCHEMA,
                split_batches(stage2_samples, cut.assignment, split, settings.batch_rows),
                lambda _written, m=metadata: m,
            ),
            name,
        )


def stage2_qa(
    settings: BuildConfig,
    train_split: StoredTable,
    eval_split: StoredTable,
    stage2_samples: StoredTable,
    decont: dict,
) -> tuple[list, dict[str, str]]:
    """The circuit breaker's own QA report (its split, its ratio, its thresholds): the metrics and
    the two files (md, json)."""
    metrics, gx, info = recipe_qa(
        "circuit_breaker",
        settings.profile,
        train_split,
        eval_split,
        stage2_samples,
        dict(settings.thresholds().qa),
        float(settings.thresholds().retain_harmful_ratio_min),
        decontamination=decont,
    )
    return metrics, {
        "qa_report.md": render_markdown(metrics, gx, info),
        "qa_report.json": json.dumps(qa_json(metrics, gx, info), indent=2),
    }


def stage2_card(
    context: AssetExecutionContext,
    settings: BuildConfig,
    stage2_samples: StoredTable,
    decont: dict,
    judge_quality: pa.Table,
):
    """The card hook of the stage-2 build (README.md and token_stats.json)."""
    return card_hook(
        context,
        settings,
        recipe="circuit_breaker",
        title=f"safetygraph circuit-breaker stage-2 set ({settings.profile})",
        summary="The circuit breaker's harmful set (Ds: answers judged harmful) and retain "
        "set (Dr: refusals, benign and adversarial-safe answers, agent traces with tools) as "
        "chat messages, and the stage-2 train/eval split, split per prompt cluster.",
        configs={
            "stage2": {"train": "stage2/train.jsonl", "eval": "stage2/eval.jsonl"},
            "harmful": {"train": "stage2/harmful.jsonl"},
            "retain": {"train": "stage2/retain.jsonl"},
        },
        sources=settings.active().sources,
        rows_by_source=cb_rows_by_source(stage2_samples),
        gate_assets=CB_GATES,
        decontamination=decont,
        generation=generation_summary(stage2_samples),
        judge=judge_rows(judge_quality),
        limitations=CB_LIMITATIONS,
    )


@asset(
    group_name="circuit_breaker",
    kinds={"json", "file"},
    owners=[OWNER],
    description="The circuit breaker's export: harmful/<file>.jsonl and retain/<file>.jsonl (each row "
    "in one file: the plan's names such as agentdojo_failures, tau2_traces, else one per sample "
    "kind), stage2/harmful.jsonl, stage2/retain.jsonl, stage2/train.jsonl, stage2/eval.jsonl (the "
    "holdout of the trainable rows), stage2/eval_only.jsonl (evaluation-set rows), and under "
    "stage2/ validation_report.json, stats.json and the QA report (md, json), then a manifest; "
    "written only when every circuit-breaker gate upstream passed.",
    # the shards' gates block the files; their rows come through stage2_samples
    deps=["harmful_shard", "retain_shard"],
)
def stage2_files(
    context: AssetExecutionContext,
    stage2_samples: StoredTable,
    validation_report: pa.Table,
    train_split: StoredTable,
    eval_split: StoredTable,
    dataset_decontamination: pa.Table,
    judge_quality: pa.Table,
    settings: BuildConfig,
) -> pa.Table:
    storage = settings.storage()
    decont = decontamination_facts(settings, dataset_decontamination)
    held_out = settings.active().decontamination.eval_only
    version = settings.export_version or None
    build_id, _ = versioned_build_id(storage, cb.STAGE2_ROOT, version, uuid.uuid4().hex)
    report = cb.validation_summary(validation_report, stage2_samples.num_rows)
    report["errors_list"] = validation_report.to_pylist()
    body = {
        **cb.stats(stage2_samples).as_dict(),
        "train": train_split.num_rows,
        "eval": eval_split.num_rows,
    }
    metrics, qa_files = stage2_qa(settings, train_split, eval_split, stage2_samples, decont)
    manifest = cb.write_files(
        storage,
        build_id,
        stage2_samples,
        train_split,
        eval_split,
        report,
        body,
        qa_files,
        {"recipe": "circuit_breaker", "version": version, "decontamination": decont},
        card=stage2_card(context, settings, stage2_samples, decont, judge_quality),
        held_out_sources=held_out,
        held_out_hashes=eval_only_hashes(dataset_decontamination),
        file_names=settings.stage2_file_names(),
    )
    failed_qa = [m.name for m in metrics if not m.passed]
    if failed_qa:
        context.log.warning(f"stage-2 QA metrics under threshold: {failed_qa}")
    files_md, files_table = manifest_files(manifest)
    context.add_output_metadata(
        {
            "build_id": build_id,
            "qa_failed": MetadataValue.json(failed_qa),
            "path": MetadataValue.path(storage.uri(cb.STAGE2_ROOT, build_id)),
            "files": files_md,
        }
    )
    return files_table


ASSETS = [cb_shards, stage2_samples, stage2_stats, validation_report, cb_split, stage2_files]
