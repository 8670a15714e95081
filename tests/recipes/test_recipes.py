"""Each recipe stands on its own: a circuit-breaker gate that fails does not stop the refusal export,
the preference pairs or the steering pairs; ``build RECIPE`` builds one recipe, versioned and copied
out; ``qa`` and ``preflight`` check any file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "DAGSTER_HOME": str(tmp_path / "home"),
        "SAFETYGRAPH_BASE_URI": str(tmp_path / "data"),
        "SAFETYGRAPH_PROFILE": "demo",
        **extra,
    }


def _cli(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "safetygraph", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )


def _latest(data: Path, root: str) -> Path | None:
    latest = data / root / "LATEST"
    return data / root / latest.read_text().strip() if latest.exists() else None


def test_a_failed_circuit_breaker_gate_blocks_only_the_stage2_files(tmp_path: Path):
    profiles = yaml.safe_load((REPO / "config" / "profiles.yaml").read_text())
    # the demo's Dr:Ds is about 9; a floor of 1000 makes the merge gate fail
    profiles["profiles"]["demo"]["thresholds"]["retain_harmful_ratio_min"] = 1000.0
    path = tmp_path / "profiles.yaml"
    path.write_text(yaml.safe_dump(profiles, sort_keys=False))
    result = _cli(["demo"], _env(tmp_path, SAFETYGRAPH_PROFILES=str(path)), tmp_path)
    out = result.stdout
    assert result.returncode == 1, out + result.stderr[-3000:]
    assert "check stage2_samples:dr_ds_ratio FAIL (ERROR)" in out
    assert "circuit-breaker stage 2: not written" in out
    data = tmp_path / "data"
    # no stage-2 file at all: the files asset sits below the gate
    assert not (data / "circuit_breaker").exists() or not any(
        p.is_file() for p in (data / "circuit_breaker").rglob("*")
    )
    # the refusal export is complete, with its manifest, and verifies
    export = _latest(data, "exports")
    assert export is not None and (export / "manifest.json").exists()
    manifest = json.loads((export / "manifest.json").read_text())
    paths = {f["path"] for f in manifest["files"]}
    assert {"refusal_dataset.jsonl", "train.jsonl", "eval.jsonl", "qa_report.json"} <= paths
    assert {"processed/final_dataset.json", "audit/audit_report.json"} <= paths
    assert _cli(["verify", str(export)], _env(tmp_path), tmp_path).returncode == 0
    # its split is the refusal recipe's own: every merged row, on one side
    rows = {f["path"]: f["rows"] for f in manifest["files"]}
    assert rows["train.jsonl"] + rows["eval.jsonl"] == rows["refusal_dataset.jsonl"]
    qa = json.loads((export / "qa_report.json").read_text())
    assert qa["recipe"] == "refusal" and qa["verdict"] == "PASS"
    assert not any("Dr:Ds" in m["metric"] for m in qa["metrics"])
    # the preference and steering files are written too
    for root in ("preference", "steering"):
        build = _latest(data, root)
        assert build is not None and (build / "manifest.json").exists(), root
        # each with its own QA: every JSONL file it wrote, checked as `safetygraph qa` checks it
        qa = json.loads((build / "qa_report.json").read_text())
        jsonl = {
            f["path"]
            for f in json.loads((build / "manifest.json").read_text())["files"]
            if f["path"].endswith(".jsonl")
        }
        assert set(qa) == jsonl and all(r["verdict"] == "PASS" for r in qa.values()), root
    assert "refusal export: " in out and "preference pairs (TRL)" in out


def test_build_one_recipe_versioned_and_copied_out(tmp_path: Path):
    env = _env(tmp_path)
    out_dir = tmp_path / "release"
    result = _cli(["build", "refusal", "--version", "1.0.0", "--out", str(out_dir)], env, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    assert "[refusal] ok" in result.stdout
    data = tmp_path / "data"
    # only the refusal recipe ran: no circuit-breaker, preference or steering build
    for root in ("circuit_breaker", "preference", "steering"):
        assert _latest(data, root) is None, root
    build = data / "exports" / "v1.0.0"
    manifest = json.loads((build / "manifest.json").read_text())
    assert manifest["version"] == "1.0.0" and manifest["recipe"] == "refusal"
    paths = {f["path"] for f in manifest["files"]}
    # the export seed's names (S2): dataset_v1.0.0.jsonl, qa_report_v1.0.0.json, config_lock.json
    assert {
        "dataset_v1.0.0.jsonl",
        "dataset_v1.0.0.parquet",
        "train_v1.0.0.parquet",
        "eval_v1.0.0.jsonl",
        "qa_report_v1.0.0.json",
        "config_lock.json",
    } <= paths
    assert (build / "manifest_v1.0.0.json").read_bytes() == (build / "manifest.json").read_bytes()
    copied = json.loads((out_dir / "manifest.json").read_text())
    assert copied == manifest
    assert (out_dir / "manifest_v1.0.0.json").read_bytes() == (
        out_dir / "manifest.json"
    ).read_bytes()
    assert _cli(["verify", str(out_dir)], env, tmp_path).returncode == 0
    # a released version is never overwritten
    again = _cli(["build", "refusal", "--version", "1.0.0"], env, tmp_path)
    assert again.returncode == 2 and "[refusal] running" not in again.stdout
    assert "already holds a complete export of version 1.0.0" in again.stderr
    assert json.loads((build / "manifest.json").read_text()) == manifest
    # qa on the exported file, and on a broken copy of it
    qa = _cli(["qa", str(build / "dataset_v1.0.0.jsonl")], env, tmp_path)
    assert qa.returncode == 0 and "Verdict: PASS" in qa.stdout, qa.stdout + qa.stderr
    lines = (build / "dataset_v1.0.0.jsonl").read_text().splitlines()
    broken = tmp_path / "broken.jsonl"
    broken.write_text("\n".join([lines[0], lines[0], "", "{not json", *lines[1:5]]) + "\n")
    report_path = tmp_path / "qa.json"
    qa = _cli(["qa", str(broken), "--json", str(report_path)], env, tmp_path)
    assert qa.returncode == 1
    report = json.loads(report_path.read_text())
    failed = {m["metric"] for m in report["metrics"] if not m["passed"]}
    assert failed == {"lines that are not a JSON object", "exact duplicate rows", "duplicate ids"}
    # the file's own line numbers (the blank line 3 counted, not reported)
    assert report["unreadable_lines"] == [4] and report["rows"] == 6
