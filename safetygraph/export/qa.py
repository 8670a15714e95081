"""The QA report: quality, safety, privacy and bias metrics against thresholds, plus a Great
Expectations validation of the splits, rendered as markdown."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import pandas as pd
import pyarrow as pa

from safetygraph.audit.pii import residual_pii
from safetygraph.core import duck
from safetygraph.core.tables import StoredTable, connect, read_columns

DEFAULT_QA_THRESHOLDS: dict[str, float] = {
    "min_mean_confidence": 0.7,
    "max_low_confidence_share": 0.2,  # share of rows under the confidence floor
    "confidence_floor": 0.6,
    "max_residual_pii_rows": 0,
    "max_over_refusal_rate": 0.25,  # refusals among benign prompts
    "max_source_share": 0.9,
    "max_unsafe_in_retain": 0.0,
}


@dataclass
class Metric:
    group: str
    name: str
    value: float
    op: str  # ">=" or "<="
    threshold: float

    @property
    def passed(self) -> bool:
        return self.value >= self.threshold if self.op == ">=" else self.value <= self.threshold

    def as_dict(self) -> dict[str, Any]:
        return {
            "group": self.group,
            "metric": self.name,
            "value": self.value,
            "op": self.op,
            "threshold": self.threshold,
            "passed": self.passed,
        }


def _confidence_metrics(mean_conf: Any, low_share: Any, t: dict[str, Any]) -> list[Metric]:
    """The mean-label-confidence and share-under-the-floor metrics (a missing figure reads 0)."""
    return [
        Metric(
            "quality",
            "mean label confidence",
            float(mean_conf or 0),
            ">=",
            float(t["min_mean_confidence"]),
        ),
        Metric(
            "quality",
            "share under confidence floor",
            float(low_share or 0),
            "<=",
            float(t["max_low_confidence_share"]),
        ),
    ]


def _stage2_metrics(con: Any, t: dict[str, Any], ratio_min: float) -> list[Metric]:
    """The circuit breaker's Dr:Ds ratio and unsafe-share-in-retain metrics over view ``a``."""
    ratio, unsafe_retain = duck.one(
        con,
        """
            SELECT coalesce(sum((cb_class = 'retain')::INT) / nullif(sum((cb_class = 'harmful')::INT), 0), 0),
              -- attack samples are judged by their action (stage2.py), not by the text judge's outcome
              coalesce(avg(CASE WHEN cb_class = 'retain' AND cb_kind NOT IN ('adversarial_safe', 'attack_resisted')
                                THEN (label_outcome = 'COMPLY.UNSAFE')::INT END), 0)
            FROM a
            """,
    )
    return [
        Metric("safety", "retain:harmful ratio (Dr:Ds)", float(ratio), ">=", float(ratio_min)),
        Metric(
            "safety",
            "COMPLY.UNSAFE share in retain (attack samples aside)",
            float(unsafe_retain),
            "<=",
            float(t["max_unsafe_in_retain"]),
        ),
    ]


def _privacy_and_bias_metrics(
    residual: float, over_refusal: float, top_share: float, t: dict[str, Any]
) -> list[Metric]:
    """The residual-PII, over-refusal and largest-single-source-share metrics."""
    return [
        Metric(
            "privacy",
            "rows with PII left after scrubbing",
            float(residual),
            "<=",
            float(t["max_residual_pii_rows"]),
        ),
        Metric(
            "bias",
            "over-refusal rate on benign prompts (whole dataset)",
            float(over_refusal),
            "<=",
            float(t["max_over_refusal_rate"]),
        ),
        Metric(
            "bias",
            "largest single-source share",
            float(top_share),
            "<=",
            float(t["max_source_share"]),
        ),
    ]


def compute_metrics(
    train: pa.Table | StoredTable,
    evals: pa.Table | StoredTable,
    dataset: pa.Table | StoredTable,
    thresholds: dict[str, Any],
    ratio_min: float | None = None,
) -> list[Metric]:
    """Metrics over a recipe's splits; over-refusal over the whole labelled dataset (a split may
    leave rows out). With ``ratio_min`` the splits are the circuit breaker's (Ds and Dr): the Dr:Ds
    ratio and the unsafe share in retain are added. Without it they are the refusal recipe's."""
    t = {**DEFAULT_QA_THRESHOLDS, **thresholds}
    stage2 = ratio_min is not None
    cols = "source, label_confidence, label_outcome" + (", cb_class, cb_kind" if stage2 else "")
    # stored tables are scanned in place (views over their files); nothing is copied
    con = connect(tr=train, ev=evals, ds=dataset)
    con.execute(f"CREATE TEMP VIEW a AS SELECT {cols} FROM tr UNION ALL SELECT {cols} FROM ev")
    mean_conf, low_share = duck.one(
        con,
        f"SELECT avg(label_confidence), avg((label_confidence < {float(t['confidence_floor'])})::INT) FROM a",
    )
    top_share = (
        duck.one(con, "SELECT max(n) / sum(n) FROM (SELECT count(*) AS n FROM a GROUP BY source)")[
            0
        ]
        or 0
    )
    residual = sum(residual_pii(train).values()) + sum(residual_pii(evals).values())
    over_refusal = duck.one(
        con,
        "SELECT coalesce(avg(CASE WHEN NOT prompt_harmful THEN response_refusal::INT END), 0) FROM ds",
    )[0]
    metrics = _confidence_metrics(mean_conf, low_share, t)
    if stage2:
        metrics += _stage2_metrics(con, t, ratio_min)
    return metrics + _privacy_and_bias_metrics(residual, over_refusal, top_share, t)


def qa_json(
    metrics: list[Metric], gx_results: list[dict[str, Any]], info: dict[str, Any]
) -> dict[str, Any]:
    """The QA report as a document (``qa_report.json`` beside the markdown)."""
    return {
        "verdict": "PASS"
        if all(m.passed for m in metrics) and all(r["success"] for r in gx_results)
        else "FAIL",
        **info,
        "metrics": [m.as_dict() for m in metrics],
        "great_expectations": gx_results,
    }


def recipe_qa(
    recipe: str,
    profile: str,
    train: pa.Table | StoredTable,
    evals: pa.Table | StoredTable,
    dataset: pa.Table | StoredTable,
    thresholds: dict[str, Any],
    ratio_min: float | None = None,
    decontamination: dict[str, Any] | None = None,
) -> tuple[list[Metric], list[dict[str, Any]], dict[str, Any]]:
    """A recipe's QA over its split: (metrics, Great Expectations results, info), for
    ``render_markdown`` and ``qa_json``."""
    metrics = compute_metrics(train, evals, dataset, thresholds, ratio_min)
    gx = great_expectations_results(train, evals)
    info = {
        "recipe": recipe,
        "train_rows": train.num_rows,
        "eval_rows": evals.num_rows,
        "profile": profile,
        "rows_per_source": rows_per_source(train=train, eval=evals),
    }
    if decontamination is not None:
        info["decontamination"] = decontamination
    return metrics, gx, info


def great_expectations_results(
    train: pa.Table | StoredTable, evals: pa.Table | StoredTable
) -> list[dict[str, Any]]:
    """Validate both splits with a Great Expectations suite (ephemeral context, nothing on disk)."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx
    import great_expectations.expectations as gxe
    from great_expectations.data_context.types.base import ProgressBarsConfig

    from safetygraph.labeling.constitution import OUTCOMES

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    source = context.data_sources.add_pandas("qa")
    results = []
    for name, table, split in (("train", train, "train"), ("eval", evals, "eval")):
        # Arrow-backed columns: the texts stay in Arrow buffers, not one Python object per value
        df = read_columns(
            table, ["id", "prompt", "response", "label_outcome", "label_confidence", "split"]
        ).to_pandas(types_mapper=pd.ArrowDtype)
        batch = (
            source.add_dataframe_asset(name)
            .add_batch_definition_whole_dataframe("all")
            .get_batch(batch_parameters={"dataframe": df})
        )
        suite = [
            gxe.ExpectColumnValuesToBeUnique(column="id"),
            gxe.ExpectColumnValuesToNotBeNull(column="prompt"),
            gxe.ExpectColumnValuesToNotBeNull(column="response"),
            gxe.ExpectColumnValuesToBeInSet(column="label_outcome", value_set=list(OUTCOMES)),
            gxe.ExpectColumnValuesToBeBetween(
                column="label_confidence", min_value=0.0, max_value=1.0
            ),
            gxe.ExpectColumnValuesToBeInSet(column="split", value_set=[split]),
        ]
        for exp in suite:
            res = batch.validate(exp)
            results.append(
                {
                    "table": name,
                    "expectation": type(exp).__name__,
                    "column": getattr(exp, "column", ""),
                    "success": bool(res.success),
                    "unexpected": int((res.result or {}).get("unexpected_count", 0) or 0),
                }
            )
    return results


def render_markdown(
    metrics: list[Metric], gx_results: list[dict[str, Any]], info: dict[str, Any]
) -> str:
    ok = all(m.passed for m in metrics) and all(r["success"] for r in gx_results)
    lines = [
        f"# QA report{' — ' + info['recipe'] if info.get('recipe') else ''}",
        "",
        f"**Verdict: {'PASS' if ok else 'FAIL'}** · train {info['train_rows']} rows · eval {info['eval_rows']} rows · profile `{info['profile']}`",
        "",
        "## Metrics against thresholds",
        "",
        "| group | metric | value | threshold | result |",
        "|---|---|---:|---:|---|",
    ]
    for m in metrics:
        lines.append(
            f"| {m.group} | {m.name} | {m.value:.4f} | {m.op} {m.threshold:g} | {'pass' if m.passed else '**FAIL**'} |"
        )
    lines += [
        "",
        "## Great Expectations",
        "",
        "| table | expectation | column | unexpected | result |",
        "|---|---|---|---:|---|",
    ]
    for r in gx_results:
        lines.append(
            f"| {r['table']} | {r['expectation']} | {r['column']} | {r['unexpected']} | {'pass' if r['success'] else '**FAIL**'} |"
        )
    lines += ["", "## Source mix", "", "| split | source | rows |", "|---|---|---:|"]
    for split, by_source in info["rows_per_source"].items():
        for source, n in by_source.items():
            lines.append(f"| {split} | {source} | {n} |")
    d = info.get("decontamination")
    if d is not None:
        lines += [
            "",
            "## Decontamination",
            "",
            f"Evaluation sets: {', '.join(d['eval_sets']) or '(none declared)'}; "
            f"rows removed {d['rows_removed']} ({d['prompts_removed']} prompts), "
            f"rows of evaluation sets on the eval side only {d['rows_eval_only']}.",
            "",
            "| evaluation set | rows removed |",
            "|---|---:|",
            *[f"| {k} | {v} |" for k, v in d["removed_by_eval_set"].items()],
        ]
    return "\n".join(lines) + "\n"


def rows_per_source(**tables: pa.Table | StoredTable) -> dict[str, dict[str, int]]:
    out = {}
    for name, table in tables.items():
        con = connect(t=read_columns(table, ["source"]))
        out[name] = {
            s: int(n)
            for s, n in duck.rows(
                con, "SELECT source, count(*) FROM t GROUP BY source ORDER BY source"
            )
        }
    return out
