"""labels (one partition per source) and judge_quality: the judge's labels, and the judge measured
against human labels next to the string-matching baseline."""

import pyarrow as pa
from dagster import AssetExecutionContext, MetadataValue, PartitionsDefinition, asset
from safetygraph.location.pipeline_assets.keys import LABELS, OWNER
from safetygraph.location.pipeline_assets.metadata import counts_table
from safetygraph.location.resources import BuildConfig, LLMResource
from safetygraph.location.resources.judging import JudgeRunConfig, batch_judge

from safetygraph.core.paths import DATA_ROOT
from safetygraph.core.records import LABELED_SCHEMA
from safetygraph.core.tables import StoredTable, TableStream, read_all
from safetygraph.labeling.gold import SHIPPED_GOLD, gold_table, shipped_side_by_side, side_by_side
from safetygraph.labeling.registry import LabelRun

METRICS_SCHEMA = pa.schema(
    [
        ("half", pa.string()),
        ("model", pa.string()),
        ("task", pa.string()),
        ("method", pa.string()),
        ("metric", pa.string()),
        ("value", pa.float64()),
    ]
)


def _markdown(result: dict) -> str:
    lines = [
        "| half | task | method | n | accuracy | precision | recall | F1 | kappa | false-positive rate |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for half, tasks in result.items():
        slices = [(task, tasks.get(task, {})) for task in ("refusal", "response_harm")]
        slices += [
            (f"response_harm ({src})", by_method)
            for src, by_method in tasks.get("response_harm_by_source", {}).items()
        ]
        for task, by_method in slices:
            for method, m in by_method.items():
                lines.append(
                    f"| {half} | {task} | {method} | {m['n']} | {m['accuracy']:.3f} | {m['precision']:.3f} | {m['recall']:.3f} | {m['f1']:.3f} | {m['kappa']:.3f} | {m['fpr']:.3f} |"
                )
    lines += [
        "",
        "Three-way outcome (gold rows x predicted columns: refusal / partial / compliance):",
        "",
    ]
    for half, tasks in result.items():
        for method, c in tasks["outcome3"].items():
            cells = "; ".join(
                f"{g}: " + "/".join(str(v) for v in row.values()) for g, row in c["matrix"].items()
            )
            lines.append(f"- {half} {method}: accuracy {c['accuracy']:.3f} ({cells})")
    return "\n".join(lines)


def _by_source_rows(half: str, by_source: dict) -> list[dict]:
    """Response harm per labelled source as long rows ("model": source=NAME)."""
    return [
        {
            "half": half,
            "model": f"source={src}",
            "task": "response_harm",
            "method": method,
            "metric": k,
            "value": float(v),
        }
        for src, by_method in by_source.items()
        for method, m in by_method.items()
        for k, v in m.items()
    ]


def metric_rows(result: dict) -> list[dict]:
    """The evaluation as long rows (half, model, task, method, metric, value)."""
    rows = []
    for half, tasks in result.items():
        for task in ("refusal", "response_harm"):
            for method, m in tasks.get(task, {}).items():
                rows += [
                    {
                        "half": half,
                        "model": "all",
                        "task": task,
                        "method": method,
                        "metric": k,
                        "value": float(v),
                    }
                    for k, v in m.items()
                ]
        rows += _by_source_rows(half, tasks.get("response_harm_by_source", {}))
        for method, c in tasks["outcome3"].items():
            rows.append(
                {
                    "half": half,
                    "model": "all",
                    "task": "outcome3",
                    "method": method,
                    "metric": "accuracy",
                    "value": float(c["accuracy"]),
                }
            )
            rows += [
                {
                    "half": half,
                    "model": "all",
                    "task": "outcome3",
                    "method": method,
                    "metric": f"gold={g}/pred={p}",
                    "value": float(v),
                }
                for g, row in c["matrix"].items()
                for p, v in row.items()
            ]
        for model, by_method in tasks["refusal_accuracy_by_model"].items():
            rows += [
                {
                    "half": half,
                    "model": model,
                    "task": "refusal",
                    "method": method,
                    "metric": "accuracy",
                    "value": float(v),
                }
                for method, v in by_method.items()
            ]
    return rows


LABELS_SPEC = dict(
    group_name="labeling",
    kinds={"duckdb", "parquet"},
    owners=[OWNER],
    description="Five-head judge labels (outcome, style, harm categories, harmless topics, flags) "
    "with confidence and rationale, for every row that has a response.",
)


def labels(
    context: AssetExecutionContext,
    config: JudgeRunConfig,
    generated_responses: StoredTable,
    settings: BuildConfig,
    llm: LLMResource,
) -> TableStream:
    run = LabelRun(batch_judge(config, settings, llm), settings.batch_rows)

    def figures(_written: StoredTable) -> dict:
        return {
            "judge": run.judge.name,
            "judge_stats": MetadataValue.json(run.judge.stats),
            "constitution": settings.constitution().name,
            "rows_without_response": run.stats.without_response,
            "outcomes": counts_table("outcome", dict(sorted(run.stats.outcomes.items()))),
            "mean_confidence": MetadataValue.float(run.stats.mean_confidence),
        }

    return TableStream(LABELED_SCHEMA, run.batches(generated_responses), figures)


@asset(
    deps=[LABELS],
    group_name="labeling",
    kinds={"duckdb", "parquet"},
    owners=[OWNER],
    description="Accuracy, precision, recall, F1, Cohen's kappa and the false-positive rate for refusal and "
    "response harm (beside the old rule: a harmful prompt answered without a refusal), the three-way "
    "outcome confusion matrix and per-model accuracy, on the rows of the profile's sources that carry human labels "
    "(gold_refusal / gold_action, gold_harmful): the build's judge next to every offline judge (heuristic, "
    "classifier, combined) and a prefix string-matching baseline; development rows and the reported part (held-out "
    "models x the report half of the questions) apart.",
)
def judge_quality(context: AssetExecutionContext, settings: BuildConfig) -> pa.Table:
    stored = (settings.stored(LABELS, s) for s in settings.active().sources)
    tables = [read_all(t) for t in stored if t is not None]
    labeled = pa.concat_tables(tables, promote_options="permissive") if tables else None
    gold_rows = gold_table(labeled).num_rows if labeled is not None else 0
    dev_models = tuple(settings.thresholds().judge_dev_models)
    if gold_rows:
        result = side_by_side(labeled, settings.constitution(), dev_models)
        gold_set = "the profile's sources"
    else:  # no source carries human labels: the labelled set the project ships
        judges = set(labeled.column("judge").to_pylist()) if labeled is not None else set()
        result = shipped_side_by_side(judges, settings.constitution())
        gold_set = f"shipped: {SHIPPED_GOLD.relative_to(DATA_ROOT)} (no source of the profile carries human labels)"
    rows = metric_rows(result)
    context.add_output_metadata(
        {
            "gold_rows": gold_rows,
            "gold_set": gold_set,
            "dev_models": ", ".join(dev_models) or "(none: all rows reported)",
            "metrics": MetadataValue.md(_markdown(result)),
        }
    )
    return pa.Table.from_pylist(rows, schema=METRICS_SCHEMA)


def build(partitions: PartitionsDefinition) -> list:
    """labels over the registry's partitions, and judge_quality (not partitioned)."""
    return [asset(partitions_def=partitions, **LABELS_SPEC)(labels), judge_quality]
