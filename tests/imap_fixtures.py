"""Pytest fixtures for the IMAP tests: one Dovecot per session, a fresh mailbox per test.

Registered from ``tests/conftest.py`` (``pytest_plugins``). The server comes from
:mod:`tests.dovecot`; each test gets a user of its own, so tests never see each
other's mail and need no cleanup.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from connectors.base import Batch
from connectors.imap import ImapSource
from connectors.imap_sync import header_message_id
from store.db import make_engine, session_factory
from store.models import Activity, ActivitySource, SkipLogEntry
from syncd.config import Config
from syncd.pipeline import AccountReport, Pipeline
from tests.builders import REP, config, email
from tests.dovecot import PASSWORD, DovecotServer, DovecotUnavailable

PASSWORD_ENV = "SYNCD_TEST_IMAP_PASSWORD"


@pytest.fixture(scope="session")
def dovecot() -> Iterator[DovecotServer]:
    """A Dovecot on loopback for the whole session (installed with apt-get if missing)."""
    try:
        server = DovecotServer.start()
    except DovecotUnavailable as exc:
        pytest.fail(f"the IMAP tests need Dovecot: {exc}")
    try:
        yield server
    finally:
        server.stop()


@dataclass
class ImapAccount:
    """A fresh IMAP user and a store, wired into a config and a pipeline."""

    server: DovecotServer
    user: str
    tmp_path: Path
    store_url: str

    def options(self, **overrides: Any) -> dict[str, Any]:
        opts: dict[str, Any] = {
            "host": self.server.host,
            "port": self.server.imap_port,
            "tls": "none",
            "username": self.user,
            "password_env": PASSWORD_ENV,
        }
        opts.update(overrides)
        return {k: v for k, v in opts.items() if v is not None}

    def source(self, **overrides: Any) -> ImapSource:
        return ImapSource(**self.options(**overrides))

    def config(self, policy: str = 'unknown_participants = "log"', **overrides: Any) -> Config:
        lines = [f'name = "{self.user}"', 'provider = "imap"', f'owner = "{REP}"']
        for key, value in self.options(**overrides).items():
            lines.append(f"{key} = {_toml(value)}")
        return config(self.tmp_path, self.store_url, "[[accounts]]\n" + "\n".join(lines) + "\n", policy)

    def pipeline(self, cfg: Config | None = None) -> Pipeline:
        return Pipeline(cfg or self.config(), session_factory(make_engine(self.store_url)))

    def sync(self, source: ImapSource | None = None, **overrides: Any) -> tuple[AccountReport, ImapSource]:
        """One Pipeline.sync_account run through a new source (returned, for its stats)."""
        cfg = self.config(**overrides)
        source = source or cfg.accounts[0].make_source()
        return self.pipeline(cfg).sync_account(cfg.accounts[0], source), source


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


@pytest.fixture
def imap_account(
    dovecot: DovecotServer, sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> ImapAccount:
    """A new Dovecot user with an empty mailbox, and a clean SQLite store."""
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
    return ImapAccount(dovecot, dovecot.add_user(), tmp_path, sqlite_url)


@pytest.fixture
def imap_account_any_db(
    dovecot: DovecotServer, db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> ImapAccount:
    """A new Dovecot user with an empty mailbox, and a clean store on SQLite and PostgreSQL."""
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
    return ImapAccount(dovecot, dovecot.add_user(), tmp_path, db_url)


# Helpers shared by the IMAP tests (and usable by the benchmark).


def mail(i: int, pad: int = 0) -> bytes:
    return email(
        f"Client {i} <c{i}@acme-freight.com>",
        REP,
        f"Question {i}",
        f"Body {i}\n" + "x" * pad,
        message_id=f"m{i}@acme-freight.com",
        when=datetime(2026, 3, 2, 15, 30, tzinfo=UTC) + timedelta(minutes=i),
    )


class FakeStore:
    """The pipeline's side of the Source protocol: known ids, and a commit per batch."""

    def __init__(self) -> None:
        self.pids: set[str] = set()
        self.mids: set[str] = set()
        self.deleted: set[str] = set()
        self.batches: list[Batch] = []
        self.cursor: str | None = None

    def __call__(self, ids: list[str]) -> set[str]:
        return {i for i in ids if i in self.pids}

    def message_ids(self, ids: list[str]) -> set[str]:
        return {i for i in ids if i in self.mids}

    def drain(self, source: ImapSource, folder: str = "INBOX", stop_after: int | None = None) -> None:
        for n, batch in enumerate(source.changes(folder, self.cursor, self)):
            if stop_after is not None and n >= stop_after:
                return  # a crash before this batch's commit
            self.batches.append(batch)
            for item in batch.items:
                self.pids.add(item.provider_id)
                self.mids.add(header_message_id(item.data) or "")
            self.pids.update(pid for pid, _ in batch.relocated)
            self.deleted.update(batch.deleted)
            self.pids.difference_update(batch.deleted)
            self.cursor = batch.cursor or self.cursor


@functools.cache
def _factory(url: str) -> sessionmaker[Session]:
    # One engine per store: counts() is polled in loops (the IDLE test) and must not leak pools.
    return session_factory(make_engine(url))


def counts(account: ImapAccount) -> dict[str, int]:
    with _factory(account.store_url)() as s:
        src = select(func.count()).select_from(ActivitySource)
        return {
            "activities": s.scalar(select(func.count()).select_from(Activity)) or 0,
            "live": s.scalar(src.where(ActivitySource.deleted_at.is_(None))) or 0,
            "deleted": s.scalar(src.where(ActivitySource.deleted_at.is_not(None))) or 0,
            "skipped": s.scalar(select(func.count()).select_from(SkipLogEntry)) or 0,
        }


def sources(account: ImapAccount) -> list[tuple[str, str, bool]]:
    with _factory(account.store_url)() as s:
        rows = s.execute(select(ActivitySource.folder, ActivitySource.provider_id, ActivitySource.deleted_at))
        return sorted((folder, pid, deleted is not None) for folder, pid, deleted in rows)
