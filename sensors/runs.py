"""Runs whose process died: a run killed with -9 (or whose machine lost power) never writes its end,
and stays STARTED in the instance for good. On Kubernetes, Dagster's run monitoring asks the
K8sRunLauncher about the pod; the local launcher cannot answer that, so this sensor does it for runs
on this machine: a STARTED run whose worker process (the pid of its RUN_START event) is gone is
marked failed, which ``run_failure_alerts`` then reports."""

import os

from dagster import (
    DagsterEventType,
    DagsterRunStatus,
    DefaultSensorStatus,
    RunsFilter,
    SensorEvaluationContext,
    SkipReason,
    sensor,
)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive
    return True


def _worker_pid(instance, run_id: str) -> int | None:
    """The pid of the process that started the run (its RUN_START event)."""
    logs = instance.all_logs(run_id, of_type=DagsterEventType.RUN_START)
    return getattr(logs[0].dagster_event, "pid", None) if logs else None


def reap_dead_runs(instance) -> list[str]:
    """Mark failed every STARTED run whose worker process is gone; returns their ids."""
    reaped = []
    for run in instance.get_runs(filters=RunsFilter(statuses=[DagsterRunStatus.STARTED])):
        pid = _worker_pid(instance, run.run_id)
        if pid is None or _alive(pid):
            continue
        instance.report_run_failed(
            run,
            f"the run's process (pid {pid}) is gone: it was killed or crashed before the run could "
            "finish; marked failed by dead_run_reaper",
        )
        reaped.append(run.run_id)
    return reaped


@sensor(
    name="dead_run_reaper",
    minimum_interval_seconds=15,
    default_status=DefaultSensorStatus.RUNNING,
    description="Marks failed the STARTED runs on this machine whose process died (kill -9, crash), "
    "so they do not stay STARTED for good and the run-failure alert reports them. Off on Kubernetes, "
    "where Dagster's run monitoring asks the launcher about the pod.",
)
def dead_run_reaper(context: SensorEvaluationContext):
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        return SkipReason("on Kubernetes: run monitoring of the k8s launcher covers dead runs")
    reaped = reap_dead_runs(context.instance)
    return SkipReason(f"marked failed: {', '.join(reaped)}" if reaped else "no dead run")
