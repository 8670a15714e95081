"""A loopback OpenAI-compatible /v1/chat/completions server for tests, with scripted faults."""

from __future__ import annotations

import json
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FakeOpenAI:
    """Answers "echo: <last user message>". ``faults`` maps a prompt to a list of statuses to return
    first (e.g. [429, 503]); a prompt in ``hard_errors`` always gets HTTP 400."""

    def __init__(
        self, faults: dict[str, list[int]] | None = None, hard_errors: set[str] | None = None
    ):
        self.faults = {k: list(v) for k, v in (faults or {}).items()}
        self.hard_errors = hard_errors or set()
        self.calls: Counter[str] = Counter()
        self.auth_headers: list[str | None] = []
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                prompt = [m for m in body["messages"] if m["role"] == "user"][-1]["content"]
                with outer.lock:
                    outer.calls[prompt] += 1
                    outer.auth_headers.append(self.headers.get("Authorization"))
                    fault = (
                        outer.faults.get(prompt, []).pop(0) if outer.faults.get(prompt) else None
                    )
                if prompt in outer.hard_errors:
                    return self._send(400, {"error": {"message": "bad request: content policy"}})
                if fault is not None:
                    headers = {"Retry-After": "0"} if fault == 429 else {}
                    return self._send(fault, {"error": {"message": "try later"}}, headers)
                answer = {
                    "choices": [{"message": {"role": "assistant", "content": f"echo: {prompt}"}}],
                    "usage": {"prompt_tokens": 3, "completion_tokens": 2},
                }
                return self._send(200, answer)

            def _send(self, status, payload, headers=None):
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def __enter__(self) -> FakeOpenAI:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
