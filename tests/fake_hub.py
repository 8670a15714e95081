"""A stand-in for the Hugging Face Hub's HTTP API on loopback: the endpoints ``HfApi.create_repo``
and ``HfApi.upload_folder`` call (create a repo, preupload, commit), keeping what was committed
and the Authorization headers it saw. Files are answered ``regular`` upload mode, so their bytes
arrive base64 in the commit itself, as the Hub takes small files."""

from __future__ import annotations

import base64
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import yaml


def _validate_yaml(hub: FakeHub, body: bytes) -> tuple[int, dict]:
    """The Hub parses the card's YAML header; a header that does not parse is a 400."""
    req = json.loads(body)
    hub.validated.append(req)
    text = req["content"]
    try:
        header = yaml.safe_load(text.split("---")[1]) if text.startswith("---") else {}
    except yaml.YAMLError as exc:
        return 400, {"errors": [{"message": str(exc)}]}
    if not isinstance(header, dict):
        return 400, {"errors": [{"message": "metadata is not a mapping"}]}
    return 200, {"errors": [], "warnings": []}


def _create_repo(hub: FakeHub, body: bytes) -> tuple[int, dict]:
    req = json.loads(body)
    repo = f"{req['organization']}/{req['name']}" if req.get("organization") else req["name"]
    hub.repos.setdefault(
        repo,
        {"private": req.get("visibility") == "private", "files": {}, "type": req.get("type")},
    )
    return 200, {"url": f"{hub.url}/datasets/{repo}", "name": repo}


def _dataset_action(hub: FakeHub, repo: str, action: str, body: bytes) -> tuple[int, dict]:
    """preupload (every file ``regular``: its bytes come in the commit) or commit."""
    if repo not in hub.repos:
        return 404, {"error": "Repository not found"}
    if action == "preupload":
        files = json.loads(body)["files"]
        return 200, {
            "files": [
                {"path": f["path"], "uploadMode": "regular", "shouldIgnore": False} for f in files
            ]
        }
    lines = [json.loads(x) for x in body.decode().splitlines() if x.strip()]
    header = next(x["value"] for x in lines if x["key"] == "header")
    files = {
        x["value"]["path"]: base64.b64decode(x["value"]["content"])
        for x in lines
        if x["key"] == "file"
    }
    hub.repos[repo]["files"].update(files)
    oid = f"{len(hub.commits) + 1:040x}"
    hub.commits.append({"repo": repo, "header": header, "files": sorted(files)})
    return 200, {"commitUrl": f"{hub.url}/datasets/{repo}/commit/{oid}", "commitOid": oid}


def _route(hub: FakeHub, path: str, body: bytes) -> tuple[int, dict]:
    if path == "/api/validate-yaml":
        return _validate_yaml(hub, body)
    if path == "/api/repos/create":
        return _create_repo(hub, body)
    parts = path.strip("/").split("/")  # api, datasets, org, name, preupload|commit, rev
    if len(parts) == 6 and parts[:2] == ["api", "datasets"] and parts[4] in ("preupload", "commit"):
        return _dataset_action(hub, f"{parts[2]}/{parts[3]}", parts[4], body)
    return 404, {"error": f"no route {path}"}


class FakeHub:
    def __init__(self):
        self.repos: dict[str, dict] = {}  # repo id -> {"private": bool, "files": {path: bytes}}
        self.commits: list[dict] = []
        self.auth: list[str] = []
        self.validated: list[dict] = []  # what upload_folder sent to /api/validate-yaml
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _reply(self, code: int, body: dict):
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                hub.auth.append(self.headers.get("Authorization", ""))
                if not self.headers.get("Authorization", "").startswith("Bearer "):
                    return self._reply(401, {"error": "Invalid credentials"})
                return self._reply(*_route(hub, self.path.split("?")[0], body))

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeHub:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
