"""qa_report and export: the last two assets, both downstream of every blocking gate."""

import json

import pyarrow as pa
from dagster import AssetExecutionContext, MetadataValue, asset
from safetygraph.location.pipeline_assets.cards import card_hook, decontamination_facts
from safetygraph.location.pipeline_assets.keys import (
    DATASET_DECONTAMINATION,
    EVAL_PROMPTS,
    OWNER,
    QA_REPORT,
    REFUSAL_DATASET,
    REFUSAL_EVAL,
    REFUSAL_TRAIN,
    REVIEW_SAMPLE,
)
from safetygraph.location.pipeline_assets.metadata import manifest_files
from safetygraph.location.resources import BuildConfig

from safetygraph.core.builds import qa_summary
from safetygraph.core.tables import StoredTable, read_all
from safetygraph.export import seed_compat
from safetygraph.export.card import generation_summary, judge_rows
from safetygraph.export.files import EXPORT_ROOT, write_export
from safetygraph.export.lock import config_lock, config_snapshot
from safetygraph.export.qa import (
    qa_json,
    recipe_qa,
    render_markdown,
    rows_per_source,
)
from safetygraph.export.target import target_sample
from safetygraph.recipes.refusal.dataset import DatasetInfo, dataset_info
from safetygraph.sources.profile_set import parse_profile_set
from safetygraph.sources.thresholds import Thresholds

# the assets whose blocking checks guard the refusal export (its card lists them)
REFUSAL_GATES = (
    EVAL_PROMPTS,
    DATASET_DECONTAMINATION,
    REFUSAL_DATASET,
    REFUSAL_TRAIN,
    REFUSAL_EVAL,
)
REFUSAL_LIMITATIONS = [
    "Labels are the judge's, not people's: the judge's measured quality is above, on the rows of "
    "this build's sources that carry human labels (none: not measured).",
    "Decontamination compares prompts (the user request) with the evaluation prompts; responses "
    "and later turns of a conversation are not compared.",
    "`refusal_dataset` holds every row of the build, eval-only rows of evaluation sets included: "
    "train on the `default` config's train split.",
    "Sources keep their own licences (table above); a row's licence is its source's.",
]

QA_SCHEMA = pa.schema(
    [
        ("group", pa.string()),
        ("metric", pa.string()),
        ("value", pa.float64()),
        ("op", pa.string()),
        ("threshold", pa.float64()),
        ("passed", pa.bool_()),
    ]
)


def qa_rows(metrics, gx) -> pa.Table:
    """The QA report as a table: one row per metric and per expectation."""
    return pa.Table.from_pylist(
        [m.as_dict() for m in metrics]
        + [
            {
                "group": "great_expectations",
                "metric": f"{r['table']}:{r['expectation']}:{r['column']}",
                "value": float(r["unexpected"]),
                "op": "<=",
                "threshold": 0.0,
                "passed": r["success"],
            }
            for r in gx
        ],
        schema=QA_SCHEMA,
    )


def refusal_card(
    context: AssetExecutionContext,
    settings: BuildConfig,
    refusal_dataset: StoredTable,
    info: DatasetInfo,
    decont: dict,
    judge_quality: pa.Table,
    suffix: str,
    main: str = "refusal_dataset",
):
    """The card hook of the refusal export (README.md and token_stats.json)."""
    profile = settings.active()
    return card_hook(
        context,
        settings,
        recipe="refusal",
        title=f"safetygraph refusal dataset ({profile.name})",
        summary="Prompts and responses labelled on three heads (outcome, style, harm categories) "
        "by the build's judge, for training and evaluating refusal classifiers; train and eval "
        "are split per prompt cluster, so no prompt or near duplicate is on both sides.",
        configs={
            "default": {"train": f"train{suffix}.jsonl", "eval": f"eval{suffix}.jsonl"},
            "refusal_dataset": {"train": f"{main}{suffix}.jsonl"},
        },
        sources=profile.sources,
        rows_by_source=info.by_source,
        gate_assets=REFUSAL_GATES,
        decontamination=decont,
        generation=generation_summary(refusal_dataset),
        judge=judge_rows(judge_quality),
        limitations=REFUSAL_LIMITATIONS,
    )


NEAR_DUP_KEYS = ("near_duplicate_pairs_within_source", "near_duplicate_pairs_across_sources")


def merge_near_dups(context: AssetExecutionContext) -> dict[str, int] | None:
    """The near-duplicate prompt pairs the merge measured on the refusal dataset in this run (its
    materialization's metadata), or None where it was materialized by another run."""
    event = context.instance.get_latest_materialization_event(REFUSAL_DATASET)
    if event is None or event.run_id != context.run_id or event.asset_materialization is None:
        return None
    metadata = event.asset_materialization.metadata
    if not all(k in metadata for k in NEAR_DUP_KEYS):
        return None
    return {k: int(metadata[k].value) for k in NEAR_DUP_KEYS}


def seed_files(
    settings: BuildConfig,
    refusal_dataset: StoredTable,
    t: Thresholds,
    info: DatasetInfo,
    near_dups: dict[str, int] | None,
) -> dict[str, str]:
    """The rejection-detection system's files (audit/, review and QA in its names); the review
    sample and the QA report where they were materialized."""
    review, qa = settings.stored(REVIEW_SAMPLE), settings.stored(QA_REPORT)
    review = read_all(review) if review is not None else None
    qa = read_all(qa).to_pylist() if qa is not None else []
    return seed_compat.files(refusal_dataset, review, qa, t, info, near_dups)


@asset(
    group_name="export",
    kinds={"duckdb", "markdown"},
    owners=[OWNER],
    description="The refusal recipe's QA: quality, privacy and bias metrics against the profile's "
    "thresholds over its own train/eval split, plus a Great Expectations validation of the split; "
    "markdown in the metadata, reports/qa_report.md and reports/qa_report.json.",
)
def qa_report(
    context: AssetExecutionContext,
    refusal_train: StoredTable,
    refusal_eval: StoredTable,
    refusal_dataset: StoredTable,
    dataset_decontamination: pa.Table,
    settings: BuildConfig,
) -> pa.Table:
    metrics, gx, info = recipe_qa(
        "refusal",
        settings.profile,
        refusal_train,
        refusal_eval,
        refusal_dataset,
        dict(settings.thresholds().qa),
        decontamination=decontamination_facts(settings, dataset_decontamination),
    )
    markdown = render_markdown(metrics, gx, info)
    storage = settings.storage()
    storage.write_bytes(markdown.encode(), "reports", "qa_report.md")
    storage.write_bytes(
        json.dumps(qa_json(metrics, gx, info), indent=2).encode(), "reports", "qa_report.json"
    )
    table = qa_rows(metrics, gx)
    context.add_output_metadata(
        {
            "report": MetadataValue.md(markdown),
            "path": storage.uri("reports", "qa_report.md"),
            "failed": sum(1 for p in table.column("passed").to_pylist() if not p),
        }
    )
    return table


def _report_files(
    settings: BuildConfig, info: DatasetInfo, lock: dict, suffix: str
) -> dict[str, str]:
    """The export's reports: the QA report (md, json), the dataset info in the S0 seed's layout,
    and the export seed's ``config_lock.json`` (the lock and the configuration it hashes, whole)."""
    storage = settings.storage()
    return {
        f"qa_report{suffix}.md": storage.read_bytes("reports", "qa_report.md").decode(),
        f"qa_report{suffix}.json": storage.read_bytes("reports", "qa_report.json").decode(),
        "processed/dataset_info.json": json.dumps(info.as_dict(), indent=2),
        "config_lock.json": json.dumps(
            {**lock, "config_snapshot": config_snapshot(settings.config_files())}, indent=2
        ),
    }


def _final_dataset(dataset, train, evals, eval_only: tuple[str, ...]):
    """final_dataset.json(l): streamed by DuckDB from the stored table into the build, each row
    with its side of the split and whether it is evaluation-only."""
    return lambda folder: seed_compat.copy_final_dataset(dataset, folder, train, evals, eval_only)


@asset(
    deps=["qa_report", "review_sample"],
    group_name="export",
    kinds={"parquet", "json"},
    owners=[OWNER],
    description="The refusal recipe's export, gated only by its own checks and its inputs': JSONL "
    "and Parquet of the refusal dataset and its train/eval split, the QA report (markdown and "
    "JSON), dataset info, the rejection-detection system's files (processed/final_dataset.json(l), "
    "processed/dataset_info.json, audit/), the dataset card (README.md, Hugging Face YAML header) and a manifest (sha256 and "
    "rows per file, rows per source, configuration lock, decontamination counts). Returns the "
    "manifest's file list.",
)
def export(
    context: AssetExecutionContext,
    refusal_dataset: StoredTable,
    refusal_train: StoredTable,
    refusal_eval: StoredTable,
    dataset_decontamination: pa.Table,
    judge_quality: pa.Table,
    settings: BuildConfig,
) -> pa.Table:
    storage = settings.storage()
    profile = settings.active()
    decont = decontamination_facts(settings, dataset_decontamination)
    version = settings.export_version or None
    # with a version, the export seed's names: dataset_v1.0.0.jsonl, qa_report_v1.0.0.json, ...
    suffix, main = (f"_v{version}", "dataset") if version else ("", "refusal_dataset")
    target, rows_before = settings.target_samples(), refusal_dataset.num_rows
    if target is not None:  # --target-samples: the export's files hold that many rows
        sample = target_sample(refusal_dataset, refusal_train, refusal_eval, target, profile.seed)
        refusal_dataset, refusal_train, refusal_eval = sample.dataset, sample.train, sample.eval
        context.log.info(f"--target-samples {target}: {refusal_dataset.num_rows} of {rows_before}")
    info = dataset_info(refusal_dataset)
    card = refusal_card(
        context, settings, refusal_dataset, info, decont, judge_quality, suffix, main
    )
    t = profile.thresholds
    lock = config_lock(
        settings.config_files(), profile.name, profile.seed, parse_profile_set(settings.profile_set)
    )
    extra = _report_files(settings, info, lock, suffix)
    writers = []
    if t.seed_compat:  # the rejection-detection system's names, on by default
        # the merge measured the near duplicates of this table, unless --target-samples cut it
        near = merge_near_dups(context) if target is None else None
        extra.update(seed_files(settings, refusal_dataset, t, info, near))
        eval_only = tuple(profile.decontamination.eval_only)
        writers.append(_final_dataset(refusal_dataset, refusal_train, refusal_eval, eval_only))
    manifest = write_export(
        storage,
        {main: refusal_dataset, "train": refusal_train, "eval": refusal_eval},
        extra,
        lock,
        rows_per_source(**{main: refusal_dataset, "train": refusal_train, "eval": refusal_eval}),
        writers,
        version,
        card=card,
        manifest_extra={
            "decontamination": decont,
            "target_samples": target,
            "rows_before_target": rows_before if target is not None else None,
            # the gates and the QA report measured the whole dataset, before the sample
            "qa_scope": "whole dataset"
            if target is None
            else f"whole dataset ({rows_before} rows, before --target-samples)",
            # the QA report's verdict and failed metrics (S2: the QA summary in the manifest)
            "qa_summary": qa_summary({main: json.loads(extra[f"qa_report{suffix}.json"])}),
        },
        manifest_copy=f"manifest{suffix}.json" if version else None,
    )
    return _export_metadata(context, settings, manifest)


def _export_metadata(context: AssetExecutionContext, settings: BuildConfig, manifest: dict):
    """The export's metadata; returns the manifest's file list (the asset's value)."""
    storage = settings.storage()
    build_dir = storage.uri(EXPORT_ROOT, manifest["build_id"])
    files_md, files_table = manifest_files(manifest)
    context.log.info(f"export written to {build_dir}")
    context.add_output_metadata(
        {
            "build_id": manifest["build_id"],
            "version": settings.export_version or "(none)",
            "export_dir": build_dir,
            "manifest": storage.uri(EXPORT_ROOT, manifest["build_id"], "manifest.json"),
            "config_hash": manifest["config_lock"]["config_hash"],
            "git_commit": manifest["config_lock"]["git_commit"],
            "files": files_md,
        }
    )
    return files_table


ASSETS = [qa_report, export]
