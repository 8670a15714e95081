"""Alerts on failed checks and runs, posted to a webhook receiver on loopback; the new-file sensor."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    DagsterEventType,
    DagsterInstance,
    RunRequest,
    SkipReason,
    asset,
    asset_check,
    build_run_status_sensor_context,
    build_sensor_context,
    instance_for_test,
    materialize,
)
from safetygraph.location.sensors import build_check_alert_sensor, run_failure_alerts
from safetygraph.location.sensors.alerts import AlertResource
from safetygraph.location.sensors.files import build_file_sensor

from tests.conftest import demo_sources_copy, write_registry


class Receiver:
    """An HTTP server on loopback that records the JSON bodies posted to it; ``fail`` makes the
    next N requests answer 500."""

    def __init__(self):
        self.bodies: list[dict] = []
        self.fail = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if outer.fail:
                    outer.fail -= 1
                    self.send_response(500)
                    self.end_headers()
                    return
                outer.bodies.append(body)
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/T000/SECRET-TOKEN"

    def __enter__(self):
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


@asset
def shard() -> int:
    return 1


@asset_check(asset=shard, blocking=True)
def ratio_gate() -> AssetCheckResult:
    return AssetCheckResult(
        passed=False, severity=AssetCheckSeverity.ERROR, metadata={"ratio": 3.9}
    )


@asset_check(asset=shard)
def drift_warning() -> AssetCheckResult:
    return AssetCheckResult(passed=False, severity=AssetCheckSeverity.WARN, metadata={"drift": 0.3})


@asset_check(asset=shard)
def fine() -> AssetCheckResult:
    return AssetCheckResult(passed=True)


@asset(deps=[shard])
def files() -> None:
    return None


check_failure_alerts = build_check_alert_sensor(
    [spec.key for c in (ratio_gate, drift_warning, fine) for spec in c.check_specs]
)


def _build(instance):
    return materialize(
        [shard, files, ratio_gate, drift_warning, fine], instance=instance, raise_on_error=False
    )


def _tick(instance: DagsterInstance, receiver: Receiver, cursor: str | None):
    context = build_sensor_context(
        instance=instance,
        cursor=cursor,
        resources={
            "alerts": AlertResource(webhook_url=receiver.url, ui_url="http://ui.test", retries=0)
        },
    )
    return check_failure_alerts(context), context.cursor


def test_failed_checks_alert_once_and_the_cursor_survives_a_restart():
    with instance_for_test() as instance, Receiver() as receiver:
        result = _build(instance)
        assert not result.success  # the blocking check failed the run
        outcome, cursor = _tick(instance, receiver, None)
        titles = sorted(b["blocks"][0]["text"]["text"] for b in receiver.bodies)
        assert titles == [
            "Blocking check failed: shard ratio_gate",
            "Warning check failed: shard drift_warning",
        ]
        assert (
            isinstance(outcome, SkipReason)
            and "2 alert(s) sent for 3 new check execution(s)" in outcome.skip_message
        )
        blocking = next(b for b in receiver.bodies if "ratio_gate" in b["text"])
        assert "*ratio:* 3.9" in blocking["blocks"][2]["text"]["text"]
        assert f"http://ui.test/runs/{result.run_id}" in json.dumps(blocking)
        # a restarted daemon starts from the stored cursor: nothing is sent twice
        _tick(instance, receiver, cursor)
        assert len(receiver.bodies) == 2
        # a new failure is sent, alone
        _build(instance)
        _, cursor = _tick(instance, receiver, cursor)
        assert len(receiver.bodies) == 4


def test_an_undelivered_alert_is_retried_on_the_next_tick_not_lost():
    with instance_for_test() as instance, Receiver() as receiver:
        _build(instance)
        receiver.fail = 1
        outcome, cursor = _tick(instance, receiver, None)
        assert "alert delivery failed" in outcome.skip_message and receiver.bodies == []
        assert "SECRET-TOKEN" not in outcome.skip_message  # the URL (a secret) is never shown
        _, cursor = _tick(instance, receiver, cursor)
        assert len(receiver.bodies) == 2
        _tick(instance, receiver, cursor)
        assert len(receiver.bodies) == 2


def test_a_failed_run_is_alerted_with_its_failed_steps():
    with instance_for_test() as instance, Receiver() as receiver:
        result = _build(instance)
        run = instance.get_run_by_id(result.run_id)
        failure = next(
            e
            for e in instance.all_logs(result.run_id)
            if e.dagster_event and e.dagster_event.event_type == DagsterEventType.PIPELINE_FAILURE
        )
        context = build_run_status_sensor_context(
            sensor_name="run_failure_alerts",
            dagster_instance=instance,
            dagster_run=run,
            dagster_event=failure.dagster_event,
            resources={"alerts": AlertResource(webhook_url=receiver.url)},
        ).for_run_failure()
        run_failure_alerts(context)
        (body,) = receiver.bodies
        assert body["text"].startswith("Run failed: __ephemeral_asset_job__")
        assert "shard_ratio_gate" in body["blocks"][2]["text"]["text"]


def test_without_a_webhook_alerts_go_to_the_log_only():
    with instance_for_test() as instance:
        _build(instance)
        context = build_sensor_context(instance=instance, resources={"alerts": AlertResource()})
        outcome = check_failure_alerts(context)
        assert "2 alert(s) sent" in outcome.skip_message


def test_new_or_changed_source_file_requests_its_partition(tmp_path):
    from safetygraph.location.resources import BuildConfig

    sources = demo_sources_copy(tmp_path)
    reg, prof = write_registry(tmp_path / "config", sources)
    settings = BuildConfig(
        profile="test",
        registry_path=str(reg),
        profiles_path=str(prof),
        base_uri=str(tmp_path / "data"),
    )
    sensor = build_file_sensor("source_pipeline")

    def tick(cursor):
        context = build_sensor_context(cursor=cursor, resources={"settings": settings})
        return sensor(context), context.cursor

    first, cursor = tick(None)
    assert isinstance(first, SkipReason) and "recorded 6 local source(s)" in first.skip_message
    nothing, cursor = tick(cursor)
    assert isinstance(nothing, SkipReason)
    target = tmp_path / "sample_data" / "pairs.jsonl"
    target.write_text(
        target.read_text()
        + json.dumps({"instruction": "new?", "output": "Yes.", "safety": "safe", "kind": "x"})
        + "\n"
    )
    requests, cursor = tick(cursor)
    assert [r.partition_key for r in requests] == ["demo_pairs"] and isinstance(
        requests[0], RunRequest
    )
    # a new file matched by a glob source (AgentDojo runs) requests that source
    (tmp_path / "sample_data" / "agentdojo" / "run_99.json").write_text(
        (tmp_path / "sample_data" / "agentdojo" / "run_01.json").read_text()
    )
    requests, cursor = tick(cursor)
    assert [r.partition_key for r in requests] == ["demo_agentdojo"]
    again, _ = tick(cursor)
    assert isinstance(again, SkipReason)


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, "multi_or_in_process_executor"),
        ({"SAFETYGRAPH_EXECUTOR": "multiprocess"}, "multiprocess"),
        ({"KUBERNETES_SERVICE_HOST": "10.0.0.1"}, "k8s"),
        ({"SAFETYGRAPH_EXECUTOR": "in_process"}, "in_process"),
    ],
)
def test_the_executor_follows_the_environment(monkeypatch, env, expected):
    from safetygraph.location import definitions

    for k in ("KUBERNETES_SERVICE_HOST", "SAFETYGRAPH_EXECUTOR"):
        monkeypatch.delenv(k, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert definitions.executor_from_env().name == expected
    monkeypatch.setenv("SAFETYGRAPH_EXECUTOR", "threads")
    with pytest.raises(ValueError, match="use one of"):
        definitions.executor_from_env()
