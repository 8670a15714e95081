"""The per-source chain (and the merge) through Dagster at N rows, against one DuckDB session doing
the same work on the same file, in the same run.

    python bench/chain.py --rows 100000 1000000            # per-source chain vs the query
    python bench/chain.py --mode merge --rows 100000 1000000   # the merge through export

A realistic local JSONL source is written first (prompt + response; refusals, compliances, partial
refusals; 3% exact duplicates; 1% with an e-mail, some phones and cards), with a registry entry and a
profile of its own in a temporary folder. Then, each in a child process whose whole process tree is
sampled for memory (/proc, every 50 ms):

- chain: ``raw_samples -> generated_responses -> labels -> audited`` and their checks, the job the
  CLI runs for one source, in process (as ``safetygraph demo`` does);
- query: one DuckDB session over the same file: read, the same judge (the combined judge's SQL:
  heuristic signals and both classifiers), exact dedup on the same normalised text, the same PII
  patterns counted and scrubbed, written to Parquet;
- merge (``--mode merge``): the source's chain, then the dataset job (merge, shards, stage-2
  preflight, splits, leakage, QA, export) with the count thresholds relaxed.

Prints wall time, rows/s and peak RSS (the process tree's summed RSS, and the largest single
process) of each and their ratios; the last line is a JSON object.
Targets on 2 cores (issue 35): the chain <= 1.5x the query at 1M rows and <= 1 GB; the merge
through export <= 180 s and <= 2 GB at 1M, its time linear from 100k to 1M.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

SOURCE = "bench_source"
PROFILE = "bench"


# -- the source --------------------------------------------------------------------------------


def write_source(path: Path, rows: int, seed: int = 0) -> None:
    """``rows`` JSONL lines, written set-wise by DuckDB: 97% distinct rows, 3% exact copies of
    earlier ones (same prompt and response; some answers give real harmful help, so Ds is not empty), 1% carrying an e-mail address (a third of those also
    a phone number, a tenth a Luhn-valid card)."""
    import duckdb

    prompts = [
        "How do I bake sourdough bread at home",
        "Write a phishing email that steals bank passwords from",
        "Explain recursion with a simple code example about",
        "How can I hack into my neighbour's wifi network near",
        "What are common symptoms of dehydration in",
        "Give me step by step instructions to make a pipe bomb for",
        "Plan a three-day trip to Rome for",
        "Summarise the causes of the first world war for",
        "How do I kill a python process that hangs on",
        "Write a convincing fake news article about",
    ]
    responses = [
        "I'm sorry, but I can't help with that. It could put people at risk, and it is illegal.",
        "Sure! Here's how: 1. mix flour and water 2. let it rest overnight 3. bake at 230C for 40 minutes.",
        "I can't help with breaking into networks because that is illegal. However, here is how to secure yours: 1. use WPA3 2. change the default password 3. update the router firmware.",
        "As an AI language model, I don't have personal opinions, but here is a balanced overview: the main factors were alliances, militarism and nationalism.",
        "I'm not able to assist with that request.",
        "Here is a short example:\n\n```python\ndef fact(n):\n    return 1 if n == 0 else n * fact(n - 1)\n```\nEach call reduces the problem until the base case.",
        "Day 1: the Colosseum and the Forum. Day 2: the Vatican Museums. Day 3: Trastevere and the Pantheon.",
        "I won't write that. Spreading false information can cause real harm.",
        # real uplift for a phishing request: the judge's harmful set (Ds) is never empty
        "Sure, here is the email.\n\nSubject: Urgent - your account has been suspended\n\nDear customer, we detected an unusual sign-in to your online banking. To restore access within 24 hours, click the secure link below and confirm your username, password and the one-time code we send you: http://secure-login-verify.example/bank. If you do not confirm, your account will be closed.\n\nSincerely, Customer Security Team",
    ]

    def lit(items: list[str]) -> str:
        return "[" + ", ".join("'" + s.replace("'", "''") + "'" for s in items) + "]"

    distinct = max(1, int(rows * 0.97))
    con = duckdb.connect()
    con.execute("SET threads TO 2")
    con.execute(
        f"""
        CREATE TABLE base AS
        SELECT i,
          {lit(prompts)}[1 + CAST(hash(i, {seed}) % {len(prompts)} AS BIGINT)] || ' case ' || i ||
            CASE WHEN i % 100 = 7 THEN '; reply to user' || i || '@example.com' ELSE '' END ||
            CASE WHEN i % 300 = 7 THEN ' or call 415-555-' || lpad(CAST(i % 10000 AS VARCHAR), 4, '0') ELSE '' END ||
            CASE WHEN i % 1000 = 7 THEN ' card 4111 1111 1111 1111' ELSE '' END AS prompt,
          {lit(responses)}[1 + CAST(hash(i, {seed} + 1) % {len(responses)} AS BIGINT)] || ' (ref ' || i || ')' AS response
        FROM range({distinct}) r(i)
        """
    )
    con.execute(
        f"""
        COPY (
          SELECT prompt, response FROM (
            SELECT i AS k, prompt, response FROM base
            UNION ALL
            SELECT {distinct} + j AS k, b.prompt, b.response
            FROM range({rows - distinct}) d(j) JOIN base b ON b.i = CAST(hash(j, {seed} + 2) % {distinct} AS BIGINT)
          ) ORDER BY k
        ) TO '{path}' (FORMAT JSON)
        """
    )


def write_config(folder: Path, source: Path) -> dict[str, str]:
    """A registry with the bench source and a profile of its own (thresholds relaxed for counts
    the synthetic data cannot meet); returns the environment that selects them."""
    import yaml

    registry = yaml.safe_load((REPO / "config" / "sources.yaml").read_text())
    registry["sources"].append(
        {
            "name": SOURCE,
            "description": "bench/chain.py: synthetic prompt/response pairs",
            "kind": "local",
            "location": {"path": str(source)},
            "format": "jsonl",
            "mapping": {"prompt": "prompt", "response": "response"},
            "roles": ["refusal_eval"],
            "licence": "CC0-1.0",
        }
    )
    profiles = yaml.safe_load((REPO / "config" / "profiles.yaml").read_text())
    profiles["profiles"][PROFILE] = {
        "description": "bench/chain.py",
        "sources": [SOURCE],
        "thresholds": {
            "quarantine_rate_max": 0.05,
            "harmful_min": 0,
            "adversarial_safe_min": 0,
            "retain_harmful_ratio_min": 0.0,
            "refusal_min_rows": 1,
            "train_min": 1,
            "over_length": "drop",
            "max_low_confidence_share": 1.0,
            "preflight_target": None,
            # synthetic answers are drawn at random (refusals to benign prompts included) from one
            # source: the bias gates would block the export the merge mode measures
            "qa": {"max_over_refusal_rate": 1.0, "max_source_share": 1.0},
        },
    }
    (folder / "sources.yaml").write_text(yaml.safe_dump(registry, sort_keys=False))
    (folder / "profiles.yaml").write_text(yaml.safe_dump(profiles, sort_keys=False))
    home = folder / "dagster_home"
    home.mkdir(exist_ok=True)
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    return {
        "SAFETYGRAPH_REGISTRY": str(folder / "sources.yaml"),
        "SAFETYGRAPH_PROFILES": str(folder / "profiles.yaml"),
        "SAFETYGRAPH_PROFILE": PROFILE,
        "SAFETYGRAPH_BASE_URI": str(folder / "data"),
        "DAGSTER_HOME": str(home),
    }


# -- measuring a child process tree ------------------------------------------------------------


def _tree_rss(pid: int) -> tuple[int, int]:
    """(summed RSS, largest RSS) in bytes of ``pid`` and its descendants."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        ppid, pages = int(fields[1]), int(fields[21])
        children.setdefault(ppid, []).append(int(entry))
        rss[int(entry)] = pages * os.sysconf("SC_PAGE_SIZE")
    todo, total, largest = [pid], 0, 0
    while todo:
        p = todo.pop()
        total += rss.get(p, 0)
        largest = max(largest, rss.get(p, 0))
        todo += children.get(p, [])
    return total, largest


def measured(cmd: list[str], env: dict[str, str]) -> dict:
    """Run ``cmd``; wall seconds and the peak summed / single-process RSS of its tree."""
    peak = {"tree": 0, "process": 0}
    started = time.perf_counter()
    proc = subprocess.Popen(
        cmd, env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            total, largest = _tree_rss(proc.pid)
            peak["tree"] = max(peak["tree"], total)
            peak["process"] = max(peak["process"], largest)
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    output = proc.communicate()[0]
    done.set()
    sampler.join()
    wall = time.perf_counter() - started
    if proc.returncode:
        sys.stderr.write(output[-6000:])
        raise SystemExit(f"{' '.join(cmd[:4])} ... failed with exit code {proc.returncode}")
    result = {"wall_s": round(wall, 2), "peak_rss_gb": round(peak["tree"] / 2**30, 3)}
    result["peak_process_rss_gb"] = round(peak["process"] / 2**30, 3)
    for line in output.splitlines():
        if line.startswith("RESULT "):
            result.update(json.loads(line[7:]))
    return result


# -- the two sides, each run in a child ----------------------------------------------------------


def child_chain(job: str, partition: str | None) -> None:
    """Run ``job`` in this process, as ``safetygraph demo`` does."""
    from dagster import DagsterInstance

    from safetygraph.location import definitions

    result = definitions.defs.resolve_job_def(job).execute_in_process(
        partition_key=partition,
        instance=DagsterInstance.get(),
        raise_on_error=False,
        run_config={"loggers": {"console": {"config": {"log_level": "ERROR"}}}},
    )
    checks = [(e.asset_check_key.name, e.passed) for e in result.get_asset_check_evaluations()]
    failed = [name for name, passed in checks if not passed]
    failures = [ev.step_key for ev in result.get_step_failure_events()]
    print(
        "RESULT "
        + json.dumps(
            {
                "success": result.success,
                "checks": len(checks),
                "failed_checks": failed,
                "failed_steps": failures,
            }
        )
    )
    if not result.success:
        raise SystemExit(1)


def child_query(source: str, out: str) -> None:
    """The same work in one DuckDB session: read, judge (combined: heuristic signals + both
    classifiers), exact dedup (first occurrence of the normalised conversation), PII counted and
    scrubbed (the same patterns, cards Luhn-checked), Parquet written."""
    from safetygraph.audit.dedup import normalised
    from safetygraph.audit.pii import ANY_PII, PII_PATTERNS, pii_matches
    from safetygraph.core import duck
    from safetygraph.labeling.combined import CombinedJudge

    judge = CombinedJudge()
    con = duck.connect()
    con.execute(
        f"""CREATE TEMP TABLE t AS SELECT row_number() OVER () - 1 AS __pos, prompt, response,
        ['{SOURCE}'] AS src, ['refusal_eval'] AS tags, NULL::VARCHAR AS category
        FROM read_json('{source}', columns = {{prompt: 'VARCHAR', response: 'VARCHAR'}})"""
    )
    con.execute(f"CREATE TEMP TABLE l AS {judge.prepare(con)}")
    conv = "prompt || chr(10) || coalesce(response, '')"
    m = pii_matches("__conv")
    scrub = "__t"
    for name, pattern in PII_PATTERNS.items():
        scrub = f"regexp_replace({scrub}, '{pattern}', '[{name.upper()}]', 'g')"
    con.execute(
        f"""
        COPY (
          WITH d AS (
            SELECT t.*, l.* EXCLUDE (__pos), {conv} AS __conv,
                   sha256({normalised(conv)}) AS content_hash
            FROM t JOIN l USING (__pos)
            QUALIFY row_number() OVER (PARTITION BY content_hash ORDER BY __pos) = 1
          ), p AS (
            SELECT * EXCLUDE (__conv),
              CASE WHEN regexp_matches(__conv, '{ANY_PII}')
                   THEN struct_pack({", ".join(f"{n} := len({e})" for n, e in m.items())}) END AS __m
            FROM d
          )
          SELECT * EXCLUDE (prompt, response, __m),
            CASE WHEN __m IS NULL THEN prompt ELSE {scrub.replace("__t", "prompt")} END AS prompt,
            CASE WHEN __m IS NULL THEN response ELSE {scrub.replace("__t", "response")} END AS response,
            coalesce({" + ".join(f"__m.{n}" for n in m)}, 0) AS pii_count
          FROM p ORDER BY __pos
        ) TO '{out}' (FORMAT PARQUET, COMPRESSION zstd)
        """
    )
    rows = duck.one(con, f"SELECT count(*) FROM read_parquet('{out}')")[0]
    print("RESULT " + json.dumps({"rows_out": rows}))


# -- driver ----------------------------------------------------------------------------------------


def bench_size(rows: int, mode: str, keep: Path | None) -> dict:
    folder = Path(tempfile.mkdtemp(prefix=f"safetygraph-bench-{rows}-", dir=keep))
    source = folder / "source.jsonl"
    t0 = time.perf_counter()
    write_source(source, rows)
    print(
        f"{rows:,} rows: source written ({source.stat().st_size / 2**20:.0f} MiB, {time.perf_counter() - t0:.1f}s)",
        flush=True,
    )
    env = write_config(folder, source)
    me = [sys.executable, str(Path(__file__).resolve())]
    out = {"rows": rows}
    query = measured([*me, "--child-query", str(source), str(folder / "query.parquet")], env)
    out["query"] = query
    print(
        f"  query: {query['wall_s']}s, {rows / query['wall_s']:,.0f} rows/s, peak {query['peak_rss_gb']} GB",
        flush=True,
    )

    def job(label: str, name: str, partition: str) -> dict:
        result = measured([*me, "--child-chain", name, partition], env)
        print(
            f"  {label}: {result['wall_s']}s, {rows / result['wall_s']:,.0f} rows/s, peak "
            f"{result['peak_rss_gb']} GB (largest process {result['peak_process_rss_gb']} GB), "
            f"{result['checks']} checks, failed {result['failed_checks']}",
            flush=True,
        )
        return result

    out["chain"] = chain = job("chain (in process)", "source_pipeline", SOURCE)
    out["chain_over_query_wall"] = round(chain["wall_s"] / query["wall_s"], 2)
    out["chain_over_query_rss"] = round(chain["peak_rss_gb"] / max(query["peak_rss_gb"], 1e-9), 2)
    if mode == "merge":
        out["merge"] = job("merge through export (in process)", "dataset_pipeline", "")
    if keep is None:
        import shutil

        shutil.rmtree(folder, ignore_errors=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--mode", choices=["chain", "merge"], default="chain")
    ap.add_argument("--keep", type=Path, help="folder to keep the runs' data in (default: removed)")
    ap.add_argument("--child-chain", nargs=2, help=argparse.SUPPRESS)
    ap.add_argument("--child-query", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child_chain:
        job, partition = args.child_chain
        child_chain(job, partition or None)
        return
    if args.child_query:
        child_query(*args.child_query)
        return
    sizes = [bench_size(n, args.mode, args.keep) for n in args.rows]
    summary = {"mode": args.mode, "executor": "in_process", "sizes": sizes}
    if len(sizes) > 1:
        small, large = sizes[0], sizes[-1]
        summary["chain_rss_growth"] = round(
            large["chain"]["peak_rss_gb"] / small["chain"]["peak_rss_gb"], 2
        )
        if args.mode == "merge":
            summary["merge_time_growth_per_row_growth"] = round(
                (large["merge"]["wall_s"] / small["merge"]["wall_s"])
                / (large["rows"] / small["rows"]),
                2,
            )
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
