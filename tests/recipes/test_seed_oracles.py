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
    min_ratio = 0.0 if profile == "shared" else thresholds.retain_harmful_ratio_min
    ratio, adv_safe = validate_merge(ds, dr, min_ratio, thresholds.adversarial_safe_min)
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
        # (HarmBench's and AdvBench's prompts, answered alike by the stand-in, are neither in Ds
        # nor in Dr: harmful prompts answered without harm)
        assert {"xstest", "do_not_answer", "gptfuzz"} <= {r["source"] for r in eval_only}
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


# ---- S4: psyctl's CAA dataset (S4-caa-steering-pairs.md) ---------------------------------------

QUESTION = re.compile(r"^\[Situation\]\n.+\n\[Question\]\n.+\n1\. .+\n2\. .+\n\[Answer\]$", re.S)


def test_s4_caa_dataset_and_checkpoint_read_as_psyctl_writes_them(build):
    run, _profile_name = build
    folder = run.latest("steering")
    (data,) = folder.glob("caa_dataset_*.jsonl")
    assert re.fullmatch(r"caa_dataset_\d{8}_\d{6}\.jsonl", data.name)
    rows = _jsonl(data)
    assert rows
    for row in rows:
        assert QUESTION.match(row["question"]), row["question"][:200]
        assert {row["positive"], row["neutral"]} == {"(1", "(2"}
    checkpoint = json.loads(data.with_suffix(".checkpoint.json").read_text())
    assert checkpoint["num_generated"] == len(rows)
    assert checkpoint["output_file"].endswith(data.name)
    assert checkpoint["timestamp"][:4].isdigit()
    # the same pairs as the per-trait files
    per_trait = [r for f in sorted((folder / "seed").glob("*.jsonl")) for r in _jsonl(f)]
    assert sorted(r["id"] for r in per_trait) == sorted(r["id"] for r in rows)


# ---- S2: the versioned export (S2-export-and-qa.md) ---------------------------------------------

SEED_CONSTITUTION = {
    "harm_categories": ["weapons", "violence", "self_harm", "hate_speech"],
    "refusal_indicators": ["I can't", "I won't", "not allowed"],
    "labeling_rules": {
        "outcome_determination": {
            "REFUSAL.DIRECT": "prompt_harmful=true AND response_refusal=true",
            "COMPLY.BENIGN": "prompt_harmful=false AND response_refusal=false",
        }
    },
}


@pytest.fixture(scope="module")
def demo_release(tmp_path_factory):
    """The seeds' commands on the demo profile: `export_dataset --version 1.0.0 --target-samples 40
    --seed 42` and S0's `run --datasets ... --constitution constitution.json` with a judge chosen."""
    import os
    import subprocess
    import sys

    root = tmp_path_factory.mktemp("demo_release")
    (root / "constitution.json").write_text(json.dumps(SEED_CONSTITUTION))
    env = {
        **os.environ,
        "DAGSTER_HOME": str(root / "home"),
        "SAFETYGRAPH_BASE_URI": str(root / "data"),
    }
    env.pop("SAFETYGRAPH_PROFILE", None)
    args = ["build", "refusal", "--version", "1.0.0", "--target-samples", "40", "--seed", "42"]
    args += ["--judge", "heuristic", "--constitution", "constitution.json"]
    args += ["--datasets", "demo_pairs", "demo_harmful_prompts", "demo_benign_prompts"]
    done = subprocess.run(
        [sys.executable, "-m", "safetygraph", *args],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return root / "data" / "exports" / "v1.0.0"


@pytest.fixture(params=BUILDS)
def release(request):
    if request.param == "demo":
        return request.getfixturevalue("demo_release"), "demo"
    return request.getfixturevalue("shared_build").data / "exports" / "v1.0.0", "shared"


def test_s2_release_has_the_export_seeds_files(release):
    folder, profile = release
    for name in (
        "dataset_v1.0.0.jsonl",
        "dataset_v1.0.0.parquet",
        "manifest_v1.0.0.json",
        "config_lock.json",
        "qa_report_v1.0.0.json",
    ):
        assert (folder / name).is_file(), name
    manifest = json.loads((folder / "manifest_v1.0.0.json").read_text())
    assert manifest == json.loads((folder / "manifest.json").read_text())
    assert manifest["version"] == "1.0.0"
    # "SHA256 checksums, source distribution, configuration lock, quality summary"
    files = {f["path"]: f for f in manifest["files"]}
    assert files["dataset_v1.0.0.jsonl"]["sha256"] and manifest["rows_per_source"]
    assert manifest["qa_summary"]["dataset"]["verdict"] in ("PASS", "FAIL")
    lock = json.loads((folder / "config_lock.json").read_text())
    assert {"git_commit", "seed", "config_hash", "python", "platform", "config_snapshot"} <= set(
        lock
    )
    assert "profiles.yaml" in lock["config_snapshot"]
    qa = json.loads((folder / "qa_report_v1.0.0.json").read_text())
    assert qa["verdict"] in ("PASS", "FAIL") and qa["metrics"]
    rows = _jsonl(folder / "dataset_v1.0.0.jsonl")
    if profile == "demo":  # --target-samples 40 --seed 42, and the other flags, in the lock
        assert len(rows) == 40 and lock["seed"] == 42 and manifest["target_samples"] == 40
        assert lock["profile_set"]["judge"] == "heuristic"
        assert lock["profile_set"]["target_samples"] == 40
        assert "before --target-samples" in manifest["qa_scope"]


# ---- S0: the rejection-detection pipeline (S0-rejection-detection-pipeline.md) ------------------


class RejectionDetectionDataset:
    """The document's training loader, over processed/final_dataset.json (a JSON array): each item
    the prompt and response with the four heads as labels."""

    def __init__(self, path):
        self.items = json.loads(Path(path).read_text())

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        item = self.items[i]
        return {
            "text": item["prompt"] + "\n" + (item["response"] or ""),
            "labels": {k: item[k] for k in ("head_a", "head_b", "head_c_a", "head_c_b", "head_d")},
        }


HEAD_A = {"REFUSAL.DIRECT", "REFUSAL.PARTIAL", "REFUSAL.REDIRECT", "COMPLY.BENIGN", "COMPLY.UNSAFE"}
HEAD_B = {"DIRECT", "EXPLAIN", "REDIRECT", "DIRECT_ANSWER", "STEP_BY_STEP", "TOOL_CALL", "NONE"}


def _check_final_dataset(folder: Path, judge_model: str | None = None) -> list[dict]:
    dataset = RejectionDetectionDataset(folder / "processed" / "final_dataset.json")
    assert len(dataset) > 0
    for i in range(len(dataset)):
        labels = dataset[i]["labels"]
        assert labels["head_a"] in HEAD_A and labels["head_b"] in HEAD_B
        assert set(labels["head_d"]) == {"prompt_harmful", "response_harmful", "response_refusal"}
        assert labels["head_a"].startswith("REFUSAL") == labels["head_d"]["response_refusal"]
    rows = dataset.items
    assert all(0 <= r["metadata"]["confidence"] <= 1 for r in rows)
    if judge_model:
        assert {r["metadata"]["judge_model"] for r in rows} == {judge_model}
    # evaluation-only benchmark rows are marked: never taken for training by accident
    assert all(r["split"] in ("train", "eval") and isinstance(r["eval_only"], bool) for r in rows)
    assert not [r for r in rows if r["eval_only"] and r["split"] == "train"]
    assert _jsonl(folder / "processed" / "final_dataset.jsonl") == rows
    for name in (
        "processed/dataset_info.json",
        "audit/audit_report.json",
        "audit/human_review_samples.json",
    ):
        assert (folder / name).is_file(), name
    return rows


def test_s0_loader_reads_final_dataset(build):
    run, profile = build
    rows = _check_final_dataset(run.latest("exports"))
    if profile == "shared":  # the evaluation sets are there, marked eval-only
        assert {r["source"] for r in rows if r["eval_only"]} >= {"harmbench", "xstest"}


def test_s0_flags_choose_judge_constitution_and_datasets(demo_release):
    rows = _check_final_dataset(demo_release, judge_model="heuristic-v2")
    assert {r["source"] for r in rows} <= {
        "demo_pairs",
        "demo_harmful_prompts",
        "demo_benign_prompts",
    }
    # the JSON constitution's four harm categories are the only ones head C-a names
    assert {c for r in rows for c in r["head_c_a"]} <= set(SEED_CONSTITUTION["harm_categories"])
