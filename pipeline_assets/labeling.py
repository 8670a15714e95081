"""labels (one partition per source) and judge_quality: the judge's labels, and the judge measured
against human labels next to the string-matching baseline."""

import pyarrow as pa
import pyarrow.compute as pc
from dagster import AssetExecutionContext, Config, MetadataValue, PartitionsDefinition, asset
from pydantic import Field

from pipeline_assets.keys import LABELS, OWNER
from pipeline_assets.metadata import counts_table, value_counts
from resources import BuildConfig, LLMResource
from safetygraph.core.storage import asset_parts
from safetygraph.generation import RequestCache
from safetygraph.labeling.combined import CombinedJudge
from safetygraph.labeling.gold import gold_table, side_by_side
from safetygraph.labeling.guard import GuardJudge
from safetygraph.labeling.heuristic import HeuristicJudge
from safetygraph.labeling.llm_judge import LLMJudge, label_two_pass

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
        "| half | task | method | n | accuracy | precision | recall | F1 | kappa |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for half, tasks in result.items():
        for task in ("refusal", "response_harm"):
            for method, m in tasks.get(task, {}).items():
                lines.append(
                    f"| {half} | {task} | {method} | {m['n']} | {m['accuracy']:.3f} | {m['precision']:.3f} | {m['recall']:.3f} | {m['f1']:.3f} | {m['kappa']:.3f} |"
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


class JudgeRunConfig(Config):
    """Chosen in the launchpad: which judge labels the rows."""

    judge: str = Field(
        default="combined",
        description="combined (offline default: heuristic signals decided by the trained classifiers), "
        "heuristic, classifier, llm, two_pass, or a guard model: wildguard, llamaguard",
    )
    judge_role: str = Field(
        default="judge", description="The profile's generation config the LLM judge uses"
    )
    second_judge_role: str = Field(
        default="judge_second", description="two_pass: the second judge's config"
    )
    second_pass_below: float = Field(
        default=0.7, description="two_pass: confidence under which a row goes to the second judge"
    )


def run_judge(
    config: JudgeRunConfig, table: pa.Table, settings: BuildConfig, llm: LLMResource
) -> tuple[pa.Table, str, dict]:
    """``table`` (rows with a response) labelled by the judge ``config`` chooses: (labelled table,
    judge name, judge statistics). Used by every asset that labels answers."""
    constitution = settings.constitution()
    if config.judge == "heuristic":
        return HeuristicJudge(constitution).label(table), HeuristicJudge.name, {}
    if config.judge in ("combined", "classifier"):
        judge = CombinedJudge(constitution, mode=config.judge)
        return judge.label(table), judge.name, {}
    if config.judge not in ("llm", "two_pass", "wildguard", "llamaguard"):
        raise ValueError(
            f"judge {config.judge!r} is not known; use combined, heuristic, classifier, llm, "
            "two_pass, wildguard or llamaguard"
        )
    cache = RequestCache(settings.storage())
    if config.judge in ("wildguard", "llamaguard"):
        (gen,) = settings.generation_configs([config.judge_role])
        guard = GuardJudge(config.judge, gen, llm.backend, constitution, cache=cache)
        return guard.label(table), guard.name, guard.stats

    def llm_judge(role: str) -> LLMJudge:
        (gen,) = settings.generation_configs([role])
        return LLMJudge(gen, constitution, llm.backend, cache=cache)

    first = llm_judge(config.judge_role)
    if config.judge == "llm":
        return first.label(table), first.name, first.stats
    second = llm_judge(config.second_judge_role)
    out, stats = label_two_pass(table, first, second, config.second_pass_below)
    return out, f"{first.name} then {second.name}", stats


def build(partitions: PartitionsDefinition):
    @asset(
        partitions_def=partitions,
        group_name="labeling",
        kinds={"duckdb", "parquet"},
        owners=[OWNER],
        description="Five-head judge labels (outcome, style, harm categories, harmless topics, flags) "
        "with confidence and rationale, for every row that has a response.",
    )
    def labels(
        context: AssetExecutionContext,
        config: JudgeRunConfig,
        generated_responses: pa.Table,
        settings: BuildConfig,
        llm: LLMResource,
    ) -> pa.Table:
        answered = generated_responses.filter(pc.is_valid(generated_responses.column("response")))
        out, judge_name, judge_stats = run_judge(config, answered, settings, llm)
        context.add_output_metadata(
            {
                "judge": judge_name,
                "judge_stats": MetadataValue.json(judge_stats),
                "constitution": settings.constitution().name,
                "rows_without_response": generated_responses.num_rows - answered.num_rows,
                "outcomes": counts_table("outcome", value_counts(out, "label_outcome")),
                "mean_confidence": MetadataValue.float(
                    round(pc.mean(out.column("label_confidence")).as_py() or 0.0, 4)
                ),
            }
        )
        return out

    @asset(
        deps=[LABELS],
        group_name="labeling",
        kinds={"duckdb", "parquet"},
        owners=[OWNER],
        description="Accuracy, precision, recall, F1 and Cohen's kappa for refusal and response harm, the three-way "
        "outcome confusion matrix and per-model accuracy, on the rows of the profile's sources that carry human labels "
        "(gold_refusal / gold_action, gold_harmful): the build's judge next to every offline judge (heuristic, "
        "classifier, combined) and a prefix string-matching baseline; development and held-out models reported apart.",
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
        result = side_by_side(labeled, settings.constitution(), dev_models) if gold_rows else {}
        rows = metric_rows(result)
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

    return [labels, judge_quality]
