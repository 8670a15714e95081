"""Alerts on failed asset checks and failed runs, posted to a webhook and written to the log.

Open-source Dagster has no alert on a check failure: ``check_failure_alerts`` reads the executions
of the code location's checks from the instance (the asset-check execution table, which works on
SQLite and Postgres instances alike) after its cursor (the execution id). The cursor is
stored by the daemon, so it survives restarts, and it advances past an evaluation only once its
alert has been delivered: no alert is sent twice, and one that could not be delivered is tried
again on the next tick. ``run_failure_alerts`` covers runs (a blocking check failure fails its run).
"""

import os
from collections.abc import Sequence

from dagster import (
    AssetCheckKey,
    ConfigurableResource,
    DefaultSensorStatus,
    RunFailureSensorContext,
    SensorEvaluationContext,
    SkipReason,
    run_failure_sensor,
    sensor,
)
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus
from pydantic import Field

from safetygraph.ops.alerts import Alert, AlertDeliveryError, check_alert, post, run_alert

BATCH = 200


class AlertResource(ConfigurableResource):
    """Where alerts go: the log always, and the webhook when a URL is set (from the environment:
    ``EnvVar("SAFETYGRAPH_ALERT_WEBHOOK_URL")``). ``ui_url`` links alerts to the Dagster UI."""

    webhook_url: str | None = Field(default=None, description="Slack-compatible incoming webhook")
    ui_url: str | None = Field(default=None, description="Base URL of the Dagster UI, for links")
    retries: int = Field(default=3, description="Delivery attempts after the first")

    def link(self, run_id: str) -> str | None:
        return f"{self.ui_url.rstrip('/')}/runs/{run_id}" if self.ui_url else None

    def send(self, log, alert: Alert) -> None:
        log.warning(alert.log_line())
        if self.webhook_url:
            post(self.webhook_url, alert, retries=self.retries)


def default_alerts() -> AlertResource:
    from dagster import EnvVar

    url = (
        EnvVar("SAFETYGRAPH_ALERT_WEBHOOK_URL")
        if os.environ.get("SAFETYGRAPH_ALERT_WEBHOOK_URL")
        else None
    )
    return AlertResource(webhook_url=url, ui_url=os.environ.get("SAFETYGRAPH_UI_URL"))


def build_check_alert_sensor(check_keys: Sequence[AssetCheckKey]):
    """The sensor over the given checks' executions (the code location passes all of its checks)."""
    keys = list(check_keys)

    @sensor(
        name="check_failure_alerts",
        minimum_interval_seconds=30,
        default_status=DefaultSensorStatus.RUNNING,
        description="Alerts (webhook + log) on every failed asset check, blocking or not, once each.",
    )
    def check_failure_alerts(context: SensorEvaluationContext, alerts: AlertResource):
        after = int(context.cursor) if context.cursor else 0
        storage = context.instance.event_log_storage
        new = []
        for key in keys:  # newest first, down to the cursor
            for record in storage.get_asset_check_execution_history(key, limit=BATCH):
                if record.id <= after:
                    break
                new.append(record)
        new.sort(key=lambda r: r.id)
        sent = 0
        for record in new:
            if record.status == AssetCheckExecutionRecordStatus.PLANNED:
                run = context.instance.get_run_by_id(record.run_id)
                if run is not None and not run.is_finished:
                    break  # still running: wait for it, and do not move past it
                context.update_cursor(str(record.id))  # planned in a run that ended without it
                continue
            evaluation = record.evaluation
            if record.status == AssetCheckExecutionRecordStatus.FAILED and evaluation is not None:
                alert = check_alert(
                    asset=record.key.asset_key.to_user_string(),
                    check=record.key.name,
                    partition=getattr(evaluation, "partition", None),
                    severity=evaluation.severity.value,
                    run_id=record.run_id,
                    metadata={
                        k: getattr(v, "value", v) for k, v in (evaluation.metadata or {}).items()
                    },
                    link=alerts.link(record.run_id),
                )
                try:
                    alerts.send(context.log, alert)
                except AlertDeliveryError as exc:
                    context.log.error(f"{exc}; will retry from this check on the next tick")
                    return SkipReason(f"alert delivery failed: {exc}")
                sent += 1
            context.update_cursor(str(record.id))  # past this execution: never sent again
        if not new:
            return SkipReason("no new check executions")
        return SkipReason(f"{sent} alert(s) sent for {len(new)} new check execution(s)")

    return check_failure_alerts


@run_failure_sensor(
    name="run_failure_alerts",
    default_status=DefaultSensorStatus.RUNNING,
    # runs launched from the CLI (`dagster asset materialize -m definitions`) carry another
    # code-location origin than the UI's; they are this project's runs all the same
    monitor_all_code_locations=True,
    minimum_interval_seconds=15,
    description="Alerts (webhook + log) on every failed run in this instance, whoever launched it "
    "(UI, CLI, backfills, schedules), once each.",
)
def run_failure_alerts(context: RunFailureSensorContext, alerts: AlertResource):
    run = context.dagster_run
    steps = sorted({e.step_key for e in context.get_step_failure_events() if e.step_key})
    alerts.send(
        context.log,
        run_alert(
            job=run.job_name,
            run_id=run.run_id,
            partition=run.tags.get("dagster/partition"),
            failed_steps=steps,
            error=context.failure_event.message or "",
            link=alerts.link(run.run_id),
        ),
    )
