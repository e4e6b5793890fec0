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

from connectors.imap_idle import ImapIdleWatcher
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
                on_report(pipeline.sync_account(config.account(name)))
    finally:
        for watcher in watchers:
            watcher.stop()
