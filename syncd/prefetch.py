"""Fetching the next batch while the current one is being parsed and stored.

A source spends most of its time waiting on the network or the server; the pipeline
spends its time parsing and writing. Running the source's iterator one batch ahead in a
thread overlaps the two. Order is preserved, so each batch is still committed with its
own cursor, in sequence.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Iterator
from typing import TypeVar

T = TypeVar("T")
_DONE = object()


def prefetched(items: Iterator[T], depth: int = 1, name: str = "prefetch") -> Iterator[T]:
    """Yield ``items`` as produced by a thread that stays at most ``depth`` items ahead."""
    slots: queue.Queue[object] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        slots.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            slots.put(_DONE)
        except BaseException as exc:  # handed to the consumer, raised there
            slots.put(exc)
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(target=produce, name=name, daemon=True)
    thread.start()
    try:
        while True:
            item = slots.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        while thread.is_alive():  # unblock a producer waiting on a full queue, then wait for it
            with contextlib.suppress(queue.Empty):
                slots.get_nowait()
            thread.join(timeout=0.05)
