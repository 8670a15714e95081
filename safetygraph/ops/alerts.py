"""Alerts: a Slack-compatible webhook payload for a failed asset check or a failed run, and a
poster with retries. No Dagster here; the sensors in ``sensors/`` decide what to send.

The webhook URL comes from the environment (``SAFETYGRAPH_ALERT_WEBHOOK_URL``, through a Dagster
``EnvVar``); it is never logged. Any endpoint that accepts Slack's incoming-webhook JSON works
(Slack, Mattermost, Rocket.Chat, Teams via a connector, or your own receiver).
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Alert:
    kind: str  # "check_failed" or "run_failed"
    title: str
    text: str
    fields: dict[str, str] = field(default_factory=dict)
    link: str | None = None

    def slack_payload(self) -> dict[str, Any]:
        """Slack incoming-webhook JSON: ``text`` (the fallback every client shows) plus blocks."""
        facts = "\n".join(f"*{k}:* {v}" for k, v in self.fields.items())
        blocks: list[dict[str, Any]] = [
            {"type": "header", "text": {"type": "plain_text", "text": self.title[:150]}},
            {"type": "section", "text": {"type": "mrkdwn", "text": self.text[:2900]}},
        ]
        if facts:
            blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": facts[:2900]}})
        if self.link:
            blocks.append(
                {
                    "type": "context",
                    "elements": [{"type": "mrkdwn", "text": f"<{self.link}|open in Dagster>"}],
                }
            )
        return {"text": f"{self.title}: {self.text}"[:3000], "blocks": blocks}

    def log_line(self) -> str:
        facts = ", ".join(f"{k}={v}" for k, v in self.fields.items())
        return f"[alert:{self.kind}] {self.title}: {self.text}" + (f" ({facts})" if facts else "")


class AlertDeliveryError(RuntimeError):
    pass


def post(
    url: str, alert: Alert, retries: int = 3, timeout_s: float = 10.0, backoff_s: float = 1.0
) -> None:
    """POST the alert's Slack payload; retries on network errors, 429 and 5xx. Raises
    ``AlertDeliveryError`` (without the URL, which may hold a secret token) when it cannot."""
    body = json.dumps(alert.slack_payload()).encode()
    last = ""
    for attempt in range(retries + 1):
        request = urllib.request.Request(
            url, data=body, headers={"Content-Type": "application/json"}, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout_s) as resp:
                if 200 <= resp.status < 300:
                    return
                last = f"HTTP {resp.status}"
        except urllib.error.HTTPError as exc:
            last = f"HTTP {exc.code}"
            if exc.code < 500 and exc.code != 429:
                break  # a 4xx other than 429 will not get better
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            last = type(exc).__name__
        if attempt < retries:
            time.sleep(backoff_s * 2**attempt)
    raise AlertDeliveryError(f"alert webhook failed after {retries + 1} attempts: {last}")


def check_alert(
    asset: str,
    check: str,
    partition: str | None,
    severity: str,
    run_id: str,
    metadata: dict[str, Any],
    link: str | None,
) -> Alert:
    shown = {k: v for k, v in list(metadata.items())[:6] if isinstance(v, (int, float, str, bool))}
    where = f"{asset}[{partition}]" if partition else asset
    blocking = severity == "ERROR"
    return Alert(
        kind="check_failed",
        title=f"{'Blocking' if blocking else 'Warning'} check failed: {where} {check}",
        text=(
            "Downstream assets were not materialized in that run."
            if blocking
            else "The data was stored; nothing downstream was blocked."
        ),
        fields={
            "asset": where,
            "check": check,
            "severity": severity,
            "run": run_id,
            **{k: str(v) for k, v in shown.items()},
        },
        link=link,
    )


def run_alert(
    job: str,
    run_id: str,
    partition: str | None,
    failed_steps: list[str],
    error: str,
    link: str | None,
) -> Alert:
    return Alert(
        kind="run_failed",
        title=f"Run failed: {job}" + (f" [{partition}]" if partition else ""),
        text=error.strip().splitlines()[0][:500] if error.strip() else "the run failed",
        fields={"job": job, "run": run_id, "failed steps": ", ".join(failed_steps) or "-"},
        link=link,
    )
