"""judge_quality: the judge measured against human labels, next to the string-matching baseline."""

import pyarrow as pa
from dagster import AssetExecutionContext, MetadataValue, asset

from pipeline_assets.keys import LABELS, OWNER
from resources import BuildConfig
from safetygraph.gold import evaluate, gold_table
from safetygraph.storage import asset_parts

METRICS_SCHEMA = pa.schema(
    [
        ("half", pa.string()),
        ("task", pa.string()),
        ("method", pa.string()),
        ("metric", pa.string()),
        ("value", pa.float64()),
    ]
)


def _markdown(result: dict) -> str:
    lines = [
        "| half | task | method | n | accuracy | precision | recall | F1 | kappa |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for half, tasks in result.items():
        for task, methods in tasks.items():
            for method, m in methods.items():
                lines.append(
                    f"| {half} | {task} | {method} | {m['n']} | {m['accuracy']:.3f} | {m['precision']:.3f} | {m['recall']:.3f} | {m['f1']:.3f} | {m['kappa']:.3f} |"
                )
    return "\n".join(lines)


def build():
    @asset(
        deps=[LABELS],
        group_name="labeling",
        kinds={"duckdb", "parquet"},
        owners=[OWNER],
        description="Accuracy, precision, recall, F1 and Cohen's kappa of the judge for refusal and response harm "
        "on the rows of the profile's sources that carry human labels (gold_refusal / gold_action, gold_harmful), "
        "next to a prefix string-matching baseline; development models and held-out models reported apart.",
    )
    def judge_quality(context: AssetExecutionContext, settings: BuildConfig) -> pa.Table:
        storage = settings.storage()
        tables = [
            storage.read_table(*asset_parts(LABELS.path, s))
            for s in settings.active().sources
            if storage.exists(*asset_parts(LABELS.path, s))
        ]
        labeled = pa.concat_tables(tables, promote_options="permissive") if tables else None
        gold_rows = gold_table(labeled).num_rows if labeled is not None else 0
        dev_models = tuple(settings.active().thresholds.get("judge_dev_models", ()))
        result = evaluate(labeled, dev_models) if gold_rows else {}
        rows = [
            {"half": half, "task": task, "method": method, "metric": name, "value": float(value)}
            for half, tasks in result.items()
            for task, methods in tasks.items()
            for method, m in methods.items()
            for name, value in m.items()
        ]
        context.add_output_metadata(
            {
                "gold_rows": gold_rows,
                "dev_models": ", ".join(dev_models) or "(none: all rows reported)",
                "metrics": MetadataValue.md(
                    _markdown(result)
                    if result
                    else "No source of the profile carries human labels."
                ),
            }
        )
        return pa.Table.from_pylist(rows, schema=METRICS_SCHEMA)

    return [judge_quality]
