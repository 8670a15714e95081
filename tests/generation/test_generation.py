"""Generation: request hashing, the cache and checkpoints, and every backend."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from safetygraph.core.storage import Storage
from safetygraph.generation import (
    GenerationConfig,
    OpenAIBackend,
    ReplayBackend,
    RequestCache,
    generate,
    parse_retry_after,
    request_hash,
    request_messages,
)
from tests.fake_openai import FakeOpenAI
from tests.helpers import kill_after_chunks, raw_table

REPO = Path(__file__).resolve().parents[2]


def openai(server, **kw):
    return OpenAIBackend(base_url=server.url, api_key="sk-test", backoff_base_s=0.01, **kw)


def test_request_hash_is_stable_across_processes_and_sensitive_to_what_matters():
    msgs = request_messages([{"role": "user", "content": "héllo", "tool_calls": None}], "be safe")
    params = GenerationConfig().params()
    h = request_hash("m", params, msgs)
    code = (
        "from safetygraph.generation import request_hash, request_messages, GenerationConfig;"
        "print(request_hash('m', GenerationConfig().params(), request_messages([{'role':'user','content':'héllo','tool_calls':None}], 'be safe')))"
    )
    other = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=True,
        env={**os.environ, "PYTHONHASHSEED": "123"},
    ).stdout.strip()
    assert other == h
    assert (
        h == "ab67d6552f0556ad8b916fc0462cd7483b084e139e09e5f67e67e9d4f240ceaf"
    )  # pinned: a change here invalidates every recorded response
    assert request_hash("m", {**params, "temperature": 0.7}, msgs) != h
    assert (
        request_hash("m", params, request_messages([{"role": "user", "content": "héllo"}], "other"))
        != h
    )
    assert request_hash("m2", params, msgs) != h
    assert (
        GenerationConfig(backend="openai").params() == params
    )  # the backend is not part of the request


def test_replay_answers_recorded_requests_and_records_missing_ones(tmp_path: Path):
    cfg = GenerationConfig(model="demo", system_prompt="sys")
    known = request_hash(
        "demo", cfg.params(), request_messages([{"role": "user", "content": "known"}], "sys")
    )
    rec = tmp_path / "rec.jsonl"
    rec.write_text(json.dumps({"request_hash": known, "response": "recorded answer"}) + "\n")
    out, stats = generate(
        raw_table(["known", "unknown", "has one"], [None, None, "kept"]),
        [cfg],
        lambda c: ReplayBackend([str(rec)]),
    )
    rows = out.to_pylist()
    assert (
        rows[0]["response"] == "recorded answer" and rows[0]["messages"][-1]["role"] == "assistant"
    )
    assert (
        rows[0]["request_hash"] == known
        and rows[0]["generation_backend"] == "replay"
        and rows[0]["generation_role"] == "target"
    )
    assert rows[1]["response"] is None and "no recorded response" in rows[1]["generation_error"]
    assert (
        rows[2]["response"] == "kept"
        and rows[2]["generation_backend"] == "source"
        and rows[2]["request_hash"] is None
    )
    assert (stats.requests, stats.generated, stats.passed_through, stats.errors) == (
        2,
        1,
        1,
        {"replay_missing": 1},
    )


def test_openai_backend_survives_every_fault_and_records_hard_errors():
    prompts = [f"p{i}" for i in range(30)]
    faults = {
        "p1": [429, 503],
        "p2": [500],
        "p4": ["drop"],
        "p5": ["slow"],
        "p6": ["malformed"],
        "p7": ["drop", 429, "malformed"],
    }
    with FakeOpenAI(faults=faults, hard_errors={"p3"}, slow_s=1.5) as server:
        out, stats = generate(
            raw_table(prompts),
            [GenerationConfig(backend="openai", model="m")],
            lambda c: openai(server, max_concurrency=8, timeout_s=0.5),
        )
    rows = out.to_pylist()
    assert len(rows) == 30 and len({r["id"] for r in rows}) == 30  # every row exactly once
    for r in rows:
        if r["prompt"] == "p3":
            assert r["response"] is None and r["generation_error"].startswith("HTTP 400")
        else:
            assert r["response"] == f"echo: {r['prompt']}" and r["generation_error"] is None
    assert (
        server.calls["p1"] == 3
        and server.calls["p2"] == 2
        and server.calls["p4"] == 2
        and server.calls["p7"] == 4
    )
    assert server.calls["p5"] == 2 and server.calls["p6"] == 2 and server.calls["p0"] == 1
    assert set(server.auth_headers) == {"Bearer sk-test"}
    assert stats.generated == 29 and stats.errors == {"http_4xx": 1} and stats.tokens_out == 2 * 29


def test_openai_backend_gives_up_after_max_retries_and_honours_rate_limits():
    with FakeOpenAI(faults={"stubborn": [503] * 10}) as server:
        out, stats = generate(
            raw_table(["stubborn"]),
            [GenerationConfig(backend="openai", model="m")],
            lambda c: openai(server, max_retries=2),
        )
        assert (
            out.column("generation_error")[0]
            .as_py()
            .startswith("gave up after 3 attempts: _Retryable: HTTP 503")
        )
        assert server.calls["stubborn"] == 3 and stats.errors == {"retries_exhausted": 1}

        started = time.monotonic()
        generate(
            raw_table([f"r{i}" for i in range(20)]),
            [GenerationConfig(backend="openai", model="m")],
            lambda c: openai(server, max_concurrency=20, requests_per_minute=600),
        )  # 10/s, burst 10
        assert time.monotonic() - started >= 0.9
    assert (
        parse_retry_after("2.5") == 2.5
        and parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0
    )
    assert parse_retry_after(None) is None


def test_cache_makes_reruns_free_and_new_parameters_new_requests(tmp_path: Path):
    cache = RequestCache(Storage(str(tmp_path)))
    prompts = [f"c{i}" for i in range(25)]
    cfg = GenerationConfig(backend="openai", model="m")
    with FakeOpenAI() as server:
        first, s1 = generate(
            raw_table(prompts), [cfg], lambda c: openai(server), cache=cache, chunk_size=10
        )
        assert (s1.called, s1.cache_hits, s1.chunks_written) == (25, 0, 3)
        second, s2 = generate(raw_table(prompts), [cfg], lambda c: openai(server), cache=cache)
        assert (s2.called, s2.cache_hits) == (0, 25) and sum(server.calls.values()) == 25
        assert second.column("response").to_pylist() == first.column("response").to_pylist()
        hotter = GenerationConfig(backend="openai", model="m", temperature=0.7)
        _, s3 = generate(raw_table(prompts), [hotter], lambda c: openai(server), cache=cache)
        assert s3.called == 25 and sum(server.calls.values()) == 50
    # the cache is plain Parquet: DuckDB reads it directly
    import duckdb

    n = duckdb.sql(
        f"SELECT count(DISTINCT request_hash) FROM read_parquet('{tmp_path}/cache/requests/*.parquet')"
    ).fetchall()[0][0]
    assert n == 50


def test_several_roles_and_samples_each_answer_every_prompt(tmp_path: Path):
    target = GenerationConfig(role="target", backend="openai", model="t")
    teacher = GenerationConfig(
        role="teacher", backend="openai", model="teach", samples=2, temperature=0.5
    )
    table = raw_table(["a", "b", "c"], [None, None, "given"])
    with FakeOpenAI() as server:
        out, stats = generate(table, [target, teacher], lambda c: openai(server))
    rows = out.to_pylist()
    assert len(rows) == 1 + 2 * 3 and len({r["id"] for r in rows}) == 7
    assert [r["id"] for r in rows if r["generation_role"] == "target"] == [f"{0:024d}", f"{1:024d}"]
    teacher_rows = [r for r in rows if r["generation_role"] == "teacher"]
    assert sorted(json.loads(r["generation_params"])["seed"] for r in teacher_rows) == [0, 0, 1, 1]
    assert server.calls["a"] == 3 and stats.requests == 6


KILL_SCRIPT = """
import sys
from safetygraph.generation import GenerationConfig, OpenAIBackend, RequestCache, generate
from safetygraph.core.storage import Storage
from tests.helpers import raw_table
url, base = sys.argv[1], sys.argv[2]
generate(raw_table([f"k{i}" for i in range(200)]), [GenerationConfig(backend="openai", model="m")],
         lambda c: OpenAIBackend(base_url=url, max_concurrency=4), cache=RequestCache(Storage(base)), chunk_size=20)
"""


def test_killed_run_resumes_and_repeats_at_most_one_chunk(tmp_path: Path):
    base = str(tmp_path / "data")
    cache_dir = tmp_path / "data" / "cache" / "requests"
    with FakeOpenAI(latency_s=0.02) as server:
        chunks_at_kill = kill_after_chunks(KILL_SCRIPT, [server.url, base], cache_dir, REPO)
        assert 3 <= chunks_at_kill < 10, "killed mid-run"
        calls_before = sum(server.calls.values())
        out, stats = generate(
            raw_table([f"k{i}" for i in range(200)]),
            [GenerationConfig(backend="openai", model="m")],
            lambda c: openai(server, max_concurrency=4),
            cache=RequestCache(Storage(base)),
            chunk_size=20,
        )
    assert out.num_rows == 200 and all(
        r == f"echo: k{i}" for i, r in enumerate(out.column("response").to_pylist())
    )
    assert stats.cache_hits >= 20 * chunks_at_kill
    repeated = sum(n - 1 for n in server.calls.values() if n > 1)
    assert repeated <= 20 + 4  # at most one unflushed chunk plus the requests in flight
    assert sum(server.calls.values()) == calls_before + stats.called


def test_generation_config_rejects_unknown_keys_and_backends():
    with pytest.raises(ValueError, match="unknown keys"):
        GenerationConfig.from_dict("x", {"modle": "typo"})
    with pytest.raises(ValueError, match="backend 'gpt'"):
        GenerationConfig(backend="gpt")


def test_llm_settings_come_from_the_environment(monkeypatch):
    from safetygraph.location import definitions

    monkeypatch.setenv("SAFETYGRAPH_OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("SAFETYGRAPH_LLM_MAX_CONCURRENCY", "64")
    monkeypatch.setenv("SAFETYGRAPH_LLM_RPM", "600")
    monkeypatch.delenv("SAFETYGRAPH_LLM_TPM", raising=False)
    backend = definitions.default_llm().backend(GenerationConfig(backend="openai", model="m"))
    assert (
        backend.base_url,
        backend.max_concurrency,
        backend.requests_per_minute,
        backend.tokens_per_minute,
    ) == ("http://127.0.0.1:9/v1", 64, 600.0, None)


def test_generation_plan_counts_prompt_only_rows_and_holds_recorded_gaps(tmp_path: Path):
    from safetygraph.generation.planning import GenerationPlan, GenerationRun, error_summary

    raw = raw_table(["a", "b", "c"], [None, "kept", None])
    openai_cfg = GenerationConfig(model="m", backend="openai")
    replay_cfg = GenerationConfig(model="demo")
    # a source without recorded answers: both prompt-only rows need a server for the openai config
    plan = GenerationPlan.for_source(raw, [openai_cfg, replay_cfg], has_responses=False)
    assert (plan.prompt_only, plan.leave_gaps, plan.needs_server()) == (2, False, [openai_cfg])
    assert "2 prompt-only row(s)" in plan.missing_server("demo_src", None)
    assert plan.missing_server("demo_src", "http://127.0.0.1:1/v1") is None
    # a recorded source: its gaps pass through unanswered and are counted; nothing needs a server
    plan = GenerationPlan.for_source(raw, [openai_cfg], has_responses=True)
    assert (plan.prompt_only, plan.leave_gaps, plan.missing_server("rec", None)) == (0, True, None)
    run = GenerationRun(
        GenerationPlan.for_source(raw, [replay_cfg], has_responses=True),
        lambda c: ReplayBackend([]),
        batch_rows=2,
    )
    out = [r for b in run.batches(raw) for r in b.to_pylist()]
    assert sorted(r["response"] or "" for r in out) == ["", "", "kept"] and run.gaps == 2
    assert (run.stats.requests, run.stats.passed_through) == (0, 1)
    # asked to answer them: the replay backend has no recording, so each is a recorded error
    run = GenerationRun(
        GenerationPlan.for_source(raw, [replay_cfg], True, answer_recorded_gaps=True),
        lambda c: ReplayBackend([]),
    )
    import pyarrow as pa

    answered = pa.concat_tables(list(run.batches(raw)))
    requested, failed, examples = error_summary(answered)
    assert (requested, failed, run.gaps) == (2, 2, 0) and "no recorded response" in examples[0]


def test_scenario_sample_is_seeded_and_stable():
    import pyarrow as pa

    from safetygraph.recipes.steering.sampling import sample_scenarios

    table = pa.table({"scenario_id": [f"s{i}" for i in range(50)], "x": list(range(50))})
    a = sample_scenarios(table, 10, seed=1)
    assert a.num_rows == 10 and a.equals(sample_scenarios(table, 10, seed=1))
    assert a.column("x").to_pylist() == sorted(a.column("x").to_pylist())  # table order kept
    assert a.column("x").to_pylist() != sample_scenarios(table, 10, seed=2).column("x").to_pylist()
    assert sample_scenarios(table, None, 1) is table and sample_scenarios(table, 80, 1) is table
