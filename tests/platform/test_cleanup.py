"""What killed runs leave behind: incomplete build folders and temporary files are found and removed
(never a complete build, never one a run may still be writing), and the instance config the CLI and
`dagster dev` share turns run monitoring on."""

import os
import time

import yaml

from safetygraph.cli import main
from safetygraph.commands import INSTANCE_CONFIG, ensure_instance_config
from safetygraph.core.builds import clean, incomplete
from safetygraph.core.storage import Storage


def _age(path, seconds: float) -> None:
    t = time.time() - seconds
    os.utime(path, (t, t))


def test_incomplete_builds_and_temporary_files_are_cleaned(tmp_path):
    storage = Storage(str(tmp_path))
    storage.write_bytes(b"{}", "exports", "complete", "manifest.json")
    storage.write_bytes(b"x", "exports", "complete", "train.jsonl")
    storage.write_bytes(b"complete", "exports", "LATEST")
    storage.write_bytes(b"x", "preference", "killed", "train.jsonl")  # no manifest: incomplete
    storage.write_bytes(b"x", "steering", "running", "seed.jsonl")  # incomplete, but young
    tmp = tmp_path / "assets" / "labels" / "demo.parquet.tmp-0123abcd"
    tmp.parent.mkdir(parents=True)
    tmp.write_bytes(b"half")
    for path in (tmp_path / "exports" / "complete", tmp_path / "preference" / "killed", tmp):
        _age(path, 7200)
    found = incomplete(storage, min_age_s=3600)
    assert found == sorted([str(tmp_path / "preference" / "killed"), str(tmp)])
    assert clean(storage, 3600, dry_run=True) == found and tmp.exists()
    assert clean(storage, 3600) == found
    assert not tmp.exists() and not (tmp_path / "preference" / "killed").exists()
    assert (tmp_path / "exports" / "complete" / "train.jsonl").exists()
    assert (tmp_path / "steering" / "running").exists()
    assert incomplete(storage, 3600) == []


def test_cleanup_command(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SAFETYGRAPH_BASE_URI", str(tmp_path / "data"))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    storage = Storage(str(tmp_path / "data"))
    storage.write_bytes(b"x", "circuit_breaker", "killed", "stats.json")
    _age(tmp_path / "data" / "circuit_breaker" / "killed", 7200)
    assert main(["cleanup", "--dry-run"]) == 0
    assert "would remove" in capsys.readouterr().out
    assert main(["cleanup"]) == 0
    assert not (tmp_path / "data" / "circuit_breaker" / "killed").exists()


def test_instance_config_turns_run_monitoring_on_and_keeps_user_settings(tmp_path):
    path = tmp_path / "dagster.yaml"
    ensure_instance_config(str(path))
    assert yaml.safe_load(path.read_text()) == INSTANCE_CONFIG
    path.write_text(
        yaml.safe_dump({"telemetry": {"enabled": True}, "run_queue": {"max_concurrent_runs": 2}})
    )
    ensure_instance_config(str(path))
    body = yaml.safe_load(path.read_text())
    assert body["telemetry"] == {"enabled": True}  # the user's choice stays
    assert body["run_queue"] == {"max_concurrent_runs": 2}
    assert body["run_monitoring"]["enabled"] is True
