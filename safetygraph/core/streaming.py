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


def _put(q: queue.Queue, value: Any, stop: threading.Event) -> bool:
    """Whether ``value`` went into ``q`` before ``stop`` was set (it waits while ``q`` is full)."""
    while not stop.is_set():
        try:
            q.put(value, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False


def _get(q: queue.Queue, stop: threading.Event) -> Any:
    """The next item of ``q``, or ``_DONE`` once ``stop`` is set while ``q`` is empty."""
    while True:
        try:
            return q.get(timeout=0.1)
        except queue.Empty:
            if stop.is_set():
                return _DONE


def _read(items: Iterable[Any], outbox: queue.Queue, stop: threading.Event) -> None:
    """None: puts each of ``items`` into ``outbox``, then ``_DONE`` (or a ``_Failed``)."""
    try:
        for item in items:
            if not _put(outbox, item, stop):
                return
        _put(outbox, _DONE, stop)
    except BaseException as error:  # handed to the consumer, raised there
        _put(outbox, _Failed(error), stop)


def _run(
    step: Callable[[Any], Any], inbox: queue.Queue, outbox: queue.Queue, stop: threading.Event
) -> None:
    """None: puts ``step(item)`` into ``outbox`` per item of ``inbox``, to the end or an error."""
    while True:
        item = _get(inbox, stop)
        if item is _DONE or isinstance(item, _Failed):
            _put(outbox, item, stop)
            return
        try:
            result = step(item)
        except BaseException as error:
            _put(outbox, _Failed(error), stop)
            return
        if not _put(outbox, result, stop):
            return


def pipelined(items: Iterable[Any], *steps: Callable[[Any], Any], depth: int = 2) -> Iterator[Any]:
    """Yield ``steps[-1](...steps[0](item))`` for each item, in order, with the steps running
    concurrently on consecutive items. Reading ``items`` happens in a thread of its own too."""
    stop = threading.Event()
    queues = [queue.Queue(maxsize=depth) for _ in range(len(steps) + 1)]
    threads = [
        threading.Thread(
            target=_read, args=(items, queues[0], stop), daemon=True, name="pipelined-read"
        )
    ]
    threads += [
        threading.Thread(
            target=_run,
            args=(step, queues[i], queues[i + 1], stop),
            daemon=True,
            name=f"pipelined-{i}",
        )
        for i, step in enumerate(steps)
    ]
    for t in threads:
        t.start()
    try:
        while True:
            item = _get(queues[-1], stop)
            if item is _DONE:
                return
            if isinstance(item, _Failed):
                raise item.error
            yield item
    finally:
        stop.set()
        for t in threads:
            t.join()
