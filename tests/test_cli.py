"""The README's main command, end to end, in a subprocess with its own instance and storage."""

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_safetygraph_demo_builds_and_prints_the_export(tmp_path: Path):
    env = {
        **os.environ,
        "DAGSTER_HOME": str(tmp_path / "home"),
        "SAFETYGRAPH_BASE_URI": str(tmp_path / "data"),
        "SAFETYGRAPH_PROFILE": "demo",
    }
    result = subprocess.run(
        [sys.executable, "-m", "safetygraph", "demo"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
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
    assert "[datasets] ok: 13 assets materialized" in out and "30/30 checks passed" in out
    assert "circuit-breaker stage 2: " in out and "stage2/train.jsonl" in out
    for source in ("demo_medical", "demo_hh_pairs"):
        assert f"[preference:{source}] ok: 3 assets materialized, 9/9 checks passed" in out
    assert (
        "[preference] ok: 3 assets materialized (preference_train, preference_eval, preference_files)"
        in out
    )
    assert "preference pairs (TRL) (standard): " in out and "train.jsonl" in out
    assert "[steering:demo_scenarios] ok: 2 assets materialized, 5/5 checks passed" in out
    for trait in ("extroversion", "neuroticism"):
        assert f"[steering:{trait}] ok: 2 assets materialized, 6/6 checks passed" in out
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
        "dataset_info.json",
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
