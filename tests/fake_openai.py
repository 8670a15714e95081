"""A loopback OpenAI-compatible /v1/chat/completions server for tests, with scripted faults."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FakeOpenAI:
    """Answers "echo: <last user message>" after ``latency_s``.

    ``faults`` maps a prompt to the faults to serve first, in order: 429 (with Retry-After: 0),
    500/503, "slow" (answers after ``slow_s``), "drop" (closes the connection without answering),
    "malformed" (HTTP 200 with a body that is not JSON). A prompt in ``hard_errors`` always gets 400.
    ``completions`` counts, per prompt, the answers the server finished writing.
    """

    def __init__(
        self,
        faults=None,
        hard_errors=None,
        latency_s: float = 0.0,
        slow_s: float = 2.0,
        responder=None,
    ):
        self.faults = {k: list(v) for k, v in (faults or {}).items()}
        self.hard_errors = hard_errors or set()
        self.latency_s, self.slow_s = latency_s, slow_s
        self.responder = responder  # body -> content or message dict; default "echo: <last user>"
        self.bodies: list[dict] = []
        self.calls: Counter[str] = Counter()
        self.completions: Counter[str] = Counter()
        self.auth_headers: list[str | None] = []
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                prompt = [m for m in body["messages"] if m["role"] == "user"][-1]["content"]
                with outer.lock:
                    outer.calls[prompt] += 1
                    outer.bodies.append(body)
                    outer.auth_headers.append(self.headers.get("Authorization"))
                    queue = outer.faults.get(prompt)
                    fault = queue.pop(0) if queue else None
                if prompt in outer.hard_errors:
                    return self._send(
                        400,
                        json.dumps({"error": {"message": "bad request: content policy"}}).encode(),
                    )
                if fault in (429, 500, 502, 503):
                    headers = {"Retry-After": "0"} if fault == 429 else {}
                    return self._send(fault, b'{"error": {"message": "try later"}}', headers)
                if fault == "drop":
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return None
                if fault == "malformed":
                    return self._send(200, b'{"choices": [{"message": ')
                time.sleep(outer.slow_s if fault == "slow" else outer.latency_s)
                reply = outer.responder(body) if outer.responder else f"echo: {prompt}"
                # a responder may return the message itself (content and tool_calls)
                message = reply if isinstance(reply, dict) else {"content": reply}
                answer = {
                    "choices": [{"message": {"role": "assistant", **message}}],
                    "usage": {"prompt_tokens": 3, "completion_tokens": 2},
                }
                try:
                    self._send(200, json.dumps(answer).encode())
                    with outer.lock:
                        outer.completions[prompt] += 1
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def _send(self, status, data, headers=None):
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def __enter__(self) -> FakeOpenAI:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
