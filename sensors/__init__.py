"""Sensors and schedules: alerts on failed checks and runs, and the new-file sensor."""

from safetygraph.location.sensors.alerts import (
    AlertResource,
    build_check_alert_sensor,
    run_failure_alerts,
)
from safetygraph.location.sensors.files import build_file_sensor, build_schedules
from safetygraph.location.sensors.runs import dead_run_reaper

__all__ = [
    "AlertResource",
    "build_file_sensor",
    "build_schedules",
    "dead_run_reaper",
    "build_check_alert_sensor",
    "run_failure_alerts",
]
