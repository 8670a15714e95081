"""Stream batches through a chain of steps, each step in its own thread.

DuckDB and Arrow release the GIL, so while one step queries batch k the next step can already work
on batch k-1: on a few cores the steps overlap instead of leaving cores idle between queries. Queues
between steps are bounded (``depth`` batches), so memory stays bounded by the batch size, and the
output keeps the input order. An error in any step stops the chain and is raised to the caller.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

_DONE = object()


class _Failed:
    def __init__(self, error: BaseException):
        self.error = error


def pipelined(items: Iterable[Any], *steps: Callable[[Any], Any], depth: int = 2) -> Iterator[Any]:
    """Yield ``steps[-1](...steps[0](item))`` for each item, in order, with the steps running
    concurrently on consecutive items. Reading ``items`` happens in a thread of its own too."""
    stop = threading.Event()
    queues = [queue.Queue(maxsize=depth) for _ in range(len(steps) + 1)]

    def put(q: queue.Queue, value: Any) -> bool:
        while not stop.is_set():
            try:
                q.put(value, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def get(q: queue.Queue) -> Any:
        while True:
            try:
                return q.get(timeout=0.1)
            except queue.Empty:
                if stop.is_set():
                    return _DONE

    def read() -> None:
        try:
            for item in items:
                if not put(queues[0], item):
                    return
            put(queues[0], _DONE)
        except BaseException as error:  # handed to the consumer, raised there
            put(queues[0], _Failed(error))

    def run(step: Callable[[Any], Any], inbox: queue.Queue, outbox: queue.Queue) -> None:
        while True:
            item = get(inbox)
            if item is _DONE or isinstance(item, _Failed):
                put(outbox, item)
                return
            try:
                result = step(item)
            except BaseException as error:
                put(outbox, _Failed(error))
                return
            if not put(outbox, result):
                return

    threads = [threading.Thread(target=read, daemon=True, name="pipelined-read")]
    threads += [
        threading.Thread(
            target=run, args=(step, queues[i], queues[i + 1]), daemon=True, name=f"pipelined-{i}"
        )
        for i, step in enumerate(steps)
    ]
    for t in threads:
        t.start()
    try:
        while True:
            item = get(queues[-1])
            if item is _DONE:
                return
            if isinstance(item, _Failed):
                raise item.error
            yield item
    finally:
        stop.set()
        for t in threads:
            t.join()
