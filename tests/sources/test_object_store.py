"""The build on an object store: ``SAFETYGRAPH_BASE_URI=s3://...`` against moto's S3 server on
loopback (started and stopped here), and the one-line error when the extra is missing."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def s3_endpoint():
    pytest.importorskip("moto")
    pytest.importorskip("s3fs")
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.2)
        else:
            pytest.fail("moto's S3 server did not start within 60 s")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_the_refusal_build_runs_on_s3(tmp_path: Path, s3_endpoint: str):
    import s3fs

    env = {
        **os.environ,
        **CREDENTIALS,
        "AWS_ENDPOINT_URL": s3_endpoint,  # botocore's own setting: s3fs reaches the local server
        "DAGSTER_HOME": str(tmp_path / "home"),
        "SAFETYGRAPH_BASE_URI": "s3://safetygraph-test/builds",
        "SAFETYGRAPH_PROFILE": "demo",
    }
    fs = s3fs.S3FileSystem(
        key="testing", secret="testing", client_kwargs={"endpoint_url": s3_endpoint}
    )
    fs.mkdir("safetygraph-test")
    result = subprocess.run(
        [sys.executable, "-m", "safetygraph", "build", "refusal"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    assert "refusal export: s3://safetygraph-test/builds/exports/" in result.stdout
    fs.invalidate_cache()
    build_id = fs.cat("safetygraph-test/builds/exports/LATEST").decode()
    manifest = json.loads(fs.cat(f"safetygraph-test/builds/exports/{build_id}/manifest.json"))
    for entry in manifest["files"]:
        import hashlib

        data = fs.cat(f"safetygraph-test/builds/exports/{build_id}/{entry['path']}")
        assert hashlib.sha256(data).hexdigest() == entry["sha256"], entry["path"]
    # the per-source assets are on the store too, and no temporary file is left behind
    keys = fs.find("safetygraph-test/builds")
    assert any("/assets/audited/" in k for k in keys)
    assert not [k for k in keys if ".tmp-" in k]
    assert not (REPO / ".safetygraph" / "data" / "exports" / build_id).exists()


def test_a_missing_store_driver_names_the_extra(monkeypatch):
    from safetygraph.core.storage import Storage, StorageError

    monkeypatch.setitem(sys.modules, "s3fs", None)  # as if s3fs were not installed
    with pytest.raises(StorageError) as err:
        Storage("s3://bucket/prefix")
    message = str(err.value)
    assert "pip install 'safetygraph[s3]'" in message and "s3fs" in message
    assert "\n" not in message
