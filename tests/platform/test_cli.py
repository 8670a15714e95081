"""The README's main command, end to end, in a subprocess with its own instance and storage."""

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_safetygraph_demo_builds_and_prints_the_export(readme_demo):
    """The session's README demo (run from its own folder, not the repository)."""
    result, tmp_path = readme_demo.result, readme_demo.root
    out = result.stdout
    assert result.returncode == 0, out + result.stderr[-3000:]
    for source in (
        "demo_harmful_prompts",
        "demo_benign_prompts",
        "demo_pairs",
        "demo_agentic",
        "demo_attacks",
        "demo_agentdojo",
    ):
        assert f"[{source}] ok: 5 assets materialized, 10/10 checks passed" in out
    assert "[datasets] ok: 17 assets materialized" in out and "37/37 checks passed" in out
    assert "circuit-breaker stage 2: " in out and "stage2/train.jsonl" in out
    for source in ("demo_medical", "demo_hh_pairs"):
        assert f"[preference:{source}] ok: 3 assets materialized, 9/9 checks passed" in out
    assert (
        "[preference] ok: 5 assets materialized (eval_prompts, preference_decontamination, "
        "preference_train, preference_eval, preference_files)" in out
    )
    assert "preference pairs (TRL) (standard): " in out and "train.jsonl" in out
    assert "[steering:demo_scenarios] ok: 2 assets materialized, 5/5 checks passed" in out
    for trait in ("extroversion", "neuroticism"):
        assert f"[steering:{trait}] ok: 2 assets materialized, 7/7 checks passed" in out
    assert "[steering] ok: 1 assets materialized (steering_files)" in out
    assert "steering pairs (seed and CAA formats): " in out and "caa/extroversion.jsonl" in out
    manifest_line = next(line for line in out.splitlines() if line.startswith("manifest: "))
    manifest = json.loads(Path(manifest_line.split(": ", 1)[1]).read_text())
    assert {f["path"] for f in manifest["files"]} >= {
        "train.jsonl",
        "train.parquet",
        "eval.jsonl",
        "eval.parquet",
        "qa_report.md",
        "processed/dataset_info.json",
    }
    assert (tmp_path / "home" / "dagster.yaml").exists()  # runs recorded for the UI


def test_sources_lists_the_registry():
    result = subprocess.run(
        [sys.executable, "-m", "safetygraph", "sources", "--profile", "shared"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0
    assert "* xstest" in result.stdout and "shared/data/xstest/xstest_prompts.csv" in result.stdout


def _cli(tmp_path: Path, *args: str, **env_extra: str) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "DAGSTER_HOME": str(tmp_path / "home"),
        "SAFETYGRAPH_BASE_URI": str(tmp_path / "data"),
        **env_extra,
    }
    env.pop("SAFETYGRAPH_PROFILE", None)
    return subprocess.run(
        [sys.executable, "-m", "safetygraph", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_config_mistakes_are_one_line_that_names_the_file_and_the_fix(tmp_path: Path):
    profiles = (REPO / "config" / "profiles.yaml").read_text()
    registry = (
        (REPO / "config" / "sources.yaml")
        .read_text()
        .replace("../sample_data/", f"{REPO}/sample_data/")
    )
    broken_yaml = tmp_path / "profiles-broken.yaml"
    broken_yaml.write_text(
        profiles.replace("  defaults:\n", "  defaults:\n    oops: [unclosed\n", 1)
    )
    misspelt = tmp_path / "sources-misspelt.yaml"
    misspelt.write_text(registry.replace("format:", "formt:", 1))
    cases = [
        (
            (),
            {"SAFETYGRAPH_PROFILES": str(REPO / "config" / "profiles.yaml")},
            ["profile 'nope' is not defined; known profiles: demo"],
        ),
        ((), {"SAFETYGRAPH_PROFILES": str(broken_yaml)}, [f"{broken_yaml}:", "YAML syntax error"]),
        (
            (),
            {"SAFETYGRAPH_REGISTRY": str(misspelt)},
            [f"{misspelt} entry 1", "unknown key 'formt'; did you mean 'format'?"],
        ),
    ]
    for i, (_, env, expected) in enumerate(cases):
        args = ("demo", "--profile", "nope") if i == 0 else ("demo",)
        result = _cli(tmp_path, *args, **env)
        err = result.stderr.strip().splitlines()
        assert (
            result.returncode == 2 and len(err) == 1 and err[0].startswith("safetygraph: error: ")
        ), result.stderr[-2000:]
        for text in expected:
            assert text in err[0], err[0]


def test_a_mapping_typo_names_the_source_first(tmp_path: Path):
    registry = (
        (REPO / "config" / "sources.yaml")
        .read_text()
        .replace("../sample_data/", f"{REPO}/sample_data/")
    )
    typo = tmp_path / "sources-typo.yaml"
    typo.write_text(
        registry.replace("mapping: {prompt: instruction,", "mapping: {prompt: instrution,", 1)
    )
    result = _cli(tmp_path, "demo", SAFETYGRAPH_REGISTRY=str(typo))
    assert result.returncode == 1
    first = [line for line in result.stdout.splitlines() if line.startswith("first failure: ")]
    assert first == [
        "first failure: [demo_pairs] step ingest_source: source 'demo_pairs': no row of "
        f"{REPO}/sample_data/pairs.jsonl has the mapped column(s) ['instrution']; fix the mapping "
        "of this source in config/sources.yaml"
    ]
    # the merge's gate says which source it is missing
    assert (
        "check judge_quality:judge_meets_floors FAIL (ERROR): sources_without_labels=demo_pairs"
        in result.stdout
    )


def test_verify_catches_a_flipped_byte(tmp_path: Path):
    from safetygraph.core.builds import new_build_id, publish
    from safetygraph.core.storage import Storage

    storage = Storage(str(tmp_path / "data"))
    build_id = new_build_id({"test": 1})
    local = tmp_path / "train.jsonl"
    local.write_bytes(b'{"a": 1}\n{"a": 2}\n')
    publish(storage, "exports", build_id, [("train.jsonl", str(local), 2)], {})
    folder = tmp_path / "data" / "exports"
    ok = _cli(tmp_path, "verify", str(folder))  # the root: LATEST names the build
    assert ok.returncode == 0 and "ok, 1 files match the manifest" in ok.stdout
    path = folder / build_id / "train.jsonl"
    data = bytearray(path.read_bytes())
    data[3] ^= 0x01
    path.write_bytes(bytes(data))
    bad = _cli(tmp_path, "verify", str(folder / build_id))
    assert (
        bad.returncode == 1 and "train.jsonl: sha256" in bad.stdout and "1 problem(s)" in bad.stdout
    )


def test_validate_lints_the_configuration_and_finds_missing_files(tmp_path: Path):
    ok = _cli(tmp_path, "validate", "--profile", "demo")
    assert (
        ok.returncode == 0
        and "profile 'demo': ok" in ok.stdout
        and "refusal-classifier-v1" in ok.stdout
    )
    registry = (
        (REPO / "config" / "sources.yaml")
        .read_text()
        .replace("../sample_data/", f"{REPO}/sample_data/")
    )
    gone = tmp_path / "sources.yaml"
    gone.write_text(registry.replace("pairs.jsonl", "pairs-gone.jsonl", 1))
    bad = _cli(tmp_path, "validate", "--profile", "demo", SAFETYGRAPH_REGISTRY=str(gone))
    assert bad.returncode == 1 and "demo_pairs" in bad.stdout and "MISSING" in bad.stdout
    assert "1 source file(s) missing" in bad.stdout


def test_a_subset_of_sources_and_only_the_per_source_chains(tmp_path: Path):
    result = _cli(
        tmp_path, "demo", "--profile", "demo", "--sources", "demo_pairs", "--only-sources"
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "[demo_pairs] ok: 5 assets materialized" in result.stdout
    assert "demo_harmful_prompts" not in result.stdout and "[datasets]" not in result.stdout
    unknown = _cli(tmp_path, "demo", "--profile", "demo", "--sources", "nope")
    assert unknown.returncode == 2 and "--sources nope: not in profile 'demo'" in unknown.stderr


def test_allow_partial_merges_the_ready_sources(tmp_path: Path):
    """Two of the six sources built: the merge fails without --allow-partial and goes on with it."""
    args = ("demo", "--profile", "demo", "--sources", "demo_pairs,demo_harmful_prompts")
    strict = _cli(tmp_path, *args)
    assert strict.returncode == 1 and "[datasets] FAILED" in strict.stdout
    assert (
        "first failure: [datasets] step refusal_merge: cannot merge: demo_benign_prompts is not_built"
        in strict.stdout
    )
    partial = _cli(tmp_path, *args, "--allow-partial")
    # the two built sources are merged (83 rows: under the demo's floor of 100, which still gates)
    assert (
        "materialized (eval_prompts, judge_quality, dataset_decontamination, refusal_dataset)"
        in partial.stdout
    )
    assert (
        "refusal_dataset:refusal_dataset_min_rows FAIL (ERROR): rows=83; minimum=100"
        in partial.stdout
    )


def test_recorded_sources_need_no_model_server_and_the_others_say_why(tmp_path: Path, shared_data):
    env = {"SAFETYGRAPH_OPENAI_BASE_URL": ""}
    result = _cli(
        tmp_path,
        "demo",
        "--profile",
        "shared",
        "--sources",
        "hh_rlhf,tau2_mock,advbench",
        "--only-sources",
        **env,
    )
    assert result.returncode == 1
    # hh-rlhf carries its answers: 4 of its 2,312 transcripts end on the user and stay unanswered
    assert "[hh_rlhf] ok: 5 assets materialized" in result.stdout
    # tau2 traces are built without a model: the two tasks without expected agent actions are
    # skipped with the reason, and the source is not blocked
    assert "[tau2_mock] ok: 5 assets materialized" in result.stdout
    # AdvBench's behaviours are prompts: they need a model, and the summary says so
    assert (
        "step generated_responses failed: source 'advbench': 520 prompt-only row(s) need an answer "
        "from generation config 'target' (backend openai, model target) and no model server is set"
    ) in result.stdout
