"""``syncd sync --watch``: keep every mailbox current until stopped.

IMAP accounts get an IDLE watcher on INBOX, so new mail there is logged within seconds;
every account (and every other folder) is also synced every ``interval`` seconds. One
loop runs the syncs, so an account is never synced twice at once, and triggers that
arrive while it is busy are coalesced into one more run. (The full service, with a
scheduler, health and metrics, is ``syncd run``.)
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable

from connectors.imap_idle import ImapIdleWatcher, backoff_delay
from syncd.config import Config
from syncd.pipeline import AccountReport, Pipeline

log = logging.getLogger(__name__)


def watch(
    config: Config,
    pipeline: Pipeline,
    interval: float,
    stop: threading.Event,
    on_report: Callable[[AccountReport], None] = lambda _r: None,
) -> None:
    due: queue.Queue[str] = queue.Queue()
    watchers = [
        ImapIdleWatcher(on_change=lambda _folder, name=account.name: due.put(name), **account.options)
        for account in config.accounts
        if account.provider == "imap"
    ]
    for watcher in watchers:
        watcher.start()
    health = _Health(interval)
    next_poll = 0.0
    try:
        while not stop.is_set():
            now = time.monotonic()
            if now >= next_poll:
                for account in config.accounts:
                    due.put(account.name)
                next_poll = now + interval
            try:
                first = due.get(timeout=min(1.0, max(0.0, next_poll - now)))
            except queue.Empty:
                continue
            names = [first]
            while not due.empty():  # coalesce what arrived meanwhile
                names.append(due.get_nowait())
            for name in dict.fromkeys(names):
                if stop.is_set():
                    break
                if health.skip(name, time.monotonic()):
                    continue
                report = pipeline.sync_account(config.account(name))
                health.record(name, report, time.monotonic())
                on_report(report)
    finally:
        for watcher in watchers:
            watcher.stop()


class _Health:
    """When to try a failing account again.

    A server that is down is retried with exponential backoff and full jitter (never
    sooner than the backoff, whatever triggers arrive); an account whose credentials were
    refused (``needs_reauth``) is not retried at all until syncd is restarted with new
    credentials: retrying a wrong password only gets an account locked.
    """

    def __init__(self, interval: float) -> None:
        self.cap = max(interval, 60.0) * 8
        self.failures: dict[str, int] = {}
        self.retry_at: dict[str, float] = {}
        self.blocked: set[str] = set()

    def skip(self, name: str, now: float) -> bool:
        return name in self.blocked or now < self.retry_at.get(name, 0.0)

    def record(self, name: str, report: AccountReport, now: float) -> None:
        if report.state == "needs_reauth":
            self.blocked.add(name)
            log.error("%s: credentials refused (%s); not retrying until restarted", name, report.error)
        elif report.error:
            self.failures[name] = attempt = self.failures.get(name, 0) + 1
            delay = backoff_delay(attempt, base=30.0, cap=self.cap)
            self.retry_at[name] = now + delay
            log.warning("%s: sync failed (%s); retrying in %.0f s", name, report.error, delay)
        else:
            self.failures.pop(name, None)
            self.retry_at.pop(name, None)
