"""QA on any JSONL file (``safetygraph qa FILE``): the export system's checks on a file this project
did not necessarily write. Set-wise in DuckDB, in one pass: the file is read as lines, each line
parsed as JSON there (an unreadable line is reported by its number and the readable rows are still
checked), and only narrow facts per row are kept (hash, id, source, outcome, confidence, PII
flags), never the texts.

What is measured depends on the keys the rows have (the canonical export, the stage-2 rows, the
seed's ``final_dataset.jsonl``, TRL preference rows, steering pairs, or anything else):

- always: rows, unreadable lines, exact duplicate rows, PII left anywhere in the row's text (the
  audit's detectors), the largest single-source share when rows carry ``source``;
- ``id``: duplicate ids;
- a label outcome (``labels.outcome``, ``head_a``, ``label_outcome``): the outcome mix;
- a confidence (``labels.confidence``, ``metadata.confidence``, ``label_confidence``): its mean and
  the share under the confidence floor, against the profile's thresholds.
"""

from __future__ import annotations

import json
from typing import Any

from safetygraph.audit.pii import pii_matches
from safetygraph.core import duck
from safetygraph.export.qa import DEFAULT_QA_THRESHOLDS, Metric
from safetygraph.sources.thresholds import Thresholds

_OUTCOME = "coalesce(j->>'$.labels.outcome', j->>'$.head_a', j->>'$.label_outcome')"
_CONFIDENCE = (
    "TRY_CAST(coalesce(j->>'$.labels.confidence', j->>'$.metadata.confidence', "
    "j->>'$.label_confidence') AS DOUBLE)"
)


# the text a row carries, in any of the layouts above (a field that holds messages comes as JSON
# text, which the detectors read as well); ids and hashes are left out, so hex is never a "phone"
_TEXT_KEYS = (
    "prompt",
    "response",
    "chosen",
    "rejected",
    "question",
    "positive",
    "neutral",
    "answer_matching_behavior",
    "answer_not_matching_behavior",
    "text",
)
_TEXT = (
    "concat_ws(chr(10), "
    + ", ".join(f"j->>'$.{k}'" for k in _TEXT_KEYS)
    + ", array_to_string(json_extract_string(j, '$.messages[*].content'), chr(10)))"
)


class QAFileError(ValueError):
    pass


def profile_thresholds(
    thresholds: Thresholds, recipe_sources: list[str] | tuple[str, ...] | None = None
) -> dict[str, Any]:
    """A profile's QA thresholds (its ``qa`` map, with its confidence floor and low-confidence
    share), as ``qa_file`` takes them. For a recipe given one source (``recipe_sources``), every
    row comes from it by design: the largest single-source share may be 1."""
    out = {
        "confidence_floor": thresholds.confidence_floor,
        "max_low_confidence_share": thresholds.max_low_confidence_share,
        **thresholds.qa,
    }
    if recipe_sources is not None and len(set(recipe_sources)) <= 1:
        out["max_source_share"] = 1.0
    return out


def _is_json_array(path: str) -> bool:
    """Whether the file is one JSON array (its first non-blank character is ``[``)."""
    import fsspec

    try:
        with fsspec.open(path, "rb", compression="infer") as f:
            head = f.read(4096).lstrip(b"\xef\xbb\xbf \t\r\n")
    except (OSError, ValueError):
        return False  # the reader below reports the path
    return head.startswith(b"[")


def _numbered_sql(path: str, array: bool) -> str:
    """Each line (or array element) of the file as text with its 1-based position."""
    if array:
        return (
            "SELECT row_number() OVER () AS line_no, json::VARCHAR AS line FROM "
            f"read_json_objects({duck.sql_literal(path)}, format = 'array')"
        )
    return f"""SELECT row_number() OVER () AS line_no, line FROM read_csv(
                {duck.sql_literal(path)}, columns = {{'line': 'VARCHAR'}}, header = false,
                delim = chr(1), quote = '', escape = '', auto_detect = false,
                max_line_size = 100000000, strict_mode = false)"""


def _facts_sql(path: str, array: bool, pii_cols: str) -> str:
    """SQL that creates ``facts``: the narrow facts of each line of the file, texts left out."""
    # one pass over the file: each line numbered and parsed once, only narrow facts kept per row
    # (the texts are never held), then every figure is an aggregate over the facts
    return f"""CREATE TABLE facts AS
            WITH numbered AS ({_numbered_sql(path, array)}), lines AS (
              -- numbered before blank lines are dropped, so a line number is the file's own
              SELECT * FROM numbered WHERE line IS NOT NULL AND trim(line) <> ''
            ), parsed AS (
              SELECT line_no, md5(line) AS h,
                CASE WHEN json_valid(line) AND json_type(CASE WHEN json_valid(line) THEN line END) = 'OBJECT'
                     THEN line END::JSON AS j
              FROM lines
            ), texts AS (SELECT *, {_TEXT} AS __text FROM parsed)
            SELECT line_no, h, j IS NOT NULL AS ok, json_keys(j) AS keys, j->>'$.id' AS id,
                   j->>'$.source' AS source, {_OUTCOME} AS outcome, {_CONFIDENCE} AS confidence,
                   {pii_cols}
            FROM texts"""


def _pii_figures(con: Any, pii: dict[str, str]) -> tuple[dict[str, int], float]:
    """(rows of ``facts`` with PII per type, the types found only; rows with any PII)."""
    counts = duck.one(
        con,
        "SELECT "
        + ", ".join(f"count(*) FILTER (WHERE pii_{k})" for k in pii)
        + ", count(*) FILTER (WHERE "
        + " OR ".join(f"pii_{k}" for k in pii)
        + ") FROM facts",
    )
    return {k: int(v) for k, v in zip(pii, counts[:-1], strict=True) if v}, float(counts[-1])


def _rows_per_source(con: Any) -> dict[str, int]:
    """Rows of ``facts`` per source, most rows first."""
    return {
        s: int(c)
        for s, c in duck.rows(
            con, "SELECT source, count(*) FROM facts GROUP BY 1 ORDER BY 2 DESC, 1"
        )
    }


def _outcome_counts(con: Any) -> dict[str, int]:
    """Rows of ``facts`` per label outcome (rows without one left out)."""
    return {
        o: int(c)
        for o, c in duck.rows(
            con,
            "SELECT outcome, count(*) FROM facts WHERE outcome IS NOT NULL GROUP BY 1 ORDER BY 1",
        )
    }


def _confidence_metrics(con: Any, t: dict[str, Any]) -> list[Metric]:
    """The mean-confidence and under-the-floor metrics of ``facts``; none without confidences."""
    mean, low, with_conf = duck.one(
        con,
        f"SELECT avg(confidence), avg((confidence < {float(t['confidence_floor'])})::INT), "
        "count(confidence) FROM facts",
    )
    if not with_conf:
        return []
    return [
        Metric(
            "quality",
            "mean label confidence",
            float(mean),
            ">=",
            float(t["min_mean_confidence"]),
        ),
        Metric(
            "quality",
            "share under confidence floor",
            float(low),
            "<=",
            float(t["max_low_confidence_share"]),
        ),
    ]


def qa_file(path: str, thresholds: dict[str, Any] | None = None) -> dict[str, Any]:
    """The QA document of the JSONL file at ``path`` (local or any DuckDB-readable path)."""
    t = {**DEFAULT_QA_THRESHOLDS, **(thresholds or {})}
    array = _is_json_array(path)  # a JSON array (the seed's final_dataset.json) or JSON lines
    unit = "array elements" if array else "lines"
    con = duck.connect()
    pii = pii_matches("__text")
    pii_cols = ", ".join(
        f"CASE WHEN j IS NULL THEN false ELSE len({expr}) > 0 END AS pii_{k}"
        for k, expr in pii.items()
    )
    try:
        con.execute(_facts_sql(path, array, pii_cols))
    except Exception as exc:  # noqa: BLE001 - DuckDB's IO errors: one line with the path
        raise QAFileError(f"{path}: cannot be read ({type(exc).__name__}: {exc})") from None
    unreadable = duck.rows(con, "SELECT line_no FROM facts WHERE NOT ok ORDER BY 1")
    con.execute("DELETE FROM facts WHERE NOT ok")
    n, dup_rows = duck.one(con, "SELECT count(*), count(*) - count(DISTINCT h) FROM facts")
    keys = {k for (k,) in duck.rows(con, "SELECT DISTINCT unnest(keys) FROM facts")}
    metrics = [
        Metric("format", f"{unit} that are not a JSON object", float(len(unreadable)), "<=", 0.0),
        Metric("quality", "exact duplicate rows", float(dup_rows), "<=", 0.0),
    ]
    info: dict[str, Any] = {"file": path, "layout": "json-array" if array else "jsonl"}
    info.update(rows=int(n), keys=sorted(keys))
    if unreadable:
        info["unreadable_lines"] = [r[0] for r in unreadable[:20]]
    if "id" in keys:
        dup_ids = duck.one(
            con, "SELECT count(id) - count(DISTINCT id) FROM facts WHERE id IS NOT NULL"
        )[0]
        metrics.append(Metric("quality", "duplicate ids", float(dup_ids), "<=", 0.0))
    info["pii_rows_by_type"], pii_rows = _pii_figures(con, pii)
    metrics.append(
        Metric("privacy", "rows with PII", pii_rows, "<=", float(t["max_residual_pii_rows"]))
    )
    if "source" in keys:
        info["rows_per_source"] = _rows_per_source(con)
        share = max(info["rows_per_source"].values()) / n if n else 0.0
        metrics.append(
            Metric("bias", "largest single-source share", share, "<=", float(t["max_source_share"]))
        )
    outcomes = _outcome_counts(con)
    if outcomes:
        info["by_outcome"] = outcomes
    metrics += _confidence_metrics(con, t)
    return {
        "verdict": "PASS" if all(m.passed for m in metrics) else "FAIL",
        **info,
        "metrics": [m.as_dict() for m in metrics],
    }


def render(report: dict[str, Any]) -> str:
    """The QA document as markdown."""
    lines = [
        f"# QA: {report['file']}",
        "",
        f"**Verdict: {report['verdict']}** · {report['rows']} rows",
        "",
        "| group | metric | value | threshold | result |",
        "|---|---|---:|---:|---|",
    ]
    for m in report["metrics"]:
        lines.append(
            f"| {m['group']} | {m['metric']} | {m['value']:.4f} | {m['op']} {m['threshold']:g} | "
            f"{'pass' if m['passed'] else '**FAIL**'} |"
        )
    for key in ("unreadable_lines", "pii_rows_by_type", "rows_per_source", "by_outcome"):
        if report.get(key):
            lines += ["", f"{key}: {json.dumps(report[key])}"]
    return "\n".join(lines) + "\n"
