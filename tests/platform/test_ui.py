"""The Dagster UI in a real browser: `dagster dev` on loopback, Playwright driving the system
Chromium (headless). A source partition is materialized from the UI and its check results are
shown; a bad source shows its failed check and the downstream asset not materialized.

Needs Debian's chromium (`.ci/run` installs it) and the playwright package (dev extra); skipped
without them. Screenshots land in test-artifacts/ui/ (or $SAFETYGRAPH_ARTIFACTS)."""

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml
from dagster import AssetKey, AssetRecordsFilter, DagsterInstance

from tests.conftest import (
    REPO,
    code_location_env,
    crafted_bad_source,
    demo_sources_copy,
    write_registry,
)

CHROMIUM = os.environ.get("SAFETYGRAPH_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(os.environ.get("SAFETYGRAPH_ARTIFACTS", REPO / "test-artifacts")) / "ui"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--disable-dev-shm-usage",
]

playwright_api = pytest.importorskip("playwright.sync_api")
if not Path(CHROMIUM).exists():
    pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)", allow_module_level=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ui(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ui")
    sources = demo_sources_copy(tmp) + [crafted_bad_source(tmp / "in")]
    reg, prof = write_registry(tmp / "config", sources)
    home = tmp / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text(yaml.safe_dump({"telemetry": {"enabled": False}}))
    port = _free_port()
    env = code_location_env(home, reg, prof, tmp / "data")
    log = open(tmp / "dagster-dev.log", "w")  # noqa: SIM115 - open for the server's lifetime
    server = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "dagster"),
            "dev",
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
        ],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                urllib.request.urlopen(f"{url}/server_info", timeout=2)
                break
            except OSError as exc:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        "dagster dev did not start: "
                        + (tmp / "dagster-dev.log").read_text()[-3000:]
                    ) from exc
                time.sleep(1)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        with playwright_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
            yield {"url": url, "browser": browser, "home": home}
            browser.close()
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
        log.close()


def _page(ui):
    page = ui["browser"].new_page(viewport={"width": 1600, "height": 1000})
    page.set_default_timeout(60_000)
    return page


def _dismiss(page):
    with contextlib.suppress(playwright_api.TimeoutError):  # the community prompt, first visit
        page.get_by_role("button", name="Skip").click(timeout=5000)


def _launch_partition(page, url: str, partition: str) -> None:
    """Jobs -> source_pipeline -> Materialize all… -> pick the partition -> Launch 1 run -> View."""
    page.goto(f"{url}/locations/safetygraph/jobs/source_pipeline", wait_until="networkidle")
    _dismiss(page)
    page.get_by_role("button", name="Materialize all…").click()
    page.get_by_text("Select a partition or create one").click()
    page.get_by_placeholder("Filter partitions").fill(partition)
    page.get_by_text(partition, exact=True).filter(visible=True).first.click()
    page.keyboard.press("Escape")
    page.get_by_role("button", name="Launch 1 run").click()
    page.get_by_text("Launched run").first.wait_for()
    # the newest run of the partition, from the runs list
    page.goto(f"{url}/runs", wait_until="networkidle")
    for _ in range(60):
        links = [
            a.get_attribute("href")
            for a in page.query_selector_all("a[href^='/runs/']")
            if re.fullmatch(r"/runs/[0-9a-f-]{36}", a.get_attribute("href") or "")
        ]
        if links:
            page.goto(url + links[0], wait_until="networkidle")
            return
        page.wait_for_timeout(500)
    raise AssertionError("no run in the runs list")


def _wait_for_status(page, status: str, seconds: int = 240) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if page.get_by_text(status, exact=True).filter(visible=True).count():
            return
        page.wait_for_timeout(2000)
    raise AssertionError(f"run did not reach {status}")


def _materialized(home: Path, asset: str, partition: str) -> bool:
    os.environ["DAGSTER_HOME"] = str(home)
    with DagsterInstance.get() as instance:
        flt = AssetRecordsFilter(asset_key=AssetKey(asset), asset_partitions=[partition])
        return bool(instance.fetch_materializations(flt, limit=1).records)


def test_materialize_a_source_from_the_ui_and_see_its_checks(ui):
    page = _page(ui)
    page.goto(f"{ui['url']}/asset-groups", wait_until="networkidle")
    _dismiss(page)
    page.wait_for_timeout(2000)
    page.screenshot(path=str(ARTIFACTS / "01-asset-graph.png"))
    assert page.get_by_text("sources", exact=True).filter(visible=True).count()

    _launch_partition(page, ui["url"], "demo_pairs")
    _wait_for_status(page, "Success")
    page.screenshot(path=str(ARTIFACTS / "02-run-success.png"))

    page.goto(f"{ui['url']}/assets/raw_samples?view=checks", wait_until="networkidle")
    page.wait_for_timeout(2000)
    page.screenshot(path=str(ARTIFACTS / "03-checks.png"))
    body = page.inner_text("body")
    for check in (
        "raw_samples_schema",
        "raw_samples_min_rows",
        "raw_samples_unique_ids",
        "quarantine_rate",
    ):
        assert check in body
    assert "Passed" in body or "Succeeded" in body
    assert _materialized(ui["home"], "audited", "demo_pairs")
    page.close()


def test_a_bad_source_shows_the_failed_check_and_stops_downstream(ui):
    page = _page(ui)
    _launch_partition(page, ui["url"], "crafted_bad")
    _wait_for_status(page, "Failure")
    page.wait_for_timeout(2000)
    page.screenshot(path=str(ARTIFACTS / "04-run-failure.png"))
    assert "quarantine_rate" in page.inner_text("body")

    page.goto(f"{ui['url']}/assets/raw_samples?view=checks", wait_until="networkidle")
    page.get_by_text("quarantine_rate", exact=True).filter(visible=True).first.click()
    page.wait_for_timeout(2000)
    page.screenshot(path=str(ARTIFACTS / "05-failed-check.png"))
    assert "Failed" in page.inner_text("body")

    page.goto(f"{ui['url']}/assets/generated_responses?view=partitions", wait_until="networkidle")
    page.wait_for_timeout(2000)
    page.screenshot(path=str(ARTIFACTS / "06-downstream-not-materialized.png"))
    assert _materialized(ui["home"], "raw_samples", "crafted_bad")
    assert not _materialized(ui["home"], "generated_responses", "crafted_bad")
    page.close()
