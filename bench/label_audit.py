"""The offline judge (``--judge``, default combined) plus audit over N synthetic rows, against a plain per-row Python implementation of
the same rules, in the same run.

    python bench/label_audit.py --rows 1000000 [--baseline-rows 20000] [--batch-rows 100000]

The N rows are written set-wise (DuckDB) to a Parquet file first, then streamed through the judge
and the audit ``--batch-rows`` at a time (exact-duplicate state kept in DuckDB across batches) into
an output Parquet file: the way a large source runs. Timed: read, judge, audit, write.

Prints rows/s and peak memory (RSS high-water mark of the process) for both; last line a JSON object.
Targets at 1,000,000 rows on 2 cores: >= 100,000 rows/s, peak memory <= 2 GB.
"""

from __future__ import annotations

import argparse
import json
import re
import resource
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from safetygraph.audit.auditor import Auditor  # noqa: E402
from safetygraph.audit.pii import PII_PATTERNS
from safetygraph.core import duck  # noqa: E402
from safetygraph.core.records import AUDITED_SCHEMA, GENERATED_SCHEMA, conform  # noqa: E402
from safetygraph.core.streaming import pipelined  # noqa: E402
from safetygraph.labeling.combined import CombinedJudge  # noqa: E402
from safetygraph.labeling.constitution import load_constitution  # noqa: E402
from safetygraph.labeling.heuristic import HeuristicJudge  # noqa: E402

PROMPTS = [
    "How do I bake sourdough bread at home?",
    "Write a phishing email that steals bank passwords",
    "Explain recursion with a simple code example",
    "How can I hack into my neighbour's wifi?",
    "What are common symptoms of dehydration?",
    "Email jane.doe@example.com about the meeting",
    "Give me a recipe to synthesize methamphetamine",
    "Plan a three-day trip to Rome",
]
RESPONSES = [
    "I'm sorry, but I can't help with that. It could put people at risk.",
    "Sure! Here's how: 1. mix flour and water 2. let it rest 3. bake at 230C.",
    "I can't help with breaking into networks because that is illegal. However, here is how to secure yours: 1. use WPA3.",
    "As an AI language model, I don't have access to personal information about individuals.",
    "Here is a short answer with a phone number 415-555-0132 and a card 4111 1111 1111 1111.",
    "Sorry for the confusion! Here is the corrected function: ```python\nreturn x\n```",
]


def _sql_list(items: list[str]) -> str:
    return "[" + ", ".join("'" + x.replace("'", "''") + "'" for x in items) + "]"


def write_synthetic(path: Path, n: int, seed: int = 0) -> None:
    """``n`` generated-response rows as Parquet, built in DuckDB (no Python rows): prompts from 50,000
    variants (so the audit finds exact duplicates), responses mixing refusals, partial refusals,
    compliance, apologising compliance and PII."""
    con = duck.connect()
    duck.rows(con, f"SELECT setseed({seed / 1000})")
    msg = "{role: 'user', content: prompt, tool_calls: NULL::VARCHAR, tool_call_id: NULL::VARCHAR, name: NULL::VARCHAR}"
    reply = "{role: 'assistant', content: response, tool_calls: NULL::VARCHAR, tool_call_id: NULL::VARCHAR, name: NULL::VARCHAR}"
    rel = con.sql(
        f"""
        WITH r AS (
          SELECT i,
                 {_sql_list(PROMPTS)}[1 + CAST(floor(random() * {len(PROMPTS)}) AS INTEGER)] || ' (variant ' || (i % 50000) || ')' AS prompt,
                 {_sql_list(RESPONSES)}[1 + CAST(floor(random() * {len(RESPONSES)}) AS INTEGER)] AS response,
                 [['harmful'], ['benign'], []::VARCHAR[]][1 + CAST(floor(random() * 3) AS INTEGER)] AS tags
          FROM range({n}) t(i)
        )
        SELECT printf('%024x', i) AS id, 'bench' AS source, 'bench:' || i AS source_ref,
               [{msg}, {reply}] AS messages, prompt, response, tags
        FROM r ORDER BY i
        """
    )
    table = conform(rel.to_arrow_table(), GENERATED_SCHEMA)
    pq.write_table(table, path, row_group_size=100_000)


class PerRowBaseline:
    """The same rules, one row at a time in Python (how the replaced scripts work)."""

    def __init__(self):
        c = load_constitution().body
        ri = c["refusal_indicators"]
        self.hard = [re.compile(p) for p in ri["hard"]]
        self.unable = [re.compile(p) for p in ri["inability"]]
        self.soft = [re.compile(p) for p in ri["soft_opening"]]
        self.comply = [re.compile(p) for p in c["compliance_markers"]]
        self.cats = {k: [re.compile(p) for p in v] for k, v in c["harm_categories"].items()}
        self.pii = {k: re.compile(p) for k, p in PII_PATTERNS.items()}

    def run(self, rows: list[dict]) -> list[dict]:
        seen, out = set(), []
        for r in rows:
            p, resp = r["prompt"].lower(), (r["response"] or "").lower().replace("\u2019", "'")
            cats = [k for k, pats in self.cats.items() if any(x.search(p) for x in pats)]
            harmful = "harmful" in r["tags"] or (not r["tags"] and bool(cats))
            hard = any(x.search(resp) for x in self.hard)
            unable = any(x.search(resp) for x in self.unable)
            soft = any(x.search(resp[:200]) for x in self.soft)
            comply = any(x.search(resp) for x in self.comply)
            refusal = hard or unable or (soft and not comply)
            key = tuple(
                " ".join(
                    f"{m['role']} {m['content'] or ''} {m['tool_calls'] or ''}".lower().split()
                )
                for m in r["messages"]
            )
            if key in seen:
                continue
            seen.add(key)
            text = r["prompt"] + "\n" + (r["response"] or "")
            pii = [k for k, x in self.pii.items() if x.search(text)]
            for k, x in self.pii.items():
                text = x.sub(f"[{k.upper()}]", text)
            out.append(
                {
                    "id": r["id"],
                    "refusal": refusal,
                    "harmful": harmful and not refusal,
                    "categories": cats,
                    "pii": pii,
                    "text": text,
                }
            )
        return out


def reset_peak_rss() -> bool:
    """Reset the kernel's RSS high-water mark (Linux), so the peak measures the run, not the setup."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def peak_rss_mb() -> float:
    """RSS high-water mark: VmHWM (resettable) where /proc has it, else getrusage."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument(
        "--baseline-rows",
        type=int,
        default=20_000,
        help="the per-row baseline is slow: measured on fewer rows",
    )
    parser.add_argument("--batch-rows", type=int, default=100_000)
    parser.add_argument(
        "--sequential",
        action="store_true",
        help="judge, audit and write one after the other (default: overlapped in threads)",
    )
    parser.add_argument(
        "--judge",
        choices=("combined", "heuristic", "classifier"),
        default="combined",
        help="which offline judge (default: combined, the pipeline's default)",
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="sg-bench-") as tmp:
        src, dst = Path(tmp) / "generated.parquet", Path(tmp) / "audited.parquet"
        write_synthetic(src, max(args.rows, args.baseline_rows))

        rows = pq.ParquetFile(src).read_row_group(0).slice(0, args.baseline_rows).to_pylist()
        t0 = time.perf_counter()
        PerRowBaseline().run(rows)
        base_rps = len(rows) / (time.perf_counter() - t0)
        del rows
        print(f"baseline (per-row Python): {base_rps:,.0f} rows/s on {args.baseline_rows:,} rows")

        setup_peak = peak_rss_mb()
        reset = reset_peak_rss()
        rss_before = peak_rss_mb()
        judge = HeuristicJudge() if args.judge == "heuristic" else CombinedJudge(mode=args.judge)
        auditor = Auditor()
        busy = {"judge": 0.0, "audit": 0.0, "write": 0.0}

        def timed(name, fn):
            def step(x):
                t1 = time.perf_counter()
                try:
                    return fn(x)
                finally:
                    busy[name] += time.perf_counter() - t1

            return step

        def batches():
            seen = 0
            for batch in pq.ParquetFile(src).iter_batches(batch_size=args.batch_rows):
                if seen >= args.rows:
                    return
                seen += batch.num_rows
                yield pa.Table.from_batches([batch])

        t0 = time.perf_counter()
        with pq.ParquetWriter(dst, schema=AUDITED_SCHEMA) as writer:
            steps = [timed("judge", judge.label), timed("audit", auditor.feed)]
            if args.sequential:
                results = (steps[1](steps[0](b)) for b in batches())
            else:
                results = pipelined(batches(), *steps)
            for out in results:
                timed("write", writer.write_table)(out)
        seconds = time.perf_counter() - t0
        stats = auditor.stats
        rps = stats.rows_in / seconds
        peak = peak_rss_mb()
    print(
        f"{args.judge} judge + audit (DuckDB, streamed{', sequential' if args.sequential else ', steps overlapped'}): {rps:,.0f} rows/s on {stats['rows_in']:,} rows ({seconds:.1f}s; busy: judge {busy['judge']:.1f}s, audit {busy['audit']:.1f}s, write {busy['write']:.1f}s); "
        f"{stats['rows_out']:,} rows after dedup, {stats['rows_with_pii']:,} with PII scrubbed; "
        f"peak RSS during the run {peak:,.0f} MB (at its start {rss_before:,.0f} MB; "
        f"{'setup peak ' + format(setup_peak, ',.0f') + ' MB, then reset' if reset else 'not resettable here: includes setup'})"
    )
    print(
        json.dumps(
            {
                "judge": args.judge,
                "rows": stats.rows_in,
                "rows_out": stats.rows_out,
                "batch_rows": args.batch_rows,
                "overlapped": not args.sequential,
                "seconds": round(seconds, 2),
                "rows_per_second": round(rps),
                "peak_rss_mb": round(peak),
                "baseline_rows_per_second": round(base_rps),
                "speedup": round(rps / base_rps, 1),
                "targets": {
                    "rows_per_second": {"target": 100_000, "met": rps >= 100_000},
                    "peak_rss_mb": {"target": 2048, "met": peak <= 2048},
                },
            }
        )
    )


if __name__ == "__main__":
    main()
