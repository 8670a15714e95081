"""Throughput of the openai backend against a loopback server with a fixed latency.

    python bench/generation.py [--latency-ms 50] [--concurrency 1,16,64,256] [--seconds 2]

For each concurrency c the bound is c / latency (requests per second if the client added nothing);
the figure that matters is the fraction of that bound reached, and the client CPU time per request.
The baseline, run in the same process, is what the replaced scripts did: one blocking request at a
time. The server runs in its own process (a minimal asyncio HTTP/1.1 server, uvloop when installed). Last line: a JSON object.
Targets: >= 0.90 of the bound at concurrency 64, >= 2,000 requests/s at 256.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import socket
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from safetygraph.generation import GenerationConfig, OpenAIBackend, Request  # noqa: E402

ANSWER = json.dumps(
    {
        "choices": [{"message": {"role": "assistant", "content": "ok"}}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 1},
    }
).encode()


RESPONSE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
    + str(len(ANSWER)).encode()
    + b"\r\n\r\n"
    + ANSWER
)


class _Http(asyncio.Protocol):
    """A minimal keep-alive HTTP/1.1 server: every complete request is answered after the latency.

    Deliberately cheap, so that what is measured is the client, not the server.
    """

    def __init__(self, latency_s: float):
        self.latency_s = latency_s
        self.buf = b""

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.loop = asyncio.get_running_loop()

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while True:
            head_end = self.buf.find(b"\r\n\r\n")
            if head_end < 0:
                return
            length = 0
            for line in self.buf[:head_end].split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            end = head_end + 4 + length
            if len(self.buf) < end:
                return
            self.buf = self.buf[end:]
            self.loop.call_later(self.latency_s, self._reply)

    def _reply(self) -> None:
        if not self.transport.is_closing():
            self.transport.write(RESPONSE)


def serve(port: int, latency_s: float, ready) -> None:
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass

    async def main() -> None:
        server = await asyncio.get_running_loop().create_server(
            lambda: _Http(latency_s), "127.0.0.1", port, backlog=4096
        )
        ready.set()
        async with server:
            await server.serve_forever()

    asyncio.run(main())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def requests_for(n: int) -> list[Request]:
    return [
        Request(
            f"{i:064x}",
            [{"role": "user", "content": f"prompt {i}"}],
            {"temperature": 0.0, "top_p": 1.0, "max_tokens": 8, "seed": 0},
        )
        for i in range(n)
    ]


def run_backend(url: str, concurrency: int, n: int) -> dict:
    backend = OpenAIBackend(base_url=url, max_concurrency=concurrency, timeout_s=30)
    cfg = GenerationConfig(backend="openai", model="bench")
    cpu0, t0 = time.process_time(), time.perf_counter()
    done = sum(len(batch) for batch in backend.stream(cfg, requests_for(n)))
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    assert done == n
    return {
        "requests": n,
        "seconds": round(wall, 3),
        "rps": round(n / wall, 1),
        "client_cpu_ms_per_request": round(1000 * cpu / n, 3),
    }


def run_baseline(url: str, n: int) -> dict:
    body = json.dumps({"model": "bench", "messages": [{"role": "user", "content": "x"}]}).encode()
    t0 = time.perf_counter()
    for _ in range(n):
        req = urllib.request.Request(
            url + "/chat/completions", data=body, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(req) as resp:
            json.loads(resp.read())
    wall = time.perf_counter() - t0
    return {"requests": n, "seconds": round(wall, 3), "rps": round(n / wall, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--concurrency", default="1,16,64,256")
    parser.add_argument(
        "--seconds", type=float, default=4.0, help="target duration of each measurement"
    )
    args = parser.parse_args()
    latency = args.latency_ms / 1000
    port = free_port()
    ready = mp.Event()
    server = mp.Process(target=serve, args=(port, latency, ready), daemon=True)
    server.start()
    if not ready.wait(30):
        raise SystemExit("server did not start")
    url = f"http://127.0.0.1:{port}/v1"
    try:
        run_backend(url, 16, 200)  # warm-up
        baseline = run_baseline(url, max(10, int(args.seconds / latency)))
        print(f"baseline (one blocking request at a time): {baseline['rps']:.1f} req/s")
        results = {}
        for c in [int(x) for x in args.concurrency.split(",")]:
            bound = c / latency
            r = run_backend(url, c, max(50, int(bound * args.seconds)))
            r["bound_rps"] = round(bound, 1)
            r["fraction_of_bound"] = round(r["rps"] / bound, 3)
            results[str(c)] = r
            print(
                f"concurrency {c:>4}: {r['rps']:>8.1f} req/s = {r['fraction_of_bound']:.3f} of the bound {bound:.0f}/s, "
                f"client CPU {r['client_cpu_ms_per_request']:.3f} ms/request ({r['requests']} requests)"
            )
    finally:
        server.terminate()
    summary = {
        "latency_ms": args.latency_ms,
        "baseline": baseline,
        "openai_backend": results,
        "targets": {
            "fraction_at_64": {
                "target": 0.9,
                "value": results.get("64", {}).get("fraction_of_bound"),
                "met": results.get("64", {}).get("fraction_of_bound", 0) >= 0.9,
            },
            "rps_at_256": {
                "target": 2000,
                "value": results.get("256", {}).get("rps"),
                "met": results.get("256", {}).get("rps", 0) >= 2000,
            },
        },
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
