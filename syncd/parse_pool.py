"""Parsing batches in worker processes, one batch ahead of the store.

Parsing is the largest CPU cost of an ingest and is pure (bytes in, a parsed message out),
so it runs in a small process pool while the main process stores the previous batch.
Small batches (an incremental sync's handful of new messages) are parsed inline: starting
a worker would cost more than it saves.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")
R = TypeVar("R")

MIN_ITEMS = 64  # below this, parse inline
CHUNK = 32  # items per task: amortizes pickling round trips


def default_workers() -> int:
    """One worker per core beyond the one the main process needs, at most four."""
    return max(0, min(4, (os.cpu_count() or 1) - 1))


class ParsePool:
    def __init__(self, workers: int | None = None) -> None:
        self.workers = default_workers() if workers is None else workers
        self._pool: ProcessPoolExecutor | None = None

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            # forkserver, not fork: the parent has threads (the fetch thread, IMAP sockets)
            # and database connections that a forked child must not inherit.
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload(["connectors.parse_item"])
            self._pool = ProcessPoolExecutor(self.workers, mp_context=context)
        return self._pool

    def submit(self, func: Callable[[T], R], items: Sequence[T]) -> Callable[[], list[R]]:
        """Start parsing ``items``; the returned function waits for and returns the results."""
        if self.workers == 0 or len(items) < MIN_ITEMS:
            return lambda: [func(item) for item in items]
        pool = self._executor()
        chunks = [items[i : i + CHUNK] for i in range(0, len(items), CHUNK)]
        futures: list[Future[list[R]]] = [pool.submit(_map, func, chunk) for chunk in chunks]

        def results() -> list[R]:
            try:
                return [result for future in futures for result in future.result()]
            except BrokenProcessPool as exc:
                # A worker died (killed, out of memory, or a program without a __main__
                # guard): parse inline from now on rather than fail the sync.
                log.warning("parse workers unavailable (%s); parsing in the main process", exc)
                self.close()
                self.workers = 0
                return [func(item) for item in items]

        return results

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


def _map(func: Callable[[T], R], items: Sequence[T]) -> list[R]:
    return [func(item) for item in items]
