"""qa_report and export: the last two assets, both downstream of every blocking gate."""

import json

import pyarrow as pa
from dagster import AssetExecutionContext, MetadataValue, asset

from pipeline_assets.keys import OWNER
from pipeline_assets.metadata import manifest_files
from resources import BuildConfig
from safetygraph.core.tables import StoredTable, read_all
from safetygraph.export import seed_compat
from safetygraph.export.files import EXPORT_ROOT, write_export
from safetygraph.export.lock import config_lock
from safetygraph.export.qa import (
    compute_metrics,
    great_expectations_results,
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


def build():
    @asset(
        group_name="export",
        kinds={"duckdb", "markdown"},
        owners=[OWNER],
        description="Quality, safety, privacy and bias metrics against the profile's thresholds, plus a "
        "Great Expectations validation of the splits; markdown in the metadata and as reports/qa_report.md.",
    )
    def qa_report(
        context: AssetExecutionContext,
        train_split: StoredTable,
        eval_split: StoredTable,
        refusal_dataset: StoredTable,
        settings: BuildConfig,
    ) -> pa.Table:
        metrics = compute_metrics(
            train_split,
            eval_split,
            refusal_dataset,
            dict(settings.active().thresholds.get("qa", {})),
            float(settings.threshold("retain_harmful_ratio_min")),
        )
        gx = great_expectations_results(train_split, eval_split)
        info = {
            "train_rows": train_split.num_rows,
            "eval_rows": eval_split.num_rows,
            "profile": settings.profile,
            "rows_per_source": rows_per_source(train=train_split, eval=eval_split),
        }
        markdown = render_markdown(metrics, gx, info)
        storage = settings.storage()
        storage.write_bytes(markdown.encode(), "reports", "qa_report.md")
        table = pa.Table.from_pylist(
            [
                {
                    "group": m.group,
                    "metric": m.name,
                    "value": m.value,
                    "op": m.op,
                    "threshold": m.threshold,
                    "passed": m.passed,
                }
                for m in metrics
            ]
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
        description="JSONL and Parquet files of the refusal dataset and the splits, the QA report, dataset "
        "info and a manifest (sha256 and rows per file, rows per source, configuration lock). Returns the manifest's file list.",
    )
    def export(
        context: AssetExecutionContext,
        refusal_dataset: StoredTable,
        train_split: StoredTable,
        eval_split: StoredTable,
        settings: BuildConfig,
    ) -> pa.Table:
        storage = settings.storage()
        profile = settings.active()
        report = storage.read_bytes("reports", "qa_report.md").decode()
        extra = {
            "qa_report.md": report,
            "dataset_info.json": json.dumps(dataset_info(refusal_dataset), indent=2),
        }
        if profile.thresholds.get("seed_compat"):  # the rejection-detection system's names
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
                    read_all(refusal_dataset),  # final_dataset.json: the seed's one-document layout
                    review,
                    qa,
                    dict(profile.thresholds.get("coverage_min") or {}),
                    float(profile.thresholds.get("confidence_floor", 0.6)),
                )
            )
        manifest = write_export(
            storage,
            {"refusal_dataset": refusal_dataset, "train": train_split, "eval": eval_split},
            extra,
            config_lock(settings.config_files(), profile.name, profile.seed),
            rows_per_source(refusal_dataset=refusal_dataset, train=train_split, eval=eval_split),
        )
        build_dir = storage.uri(EXPORT_ROOT, manifest["build_id"])
        files_md, files_table = manifest_files(manifest)
        context.log.info(f"export written to {build_dir}")
        context.add_output_metadata(
            {
                "build_id": manifest["build_id"],
                "export_dir": build_dir,
                "manifest": storage.uri(EXPORT_ROOT, manifest["build_id"], "manifest.json"),
                "config_hash": manifest["config_lock"]["config_hash"],
                "git_commit": manifest["config_lock"]["git_commit"],
                "files": files_md,
            }
        )
        return files_table

    return [qa_report, export]
