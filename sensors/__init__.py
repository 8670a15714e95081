"""Sensors and schedules: alerts on failed checks and runs, and the new-file sensor."""

from sensors.alerts import AlertResource, build_check_alert_sensor, run_failure_alerts
from sensors.files import build_file_sensor, build_schedules

__all__ = [
    "AlertResource",
    "build_file_sensor",
    "build_schedules",
    "build_check_alert_sensor",
    "run_failure_alerts",
]
