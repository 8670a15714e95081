"""Benchmark decontamination (``safetygraph.audit.decont.contamination``): N synthetic training
prompts against M evaluation prompts, all five rules, against a per-row Python baseline of the
13-gram rule alone (lm-evaluation-harness's and datatrove's: a set of the evaluation n-grams,
each training row's n-grams looked up one by one), in the same run.

    python bench/decont.py --rows 1000000 --evals 50000 [--baseline-rows 200000]

The prompts are drawn set-wise by DuckDB from a 5,000-word vocabulary (6 to 40 words). Planted
in the training rows, one in 500: an evaluation prompt verbatim, with one word replaced, wrapped
in a longer request, or sharing a 13-gram; the figures say how many of those the step found.
Timed: the contamination table of the whole set (narrow columns held in Arrow; DuckDB spills past
its memory limit). Prints rows/s and peak memory (RSS high-water mark); last line a JSON object.
"""

from __future__ import annotations

import argparse
import json
import re
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from safetygraph.audit.decont import Rules, contamination, find_matches  # noqa: E402
from safetygraph.core import duck  # noqa: E402

PLANT_EVERY = 500


def make_sets(rows: int, evals: int, seed: int = 7) -> tuple:
    """(training rows: prompt_hash, prompt, source; evaluation prompts; planted count)."""
    con = duck.connect()
    con.execute(f"SELECT setseed({seed / 100})")
    con.execute(
        """SET VARIABLE vocab = (SELECT list('w' || md5(CAST(i AS VARCHAR))[1:6] ORDER BY i)
                                FROM range(5000) t(i));
        CREATE MACRO words(n, salt) AS array_to_string(
          list_transform(range(n), lambda k: getvariable('vocab')[(hash(salt, k) % 5000)::INT + 1]), ' ');"""
    )
    con.execute(
        f"""CREATE TABLE ev AS SELECT 'bench' AS eval_set, CAST(i AS VARCHAR) AS eval_id,
                   words(6 + (hash(i, 'len') % 20)::INT, 'e' || i) AS prompt FROM range({evals}) t(i)"""
    )
    con.execute(
        f"""CREATE TABLE tr AS
        SELECT md5(CAST(i AS VARCHAR)) AS prompt_hash, 'source_' || (i % 5) AS source,
          i % {PLANT_EVERY} = 0 AS planted,
          CASE WHEN i % {PLANT_EVERY} = 0 THEN
            CASE (i // {PLANT_EVERY}) % 4
              WHEN 0 THEN e.prompt
              WHEN 1 THEN regexp_replace(e.prompt, '^(\\S+ \\S+ \\S+) \\S+', '\\1 replaced')
              WHEN 2 THEN 'please answer this for me ' || e.prompt || ' thanks a lot'
              ELSE e.prompt || ' and then ' || words(10, 'x' || i) END
          ELSE words(6 + (hash(i, 'len') % 35)::INT, 't' || i) END AS prompt
        FROM range({rows}) t(i)
        LEFT JOIN ev e ON CAST(e.eval_id AS BIGINT) = (i // {PLANT_EVERY}) % {evals}"""
    )
    train = duck.query(con, "SELECT prompt_hash, prompt, source FROM tr")
    ev = duck.query(con, "SELECT * FROM ev")
    planted = duck.query(con, "SELECT prompt_hash FROM tr WHERE planted")
    return train, ev, set(planted.column("prompt_hash").to_pylist())


def baseline(train, evals, limit: int, n: int = 13) -> dict:
    """The 13-gram rule row by row in Python, on the first ``limit`` training rows."""
    norm = re.compile(r"[^\w]+")
    index = set()
    for text in evals.column("prompt").to_pylist():
        w = norm.sub(" ", text.lower()).split()
        index.update(hash(" ".join(w[i : i + n])) for i in range(len(w) - n + 1))
    t0 = time.perf_counter()
    hits = 0
    for text in train.column("prompt").slice(0, limit).to_pylist():
        w = norm.sub(" ", text.lower()).split()
        hits += any(hash(" ".join(w[i : i + n])) in index for i in range(len(w) - n + 1))
    seconds = time.perf_counter() - t0
    return {
        "rows": limit,
        "seconds": round(seconds, 2),
        "rows_per_s": round(limit / seconds),
        "hits": hits,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--evals", type=int, default=50_000)
    p.add_argument("--baseline-rows", type=int, default=200_000)
    args = p.parse_args()
    t0 = time.perf_counter()
    train, evals, planted = make_sets(args.rows, args.evals)
    print(
        f"data: {train.num_rows:,} training prompts, {evals.num_rows:,} evaluation prompts, "
        f"{len(planted):,} planted ({time.perf_counter() - t0:.1f}s to generate)"
    )
    t0 = time.perf_counter()
    table = contamination(train, evals, Rules())
    seconds = time.perf_counter() - t0
    found = set(table.column("prompt_hash").to_pylist())
    methods: dict[str, int] = {}
    for m in table.column("method").to_pylist():
        methods[m] = methods.get(m, 0) + 1
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    ours = {
        "rows": train.num_rows,
        "evals": evals.num_rows,
        "seconds": round(seconds, 1),
        "rows_per_s": round(train.num_rows / seconds),
        "flagged": len(found),
        "planted_found": len(found & planted),
        "planted": len(planted),
        "other_flagged": len(found - planted),
        "by_method": methods,
        "peak_rss_mb": round(rss_mb),
    }
    print(
        f"decont (5 rules, DuckDB): {ours['rows_per_s']:,} rows/s ({seconds:.1f}s), "
        f"planted found {ours['planted_found']}/{ours['planted']}, other rows flagged "
        f"{ours['other_flagged']}, by rule {methods}, peak RSS {ours['peak_rss_mb']} MB"
    )
    t0 = time.perf_counter()
    only = find_matches(train, evals, Rules(), methods=("ngram",))
    s13 = time.perf_counter() - t0
    ngram_only = {
        "rows": train.num_rows,
        "seconds": round(s13, 1),
        "rows_per_s": round(train.num_rows / s13),
        "flagged": only.num_rows,
    }
    print(
        f"decont (13-gram rule only, DuckDB): {ngram_only['rows_per_s']:,} rows/s ({s13:.1f}s), flagged {only.num_rows}"
    )
    base = baseline(train, evals, min(args.baseline_rows, train.num_rows))
    print(
        f"baseline (13-gram rule only, per-row Python): {base['rows_per_s']:,} rows/s "
        f"on {base['rows']:,} rows ({base['seconds']}s)"
    )
    print(json.dumps({"decont": ours, "ngram_only": ngram_only, "baseline": base}))


if __name__ == "__main__":
    main()
