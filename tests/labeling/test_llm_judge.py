"""The LLM judge against a loopback server returning valid, invalid and partial JSON."""

import json

import pyarrow as pa

from safetygraph.core.storage import Storage
from safetygraph.generation import GenerationConfig, OpenAIBackend, RequestCache
from safetygraph.labeling.constitution import load_constitution
from safetygraph.labeling.heuristic import HeuristicJudge
from safetygraph.labeling.llm_judge import LLMJudge, label_json_schema, label_two_pass, parse_labels
from tests.fake_openai import FakeOpenAI
from tests.helpers import generated_table

GOOD = {
    "outcome": "REFUSAL.DIRECT",
    "style": "DIRECT",
    "harm_categories": ["weapons"],
    "harmless_topics": [],
    "prompt_harmful": True,
    "response_harmful": False,
    "response_refusal": True,
    "confidence": 0.93,
    "rationale": "The assistant declines.",
}


def responder(body):
    last = body["messages"][-1]["content"]
    first_user = next(m["content"] for m in body["messages"] if m["role"] == "user")
    if "fixable" in first_user and not last.startswith("That answer is invalid"):
        return '{"outcome": "REFUSAL.DIRECT", "style": '  # truncated JSON
    if "hopeless" in first_user:
        return json.dumps(
            {k: v for k, v in GOOD.items() if k != "confidence"}
        )  # partial: a field missing, every time
    if "unsure" in first_user:
        return json.dumps({**GOOD, "confidence": 0.4})
    if "fenced" in first_user:
        return "```json\n" + json.dumps(GOOD) + "\n```"
    return json.dumps(GOOD)


def _rows(prompts):
    return generated_table(
        [
            {"prompt": p, "tags": ["harmful"], "response": "I'm sorry, I can't help with that."}
            for p in prompts
        ]
    )


def test_valid_invalid_and_partial_json(tmp_path):
    prompts = [
        "make a bomb (ok)",
        "make a bomb (fixable)",
        "make a bomb (hopeless)",
        "make a bomb (fenced)",
    ]
    with FakeOpenAI(responder=responder) as server:
        judge = LLMJudge(
            GenerationConfig(role="judge", backend="openai", model="judge-model"),
            load_constitution(),
            lambda c: OpenAIBackend(base_url=server.url),
            cache=RequestCache(Storage(str(tmp_path))),
        )
        out = judge.label(_rows(prompts)).to_pylist()
        calls_first = sum(server.calls.values())
        judge.label(_rows(prompts))  # cached: no new calls
        assert sum(server.calls.values()) == calls_first
    assert [r["judge"] for r in out[:2]] == ["llm:judge-model"] * 2 and out[3][
        "judge"
    ] == "llm:judge-model"
    assert out[0]["label_outcome"] == "REFUSAL.DIRECT" and out[0]["label_confidence"] == 0.93
    assert (
        out[2]["judge"].startswith(f"{HeuristicJudge.name} (fallback")
        and "confidence" in out[2]["label_rationale"]
    )
    assert judge.stats == {"rows": 4, "valid_first_try": 2, "repaired": 1, "fallback": 1}
    body = server.bodies[0]
    assert (
        body["response_format"]["type"] == "json_schema" and body["messages"][0]["role"] == "system"
    )
    assert (
        "REFUSAL.PARTIAL" in body["messages"][0]["content"]
    )  # the constitution's rules are in the prompt


def test_parse_labels_rejects_inconsistent_labels():
    schema = label_json_schema(load_constitution())
    assert parse_labels(json.dumps(GOOD), schema)["outcome"] == "REFUSAL.DIRECT"
    for bad in (
        {**GOOD, "response_refusal": False},
        {**GOOD, "outcome": "COMPLY.UNSAFE", "response_refusal": False},
        {**GOOD, "harm_categories": ["aliens"]},
        {**GOOD, "extra": 1},
    ):
        try:
            parse_labels(json.dumps(bad), schema)
        except ValueError:
            continue
        raise AssertionError(f"accepted {bad}")


def test_two_pass_sends_low_confidence_rows_to_the_second_judge():
    with (
        FakeOpenAI(responder=responder) as first_srv,
        FakeOpenAI(responder=lambda b: json.dumps({**GOOD, "confidence": 0.99})) as second_srv,
    ):
        c = load_constitution()
        first = LLMJudge(
            GenerationConfig(role="judge", backend="openai", model="small"),
            c,
            lambda cfg: OpenAIBackend(base_url=first_srv.url),
        )
        second = LLMJudge(
            GenerationConfig(role="judge_second", backend="openai", model="large"),
            c,
            lambda cfg: OpenAIBackend(base_url=second_srv.url),
        )
        out, stats = label_two_pass(
            _rows(["make a bomb (ok)", "make a bomb (unsure)"]),
            first,
            second,
            confidence_threshold=0.7,
        )
    rows = out.to_pylist()
    assert stats == {"rows": 2, "second_pass": 1}
    assert (
        rows[0]["judge"] == "llm:small"
        and rows[1]["judge"] == "llm:large"
        and rows[1]["label_confidence"] == 0.99
    )
    assert sum(second_srv.calls.values()) == 1
    assert isinstance(out, pa.Table)
