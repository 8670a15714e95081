"""The rejection-detection system's file names and fields, for its users' loaders (``seed_compat``):

- ``final_dataset.json`` (a JSON array) and ``final_dataset.jsonl``: one record per labelled row,
  ``id, source, prompt, response, head_a`` (outcome), ``head_b`` (style), ``head_c_a`` (harm
  categories), ``head_c_b`` (harmless topics), ``head_d {prompt_harmful, response_harmful,
  response_refusal}``, ``metadata {confidence, rationale, judge_model}``; and, beyond the seed's
  fields, ``split`` (``train`` or ``eval``: the row's side in the refusal split) and ``eval_only``
  (from an evaluation set the profile builds from: never trained on), so a loader can keep them out;
- ``audit/audit_report.json``: quality metrics, distributions, coverage and recommendations;
- ``audit/human_review_samples.json``: the stratified review sample, with empty human fields.

``dataset_info.json`` is written by the export itself, as before."""

from __future__ import annotations

import json
import os
from typing import Any

import pyarrow as pa

from safetygraph.audit.neardup import near_duplicate_rate
from safetygraph.core import duck
from safetygraph.core.tables import StoredTable, connect, read_columns
from safetygraph.labeling.review import confidence_distribution, coverage
from safetygraph.recipes.refusal.dataset import DatasetInfo, dataset_info
from safetygraph.sources.thresholds import Thresholds


# the seed's record; DuckDB writes it straight from the table's file, never a Python object per row
def _record_sql(eval_only: tuple[str, ...]) -> str:
    held = ", ".join(duck.sql_literal(s) for s in eval_only) or "NULL"
    return f"""
SELECT id, source, prompt, response, label_outcome AS head_a, label_style AS head_b,
  harm_categories AS head_c_a, harmless_topics AS head_c_b,
  struct_pack(prompt_harmful := prompt_harmful, response_harmful := response_harmful,
              response_refusal := response_refusal) AS head_d,
  struct_pack(confidence := label_confidence, rationale := label_rationale,
              judge_model := judge) AS metadata,
  CASE WHEN id IN (SELECT id FROM tr) THEN 'train' WHEN id IN (SELECT id FROM ev) THEN 'eval'
  END AS split,
  coalesce(source IN ({held}), false) AS eval_only
FROM t ORDER BY id
"""


def _connect(table, train, evals):
    empty = pa.table({"id": pa.array([], pa.string())})
    return connect(
        t=table,
        tr=train if train is not None else empty,
        ev=evals if evals is not None else empty,
    )


def final_records(
    table: pa.Table | StoredTable,
    train: pa.Table | StoredTable | None = None,
    evals: pa.Table | StoredTable | None = None,
    eval_only: tuple[str, ...] = (),
) -> list[str]:
    """One JSON text per row, in id order (what ``final_dataset.jsonl`` holds; for tests and
    small tables)."""
    con = _connect(table, train, evals)
    sql = _record_sql(eval_only)
    return [r[0] for r in duck.rows(con, f"SELECT to_json(r)::VARCHAR FROM ({sql}) r")]


def copy_final_dataset(
    table: pa.Table | StoredTable,
    folder: str,
    train: pa.Table | StoredTable | None = None,
    evals: pa.Table | StoredTable | None = None,
    eval_only: tuple[str, ...] = (),
) -> list[tuple[str, str, int | None]]:
    """``processed/final_dataset.jsonl`` and ``processed/final_dataset.json`` (one JSON array; the
    seed's layout) in the local ``folder``,
    streamed by DuckDB from the table, each row with its side of the refusal split (``train``,
    ``evals``) and whether its source is evaluation-only: ``(file name, local path, rows)``."""
    con = _connect(table, train, evals)
    out = []
    os.makedirs(os.path.join(folder, "processed"), exist_ok=True)
    for fname, fmt in (
        ("processed/final_dataset.jsonl", "FORMAT json"),
        ("processed/final_dataset.json", "FORMAT json, ARRAY true"),
    ):
        local = os.path.join(folder, fname)
        con.execute(f"COPY ({_record_sql(eval_only)}) TO '{local}' ({fmt})")
        out.append((fname, local, table.num_rows if fname.endswith(".jsonl") else None))
    return out


def privacy_toxicity_duplicates(
    dataset: pa.Table | StoredTable,
    toxicity_threshold: float,
    near_dup_threshold: float,
    near_dups: dict[str, int] | None = None,
) -> dict[str, Any]:
    """The audit figures the seed's report carries: PII by type (rows and mentions, as found before
    scrubbing), toxicity (mean, p95, max, rows at or over the threshold) and duplicates (exact
    copies left, prompts answered more than once, near-duplicate prompt pairs: ``near_dups`` where
    the merge measured them on this table, else measured here)."""
    con = connect(
        t=read_columns(
            dataset, ["pii_types", "pii_count", "toxicity", "content_hash", "prompt_hash"]
        )
    )
    by_type = {
        k: int(n)
        for k, n in duck.rows(
            con,
            "SELECT ty, count(*) FROM (SELECT unnest(pii_types) AS ty FROM t) GROUP BY ty ORDER BY 2 DESC, 1",
        )
    }
    rows_with_pii, mentions = duck.one(
        con, "SELECT count(*) FILTER (WHERE pii_count > 0), coalesce(sum(pii_count), 0) FROM t"
    )
    mean, p95, top, over = duck.one(
        con,
        f"SELECT coalesce(avg(toxicity), 0), coalesce(quantile_cont(toxicity, 0.95), 0), "
        f"coalesce(max(toxicity), 0), count(*) FILTER (WHERE toxicity >= {float(toxicity_threshold)}) FROM t",
    )
    exact, repeated = duck.one(
        con,
        "SELECT (SELECT count(*) - count(DISTINCT content_hash) FROM t), "
        "(SELECT count(*) FROM (SELECT prompt_hash FROM t GROUP BY 1 HAVING count(*) > 1))",
    )
    return {
        "pii": {
            "rows_with_pii": int(rows_with_pii),
            "mentions": int(mentions),
            "by_type": by_type,
            "note": "found before scrubbing; the exported text has them replaced by placeholders",
        },
        "toxicity": {
            "mean": round(float(mean), 4),
            "p95": round(float(p95), 4),
            "max": round(float(top), 4),
            "threshold": float(toxicity_threshold),
            "rows_at_or_over_threshold": int(over),
        },
        "duplicates": {
            "exact_duplicate_rows": int(exact),
            "prompts_with_several_rows": int(repeated),
            "near_dup_threshold": near_dup_threshold,
            **(near_dups or near_duplicate_rate(dataset, near_dup_threshold)),
        },
    }


def _recommendations(
    cov: dict[str, dict[str, Any]], low_share: float, qa: list[dict[str, Any]], t: Thresholds
) -> list[str]:
    """What to do about each shortfall: coverage under its minimum, too many labels under the
    confidence floor, a failed QA check."""
    out = [
        f"coverage of {o} is {c['rows']} rows, under the minimum {c['minimum']}: add sources or generations that produce it"
        for o, c in cov.items()
        if not c["met"]
    ]
    if low_share > t.max_low_confidence_share:
        out.append(
            f"{low_share:.0%} of labels are under confidence {t.confidence_floor}: review them or use a second judge"
        )
    return out + [
        f"QA check {q['metric']} failed: {q['value']} {q['op']} {q['threshold']} does not hold"
        for q in qa
        if not q.get("passed", True)
    ]


def audit_report(
    dataset: pa.Table | StoredTable,
    qa: list[dict[str, Any]],
    thresholds: Thresholds,
    info: DatasetInfo | None = None,
    near_dups: dict[str, int] | None = None,
) -> dict[str, Any]:
    """Quality metrics, distributions, coverage against the profile's minimums (``coverage_min``),
    the QA checks and recommendations that follow from what fell short (a share of labels under
    ``confidence_floor`` over ``max_low_confidence_share``)."""
    coverage_min = thresholds.coverage_min
    info = info or dataset_info(dataset)  # the caller's, where it measured the same table
    by_outcome = info.by_outcome
    cov = {
        outcome: {
            "rows": by_outcome.get(outcome, 0),
            "minimum": int(m),
            "met": by_outcome.get(outcome, 0) >= int(m),
        }
        for outcome, m in sorted(coverage_min.items())
    }
    confidence = confidence_distribution(dataset)
    low_share = confidence["low"] / info.rows if info.rows else 0.0
    recommendations = _recommendations(cov, low_share, qa, thresholds)
    return {
        "total_samples": info.rows,
        "quality_metrics": {
            "mean_confidence": info.mean_confidence,
            "confidence_distribution": confidence,
            "low_confidence_share": round(low_share, 4),
        },
        "distributions": {
            "head_a": by_outcome,
            "head_b": info.by_style,
            "head_c_a": info.by_harm_category,
            "head_c_b": info.by_harmless_topic,
            "head_d": {
                "prompt_harmful": info.prompt_harmful,
                "response_harmful": info.response_harmful,
                "response_refusal": info.response_refusal,
            },
            "source": info.by_source,
        },
        **privacy_toxicity_duplicates(
            dataset, thresholds.toxicity_threshold, thresholds.near_dup_threshold, near_dups
        ),
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
    dataset: pa.Table | StoredTable,
    review: pa.Table | None,
    qa: list[dict[str, Any]],
    thresholds: Thresholds,
    info: DatasetInfo | None = None,
    near_dups: dict[str, int] | None = None,
) -> dict[str, str]:
    """{file name: text} of the seed's audit files (``copy_final_dataset`` writes the dataset)."""
    report = audit_report(dataset, qa, thresholds, info, near_dups)
    return {
        "audit/audit_report.json": json.dumps(report, indent=2),
        "audit/human_review_samples.json": json.dumps(
            human_review_samples(review) if review is not None else [], indent=2
        ),
    }
