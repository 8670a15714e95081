"""Dataset-level audit views: coverage, confidence distribution, and the human-review loop.

The review sample is stratified by outcome x confidence bucket and written as a CSV an annotator
fills in (``human_outcome``: one of the outcomes, ``human_notes``); ``review_agreement`` reads the
filled file back and measures agreement with the judge.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import pyarrow as pa

from safetygraph.core import duck
from safetygraph.core.tables import StoredTable, as_relation, narrow
from safetygraph.labeling.constitution import OUTCOMES
from safetygraph.labeling.gold import binary_metrics

CONFIDENCE_BUCKETS = "CASE WHEN label_confidence < 0.6 THEN 'low' WHEN label_confidence < 0.8 THEN 'medium' ELSE 'high' END"
REVIEW_COLUMNS = [
    "id",
    "source",
    "stratum",
    "prompt",
    "response",
    "judge_outcome",
    "judge_confidence",
    "human_outcome",
    "human_notes",
]


def coverage(table: pa.Table | StoredTable) -> pa.Table:
    """Rows per (outcome, harm category, source); a row without a category counts under 'none'."""
    con = duck.connect()
    t = as_relation(con, table, "t")
    return duck.query(
        con,
        f"""
        SELECT label_outcome AS outcome, category, source, count(*) AS rows
        FROM (SELECT label_outcome, source, unnest(CASE WHEN len(harm_categories) = 0 THEN ['none'] ELSE harm_categories END) AS category FROM {t})
        GROUP BY ALL ORDER BY outcome, category, source
        """,
    )


def confidence_distribution(table: pa.Table | StoredTable) -> dict[str, int]:
    con = duck.connect()
    t = as_relation(con, table, "t")
    rows = duck.rows(con, f"SELECT {CONFIDENCE_BUCKETS} AS b, count(*) FROM {t} GROUP BY b")
    out = {"low": 0, "medium": 0, "high": 0}
    out.update({b: int(n) for b, n in rows})
    return out


def review_sample(
    table: pa.Table | StoredTable, rate: float, seed: int, min_per_stratum: int = 1
) -> pa.Table:
    """A deterministic stratified sample: ``rate`` of each (outcome, confidence bucket) stratum, at
    least ``min_per_stratum`` rows of each (a stored table is scanned by DuckDB in place)."""
    columns = ["id", "source", "prompt", "response", "label_outcome", "label_confidence"]
    con = duck.connect()
    con.execute(
        f"CREATE TEMP VIEW t AS SELECT {', '.join(columns)} FROM "
        + as_relation(con, narrow(table, columns), "src")
    )
    return duck.query(
        con,
        f"""
        WITH s AS (
          SELECT *, label_outcome || '/' || {CONFIDENCE_BUCKETS} AS stratum,
                 row_number() OVER (PARTITION BY label_outcome, {CONFIDENCE_BUCKETS}
                                    ORDER BY sha256(id || ':' || CAST(? AS VARCHAR))) AS rk,
                 count(*) OVER (PARTITION BY label_outcome, {CONFIDENCE_BUCKETS}) AS n
          FROM t
        )
        SELECT id, source, stratum, prompt, response, label_outcome AS judge_outcome,
               label_confidence AS judge_confidence, NULL::VARCHAR AS human_outcome, NULL::VARCHAR AS human_notes
        FROM s WHERE rk <= greatest(?, ceil(n * ?)) ORDER BY stratum, id
        """,
        [seed, min_per_stratum, rate],
    )


def to_csv(table: pa.Table) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=REVIEW_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in table.to_pylist():
        writer.writerow({k: "" if row.get(k) is None else row[k] for k in REVIEW_COLUMNS})
    return buf.getvalue()


class ReviewFileError(ValueError):
    pass


def _json_rows(text: str) -> list[tuple[str, dict[str, Any]]]:
    """(where, row) for the exported ``audit/human_review_samples.json``: a JSON array of records
    with ``judge_head_a`` and ``human_head_a`` (the seed's names) or the CSV's column names."""
    try:
        records = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ReviewFileError(
            f"not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}); "
            "fill in audit/human_review_samples.json as exported, or the review_sample CSV"
        ) from None
    if not isinstance(records, list):
        raise ReviewFileError("the JSON review file must be an array of review records")
    rows = []
    for i, rec in enumerate(records):
        if not isinstance(rec, dict):
            raise ReviewFileError(f"record {i}: not an object")
        row = {
            "id": rec.get("id"),
            "judge_outcome": rec.get("judge_head_a", rec.get("judge_outcome")),
            "human_outcome": rec.get("human_head_a", rec.get("human_outcome")),
        }
        if row["id"] is None or row["judge_outcome"] is None:
            raise ReviewFileError(
                f"record {i}: needs 'id' and 'judge_head_a' (the fields of the exported "
                "audit/human_review_samples.json)"
            )
        rows.append((f"record {i}", row))
    return rows


def _csv_rows(text: str) -> list[tuple[str, dict[str, Any]]]:
    reader = csv.DictReader(io.StringIO(text))
    missing = [
        c for c in ("id", "judge_outcome", "human_outcome") if c not in (reader.fieldnames or [])
    ]
    if missing:
        raise ReviewFileError(
            f"the review file has no column(s) {missing}; fill in the file written by review_sample"
        )
    return [(f"line {line}", row) for line, row in enumerate(reader, start=2)]


def review_agreement(filled: str) -> dict[str, Any]:
    """Agreement between the annotator's outcome and the judge's, overall and on refusal (any
    REFUSAL.* against any COMPLY.*). ``filled`` is the review sample CSV (``human_outcome``) or the
    exported ``audit/human_review_samples.json`` (``human_head_a``). Rows left blank are not
    counted."""
    is_json = filled.lstrip().startswith("[")
    rows = _json_rows(filled) if is_json else _csv_rows(filled)
    column = "human_head_a" if is_json else "human_outcome"
    judged, human = [], []
    for where, row in rows:
        value = str(row["human_outcome"] or "").strip().upper()
        if not value:
            continue
        if value not in OUTCOMES:
            raise ReviewFileError(
                f"{where} (id {row['id']}): {column} {value!r} is not one of {', '.join(OUTCOMES)}"
            )
        judged.append(str(row["judge_outcome"]))
        human.append(value)
    if not human:
        return {"reviewed": 0}
    exact = sum(j == h for j, h in zip(judged, human, strict=True)) / len(human)
    refusal = binary_metrics(
        pa.array([h.startswith("REFUSAL") for h in human]),
        pa.array([j.startswith("REFUSAL") for j in judged]),
    )
    return {"reviewed": len(human), "outcome_agreement": round(exact, 4), "refusal": refusal}
