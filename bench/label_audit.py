"""Heuristic judge plus audit over N synthetic rows, against a plain per-row Python implementation of
the same rules, in the same run.

    python bench/label_audit.py --rows 1000000 [--baseline-rows 20000]

Prints rows/s and peak memory (RSS high-water mark of the process) for both; last line a JSON object.
Targets at 1,000,000 rows on 2 cores: >= 100,000 rows/s, peak memory <= 2 GB.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import resource
import sys
import time
from pathlib import Path

import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from safetygraph.audit import PII_PATTERNS, audit  # noqa: E402
from safetygraph.judge import HeuristicJudge, load_constitution  # noqa: E402
from safetygraph.records import GENERATED_SCHEMA, MESSAGE_TYPE  # noqa: E402

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


def synthetic(n: int, seed: int = 0) -> pa.Table:
    rnd = random.Random(seed)
    prompts = [f"{rnd.choice(PROMPTS)} (variant {i % 50_000})" for i in range(n)]
    responses = [rnd.choice(RESPONSES) for _ in range(n)]
    tags = [rnd.choice([["harmful"], ["benign"], []]) for _ in range(n)]
    messages = [
        [
            {"role": "user", "content": p, "tool_calls": None, "tool_call_id": None, "name": None},
            {
                "role": "assistant",
                "content": r,
                "tool_calls": None,
                "tool_call_id": None,
                "name": None,
            },
        ]
        for p, r in zip(prompts, responses, strict=True)
    ]
    cols = {
        "id": [f"{i:024x}" for i in range(n)],
        "source": ["bench"] * n,
        "source_ref": [f"bench:{i}" for i in range(n)],
        "messages": pa.array(messages, pa.list_(MESSAGE_TYPE)),
        "prompt": prompts,
        "response": responses,
        "tags": tags,
    }
    return pa.table(
        {f.name: cols.get(f.name, pa.nulls(n, f.type)) for f in GENERATED_SCHEMA},
        schema=GENERATED_SCHEMA,
    )


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
            key = (" ".join(p.split()), " ".join(resp.split()))
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


def peak_rss_mb() -> float:
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
    args = parser.parse_args()

    base_table = synthetic(args.baseline_rows, seed=1)
    rows = base_table.to_pylist()
    t0 = time.perf_counter()
    PerRowBaseline().run(rows)
    base_rps = args.baseline_rows / (time.perf_counter() - t0)
    del rows, base_table
    print(f"baseline (per-row Python): {base_rps:,.0f} rows/s on {args.baseline_rows:,} rows")

    table = synthetic(args.rows)
    rss_before = peak_rss_mb()
    t0 = time.perf_counter()
    labeled = HeuristicJudge().label(table)
    t_judge = time.perf_counter() - t0
    audited, stats = audit(labeled)
    seconds = time.perf_counter() - t0
    rps = args.rows / seconds
    peak = peak_rss_mb()
    print(
        f"judge + audit (DuckDB): {rps:,.0f} rows/s on {args.rows:,} rows ({seconds:.1f}s, judge {t_judge:.1f}s); "
        f"{audited.num_rows:,} rows after dedup; peak RSS {peak:,.0f} MB (input table built: {rss_before:,.0f} MB)"
    )
    print(
        json.dumps(
            {
                "rows": args.rows,
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
