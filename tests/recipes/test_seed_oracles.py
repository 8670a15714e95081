"""The five seeds' users' code, written from their documents in ../shared/seeds/, reading our files
on the demo build and on the shared build (the real files in ../shared/data, answered by a stand-in
model server): each reads what it reads upstream, by its file names, fields and id formats."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import pytest

BUILDS = ["demo", "shared"]


@pytest.fixture(params=BUILDS)
def build(request):
    """The demo build (`safetygraph demo`) or the shared build, and its profile's name."""
    fixture = "readme_demo" if request.param == "demo" else "shared_build"
    return request.getfixturevalue(fixture), request.param


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _profile(name: str) -> dict:
    from safetygraph.sources.registry import load_registry

    return load_registry().profile(name).thresholds


# ---- S1: the circuit-breaker stage-2 plan (S1-circuit-breaker-stage2-plan.md) ------------------


def validate_merge(ds_samples, dr_samples, min_ratio=4.0, min_adv_safe=400):
    """The plan's merge-time checks (V2, merge_stage2_data.py), as written there; the two size
    floors are the build profile's (the plan's own 4.0 and 400 are the stage2-plan profile's)."""
    # Check 1: Ratio
    ratio = len(dr_samples) / max(len(ds_samples), 1)
    assert ratio >= min_ratio, f"Dr:Ds ratio {ratio:.2f} < {min_ratio}"

    # Check 2: Adversarial-safe count
    adv_safe = sum(1 for s in dr_samples if s.get("labels", {}).get("is_adversarial_safe"))
    assert adv_safe >= min_adv_safe, f"Adversarial-safe count {adv_safe} < {min_adv_safe}"

    # Check 3: No duplicate IDs
    all_ids = [s["id"] for s in ds_samples + dr_samples]
    assert len(all_ids) == len(set(all_ids)), "Duplicate IDs found"

    # Check 4: Tool samples have tools field
    for s in ds_samples + dr_samples:
        if s.get("labels", {}).get("priority_class") != "general_conversation":
            assert s.get("tools"), f"Missing tools for {s['id']}"
    return ratio, adv_safe


PLAN_FILES = {
    "harmful": {"b4_flips", "agentdojo_failures"},
    "retain": {
        "b4_benign_twins",
        "adversarial_safe",
        "agentdojo_resisted",
        "tau2_traces",
        "ultrachat_subset",
        "xstest_borderline",
    },
}


def test_s1_merge_reads_the_harmful_and_retain_folders(build):
    run, profile = build
    folder = run.latest("circuit_breaker")
    # merge_stage2_data.py --harmful-dir data/circuit_breakers/harmful/ --retain-dir .../retain/
    ds = [r for f in sorted((folder / "harmful").glob("*.jsonl")) for r in _jsonl(f)]
    dr = [r for f in sorted((folder / "retain").glob("*.jsonl")) for r in _jsonl(f)]
    thresholds = _profile(profile)
    min_ratio = 0.0 if profile == "shared" else thresholds["retain_harmful_ratio_min"]
    ratio, adv_safe = validate_merge(ds, dr, min_ratio, thresholds["adversarial_safe_min"])
    # the folders hold exactly the whole sets (stage2/harmful.jsonl, stage2/retain.jsonl): each
    # row once, nothing left out
    whole = {
        name: {r["id"] for r in _jsonl(folder / "stage2" / f"{name}.jsonl")}
        for name in ("harmful", "retain")
    }
    assert {r["id"] for r in ds} == whole["harmful"] and len(ds) == len(whole["harmful"])
    assert {r["id"] for r in dr} == whole["retain"] and len(dr) == len(whole["retain"])
    # the plan's names where the build has their rows
    names = {
        side: {f.stem for f in (folder / side).glob("*.jsonl")} for side in ("harmful", "retain")
    }
    if profile == "demo":  # the bundled attack log and AgentDojo runs, adversarial-safe answers
        assert {"b4_flips", "agentdojo_failures"} <= names["harmful"]
        assert {"b4_benign_twins", "adversarial_safe", "agentdojo_resisted"} <= names["retain"]
        assert adv_safe > 0 and all(
            r["labels"]["is_adversarial_safe"]
            for r in _jsonl(folder / "retain" / "adversarial_safe.jsonl")
        )
    else:  # tau2-bench's traces; XSTest is an evaluation set here (eval_only)
        assert "tau2_traces" in names["retain"]
        traces = _jsonl(folder / "retain" / "tau2_traces.jsonl")
        assert len(traces) > 250 and all(r["source"].startswith("tau2_") for r in traces)
        assert all(r["tools"] and r["labels"]["priority_class"] == "high" for r in traces)
    # stats.json: the plan's "Dr:Ds ratio >= 4.0 in stats.json"
    stats = json.loads((folder / "stage2" / "stats.json").read_text())
    assert stats["dr_ds_ratio"] >= min_ratio


def test_s1_eval_is_the_plans_holdout_and_the_schema_file_holds(build):
    run, profile = build
    folder = run.latest("circuit_breaker")
    train = _jsonl(folder / "stage2" / "train.jsonl")
    evals = _jsonl(folder / "stage2" / "eval.jsonl")
    eval_only = _jsonl(folder / "stage2" / "eval_only.jsonl")
    # --eval-fraction 0.1 of the trainable rows (strata rounded to whole prompt clusters)
    share = len(evals) / (len(train) + len(evals))
    assert 0.05 <= share <= 0.15, share
    whole = {
        r["id"]
        for name in ("harmful", "retain")
        for r in _jsonl(folder / "stage2" / f"{name}.jsonl")
    }
    assert {r["id"] for r in train + evals} == whole
    # the evaluation sets' rows: their own file, never in train, eval, harmful/ or retain/
    if profile == "shared":
        eval_sets = {"xstest", "harmbench", "advbench", "do_not_answer", "gptfuzz"}
        # their rows, and the rows of other sources that copy one of their prompts
        assert eval_sets <= {r["source"] for r in eval_only}
        assert not eval_sets & {r["source"] for r in train + evals}
    assert not {r["id"] for r in eval_only} & whole
    schema = json.loads((folder / "schemas" / "canonical_sample_schema.json").read_text())
    validator = jsonschema.Draft202012Validator(schema)
    for f in sorted(folder.glob("*/*.jsonl")):
        for row in _jsonl(f):
            errors = [e.message for e in validator.iter_errors(row)]
            assert not errors, (f.name, row["id"], errors[:3])


# ---- S3: the medical DPO pairs (S3-medical-dpo-pairs.md) ---------------------------------------

SEED_ID = re.compile(r"^[a-z0-9_]+_\d{6}(_\d+)?$")


def test_s3_pairs_and_prompts_files_read_as_the_seed_writes_them(build):
    from datasets import load_dataset

    run, profile = build
    folder = run.latest("preference")
    # "You can feed this file into any DPO training script that expects (prompt, chosen, rejected)"
    pairs = load_dataset("json", data_files=str(folder / "stage2_med_pairs.jsonl"), split="train")
    assert {"id", "source", "category", "question_type", "question", "prompt", "chosen"} <= set(
        pairs.column_names
    ) and "rejected" in pairs.column_names
    train = _jsonl(folder / "train.jsonl")
    evals = _jsonl(folder / "eval.jsonl")
    assert len(pairs) == len(train) + len(evals) > 0
    prompts = _jsonl(folder / "stage2_med_prompts.jsonl")
    assert prompts and all(
        set(p) == {"id", "source", "question_type", "category", "question"} for p in prompts
    )
    prompt_ids = {p["id"] for p in prompts}
    assert len(prompt_ids) == len(prompts)
    for row in pairs:
        assert SEED_ID.match(row["id"]), row["id"]
        assert re.sub(r"_\d+$", "", row["id"]) in prompt_ids or row["id"] in prompt_ids
        assert row["prompt"].endswith(row["question"]) and row["chosen"] and row["rejected"]
        assert row["chosen"] != row["rejected"]
        assert row["meta"]["teacher_model"] and row["meta"]["mmt_ckpt"]
        assert re.fullmatch(r"[a-z0-9_]+", row["category"])
    if profile == "shared":  # MedQuAD only by default, the seed's ids and upstream name
        assert {r["source"] for r in pairs} == {"lavita/MedQuAD"}
        assert all(r["id"].startswith("medquad_") for r in pairs)
        assert {r["meta"]["teacher_model"] for r in pairs} == {"target"} or all(
            r["meta"]["teacher_model"] != r["meta"]["mmt_ckpt"] for r in pairs
        )
