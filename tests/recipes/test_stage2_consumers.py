"""The stage-2 files against their real consumers: every row of the demo's train and eval files
renders through transformers' apply_chat_template with Meta's stock Llama-3.1 template and through
Meta's reference Llama-3 encoder (llama-models), and through Mistral's reference encoder
(mistral-common); crafted bad rows fail the preflight with a message that names the row."""

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

import pyarrow.compute as pc
import pytest

from safetygraph.recipes.circuit_breaker.preflight import ChatTokenizer, preflight_file
from safetygraph.recipes.circuit_breaker.references import Llama3Reference, MistralReference
from tests.conftest import REPO

TEMPLATES = Path(
    os.environ.get("SAFETYGRAPH_REFERENCE_TEMPLATES", REPO / ".cache" / "reference-templates")
)
LLAMA31 = TEMPLATES / "meta-llama-Llama-3.1-8B-Instruct.jinja"
MISTRAL_NEMO = TEMPLATES / "mistralai-Mistral-Nemo-Instruct-2407.jinja"


def _template(path: Path) -> str:
    if not path.is_file():
        pytest.skip(f"stock chat template not present at {path}: run .ci/fetch-templates")
    return str(path)


@pytest.fixture(scope="module")
def demo_build(readme_demo) -> Path:
    """The stage-2 build folder the README's demo exports (one run for the session)."""
    return readme_demo.latest("circuit_breaker")


@pytest.fixture(scope="module")
def demo_files(demo_build: Path):
    """The stage-2 train and eval files of the demo's build."""
    return {
        name: (demo_build / "stage2" / f"{name}.jsonl").read_bytes() for name in ("train", "eval")
    }


def test_the_plans_merge_check_passes_on_the_stage2_files(demo_build: Path):
    """The circuit-breaker plan's merge check, as a test oracle written from the plan's description
    (not from our gates): it reads stage2/harmful.jsonl and stage2/retain.jsonl, counts the
    adversarial-safe samples by ``labels.is_adversarial_safe``, takes the tool-use samples by
    ``labels.uses_tools`` and wants ``tools`` on each, wants unique ids and Dr:Ds >= 4.0, and reads
    every sample's ``labels.priority_class``. Its reports are under stage2/."""
    harmful = _rows((demo_build / "stage2" / "harmful.jsonl").read_bytes())
    retain = _rows((demo_build / "stage2" / "retain.jsonl").read_bytes())
    rows = harmful + retain
    assert all(
        {"is_adversarial_safe", "priority_class", "uses_tools"} <= set(r["labels"]) for r in rows
    )
    ids = [r["id"] for r in rows]
    assert len(ids) == len(set(ids))
    assert len(retain) / len(harmful) >= 4.0
    adversarial_safe = sum(r["labels"]["is_adversarial_safe"] for r in rows)
    assert adversarial_safe >= 10  # the demo profile's adversarial_safe_min
    assert all(not r["labels"]["is_adversarial_safe"] for r in harmful)
    tool_use = [r for r in rows if r["labels"]["uses_tools"]]
    assert tool_use and all(r.get("tools") for r in tool_use)
    # uses_tools says what the messages show: a tool call or a tool result
    for r in rows:
        shown = any(m.get("tool_calls") or m["role"] == "tool" for m in r["messages"])
        assert r["labels"]["uses_tools"] == shown, r["id"]
    assert {r["labels"]["priority_class"] for r in rows} <= {
        "critical",
        "high",
        "standard",
        "general_conversation",
    }
    # the plan's merge check 4: a row that is not general conversation carries its tools
    assert all(
        r.get("tools") for r in rows if r["labels"]["priority_class"] != "general_conversation"
    )
    assert all(
        r["labels"]["priority_class"] == "critical"
        for r in rows
        if r["labels"]["is_adversarial_safe"]
    )
    # the folders: each row of stage2/harmful and stage2/retain in exactly one of their files
    for shard, whole in (("harmful", harmful), ("retain", retain)):
        ids = [r["id"] for f in (demo_build / shard).glob("*.jsonl") for r in _rows(f.read_bytes())]
        assert sorted(ids) == sorted(r["id"] for r in whole)
    stats = json.loads((demo_build / "stage2" / "stats.json").read_text())
    assert stats["harmful"] == len(harmful) and stats["retain"] == len(retain)
    assert (
        json.loads((demo_build / "stage2" / "validation_report.json").read_text())[
            "samples_with_errors"
        ]
        == 0
    )
    qa = json.loads((demo_build / "stage2" / "qa_report.json").read_text())
    assert qa["recipe"] == "circuit_breaker" and qa["verdict"] == "PASS"
    assert any(m["metric"] == "retain:harmful ratio (Dr:Ds)" for m in qa["metrics"])


def _hf(template: Path, bos: str, eos: str):
    """transformers' fast tokenizer over the demo vocabulary with a stock chat template."""
    transformers = pytest.importorskip("transformers")
    from tokenizers import Tokenizer

    return transformers.PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer.from_file(
            str(REPO / "sample_data" / "tokenizer" / "tokenizer.json")
        ),
        chat_template=Path(_template(template)).read_text(),
        bos_token=bos,
        eos_token=eos,
    )


def _rows(data: bytes) -> list[dict]:
    return [json.loads(line) for line in data.decode().splitlines()]


def test_every_demo_row_renders_with_the_stock_llama31_template_and_meta_reference(demo_files):
    hf = _hf(LLAMA31, "<|begin_of_text|>", "<|eot_id|>")
    reference = Llama3Reference()
    counts = []
    for name, data in demo_files.items():
        rows = _rows(data)
        assert rows, name
        for row in rows:
            text = hf.apply_chat_template(row["messages"], tools=row.get("tools"), tokenize=False)
            assert text.startswith("<|begin_of_text|><|start_header_id|>system"), row["id"]
            counts.append(reference.count(row))
            # no null keys anywhere in a message
            assert all(v is not None for m in row["messages"] for v in m.values()), row["id"]
    q = statistics.quantiles(counts, n=20)
    print(
        f"demo stage 2, Llama-3 tokens: n={len(counts)} p50={statistics.median(counts)} p95={q[18]} max={max(counts)}"
    )
    assert len(counts) == sum(len(_rows(d)) for d in demo_files.values())


def test_the_preflight_passes_the_demo_files_for_llama3(demo_files):
    tok = ChatTokenizer.load(
        str(REPO / "sample_data" / "tokenizer"), template_file=_template(LLAMA31)
    )
    for data in demo_files.values():
        report = preflight_file(data, tok, 2048, [Llama3Reference()])
        failed = report.filter(pc.is_valid(report.column("error")))
        assert failed.num_rows == 0, failed.slice(0, 3).to_pylist()
        assert pc.min(report.column("reference_tokens")).as_py() > 0


def test_every_demo_row_renders_for_mistral(demo_files):
    """Mistral's stock template (Mistral-Nemo) through transformers, and Mistral's reference
    encoder in finetuning mode. (Mistral templates move the tool schemas next to the last user
    turn, so a prefix rendering is no prefix of the whole: loss masks for Mistral come from
    mistral-common's own tooling, not from the template.)"""
    hf = _hf(MISTRAL_NEMO, "<s>", "</s>")
    reference = MistralReference("v3")
    for data in demo_files.values():
        for row in _rows(data):
            assert hf.apply_chat_template(row["messages"], tools=row.get("tools"), tokenize=False)
            assert reference.count(row) > 0, row["id"]


def _tool_row(demo_files) -> dict:
    return next(
        r for r in _rows(demo_files["train"]) if any(m.get("tool_calls") for m in r["messages"])
    )


def test_crafted_rows_fail_the_preflight_by_name(demo_files):
    good = _tool_row(demo_files)
    null_calls = json.loads(json.dumps(good))
    null_calls["id"] = "row-null-tool-calls"
    for m in null_calls["messages"]:
        m.setdefault("tool_calls", None)
    string_args = json.loads(json.dumps(good))
    string_args["id"] = "row-string-arguments"
    for m in string_args["messages"]:
        for c in m.get("tool_calls") or []:
            c["function"]["arguments"] = json.dumps(c["function"]["arguments"])
    too_long = json.loads(json.dumps(good))
    too_long["id"] = "row-too-long"
    too_long["messages"][0]["content"] = "please " * 3000
    unknown_tool = json.loads(json.dumps(good))
    unknown_tool["id"] = "row-unknown-tool"
    next(m for m in unknown_tool["messages"] if m.get("tool_calls"))["tool_calls"][0]["function"][
        "name"
    ] = "launch_rockets"
    data = (
        "".join(
            json.dumps(r) + "\n" for r in (good, null_calls, string_args, too_long, unknown_tool)
        )
        + "{oops\n"
    )
    tok = ChatTokenizer.load(
        str(REPO / "sample_data" / "tokenizer"), template_file=_template(LLAMA31)
    )
    report = {
        r["id"]: r
        for r in preflight_file(data.encode(), tok, 2048, [Llama3Reference()]).to_pylist()
    }
    assert report[good["id"]]["error"] is None
    # transformers 5 drops null keys before rendering; a raw Jinja render of Meta's stock template
    # (what transformers 4 did) takes the tool-call branch on the null key and fails on len(None)
    assert "tool_calls: None is not of type 'array'" in report["row-null-tool-calls"]["error"]
    with pytest.raises(TypeError, match="NoneType"):
        tok.render_jinja(null_calls["messages"], null_calls.get("tools"))
    assert "arguments must be a JSON object" in report["row-string-arguments"]["error"]
    assert (
        "over max_seq_length 2048" in report["row-too-long"]["error"]
        and report["row-too-long"]["over_length"]
    )
    assert (
        "calls 'launch_rockets', a tool the row carries no schema for"
        in report["row-unknown-tool"]["error"]
    )
    assert report["line 6"]["error"].startswith("line 6: not JSON")


def test_mistral_reference_rejects_what_mistral_cannot_encode(demo_files):
    row = _tool_row(demo_files)
    bad_id = json.loads(json.dumps(row))
    bad_id["id"] = "row-openai-call-id"
    for m in bad_id["messages"]:
        for c in m.get("tool_calls") or []:
            c["id"] = "call_1"
        if m["role"] == "tool":
            m["tool_call_id"] = "call_1"
    tok = ChatTokenizer.load(str(REPO / "sample_data" / "tokenizer"))
    data = (json.dumps(row) + "\n" + json.dumps(bad_id) + "\n").encode()
    report = {
        r["id"]: r for r in preflight_file(data, tok, 4096, [MistralReference("v3")]).to_pylist()
    }
    assert report[row["id"]]["error"] is None
    assert "must be a-z, A-Z, 0-9, with a length of 9" in report["row-openai-call-id"]["error"]


def test_shared_profile_stage2_files_render_for_llama3(tmp_path, shared_data):
    """The shared profile (real XSTest, HarmBench, AdvBench, Do-Not-Answer, tau2, hh-rlhf) built with a
    model server on loopback, its Dr:Ds floor set aside (a stand-in server answers every prompt
    alike): every row of its stage-2 train and eval files renders with Meta's stock template through
    transformers and with Meta's reference encoder."""
    import yaml

    from tests.fake_openai import FakeOpenAI

    hf = _hf(LLAMA31, "<|begin_of_text|>", "<|eot_id|>")
    body = yaml.safe_load((REPO / "config" / "profiles.yaml").read_text())
    shared = body["profiles"]["shared"]
    shared["thresholds"]["retain_harmful_ratio_min"] = 0.0
    # the preflight (and over_length: drop) renders with the model's own template
    shared["thresholds"]["preflight_chat_template"] = _template(LLAMA31)
    shared["preference"] = {"sources": []}
    profiles = tmp_path / "profiles.yaml"
    profiles.write_text(yaml.safe_dump(body))
    with FakeOpenAI(
        responder=lambda b: "Here is a short, careful answer: " + b["messages"][-1]["content"][:60]
    ) as server:
        env = {
            **os.environ,
            "DAGSTER_HOME": str(tmp_path / "home"),
            "SAFETYGRAPH_BASE_URI": str(tmp_path / "data"),
            "SAFETYGRAPH_PROFILES": str(profiles),
            "SAFETYGRAPH_OPENAI_BASE_URL": server.url,
        }
        done = subprocess.run(
            [sys.executable, "-m", "safetygraph", "demo", "--profile", "shared"],
            env=env,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=900,
        )
    assert "circuit-breaker stage 2: " in done.stdout, done.stdout[-3000:] + done.stderr[-2000:]
    root = tmp_path / "data" / "circuit_breaker"
    build = root / (root / "LATEST").read_text()
    reference, counts = Llama3Reference(), []
    for name in ("train", "eval", "eval_only"):
        for row in _rows((build / "stage2" / f"{name}.jsonl").read_bytes()):
            assert hf.apply_chat_template(row["messages"], tools=row.get("tools"), tokenize=False)
            counts.append(
                reference.text_count(
                    hf.apply_chat_template(row["messages"], tools=row.get("tools"), tokenize=False)
                )
            )
    q = statistics.quantiles(counts, n=20)
    print(
        f"shared stage 2, Llama-3 tokens (stock template, tools included): n={len(counts)} p50={statistics.median(counts)} p95={q[18]} max={max(counts)}"
    )
    assert (
        len(counts) > 5000 and max(counts) <= 2048
    )  # over_length: drop keeps the files within max_seq_length
