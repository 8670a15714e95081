"""labels (one partition per source) and judge_quality: the judge's labels, and the judge measured
against human labels next to the string-matching baseline."""

import pyarrow as pa
import pyarrow.compute as pc
from dagster import AssetExecutionContext, Config, MetadataValue, PartitionsDefinition, asset
from pydantic import Field

from pipeline_assets.keys import LABELS, OWNER
from pipeline_assets.metadata import counts_table, value_counts
from resources import BuildConfig, LLMResource
from safetygraph.core.records import LABELED_SCHEMA
from safetygraph.core.storage import asset_parts
from safetygraph.core.tables import StoredTable, TableStream, table_batches
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
        "| half | task | method | n | accuracy | precision | recall | F1 | kappa | false-positive rate |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for half, tasks in result.items():
        for task in ("refusal", "response_harm"):
            for method, m in tasks.get(task, {}).items():
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


class BatchJudge:
    """The judge ``config`` chooses, built once and applied batch by batch: ``label`` adds the label
    columns to a table of rows with a response; ``stats`` sums the judge's figures over the batches."""

    def __init__(self, config: JudgeRunConfig, settings: BuildConfig, llm: LLMResource):
        constitution = settings.constitution()
        self.stats: dict[str, int] = {}
        self._second = None
        if config.judge == "heuristic":
            self._judge = HeuristicJudge(constitution)
            self.name = HeuristicJudge.name
            return
        if config.judge in ("combined", "classifier"):
            self._judge = CombinedJudge(constitution, mode=config.judge)
            self.name = self._judge.name
            return
        if config.judge not in ("llm", "two_pass", "wildguard", "llamaguard"):
            raise ValueError(
                f"judge {config.judge!r} is not known; use combined, heuristic, classifier, llm, "
                "two_pass, wildguard or llamaguard"
            )
        cache = RequestCache(settings.storage())
        if config.judge in ("wildguard", "llamaguard"):
            (gen,) = settings.generation_configs([config.judge_role])
            self._judge = GuardJudge(config.judge, gen, llm.backend, constitution, cache=cache)
            self.name = self._judge.name
            return

        def llm_judge(role: str) -> LLMJudge:
            (gen,) = settings.generation_configs([role])
            return LLMJudge(gen, constitution, llm.backend, cache=cache)

        self._judge = llm_judge(config.judge_role)
        self.name = self._judge.name
        if config.judge == "two_pass":
            self._second = llm_judge(config.second_judge_role)
            self._below = config.second_pass_below
            self.name = f"{self._judge.name} then {self._second.name}"

    def label(self, table: pa.Table) -> pa.Table:
        if self._second is not None:
            out, figures = label_two_pass(table, self._judge, self._second, self._below)
        else:
            out = self._judge.label(table)
            figures = getattr(self._judge, "stats", {})  # the offline judges keep none
        for key, value in figures.items():
            self.stats[key] = self.stats.get(key, 0) + value
        return out


def run_judge(
    config: JudgeRunConfig, table: pa.Table, settings: BuildConfig, llm: LLMResource
) -> tuple[pa.Table, str, dict]:
    """``table`` (rows with a response) labelled by the judge ``config`` chooses: (labelled table,
    judge name, judge statistics). Used by every asset that labels answers."""
    judge = BatchJudge(config, settings, llm)
    out = judge.label(table)
    return out, judge.name, judge.stats


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
        generated_responses: StoredTable,
        settings: BuildConfig,
        llm: LLMResource,
    ) -> TableStream:
        judge = BatchJudge(config, settings, llm)
        outcomes: dict[str, int] = {}
        seen = {"without_response": 0, "confidence_sum": 0.0, "rows": 0}

        def batches():
            for batch in table_batches(generated_responses, settings.batch_rows):
                answered = batch.filter(pc.is_valid(batch.column("response")))
                seen["without_response"] += batch.num_rows - answered.num_rows
                out = judge.label(answered)
                for outcome, n in value_counts(out, "label_outcome").items():
                    outcomes[outcome] = outcomes.get(outcome, 0) + n
                seen["confidence_sum"] += pc.sum(out.column("label_confidence")).as_py() or 0.0
                seen["rows"] += out.num_rows
                yield out

        def figures(_written: StoredTable) -> dict:
            mean = seen["confidence_sum"] / seen["rows"] if seen["rows"] else 0.0
            return {
                "judge": judge.name,
                "judge_stats": MetadataValue.json(judge.stats),
                "constitution": settings.constitution().name,
                "rows_without_response": seen["without_response"],
                "outcomes": counts_table("outcome", dict(sorted(outcomes.items()))),
                "mean_confidence": MetadataValue.float(round(mean, 4)),
            }

        return TableStream(LABELED_SCHEMA, batches(), figures)

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
        storage = settings.storage()
        tables = [
            storage.read_table(*asset_parts(LABELS.path, s))
            for s in settings.active().sources
            if storage.exists(*asset_parts(LABELS.path, s))
        ]
        labeled = pa.concat_tables(tables, promote_options="permissive") if tables else None
        gold_rows = gold_table(labeled).num_rows if labeled is not None else 0
        dev_models = tuple(settings.active().thresholds["judge_dev_models"])
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
