"""A per-source backfill as users launch it: `dagster job backfill` from the CLI, runs dequeued and
launched by the daemon, one run per partition. The good sources materialize; a bad one is blocked by
its check, alerted on (webhook on loopback), and the merge names it."""

import os
import subprocess
import sys
import time
from pathlib import Path

import yaml
from dagster import AssetKey, AssetRecordsFilter, DagsterInstance, DagsterRunStatus
from safetygraph.location.resources import BuildConfig

from safetygraph.location import definitions
from tests.conftest import (
    REPO,
    code_location_env,
    crafted_bad_source,
    demo_sources_copy,
    write_registry,
)
from tests.platform.test_alerts import Receiver

BIN = Path(sys.executable).parent
PARTITIONS = ["demo_pairs", "demo_agentic", "crafted_bad"]
SLOW_JOB = """
import time
from dagster import DagsterInstance, Definitions, asset, define_asset_job

@asset
def slow() -> None:
    time.sleep(300)

defs = Definitions(assets=[slow], jobs=[define_asset_job("slow_job", selection="slow")])
defs.resolve_job_def("slow_job").execute_in_process(instance=DagsterInstance.get())
"""


def _queued_home(tmp_path: Path) -> Path:
    """A DAGSTER_HOME whose instance queues runs (two at a time) for the daemon."""
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text(
        yaml.safe_dump(
            {
                "telemetry": {"enabled": False},
                "run_coordinator": {
                    "module": "dagster.core.run_coordinator",
                    "class": "QueuedRunCoordinator",
                    "config": {"max_concurrent_runs": 2},
                },
            }
        )
    )
    return home


def _launch_backfill(env: dict) -> None:
    """`dagster job backfill` of the source job over PARTITIONS, as a user launches it."""
    launch = subprocess.run(
        [
            str(BIN / "dagster"),
            "job",
            "backfill",
            "-m",
            definitions.__name__,
            "-j",
            definitions.SOURCE_JOB,
            "--partitions",
            ",".join(PARTITIONS),
            "--noprompt",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert launch.returncode == 0 and "Launched backfill job" in launch.stdout, (
        launch.stdout + launch.stderr
    )


def _wait_for_backfill(instance, receiver) -> None:
    """Until the three runs finished and both alerts (check, run) came, at most 7 minutes."""
    deadline = time.monotonic() + 420
    while time.monotonic() < deadline:
        runs = instance.get_runs()
        if (
            len(runs) == 3
            and all(r.is_finished for r in runs)
            and any(b["text"].startswith("Blocking check failed") for b in receiver.bodies)
            and any(b["text"].startswith("Run failed") for b in receiver.bodies)
        ):
            return
        time.sleep(3)


def _assert_backfill_outcome(instance, receiver) -> None:
    """The good sources materialized, the bad one blocked after raw_samples, one backfill, and the
    daemon's sensors alerted once on the failed check and on the failed run."""
    runs = {r.tags["dagster/partition"]: r for r in instance.get_runs()}
    assert {p: runs[p].status for p in PARTITIONS} == {
        "demo_pairs": DagsterRunStatus.SUCCESS,
        "demo_agentic": DagsterRunStatus.SUCCESS,
        "crafted_bad": DagsterRunStatus.FAILURE,
    }
    assert len({r.tags.get("dagster/backfill") for r in runs.values()}) == 1  # one backfill

    def materialized(asset: str, partition: str) -> bool:
        flt = AssetRecordsFilter(asset_key=AssetKey(asset), asset_partitions=[partition])
        return bool(instance.fetch_materializations(flt, limit=1).records)

    for good in ("demo_pairs", "demo_agentic"):
        assert all(
            materialized(a, good)
            for a in ("raw_samples", "generated_responses", "labels", "audited")
        )
    assert materialized("raw_samples", "crafted_bad")
    assert not materialized("generated_responses", "crafted_bad")  # blocked by quarantine_rate
    check_alerts = [b for b in receiver.bodies if b["text"].startswith("Blocking check failed")]
    assert len(check_alerts) == 1 and "raw_samples[crafted_bad]" in check_alerts[0]["text"]
    assert any(
        b["text"].startswith("Run failed: source_pipeline [crafted_bad]") for b in receiver.bodies
    )


def _assert_merge_names_the_blocked_source(instance, tmp_path: Path, reg: Path, prof: Path) -> None:
    """The merge while a source is blocked: it fails and names the source."""
    settings = BuildConfig(
        profile="test",
        registry_path=str(reg),
        profiles_path=str(prof),
        base_uri=str(tmp_path / "data"),
    )
    merged = (
        definitions.build_defs(settings)
        .resolve_job_def(definitions.DATASET_JOB)
        .execute_in_process(instance=instance, raise_on_error=False, tags={"test": "merge"})
    )
    message = merged.get_step_failure_events()[0].event_specific_data.error.message
    assert "crafted_bad is blocked (blocking check failed: raw_samples:quarantine_rate)" in message


def _assert_killed_run_alerted(instance, receiver, env: dict) -> None:
    """A run killed with -9 (here a CLI run in its own process) is marked failed by the daemon's
    dead_run_reaper and alerted; the failed in-process merge is alerted too, each once, although
    neither was launched through the daemon's code location."""
    slow = subprocess.Popen([sys.executable, "-c", SLOW_JOB], cwd=REPO, env=env)
    started = time.monotonic()
    while time.monotonic() - started < 60:
        killed = [r for r in instance.get_runs() if r.job_name == "slow_job"]
        if killed and killed[0].status == DagsterRunStatus.STARTED:
            break
        time.sleep(0.3)
    slow.kill()
    slow.wait(timeout=30)
    killed_at = time.monotonic()

    def run_alerts(job: str) -> list[dict]:
        return [b for b in receiver.bodies if b["text"].startswith(f"Run failed: {job}")]

    while time.monotonic() - killed_at < 90 and not (
        run_alerts("slow_job") and run_alerts("dataset_pipeline")
    ):
        time.sleep(2)
    (killed_run,) = [r for r in instance.get_runs() if r.job_name == "slow_job"]
    assert instance.get_run_by_id(killed_run.run_id).status == DagsterRunStatus.FAILURE
    assert len(run_alerts("slow_job")) == 1, receiver.bodies
    assert "killed or crashed" in run_alerts("slow_job")[0]["text"]
    assert len(run_alerts("dataset_pipeline")) == 1
    print(
        f"killed run marked failed and alerted {time.monotonic() - killed_at:.0f}s after the kill"
    )


def test_cli_backfill_runs_through_the_daemon_blocks_the_bad_source_and_alerts(tmp_path):
    sources = demo_sources_copy(tmp_path) + [crafted_bad_source(tmp_path / "in")]
    reg, prof = write_registry(tmp_path / "config", sources)
    home = _queued_home(tmp_path)
    with Receiver() as receiver:
        env = code_location_env(
            home, reg, prof, tmp_path / "data", SAFETYGRAPH_ALERT_WEBHOOK_URL=receiver.url
        )
        _launch_backfill(env)
        daemon = subprocess.Popen(
            [str(BIN / "dagster-daemon"), "run", "-m", definitions.__name__],
            cwd=REPO,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.environ["DAGSTER_HOME"], saved = str(home), os.environ.get("DAGSTER_HOME")
        try:
            instance = DagsterInstance.get()
            _wait_for_backfill(instance, receiver)
            _assert_backfill_outcome(instance, receiver)
            _assert_merge_names_the_blocked_source(instance, tmp_path, reg, prof)
            _assert_killed_run_alerted(instance, receiver, env)
        finally:
            daemon.terminate()
            daemon.wait(timeout=60)
            if saved is None:
                os.environ.pop("DAGSTER_HOME", None)
            else:
                os.environ["DAGSTER_HOME"] = saved
