"""``safetygraph qa FILE`` (``safetygraph.export.qa_file``) over a JSONL file of N synthetic export
rows, against a plain per-line Python implementation of the same checks, in the same run.

    python bench/qa_file.py --rows 1000000 [--baseline-rows 100000]

The file is written set-wise by DuckDB first (rows of the canonical export: id, source, prompt,
response, labels, with some PII, some reused ids and a few lines that are not JSON). Timed: the
QA document of the whole file. Prints rows/s and peak memory (RSS high-water mark of the process);
last line a JSON object. Target at 1,000,000 rows on 2 cores: >= 100,000 rows/s, memory well under
the file's size (the texts are never held).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from safetygraph.audit.pii import PII_PATTERNS  # noqa: E402
from safetygraph.core import duck  # noqa: E402
from safetygraph.export.qa_file import qa_file  # noqa: E402


def write_file(path: str, rows: int) -> int:
    """``rows`` export rows (0.1% reuse an id, 1 in 97 has an e-mail address, 1 in 50,000 lines is
    broken JSON); returns the file's bytes."""
    con = duck.connect()
    con.execute(
        f"""
        COPY (
          SELECT CASE WHEN i % 50000 = 7 THEN '{{"broken": ' ELSE to_json(struct_pack(
            id := md5(CAST(CASE WHEN i % 1000 = 1 THEN i - 1 ELSE i END AS VARCHAR)),
            source := 'source_' || (i % 7),
            prompt := CASE WHEN i % 97 = 0 THEN 'mail me at user' || i || '@example.com please'
                           ELSE 'How do I do task number ' || (i % 5000) || ' safely at home?' END,
            response := 'Here is a careful answer about task ' || (i % 5000) || ', step by step.',
            labels := struct_pack(outcome := CASE WHEN i % 3 = 0 THEN 'REFUSAL.DIRECT' ELSE 'COMPLY.BENIGN' END,
                                  confidence := 0.5 + (i % 50) / 100.0)))::VARCHAR END AS line
          FROM range({rows}) t(i)
        ) TO '{path}' (FORMAT csv, HEADER false, QUOTE '', ESCAPE '', DELIMITER '\\x01')
        """
    )
    return os.path.getsize(path)


def baseline(path: str, limit: int) -> dict:
    """The same checks line by line in Python (json.loads and re), on the first ``limit`` lines."""
    patterns = {k: re.compile(v) for k, v in PII_PATTERNS.items()}
    seen, ids, sources, outcomes = set(), Counter(), Counter(), Counter()
    unreadable, dups, pii_rows, conf = [], 0, 0, []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, start=1):
            if n > limit:
                break
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                unreadable.append(n)
                continue
            h = hash(line)
            dups += h in seen
            seen.add(h)
            ids[row.get("id")] += 1
            sources[row.get("source")] += 1
            text = "\n".join(str(row.get(k) or "") for k in ("prompt", "response"))
            pii_rows += any(p.search(text) for p in patterns.values())
            labels = row.get("labels") or {}
            outcomes[labels.get("outcome")] += 1
            conf.append(labels.get("confidence"))
    return {"rows": sum(sources.values()), "unreadable": len(unreadable), "pii_rows": pii_rows}


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--baseline-rows", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "rows.jsonl")
        size = write_file(path, args.rows)
        before = peak_mb()
        t0 = time.perf_counter()
        report = qa_file(path)
        qa_s = time.perf_counter() - t0
        qa_peak = peak_mb()
        t0 = time.perf_counter()
        base = baseline(path, args.baseline_rows)
        base_s = time.perf_counter() - t0
        lines = args.rows
        result = {
            "rows": lines,
            "file_mb": round(size / 2**20, 1),
            "qa_seconds": round(qa_s, 2),
            "qa_rows_per_s": round(lines / qa_s),
            "qa_peak_rss_mb": round(qa_peak),
            "rss_before_mb": round(before),
            "verdict": report["verdict"],
            "unreadable_lines": len(report.get("unreadable_lines", [])),
            "failed": [m["metric"] for m in report["metrics"] if not m["passed"]],
            "baseline_rows": min(args.baseline_rows, lines),
            "baseline_rows_per_s": round(min(args.baseline_rows, lines) / base_s),
            "baseline_pii_rows": base["pii_rows"],
        }
    print(
        f"qa_file: {lines:,} rows ({result['file_mb']} MB) in {qa_s:.1f} s = "
        f"{result['qa_rows_per_s']:,} rows/s, peak RSS {result['qa_peak_rss_mb']} MB"
    )
    print(
        f"per-line Python baseline: {result['baseline_rows']:,} rows at "
        f"{result['baseline_rows_per_s']:,} rows/s"
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
