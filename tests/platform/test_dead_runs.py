"""A run killed with -9 does not stay STARTED: dead_run_reaper marks it failed (which the run-failure
alert then reports), and leaves runs whose process is alive alone."""

import os
import signal
import subprocess
import sys
import time

from dagster import DagsterInstance, DagsterRunStatus, build_sensor_context
from safetygraph.location.sensors.runs import dead_run_reaper, reap_dead_runs

from tests.conftest import REPO

SLOW_JOB = """
import time
from dagster import DagsterInstance, Definitions, asset, define_asset_job

@asset
def slow() -> None:
    time.sleep(120)

defs = Definitions(assets=[slow], jobs=[define_asset_job("slow_job", selection="slow")])
defs.resolve_job_def("slow_job").execute_in_process(instance=DagsterInstance.get())
"""


def _wait_started(instance, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = instance.get_runs()
        if runs and runs[0].status == DagsterRunStatus.STARTED:
            return runs[0]
        time.sleep(0.2)
    raise AssertionError("the run never started")


def test_a_killed_run_is_marked_failed_and_a_live_one_is_left_alone(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    env = {**os.environ, "DAGSTER_HOME": str(home), "DAGSTER_DISABLE_TELEMETRY": "1"}
    proc = subprocess.Popen([sys.executable, "-c", SLOW_JOB], cwd=REPO, env=env)
    try:
        instance = DagsterInstance.from_config(str(home))
        run = _wait_started(instance)
        assert reap_dead_runs(instance) == []  # alive: untouched
        assert instance.get_run_by_id(run.run_id).status == DagsterRunStatus.STARTED
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        assert instance.get_run_by_id(run.run_id).status == DagsterRunStatus.STARTED  # as before
        result = dead_run_reaper(build_sensor_context(instance=instance))
        assert run.run_id in result.skip_message
        failed = instance.get_run_by_id(run.run_id)
        assert failed.status == DagsterRunStatus.FAILURE
        failures = [
            e
            for e in instance.all_logs(run.run_id)
            if e.dagster_event and e.dagster_event.event_type_value == "PIPELINE_FAILURE"
        ]
        assert failures and "killed or crashed" in failures[0].dagster_event.message
        assert reap_dead_runs(instance) == []  # once
    finally:
        if proc.poll() is None:
            proc.kill()
