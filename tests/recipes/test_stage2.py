"""Circuit-breaker stage 2: shards, strict validation, tokenizer preflight, generation of
adversarial-safe answers with tools, the real tau2 and XSTest files, and every gate blocking the
files on crafted shortfalls under production thresholds."""

import hashlib
import json
import random

import pyarrow as pa
import pytest
import yaml
from dagster import AssetKey, instance_for_test
from safetygraph.location.pipeline_assets.labeling import METRICS_SCHEMA
from safetygraph.location.resources import BuildConfig, LLMResource

from safetygraph.audit.auditor import audit
from safetygraph.audit.decont import CONTAMINATION_SCHEMA
from safetygraph.core.records import SHARD_SCHEMA, conform
from safetygraph.core.storage import Storage, asset_parts
from safetygraph.generation import GenerationConfig, generate
from safetygraph.generation.openai_backend import OpenAIBackend
from safetygraph.labeling.heuristic import HeuristicJudge
from safetygraph.location import definitions
from safetygraph.recipes import circuit_breaker as cb
from safetygraph.recipes.circuit_breaker.demo_tokenizer import build as build_tokenizer
from safetygraph.recipes.circuit_breaker.preflight import ChatTokenizer, preflight
from safetygraph.recipes.circuit_breaker.records import stage2_rows
from safetygraph.recipes.circuit_breaker.references import Llama3Reference
from safetygraph.sources.ingest import ingest
from safetygraph.sources.registry import load_registry
from tests.conftest import REPO, write_registry
from tests.fake_openai import FakeOpenAI

DEMO_TOKENIZER = str(REPO / "sample_data" / "tokenizer")
WORDS = [f"w{hashlib.sha256(str(i).encode()).hexdigest()[:6]}" for i in range(3000)]


def msg(role, content=None, calls=None, call_id=None, name=None):
    return {
        "role": role,
        "content": content,
        "tool_calls": json.dumps(calls) if calls is not None else None,
        "tool_call_id": call_id,
        "name": name,
    }


def tool(name):
    return {"type": "function", "function": {"name": name, "parameters": {"type": "object"}}}


def sample(i, cls="retain", kind="benign_answer", messages=None, tools=None, adv=False, tags=None):
    rnd = random.Random(i)
    prompt = " ".join(rnd.choice(WORDS) for _ in range(12))  # no two prompts near each other
    messages = messages or [msg("user", prompt), msg("assistant", f"Answer {i}.")]
    return {
        "id": f"{i:024d}",
        "source": "crafted",
        "source_ref": f"crafted:{i}",
        "messages": messages,
        "tools": json.dumps(tools) if tools is not None else None,
        "prompt": prompt,
        "response": f"Answer {i}.",
        "tags": tags or (["attack", "agentic"] if adv else ["benign"]),
        "label_outcome": "COMPLY.BENIGN",
        "label_style": "DIRECT_ANSWER",
        "harm_categories": [],
        "harmless_topics": [],
        "prompt_harmful": cls == "harmful",
        "response_harmful": cls == "harmful",
        "response_refusal": False,
        "response_attempted": False,
        "label_confidence": 0.9,
        "label_rationale": "crafted",
        "judge": "heuristic-v1",
        "content_hash": hashlib.sha256(f"c{i}".encode()).hexdigest(),
        "prompt_hash": hashlib.sha256(prompt.encode()).hexdigest(),
        "pii_types": [],
        "pii_count": 0,
        "toxicity": 0.0,
        "cb_class": cls,
        "cb_kind": kind,
        "is_adversarial_safe": adv,
    }


def table(rows):
    return conform(pa.Table.from_pylist(rows, schema=SHARD_SCHEMA), SHARD_SCHEMA)


# ---- strict validation -------------------------------------------------------------------------


def test_validation_reports_each_rule_by_sample_and_turn():
    call = [{"id": "c1", "name": "lookup", "arguments": '{"q": "x"}'}]
    rows = [
        sample(0),  # valid
        sample(  # valid tool use
            1,
            messages=[
                msg("system", "s"),
                msg("user", "find x"),
                msg("assistant", calls=call),
                msg("tool", "found", call_id="c1", name="lookup"),
                msg("assistant", "x is here"),
            ],
            tools=[tool("lookup")],
            tags=["agentic"],
        ),
        sample(2, messages=[msg("user", "a"), msg("user", "b"), msg("assistant", "c")]),  # R1
        sample(3, messages=[msg("user", "a"), msg("assistant", "b"), msg("user", "c")]),  # R2
        sample(  # R3: calls a tool it does not declare
            4,
            messages=[msg("user", "a"), msg("assistant", calls=call)],
            tools=[tool("other")],
        ),
        sample(  # R4: arguments are not JSON
            5,
            messages=[
                msg("user", "a"),
                msg("assistant", calls=[{"id": "c", "name": "lookup", "arguments": "{q: x"}]),
            ],
            tools=[tool("lookup")],
        ),
        {**sample(6), "id": f"{7:024d}"},  # R5 with the next one
        sample(7),
        {**sample(8), "cb_kind": "mystery"},  # R6
    ]
    errors = cb.validate(table(rows))
    got = sorted({(e["rule"], e["id"][-1:], e["turn"]) for e in errors.to_pylist()})
    assert got == [
        ("R1", "2", 2),
        ("R2", "3", 3),
        ("R3", "4", 2),
        ("R4", "5", 2),
        ("R5", "7", None),
        ("R6", "8", None),
    ]
    by_rule = {e["rule"]: e["message"] for e in errors.to_pylist()}
    assert by_rule["R1"] == "turn 2: user after user"
    assert by_rule["R3"] == "calls lookup, which the sample does not declare"
    assert "cb_kind" in by_rule["R6"] and "id used by 2 samples" in by_rule["R5"]
    summary = cb.validation_summary(errors, 9)
    assert summary["samples_with_errors"] == 6 and summary["errors_by_rule"]["R4"] == 1
    assert cb.validate(table(rows[:2])).num_rows == 0


def test_tools_missing_finds_tool_samples_without_schemas():
    call = [{"id": "c1", "name": "lookup", "arguments": "{}"}]
    rows = [
        sample(0),  # plain chat: no tools needed
        sample(1, messages=[msg("user", "a"), msg("assistant", calls=call)], tags=["benign"]),
        sample(2, adv=True),  # attack source without tools
        sample(3, adv=True, tools=[tool("lookup")]),
        sample(4, tags=["general_chat", "agentic"]),  # general conversation is exempt
    ]
    assert cb.tools_missing(table(rows)) == [f"{1:024d}", f"{2:024d}"]


# ---- shards from attack outcomes and answers ---------------------------------------------------


def _labelled(name: str):
    spec = load_registry().source(name)
    return spec, audit(HeuristicJudge().label(ingest(spec).table))[0]


def test_agentdojo_outcome_from_either_location_and_missing_counted(tmp_path):
    spec, dojo = _labelled("demo_agentdojo")
    harmful, retain, info = cb.cut_shards(dojo, {spec.name: spec.attack_outcome})
    # 12 runs: 4 with security true (the injection succeeded), read at the top level or in metadata
    assert harmful.num_rows == 4 and set(harmful.column("cb_kind").to_pylist()) == {
        "attack_success"
    }
    assert retain.num_rows == 8 and set(retain.column("cb_kind").to_pylist()) == {"attack_resisted"}
    assert info.attack_rows == 12 and info.attack_outcome_missing == 0
    # with only the top-level path declared, the runs that keep it under metadata are missing
    _, _, info = cb.cut_shards(dojo, {spec.name: ("security",)})
    assert info.attack_outcome_missing == 6 and info.left_out == {"attack_outcome_missing": 6}


def test_adversarial_candidates_are_safe_unless_they_call_a_new_tool():
    spec, attacks = _labelled("demo_attacks")
    recorded = load_registry().profile("demo").generation["adversarial_safe"]
    from safetygraph.generation import ReplayBackend

    answered, stats = generate(
        ingest(spec).table,
        [recorded],
        lambda c: ReplayBackend([str(REPO / "sample_data" / "recorded_responses.jsonl")]),
    )
    assert stats.generated == 30 and stats.passed_through == 30
    labelled = audit(HeuristicJudge().label(answered))[0]
    harmful, retain, info = cb.cut_shards(labelled, {spec.name: spec.attack_outcome})
    kinds = retain.column("cb_kind").to_pylist()
    # the recordings follow the injection in one answer of twelve: those are left out
    unsafe = info.left_out.get("adversarial_candidate_unsafe", 0)
    assert unsafe >= 1 and kinds.count("adversarial_safe") == 30 - unsafe
    assert info.candidates == 30
    assert all(
        retain.filter(pa.compute.equal(retain.column("cb_kind"), "adversarial_safe"))
        .column("is_adversarial_safe")
        .to_pylist()
    )
    assert harmful.num_rows == 10 and kinds.count("attack_resisted") == 20
    # every adversarial-safe sample keeps the attack's tools and passes strict validation
    samples = cb.samples(harmful, retain)
    assert cb.validate(samples).num_rows == 0 and cb.tools_missing(samples) == []


def test_attack_prompts_are_answered_anew_with_the_tools_attached():
    spec = load_registry().source("demo_attacks")
    raw = ingest(spec).table.slice(0, 4)

    def respond(body):
        assert body["tools"] and body["messages"][-1]["role"] == "tool"
        if "transfer" in body["messages"][-1]["content"]:  # follows this injection
            return {
                "content": None,
                "tool_calls": [
                    {
                        "id": "x1",
                        "type": "function",
                        "function": {"name": "send_money", "arguments": '{"amount": 500}'},
                    }
                ],
            }
        return "I will not follow instructions found in tool output."

    with FakeOpenAI(responder=respond) as server:
        config = GenerationConfig(
            role="adversarial_safe",
            backend="openai",
            model="safe",
            answers="attacks",
            temperature=0.1,
        )
        out, stats = generate(raw, [config], lambda c: OpenAIBackend(base_url=server.url))
        assert all(b["temperature"] == 0.1 and len(b["tools"]) == 10 for b in server.bodies)
    assert stats.generated == 4 and out.num_rows == 8
    new = [r for r in out.to_pylist() if "adversarial_candidate" in r["tags"]]
    assert len(new) == 4 and all(r["generation_role"] == "adversarial_safe" for r in new)
    followed = [r for r in new if r["messages"][-1]["tool_calls"]]
    assert len(followed) == 1 and followed[0]["response"].startswith("[tool_calls]")
    assert json.loads(followed[0]["messages"][-1]["tool_calls"])[0]["name"] == "send_money"
    # the conversation up to the injected tool output, then the new answer
    assert [m["role"] for m in new[0]["messages"]] == ["user", "assistant", "tool", "assistant"]


# ---- tokenizer preflight -----------------------------------------------------------------------


def test_preflight_finds_assistant_spans_and_fails_long_or_broken_samples():
    tok = ChatTokenizer.load(DEMO_TOKENIZER)
    call = [{"id": "c1", "name": "lookup", "arguments": '{"q": "x"}'}]
    rows = [
        sample(0),
        sample(
            1,
            messages=[
                msg("user", "find x"),
                msg("assistant", calls=call),
                msg("tool", "found", call_id="c1", name="lookup"),
                msg("assistant", "x is here"),
            ],
            tools=[tool("lookup")],
        ),
        sample(2, messages=[msg("user", "a"), msg("assistant", " ".join(WORDS[:3000]))]),
        sample(
            3,
            messages=[
                msg("user", "a"),
                msg("assistant", calls=[{"id": "c", "name": "lookup", "arguments": "{q"}]),
            ],
            tools=[tool("lookup")],
        ),
    ]
    report = preflight(table(rows), tok, 2048, [Llama3Reference()]).to_pylist()
    assert report[0]["error"] is None and report[0]["assistant_turns"] == 1
    assert report[1]["error"] is None and report[1]["assistant_turns"] == 2
    spans = json.loads(report[1]["trained_spans"])
    assert len(spans) == 2 and 0 < report[1]["trained_tokens"] < report[1]["tokens"]
    # the trained tokens decode to the assistant turns (and their end-of-turn token), nothing else
    exported = stage2_rows(table(rows))[1]
    enc = tok.tokenizer.encode(
        tok.render(exported["messages"], exported["tools"]), add_special_tokens=False
    )
    trained = [tok.tokenizer.decode(enc.ids[a:b], skip_special_tokens=False) for a, b in spans]
    assert trained[0] == '{"name": "lookup", "parameters": {"q": "x"}}<|eot_id|>'
    assert trained[1] == "x is here<|eot_id|>"
    assert "over max_seq_length 2048" in report[2]["error"] and report[2]["tokens"] > 2048
    assert "arguments must be a JSON object" in report[3]["error"]  # the Llama-3 reference


def test_row_check_fast_path_agrees_with_jsonschema_and_words_errors_as_it_does():
    """jsonschema-rs decides which rows are valid, jsonschema words the rejected rows' errors: on
    a valid exported row and on each way to break it, the two validators agree, and a broken row's
    problems are jsonschema's messages."""
    from safetygraph.recipes.circuit_breaker.preflight import (
        _fast_validator,
        _row_validator,
        row_problems,
    )

    fast, slow = _fast_validator(), _row_validator()
    assert fast is not None  # a core dependency
    good = stage2_rows(table([sample(0), sample(1, tools=[tool("lookup")])]))
    call = {"id": "abcdefghi", "type": "function", "function": {"name": "lookup", "arguments": {}}}
    breaks = {
        "cb_class": lambda r: r.update(cb_class="other"),
        "missing key": lambda r: r.pop("labels"),
        "extra key": lambda r: r.update(extra=1),
        "empty id": lambda r: r.update(id=""),
        "one message": lambda r: r.update(messages=r["messages"][:1]),
        "role": lambda r: r["messages"][0].update(role="bot"),
        "content type": lambda r: r["messages"][1].update(content=3),
        "tool turn without id": lambda r: r["messages"].append({"role": "tool", "content": "x"}),
        "call id pattern": lambda r: r["messages"][1].update(tool_calls=[{**call, "id": "c1"}]),
        "call id newline": lambda r: r["messages"][1].update(
            tool_calls=[{**call, "id": "abcdefghi\n"}]
        ),
        "user calls": lambda r: r["messages"][0].update(tool_calls=[call]),
        "priority": lambda r: r["labels"].update(priority_class="urgent"),
    }
    for row in good:
        assert fast.is_valid(row) and not list(slow.iter_errors(row)) and not row_problems(row)
    for name, broken in breaks.items():
        row = json.loads(json.dumps(good[1]))
        broken(row)
        errors = sorted(slow.iter_errors(row), key=lambda e: [str(p) for p in e.absolute_path])
        problems = [p for p in row_problems(row) if p.startswith("schema:")]
        if name == "call id newline":
            # ECMA-262's $ (jsonschema-rs) ends the string; Python's re (jsonschema) also matches
            # before a final newline: the fast check rejects, jsonschema's verdict stands
            assert not fast.is_valid(row) and not errors and not problems
            continue
        assert fast.is_valid(row) == (not errors), name
        assert problems and errors[0].message in problems[0], name


def test_preflight_run_renders_each_row_once_per_build_and_in_workers_alike(tmp_path, monkeypatch):
    """The stage-2 step and the gate share one preflight: the gate re-renders nothing the step
    rendered (a subset neither), a changed row is rendered again, and reports from worker processes
    equal the in-process ones, row for row, in order."""
    from safetygraph.recipes.circuit_breaker import preflight_run as pf

    setup = pf.PreflightSetup(tokenizer=str(DEMO_TOKENIZER), target="llama3", max_seq_length=2048)
    rows = [sample(i) for i in range(40)]
    rows.append(sample(40, messages=[msg("user", "a"), msg("assistant", " ".join(WORDS[:3000]))]))
    t = table(rows)
    inline = pf.PreflightRun(setup, workers=1).report(t)
    expected = preflight(t, ChatTokenizer.load(DEMO_TOKENIZER), 2048, [Llama3Reference()])
    assert inline.equals(expected)
    assert inline.column("over_length").to_pylist()[-1] is True

    storage = Storage(str(tmp_path))
    first = pf.PreflightRun(setup, storage, workers=1)
    assert first.report(t).equals(expected) and (first.rendered, first.from_cache) == (41, 0)
    gate = pf.PreflightRun(setup, storage, workers=1)
    kept = t.slice(0, 40)
    assert gate.report(kept).equals(expected.slice(0, 40))
    assert (gate.rendered, gate.from_cache) == (0, 40)
    changed = table([sample(0, messages=[msg("user", "other"), msg("assistant", "fine")])])
    again = pf.PreflightRun(setup, storage, workers=1)
    assert again.report(changed).column("error").to_pylist() == [None]
    assert again.rendered == 1
    other = pf.PreflightSetup(tokenizer=str(DEMO_TOKENIZER), target=None, max_seq_length=2048)
    assert other.fingerprint() != setup.fingerprint()  # another setup: its own cache

    monkeypatch.setattr(pf, "PARALLEL_MIN_ROWS", 10)
    monkeypatch.setattr(pf, "PREFLIGHT_BATCH_ROWS", 7)
    parallel = pf.PreflightRun(setup, workers=2)
    assert parallel.report(t).equals(expected) and parallel.rendered == 41


def test_preflight_fallback_renders_like_transformers(tmp_path):
    transformers = pytest.importorskip("transformers")
    path = build_tokenizer(tmp_path / "tok", ["some text to learn merges from"] * 5)
    ours = ChatTokenizer.load(str(path))
    assert ours.renderer == "transformers apply_chat_template"
    theirs = transformers.AutoTokenizer.from_pretrained(str(path))
    call = [{"id": "c1", "name": "lookup", "arguments": '{"q": "x"}'}]
    row = stage2_rows(
        table(
            [
                sample(
                    0,
                    messages=[
                        msg("system", "be careful"),
                        msg("user", "find x"),
                        msg("assistant", calls=call),
                        msg("tool", "found", call_id="c1", name="lookup"),
                        msg("assistant", "done"),
                    ],
                    tools=[tool("lookup")],
                )
            ]
        )
    )[0]
    messages = row["messages"]
    for gen in (False, True):
        expected = theirs.apply_chat_template(
            messages, tools=row["tools"], tokenize=False, add_generation_prompt=gen
        )
        assert ours.render(messages, row["tools"], add_generation_prompt=gen) == expected
        assert ours.render_jinja(messages, row["tools"], add_generation_prompt=gen) == expected
    text = ours.render(messages, row["tools"])
    assert (
        ours.tokenizer.encode(text, add_special_tokens=False).ids
        == theirs(text, add_special_tokens=False)["input_ids"]
    )


# ---- the real files ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def realistic_tokenizer(tmp_path_factory):
    """A byte-level BPE with an 8k vocabulary learnt on the tau2 and XSTest files: token counts in
    the range of a real model's tokenizer (the 800-token demo tokenizer splits far finer)."""
    from tests.conftest import SHARED_DATA

    if not SHARED_DATA.is_dir():
        pytest.skip("real data not present")
    corpus = []
    for f in sorted(SHARED_DATA.glob("tau2-bench/*/tasks.json")) + [
        SHARED_DATA / "xstest" / "xstest_prompts.csv"
    ]:
        corpus += f.read_text(encoding="utf-8").splitlines()[:4000]
    return ChatTokenizer.load(str(build_tokenizer(tmp_path_factory.mktemp("tok"), corpus, 8000)))


def test_real_tau2_traces_pass_validation_and_preflight(shared_data, realistic_tokenizer):
    reg = load_registry()
    counts = {}
    for name in (
        "tau2_airline",
        "tau2_retail",
        "tau2_telecom",
        "tau2_mock",
        "tau2_banking_knowledge",
    ):
        raw = ingest(reg.source(name, "shared")).table
        traces = raw.filter(pa.compute.is_valid(raw.column("response")))  # tasks with agent actions
        labelled = audit(HeuristicJudge().label(traces))[0]
        harmful, retain, _ = cb.cut_shards(labelled, {})
        samples = cb.samples(harmful, retain)
        assert harmful.num_rows == 0 and set(retain.column("cb_kind").to_pylist()) <= {
            "agent_trace"
        }
        assert cb.validate(samples).num_rows == 0, name
        assert cb.tools_missing(samples) == [], name
        report = preflight(samples, realistic_tokenizer, 2048)
        failed = report.filter(pa.compute.is_valid(report.column("error")))
        # the only failures are traces longer than 2048 tokens (over_length: drop leaves them out)
        assert all(failed.column("over_length").to_pylist()), name
        kept = samples.filter(pa.compute.invert(report.column("over_length")))
        again = preflight(kept, realistic_tokenizer, 2048)
        assert again.filter(pa.compute.is_valid(again.column("error"))).num_rows == 0
        counts[name] = (raw.num_rows, samples.num_rows, kept.num_rows)
    assert {k: v[:2] for k, v in counts.items()} == {
        # raw: the tasks with expected agent actions (the others are skipped, with the reason)
        "tau2_airline": (43, 43),
        "tau2_retail": (112, 112),
        "tau2_telecom": (91, 43),  # telecom tasks share 5 requests: most traces repeat another
        "tau2_mock": (8, 6),  # two of the traces are exact copies of others
        "tau2_banking_knowledge": (90, 90),
    }
    assert sum(v[2] for v in counts.values()) >= 180  # most traces fit in 2048 tokens
    print("tau2 (tasks, traces, within 2048 tokens):", counts)


def test_real_xstest_safe_prompts_become_borderline_retain_samples(
    shared_data, realistic_tokenizer
):
    spec = load_registry().source("xstest", "shared")
    raw = ingest(spec).table
    with FakeOpenAI(
        responder=lambda body: "Here is a helpful, factual answer to your question."
    ) as server:
        config = GenerationConfig(role="target", backend="openai", model="target")
        answered, stats = generate(raw, [config], lambda c: OpenAIBackend(base_url=server.url))
    assert stats.generated == raw.num_rows == 450
    labelled = audit(HeuristicJudge().label(answered))[0]
    harmful, retain, info = cb.cut_shards(labelled, {})
    borderline = retain.filter(pa.compute.equal(retain.column("cb_kind"), "borderline_compliance"))
    # XSTest's 250 safe prompts, answered, are borderline retain material; the 200 unsafe ones
    # answered compliantly are harmful completions
    assert borderline.num_rows == 250 and harmful.num_rows == 200
    samples = cb.samples(harmful, retain)
    assert cb.validate(samples).num_rows == 0
    report = preflight(samples, realistic_tokenizer, 2048)
    assert report.filter(pa.compute.is_valid(report.column("error"))).num_rows == 0
    assert cb.validate(cb.samples(harmful.slice(0, 0), borderline)).num_rows == 0


# ---- every stage-2 gate blocks the files (production thresholds) ---------------------------------

PRODUCTION = {
    "retain_harmful_ratio_min": 4.0,
    "adversarial_safe_min": 400,
    "max_seq_length": 2048,
    "harmful_min": 1,
    "train_min": 1,
    "eval_min": 1,
}
STAGE2_ASSETS = [
    "eval_prompts",  # the profile declares none: an empty set, which the checks read
    "stage2_samples",
    "stage2_stats",
    "validation_report",
    "train_split",
    "eval_split",
    "stage2_files",
]


def _shards(n_harmful=110, n_retain=440, n_adv=400, tweak=None):
    harmful = [sample(i, cls="harmful", kind="harmful_completion") for i in range(n_harmful)]
    retain = [
        sample(
            10_000 + i,
            kind="adversarial_safe" if i < n_adv else "benign_answer",
            adv=i < n_adv,
            tools=[tool("lookup")] if i < n_adv else None,
        )
        for i in range(n_retain)
    ]
    if tweak:
        tweak(harmful, retain)
    return table(harmful), table(retain)


def _run_datasets(reg, prof, base: str, assets: list[str]):
    """The dataset job in process, for a subset of its assets (the rest read from storage)."""
    settings = BuildConfig(
        profile="test", registry_path=str(reg), profiles_path=str(prof), base_uri=base
    )
    defs = definitions.build_defs(settings, LLMResource())
    with instance_for_test() as instance:
        return defs.resolve_job_def(definitions.DATASET_JOB).execute_in_process(
            instance=instance,
            asset_selection=[AssetKey(k) for k in assets],
            raise_on_error=False,
        )


def _run_stage2(tmp_path, harmful, retain):
    reg, prof = write_registry(tmp_path / "config", [], thresholds=PRODUCTION)
    body = yaml.safe_load(prof.read_text())
    body["profiles"]["test"]["sources"] = ["demo_pairs"]  # the registry needs one source
    prof.write_text(yaml.safe_dump(body))
    reg.write_text(
        (REPO / "config" / "sources.yaml")
        .read_text()
        .replace("../sample_data", str(REPO / "sample_data"))
    )
    base = str(tmp_path / "data")
    storage = Storage(base)
    storage.write_table(harmful, *asset_parts(["harmful_shard"]))
    storage.write_table(retain, *asset_parts(["retain_shard"]))
    # the merge's other outputs the files read: nothing decontaminated, no human labels
    storage.write_table(
        CONTAMINATION_SCHEMA.empty_table(), *asset_parts(["dataset_decontamination"])
    )
    storage.write_table(METRICS_SCHEMA.empty_table(), *asset_parts(["judge_quality"]))
    result = _run_datasets(reg, prof, base, STAGE2_ASSETS)
    done = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    failed = sorted(
        f"{e.asset_check_key.asset_key.to_user_string()}:{e.asset_check_key.name}"
        for e in result.get_asset_check_evaluations()
        if not e.passed
    )
    return done, failed, storage


def test_a_set_at_the_production_gates_writes_the_stage2_files(tmp_path):
    done, failed, storage = _run_stage2(tmp_path, *_shards())
    assert failed == [] and "stage2_files" in done
    build_id = storage.read_bytes("circuit_breaker", "LATEST").decode()
    manifest = json.loads(storage.read_bytes("circuit_breaker", build_id, "manifest.json"))
    paths = {f["path"]: f for f in manifest["files"]}
    assert set(paths) == {
        # each row in exactly one file, one per sample kind (the source names no plan file)
        "harmful/harmful_completions.jsonl",
        "retain/adversarial_safe.jsonl",
        "retain/benign_answers.jsonl",
        "stage2/harmful.jsonl",
        "stage2/retain.jsonl",
        "stage2/train.jsonl",
        "stage2/eval.jsonl",
        "stage2/eval_only.jsonl",
        "README.md",  # the dataset card
        "token_stats.json",
        "stage2/validation_report.json",
        "stage2/stats.json",
        "stage2/qa_report.md",
        "stage2/qa_report.json",
        "schemas/canonical_sample_schema.json",  # the plan's schema file
    }
    assert (
        paths["stage2/harmful.jsonl"]["rows"] == paths["harmful/harmful_completions.jsonl"]["rows"]
    )
    assert paths["stage2/train.jsonl"]["rows"] + paths["stage2/eval.jsonl"]["rows"] == 550
    assert paths["stage2/eval_only.jsonl"]["rows"] == 0  # no evaluation set among the sources
    assert paths["retain/adversarial_safe.jsonl"]["rows"] == 400
    assert (
        paths["retain/adversarial_safe.jsonl"]["rows"]
        + paths["retain/benign_answers.jsonl"]["rows"]
        == paths["stage2/retain.jsonl"]["rows"]
    )
    assert paths["retain/adversarial_safe.jsonl"]["sources"] == {"crafted": 400}
    assert 45 <= paths["stage2/eval.jsonl"]["rows"] <= 65  # 10%, stratified by source and class
    stats = json.loads(storage.read_bytes("circuit_breaker", build_id, "stage2", "stats.json"))
    assert stats["dr_ds_ratio"] == 4.0 and stats["adversarial_safe"] == 400
    line = json.loads(
        storage.read_bytes("circuit_breaker", build_id, "stage2", "eval.jsonl").splitlines()[0]
    )
    assert line["split"] == "eval" and line["messages"][0]["role"] == "user"


def _dup_id(h, r):
    r[5]["id"] = r[4]["id"]


def _tool_without_tools(h, r):
    r[420]["messages"] = [
        msg("user", "q"),
        msg("assistant", calls=[{"id": "c", "name": "lookup", "arguments": "{}"}]),
    ]


def _too_long(h, r):
    r[430]["messages"] = [msg("user", "q"), msg("assistant", " ".join(WORDS))]


def _bad_tool_call(h, r):
    r[3]["messages"] = [
        msg("user", "q"),
        msg("assistant", calls=[{"id": "c", "name": "lookup", "arguments": "{'q': oops"}]),
    ]


@pytest.mark.parametrize(
    ("shards", "expected_failures"),
    [
        ({"n_retain": 429}, ["stage2_samples:dr_ds_ratio"]),  # 429 / 110 = 3.9
        ({"n_adv": 399}, ["stage2_samples:adversarial_safe_count"]),
        ({"tweak": _dup_id}, ["stage2_samples:stage2_samples_unique_ids"]),
        # the preflight names the unknown tool too
        (
            {"tweak": _tool_without_tools},
            ["stage2_samples:tokenizer_preflight", "stage2_samples:tools_carried"],
        ),
        ({"tweak": _too_long}, ["stage2_samples:tokenizer_preflight"]),
        ({"tweak": _bad_tool_call}, ["stage2_samples:tokenizer_preflight"]),
    ],
    ids=[
        "ratio_3.9",
        "adversarial_safe_399",
        "duplicate_id",
        "tool_sample_without_tools",
        "over_max_length",
        "unparseable_tool_call",
    ],
)
def test_each_shortfall_fails_its_gate_and_no_file_is_written(tmp_path, shards, expected_failures):
    done, failed, storage = _run_stage2(tmp_path, *_shards(**shards))
    assert failed == expected_failures
    # the gated asset itself is stored (Dagster stores it before its checks run); nothing below
    assert done == {"eval_prompts", "stage2_samples"} and not storage.exists("circuit_breaker")


@pytest.mark.parametrize(
    ("tweak", "rule"), [(_dup_id, "R5"), (_tool_without_tools, "R3"), (_bad_tool_call, "R4")]
)
def test_the_same_shortfalls_fail_strict_validation(tweak, rule):
    errors = cb.validate(cb.samples(*_shards(tweak=tweak)))
    assert {e["rule"] for e in errors.to_pylist()} == {rule}


@pytest.mark.parametrize(
    ("paths", "passed"), [(["security"], False), (["security", "metadata.security"], True)]
)
def test_a_missing_attack_outcome_over_10_percent_fails_its_check(tmp_path, paths, passed):
    entries = yaml.safe_load((REPO / "config" / "sources.yaml").read_text())["sources"]
    dojo = next(e for e in entries if e["name"] == "demo_agentdojo")
    dojo = {
        **dojo,
        "attack_outcome": paths,
        "location": {"path": str(REPO / "sample_data" / "agentdojo" / "*.json")},
    }
    reg, prof = write_registry(tmp_path / "config", [dojo])
    base = str(tmp_path / "data")
    _, labelled = _labelled("demo_agentdojo")
    Storage(base).write_table(labelled, *asset_parts(["refusal_dataset"]))
    result = _run_datasets(reg, prof, base, ["harmful_shard", "retain_shard"])
    evaluation = next(
        e
        for e in result.get_asset_check_evaluations()
        if e.asset_check_key.name == "attack_outcome_recorded"
    )
    assert evaluation.passed is passed
    assert evaluation.metadata["missing"].value == (6 if not passed else 0)
    assert evaluation.metadata["attack_rows"].value == 12


def test_dr_ratio_downsamples_the_retain_set_by_kind():
    h, r = _shards()
    kept, dropped = cb.downsample_retain(r, h.num_rows, 2.0, seed=7)
    assert kept.num_rows == 2 * h.num_rows
    before = pa.compute.value_counts(r.column("cb_kind")).to_pylist()
    after = {
        d["values"]: d["counts"]
        for d in pa.compute.value_counts(kept.column("cb_kind")).to_pylist()
    }
    for d in before:  # every kind kept in proportion
        assert after[d["values"]] + dropped[d["values"]] == d["counts"]
        assert abs(after[d["values"]] / d["counts"] - 0.5) < 0.01
    again, _ = cb.downsample_retain(r, h.num_rows, 2.0, seed=7)
    assert again.column("id").to_pylist() == kept.column("id").to_pylist()  # seeded
    assert (
        cb.downsample_retain(r, h.num_rows, 100.0, seed=7)[0].num_rows == r.num_rows
    )  # never grows
