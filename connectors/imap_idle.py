"""Push for one IMAP folder: IDLE (RFC 2177) in a thread, calling back when the folder changes.

The watcher only says *that* a folder changed; the sync itself (cursor, batches, commit)
stays with the pipeline, which the callback runs. Other folders are polled by the
scheduler: one IDLE needs one connection, and servers cap connections per user.

- IDLE is renewed every 25 minutes: RFC 2177 lets a server drop a client after 30
  minutes of inactivity, and an IDLE counts as one long inactive command.
- A lost connection is re-opened with exponential backoff and full jitter, and the
  callback runs once after every reconnect: changes made while we were away sent no
  notification.
- A refused login stops the watcher (retrying a wrong password only locks accounts);
  ``on_error`` is told, and :attr:`ImapIdleWatcher.error` keeps the error.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from typing import Any

from connectors.base import AuthError, SourceError, TransientError
from connectors.imap import ImapSource
from connectors.imap_session import ImapSession

log = logging.getLogger(__name__)

RENEW_EVERY = 25 * 60.0  # seconds; below RFC 2177's 29-minute advice
WAIT_SLICE = 5.0  # seconds per wait, so that the renewal deadline is checked


def backoff_delay(
    attempt: int, base: float = 1.0, cap: float = 300.0, rand: Callable[[], float] = random.random
) -> float:
    """Seconds to wait before retry ``attempt`` (1, 2, ...): exponential, with full jitter.

    Full jitter (a uniform draw between 0 and the exponential bound) spreads the retries of
    many clients that lost the same server at the same moment.
    """
    return rand() * min(cap, base * 2 ** max(attempt - 1, 0))


class ImapIdleWatcher:
    """IDLE on ``folder`` of the account ``source_kwargs`` describe (the ImapSource keywords)."""

    def __init__(
        self,
        *,
        on_change: Callable[[str], None],
        folder: str = "INBOX",
        on_error: Callable[[Exception], None] | None = None,
        renew_every: float = RENEW_EVERY,
        backoff_base: float = 1.0,
        backoff_cap: float = 300.0,
        **source_kwargs: Any,
    ) -> None:
        source = ImapSource(**source_kwargs)  # the same validation as a configured account
        self.settings = source.settings
        self.folder = folder
        self.on_change = on_change
        self.on_error = on_error
        self.renew_every = renew_every
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.error: Exception | None = None
        self.connects = 0
        self.renewals = 0
        self.connected = threading.Event()
        self._stop = threading.Event()
        self._session: ImapSession | None = None
        self._thread = threading.Thread(target=self._run, name=f"imap-idle {folder}", daemon=True)

    def __repr__(self) -> str:
        return f"ImapIdleWatcher({self.settings.where}, {self.folder!r})"

    def start(self) -> ImapIdleWatcher:
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop now: cutting the socket wakes the thread from its wait at once."""
        self._stop.set()
        session = self._session
        if session is not None:
            session.drop()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def __enter__(self) -> ImapIdleWatcher:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                # Plain EXPUNGE responses suffice here: no need for QRESYNC's VANISHED.
                self._session = ImapSession.connect(self.settings, frozenset({"QRESYNC", "CONDSTORE"}))
                self._session.select(self.folder)
                self.connects += 1
                self.connected.set()
                if failures:
                    self._notify()
                failures = 0
                self._idle(self._session)
            except AuthError as exc:
                log.error("%s: IDLE stopped: %s", self, exc)
                self.error = exc
                if self.on_error:
                    self.on_error(exc)
                return
            except SourceError as exc:
                if self._stop.is_set():
                    return
                failures += 1
                delay = backoff_delay(failures, self.backoff_base, self.backoff_cap)
                if isinstance(exc, TransientError) and exc.retry_after:
                    delay = max(delay, exc.retry_after)
                log.warning("%s: %s; reconnecting in %.1f s", self, exc, delay)
                self.connected.clear()
                self._stop.wait(delay)
            finally:
                if self._session is not None:
                    self._session.drop()
                    self._session.close()
                    self._session = None

    def _idle(self, session: ImapSession) -> None:
        while not self._stop.is_set():
            session.idle_start()
            renew_at = time.monotonic() + self.renew_every
            changed = False
            while not changed and not self._stop.is_set():
                left = renew_at - time.monotonic()
                if left <= 0:
                    self.renewals += 1
                    break
                changed = session.idle_wait(min(left, WAIT_SLICE))
            if self._stop.is_set():
                return
            changed = session.idle_done() or changed
            if changed:
                self._notify()

    def _notify(self) -> None:
        try:
            self.on_change(self.folder)
        except Exception:  # a failing sync must not end the push
            log.exception("%s: the change callback failed", self)
