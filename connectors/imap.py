"""Any IMAP server (RFC 3501 / RFC 9051), full history, kept current.

:class:`ImapSource` implements :class:`~connectors.base.Source`. The protocol lives in
:mod:`connectors.imap_session`, the folder choice in :mod:`connectors.imap_folders`, one
folder's sync and its cursor in :mod:`connectors.imap_sync`, push in :mod:`connectors.imap_idle`.

Config (``provider = "imap"``): every constructor keyword below except ``token_provider``,
which is for programmatic use (the Gmail and Outlook connectors pass their OAuth token
source). Passwords and tokens are never in the config: ``password_env`` and
``oauth2_token_env`` name the environment variables that hold them.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TypeVar

from connectors.base import Batch, KnownFilter
from connectors.imap_folders import choose_folders
from connectors.imap_session import TLS_MODES, ImapSession, ImapSettings, is_loopback
from connectors.imap_sync import FolderSync, ImapStats
from connectors.local_common import check_limits, expand_path

log = logging.getLogger(__name__)
T = TypeVar("T")

_RELATIVE = re.compile(r"^\s*(\d+)\s*d\s*$", re.IGNORECASE)


def parse_since(value: str | None, today: date | None = None) -> date | None:
    """``"365d"`` (days before today, UTC) or ``"2024-01-01"``; None is the whole history."""
    if value is None:
        return None
    today = today or datetime.now(UTC).date()
    match = _RELATIVE.match(value)
    if match:
        return today - timedelta(days=int(match.group(1)))
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise ValueError(
            f'since must be a number of days such as "365d" or a date such as "2024-01-01", got {value!r}'
        ) from None


class ImapSource:
    """A mailbox on an IMAP server. See the module docstring and :mod:`connectors.imap_sync`.

    ``tls``: ``"tls"`` (implicit TLS, port 993), ``"starttls"`` (port 143, upgraded; a
    server without STARTTLS is refused, never used in clear) or ``"none"``, allowed only
    when ``host`` is a loopback address. ``ca_file`` replaces the system CAs to trust a
    private CA; certificate and host name checks cannot be turned off.
    """

    # Capabilities to pretend the server lacks (tests drive the no-QRESYNC path with it).
    ignore_capabilities: frozenset[str] = frozenset()

    def __init__(
        self,
        host: str,
        username: str,
        port: int | None = None,
        tls: str = "tls",
        password_env: str | None = None,
        oauth2_token_env: str | None = None,
        ca_file: Path | None = None,
        folders: list[str] | None = None,
        exclude_folders: list[str] | None = None,
        since: str | None = None,
        batch_size: int = 500,
        batch_bytes: int = 16_000_000,
        full_check_every: int = 3600,
        timeout: float = 60.0,
        *,
        token_provider: Callable[[], str] | None = None,
    ) -> None:
        check_limits(batch_size, batch_bytes)
        if tls not in TLS_MODES:
            raise ValueError(f"tls must be one of {', '.join(TLS_MODES)}, got {tls!r}")
        if tls == "none" and not is_loopback(host):
            raise ValueError(
                f'tls = "none" sends the password in clear and is allowed only to a loopback '
                f'address (127.0.0.1, ::1, localhost); {host!r} is not one: use "tls" or "starttls"'
            )
        secrets = [x for x in (password_env, oauth2_token_env, token_provider) if x is not None]
        if len(secrets) != 1:
            raise ValueError(
                "set exactly one of password_env (the environment variable holding the password) "
                "or oauth2_token_env (the one holding an XOAUTH2 access token)"
            )
        if port is not None and not 0 < port < 65536:
            raise ValueError(f"port must be between 1 and 65535, got {port}")
        if full_check_every < 0:
            raise ValueError(f"full_check_every must be 0 or more seconds, got {full_check_every}")
        if timeout <= 0:
            raise ValueError(f"timeout must be positive, got {timeout}")
        if ca_file is not None and not expand_path(ca_file).is_file():
            raise ValueError(f"ca_file {str(ca_file)!r} is not a readable file")
        self.since_spec = since
        parse_since(since)  # fail at config time, not at the first sync
        self.settings = ImapSettings(
            host=host,
            port=port or (993 if tls == "tls" else 143),
            tls=tls,
            username=username,
            password_env=password_env,
            oauth2_token_env=oauth2_token_env,
            token_provider=token_provider,
            ca_file=expand_path(ca_file) if ca_file else None,
            timeout=float(timeout),
        )
        self.include = list(folders) if folders is not None else None
        self.exclude = list(exclude_folders or [])
        self.batch_size = batch_size
        self.batch_bytes = batch_bytes
        self.full_check_every = full_check_every
        self.stats = ImapStats()
        self.before_body_fetch: Callable[[list[int]], None] | None = None  # a test hook
        self._session: ImapSession | None = None

    def __repr__(self) -> str:
        return f"ImapSource({self.settings.where}, tls={self.settings.tls})"

    def session(self) -> ImapSession:
        """The open connection, connecting (and logging in) on first use or after a failure."""
        if self._session is None:
            self._session = ImapSession.connect(self.settings, self.ignore_capabilities)
        return self._session

    def folders(self) -> list[str]:
        session = self._guard(self.session)
        listing = self._guard(session.list_folders)
        delimiter = next((d for _, d, _ in listing if d), "/")
        chosen = choose_folders(
            [(attrs, name) for attrs, _, name in listing],
            gmail=session.gmail,
            include=self.include,
            exclude=self.exclude,
            delimiter=delimiter,
        )
        log.debug("%s: syncing folders %s", self.settings.where, ", ".join(chosen) or "(none)")
        return chosen

    def changes(self, folder: str, cursor: str | None, known: KnownFilter) -> Iterator[Batch]:
        """New mail, deletions, then the rest of the backfill; see :mod:`connectors.imap_sync`."""
        sync = FolderSync(
            session=self._guard(self.session),
            folder=folder,
            known=known,
            stats=self.stats,
            since=parse_since(self.since_spec),
            batch_size=self.batch_size,
            batch_bytes=self.batch_bytes,
            full_check_every=self.full_check_every,
            before_body_fetch=self.before_body_fetch,
        )
        try:
            yield from sync.changes(cursor)
        except BaseException:
            # The connection's state is unknown (mid-response, perhaps): never reuse it. A
            # batch that was not committed is fetched again by the next run.
            self._forget_session()
            raise

    def _guard(self, call: Callable[[], T]) -> T:
        try:
            return call()
        except BaseException:
            self._forget_session()
            raise

    def _forget_session(self) -> None:
        if self._session is not None:
            self._session.drop()
            self._session.close()
            self._session = None

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None
