"""qa_report and export: the last two assets, both downstream of every blocking gate."""

import json

import pyarrow as pa
from dagster import AssetExecutionContext, MetadataValue, asset

from pipeline_assets.keys import OWNER
from pipeline_assets.metadata import manifest_files
from resources import BuildConfig
from safetygraph.core.tables import StoredTable
from safetygraph.export import seed_compat
from safetygraph.export.files import EXPORT_ROOT, write_export
from safetygraph.export.lock import config_lock
from safetygraph.export.qa import (
    qa_json,
    recipe_qa,
    render_markdown,
    rows_per_source,
)
from safetygraph.recipes.refusal.dataset import dataset_info

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


def build():
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
        settings: BuildConfig,
    ) -> pa.Table:
        metrics, gx, info = recipe_qa(
            "refusal",
            settings.profile,
            refusal_train,
            refusal_eval,
            refusal_dataset,
            dict(settings.active().thresholds.get("qa", {})),
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

    @asset(
        deps=["qa_report", "review_sample"],
        group_name="export",
        kinds={"parquet", "json"},
        owners=[OWNER],
        description="The refusal recipe's export, gated only by its own checks and its inputs': JSONL "
        "and Parquet of the refusal dataset and its train/eval split, the QA report (markdown and "
        "JSON), dataset info, the rejection-detection system's files (final_dataset.json(l), "
        "audit/) and a manifest (sha256 and rows per file, rows per source, configuration lock). "
        "Returns the manifest's file list.",
    )
    def export(
        context: AssetExecutionContext,
        refusal_dataset: StoredTable,
        refusal_train: StoredTable,
        refusal_eval: StoredTable,
        settings: BuildConfig,
    ) -> pa.Table:
        storage = settings.storage()
        profile = settings.active()
        t = profile.thresholds
        extra = {
            "qa_report.md": storage.read_bytes("reports", "qa_report.md").decode(),
            "qa_report.json": storage.read_bytes("reports", "qa_report.json").decode(),
            "dataset_info.json": json.dumps(dataset_info(refusal_dataset), indent=2),
        }
        writers = []
        if t.get("seed_compat", True):  # the rejection-detection system's names, on by default
            review = (
                storage.read_table("assets", "review_sample.parquet")
                if storage.exists("assets", "review_sample.parquet")
                else None
            )
            qa = (
                storage.read_table("assets", "qa_report.parquet").to_pylist()
                if storage.exists("assets", "qa_report.parquet")
                else []
            )
            extra.update(
                seed_compat.files(
                    refusal_dataset,
                    review,
                    qa,
                    dict(t.get("coverage_min") or {}),
                    float(t.get("confidence_floor", 0.6)),
                    float(t.get("toxicity_threshold", 0.5)),
                    float(t.get("near_dup_threshold", 0.8)),
                )
            )
            # final_dataset.json(l): streamed by DuckDB from the stored table into the build
            writers.append(lambda folder: seed_compat.copy_final_dataset(refusal_dataset, folder))
        manifest = write_export(
            storage,
            {"refusal_dataset": refusal_dataset, "train": refusal_train, "eval": refusal_eval},
            extra,
            config_lock(settings.config_files(), profile.name, profile.seed),
            rows_per_source(
                refusal_dataset=refusal_dataset, train=refusal_train, eval=refusal_eval
            ),
            writers,
            settings.export_version or None,
        )
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

    return [qa_report, export]
