"""The new-file sensor (a local source file appeared or changed: request its partition) and the
optional nightly schedule of the dataset job."""

import glob
import json
import os

from dagster import (
    DefaultScheduleStatus,
    DefaultSensorStatus,
    RunRequest,
    ScheduleDefinition,
    SensorEvaluationContext,
    SkipReason,
    sensor,
)
from safetygraph.location.resources import BuildConfig


def fingerprint(pattern: str) -> str:
    """Size and modification time of every file the pattern matches (cheap: no file is read)."""
    files = (
        sorted(glob.glob(pattern, recursive=True))
        if any(c in pattern for c in "*?[")
        else [pattern]
    )
    parts = []
    for f in files:
        try:
            st = os.stat(f)
        except FileNotFoundError:
            continue
        parts.append(f"{os.path.basename(f)}:{st.st_size}:{st.st_mtime_ns}")
    return "|".join(parts)


def build_file_sensor(source_job_name: str):
    @sensor(
        name="source_files_changed",
        job_name=source_job_name,
        minimum_interval_seconds=60,
        default_status=DefaultSensorStatus.STOPPED,
        description="Requests a source partition when one of its local files is new or changed "
        "(size or modification time). Turn it on in the UI; the first tick records the files "
        "without requesting anything.",
    )
    def source_files_changed(context: SensorEvaluationContext, settings: BuildConfig):
        seen: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
        first = not context.cursor
        now: dict[str, str] = {}
        requests = []
        for name in settings.active().sources:
            spec = settings.source(name)
            if spec.kind != "local":
                continue
            fp = fingerprint(spec.resolved_path())
            if not fp:
                continue
            now[name] = fp
            if not first and seen.get(name) != fp:
                requests.append(
                    RunRequest(
                        partition_key=name,
                        run_key=f"{name}:{abs(hash(fp))}",
                        tags={"safetygraph/trigger": "source_files_changed"},
                    )
                )
        context.update_cursor(json.dumps(now, sort_keys=True))
        if first:
            return SkipReason(
                f"recorded {len(now)} local source(s); changes from now on request runs"
            )
        return requests or SkipReason("no local source file changed")

    return source_files_changed


def build_schedules(dataset_job_name: str) -> list[ScheduleDefinition]:
    return [
        ScheduleDefinition(
            name="nightly_datasets",
            job_name=dataset_job_name,
            cron_schedule="0 3 * * *",
            default_status=DefaultScheduleStatus.STOPPED,
            description="Optional: rebuild the datasets (merge, shards, splits, export) every night "
            "from the sources built so far.",
        )
    ]
