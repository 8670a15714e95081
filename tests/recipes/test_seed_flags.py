"""The seeds' command-line flags on `safetygraph build` (issue 33): psyctl's `--personality`
(comma-separated, any case) and `--limit-samples`, `--seed`; an unknown trait is one line, exit 2,
before any job runs. The flags are settings laid over the profile (SAFETYGRAPH_PROFILE_SET)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from safetygraph.recipes.steering.traits import TraitsError, load_traits
from safetygraph.sources.profile_set import apply_profile_set, parse_profile_set
from safetygraph.sources.registry import RegistryError, load_registry
from tests.helpers import user_env

BIN = Path(sys.executable).parent


def test_trait_names_resolve_in_any_case_and_unknown_ones_name_the_known():
    book = load_traits()
    assert book.resolve(["Extroversion", " NEUROTICISM", "extroversion"]) == [
        "extroversion",
        "neuroticism",
    ]
    with pytest.raises(TraitsError, match=r"'Charisma' not in .*known: extroversion"):
        book.resolve(["Extroversion", "Charisma"])


def test_a_profile_set_lays_settings_over_the_profile_and_checks_them():
    reg = load_registry()
    demo = reg.profile("demo")
    body = parse_profile_set('{"seed": 7, "steering": {"traits": ["extroversion"], "limit": 3}}')
    laid = apply_profile_set(demo, reg, body)
    assert laid.seed == 7 and laid.steering.traits == ("extroversion",)
    assert laid.steering.limit == 3 and laid.steering.sources == demo.steering.sources
    assert apply_profile_set(demo, reg, {}) is demo
    with pytest.raises(RegistryError, match="can set steering, preference, seed, sources"):
        parse_profile_set('{"thresholds": {}}')
    with pytest.raises(RegistryError, match="not in the registry"):
        apply_profile_set(demo, reg, {"steering": {"sources": ["nope"]}})
    with pytest.raises(RegistryError, match="whole number"):
        apply_profile_set(demo, reg, {"seed": "x"})


def _cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / "safetygraph"), *args],
        cwd=cwd,
        env=user_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_build_steering_with_the_seeds_flags(tmp_path):
    bad = _cli(["build", "steering", "--personality", "Extroversion, Charisma"], tmp_path)
    assert bad.returncode == 2 and "'Charisma' not in" in bad.stderr
    assert "running" not in bad.stdout  # refused before any job
    wrong = _cli(["build", "refusal", "--personality", "Extroversion"], tmp_path)
    assert wrong.returncode != 0 and "steering recipe's flags" in wrong.stderr
    run = _cli(
        [
            "build",
            "steering",
            "--personality",
            "EXTROVERSION",
            "--limit-samples",
            "8",
            "--seed",
            "5",
            "--out",
            "out",
        ],
        tmp_path,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    files = {f["path"]: f["rows"] for f in manifest["files"]}
    assert "seed/extroversion.jsonl" in files and not any("neuroticism" in p for p in files)
    assert 4 < files["seed/extroversion.jsonl"] <= 8  # the demo has 22


def test_qa_summary_and_gate():
    from safetygraph.core.builds import QAFailedError, qa_gate, qa_summary

    reports = {
        "train.jsonl": {
            "verdict": "FAIL",
            "metrics": [
                {
                    "metric": "largest single-source share",
                    "value": 1.0,
                    "op": "<=",
                    "threshold": 0.9,
                    "passed": False,
                },
                {
                    "metric": "duplicate ids",
                    "value": 0.0,
                    "op": "<=",
                    "threshold": 0.0,
                    "passed": True,
                },
            ],
        },
        "eval.jsonl": {"verdict": "PASS", "metrics": []},
    }
    summary = qa_summary(reports)
    assert summary["train.jsonl"]["failed"] == ["largest single-source share 1 (must be <= 0.9)"]
    assert summary["eval.jsonl"] == {"verdict": "PASS", "failed": []}
    assert qa_gate("preference", summary, "warn") == [
        "train.jsonl: largest single-source share 1 (must be <= 0.9)"
    ]
    with pytest.raises(QAFailedError, match="preference files not published.*files_qa: warn"):
        qa_gate("preference", summary, "block")
    with pytest.raises(QAFailedError, match="use block or warn"):
        qa_gate("preference", summary, "maybe")


def test_a_failed_files_qa_stops_the_line_or_warns_as_the_profile_chose(tmp_path):
    """A QA threshold the demo's preference files do not meet (largest source share 0.5): by default
    nothing is published and the build fails naming the metric; a profile with files_qa: warn
    publishes the files (QA summary in the manifest) and the files_qa check fails at WARN. A
    one-source recipe is not failed for its single-source share."""
    env = user_env()
    cli = [str(BIN / "safetygraph")]
    subprocess.run([*cli, "init", "cfg"], cwd=tmp_path, env=env, check=True, capture_output=True)
    profiles = tmp_path / "cfg" / "profiles.yaml"
    body = yaml.safe_load(profiles.read_text())
    body["profiles"]["demo"]["thresholds"]["qa"] = {"max_source_share": 0.5}
    profiles.write_text(yaml.safe_dump(body, sort_keys=False))
    build = [*cli, "--config-dir", "cfg", "build", "preference", "-v"]
    blocked = subprocess.run(
        build, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
    )
    assert blocked.returncode == 1, blocked.stdout[-2000:]
    assert "preference files not published" in blocked.stdout
    assert "largest single-source share" in blocked.stdout and "(must be <= 0.5)" in blocked.stdout
    root = tmp_path / ".safetygraph" / "data" / "preference"
    assert not (root / "LATEST").exists()
    body["profiles"]["demo"]["thresholds"]["files_qa"] = "warn"
    profiles.write_text(yaml.safe_dump(body, sort_keys=False))
    warned = subprocess.run(
        build, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
    )
    assert warned.returncode == 0, warned.stdout[-3000:]
    assert "check preference_files:files_qa FAIL (WARN)" in warned.stdout
    manifest = json.loads((root / (root / "LATEST").read_text() / "manifest.json").read_text())
    assert manifest["qa_summary"]["train.jsonl"]["verdict"] == "FAIL"
    one = subprocess.run(
        [*cli, "build", "preference", "-v"],
        cwd=tmp_path,
        env={
            **env,
            "SAFETYGRAPH_PROFILE_SET": json.dumps({"preference": {"sources": ["demo_hh_pairs"]}}),
        },
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert one.returncode == 0 and "check preference_files:files_qa pass" in one.stdout, one.stdout[
        -3000:
    ]
