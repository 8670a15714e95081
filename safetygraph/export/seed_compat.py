"""The rejection-detection system's file names and fields, for its users' loaders (``seed_compat``):

- ``final_dataset.json`` (a JSON array) and ``final_dataset.jsonl``: one record per labelled row,
  ``id, source, prompt, response, head_a`` (outcome), ``head_b`` (style), ``head_c_a`` (harm
  categories), ``head_c_b`` (harmless topics), ``head_d {prompt_harmful, response_harmful,
  response_refusal}``, ``metadata {confidence, rationale, judge_model}``;
- ``audit/audit_report.json``: quality metrics, distributions, coverage and recommendations;
- ``audit/human_review_samples.json``: the stratified review sample, with empty human fields.

``dataset_info.json`` is written by the export itself, as before."""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa

from safetygraph.core import duck
from safetygraph.labeling.review import confidence_distribution, coverage
from safetygraph.recipes.refusal.dataset import dataset_info

_RECORD = """json_object(
  'id', id, 'source', source, 'prompt', prompt, 'response', response,
  'head_a', label_outcome, 'head_b', label_style,
  'head_c_a', to_json(harm_categories), 'head_c_b', to_json(harmless_topics),
  'head_d', json_object('prompt_harmful', prompt_harmful, 'response_harmful', response_harmful,
                        'response_refusal', response_refusal),
  'metadata', json_object('confidence', label_confidence, 'rationale', label_rationale,
                          'judge_model', judge))::VARCHAR"""


def final_records(table: pa.Table) -> list[str]:
    """One JSON text per row, in id order."""
    con = duck.connect(t=table)
    return [r[0] for r in duck.rows(con, f"SELECT {_RECORD} FROM t ORDER BY id")]


def audit_report(
    dataset: pa.Table,
    qa: list[dict[str, Any]],
    coverage_min: dict[str, int],
    confidence_floor: float,
) -> dict[str, Any]:
    """Quality metrics, distributions, coverage against the profile's minimums, the QA checks and
    recommendations that follow from what fell short."""
    info = dataset_info(dataset)
    by_outcome = info["by_outcome"]
    cov = {
        outcome: {
            "rows": by_outcome.get(outcome, 0),
            "minimum": int(m),
            "met": by_outcome.get(outcome, 0) >= int(m),
        }
        for outcome, m in sorted(coverage_min.items())
    }
    confidence = confidence_distribution(dataset)
    low_share = confidence["low"] / info["rows"] if info["rows"] else 0.0
    recommendations = [
        f"coverage of {o} is {c['rows']} rows, under the minimum {c['minimum']}: add sources or generations that produce it"
        for o, c in cov.items()
        if not c["met"]
    ]
    if low_share > 0.2:
        recommendations.append(
            f"{low_share:.0%} of labels are under confidence {confidence_floor}: review them or use a second judge"
        )
    recommendations += [
        f"QA check {q['metric']} failed: {q['value']} {q['op']} {q['threshold']} does not hold"
        for q in qa
        if not q.get("passed", True)
    ]
    return {
        "total_samples": info["rows"],
        "quality_metrics": {
            "mean_confidence": info["mean_confidence"],
            "confidence_distribution": confidence,
            "low_confidence_share": round(low_share, 4),
        },
        "distributions": {
            "head_a": by_outcome,
            "head_b": info["by_style"],
            "head_c_a": info["by_harm_category"],
            "head_c_b": info["by_harmless_topic"],
            "head_d": {
                k: info[k] for k in ("prompt_harmful", "response_harmful", "response_refusal")
            },
            "source": info["by_source"],
        },
        "coverage": cov,
        "coverage_by_outcome_category_source": coverage(dataset).to_pylist(),
        "qa_checks": qa,
        "recommendations": recommendations,
    }


def human_review_samples(review: pa.Table) -> list[dict[str, Any]]:
    """The review sample as the seed's reviewers read it: the judge's call and empty human fields."""
    return [
        {
            "id": r["id"],
            "source": r["source"],
            "stratum": r["stratum"],
            "prompt": r["prompt"],
            "response": r["response"],
            "judge_head_a": r["judge_outcome"],
            "judge_confidence": r["judge_confidence"],
            "human_head_a": None,
            "human_notes": None,
        }
        for r in review.to_pylist()
    ]


def files(
    dataset: pa.Table,
    review: pa.Table | None,
    qa: list[dict[str, Any]],
    coverage_min: dict[str, int],
    confidence_floor: float,
) -> dict[str, str]:
    """{file name: text} of the seed-compatible files."""
    records = final_records(dataset)
    return {
        "final_dataset.json": "[\n" + ",\n".join(records) + "\n]\n",
        "final_dataset.jsonl": "".join(r + "\n" for r in records),
        "audit/audit_report.json": json.dumps(
            audit_report(dataset, qa, coverage_min, confidence_floor), indent=2
        ),
        "audit/human_review_samples.json": json.dumps(
            human_review_samples(review) if review is not None else [], indent=2
        ),
    }
