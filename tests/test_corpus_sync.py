"""Whole real mailboxes through the pipeline: the Enron set, the Apache archives, MIME torture."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import func, select

from store.db import make_engine, session_factory
from store.models import Activity, ActivitySource, SkipLogEntry
from syncd.pipeline import Pipeline
from tests.builders import config
from tests.corpus import require_corpus

LOG_ALL = 'log_internal = true\nunknown_participants = "log"'


def _account(provider: str, path: Path, extra: str = "") -> str:
    return (
        f'[[accounts]]\nname = "{provider}"\nprovider = "{provider}"\nowner = "rep@lumenfold.io"\n'
        f'path = "{path}"\n{extra}\n'
    )


def test_enron_set_syncs_without_crash_and_quarantines_almost_nothing(
    tmp_path: Path, sqlite_url: str
) -> None:
    enron = require_corpus() / "emails/enron_berkeley_annotated/enron_with_categories"
    files = list(enron.glob("*/[0-9]*.txt"))
    assert len(files) == 1702
    cfg = config(tmp_path, sqlite_url, _account("eml", enron, 'pattern = "[0-9]*.txt"'), LOG_ALL)
    factory = session_factory(make_engine(sqlite_url))
    pipeline = Pipeline(cfg, factory)
    report = pipeline.sync_account(cfg.accounts[0])
    assert report.error is None
    handled = report.total("logged") + report.total("merged") + sum(report.skipped.values())
    assert handled + report.total("quarantined") == 1702
    assert report.total("quarantined") <= 5
    with factory() as s:
        for entry in s.scalars(select(SkipLogEntry).where(SkipLogEntry.quarantined.is_(True))):
            assert entry.detail and len(entry.detail) > 10, entry.provider_id
        # Enron mail is from 1998-2002 and every date is stored in UTC.
        first, last = s.execute(select(func.min(Activity.occurred_at), func.max(Activity.occurred_at))).one()
        assert first.year >= 1979 and last.year <= 2044
        assert s.scalar(select(func.count()).select_from(ActivitySource)) == report.total(
            "logged"
        ) + report.total("merged")

    source = cfg.accounts[0].make_source()
    again = pipeline.sync_account(cfg.accounts[0], source)
    assert again.total("logged") == again.total("merged") == source.stats.files_read == 0


def test_apache_mbox_archives_sync_every_message(tmp_path: Path, sqlite_url: str) -> None:
    archives = require_corpus() / "emails/apache_mailing_lists"
    mboxes = sorted(p for p in archives.rglob("*") if p.is_file() and p.suffix in (".mbox", ".mbx", ""))
    assert mboxes, "the Apache archives are missing from the corpus"
    # Mailing-list mail carries List-Id: as bulk mail it is skipped unless nothing filters it,
    # so count the messages the pipeline saw, whatever it decided.
    cfg = config(tmp_path, sqlite_url, _account("mbox", mboxes[0].parent), LOG_ALL)
    factory = session_factory(make_engine(sqlite_url))
    report = Pipeline(cfg, factory).sync_account(cfg.accounts[0])
    assert report.error is None
    seen = report.total("logged") + report.total("merged") + sum(report.skipped.values())
    assert seen + report.total("quarantined") == 493
    assert report.skipped["bulk_mail"] > 400
    assert report.total("quarantined") == 0


def test_mime_torture_never_stops_a_sync(tmp_path: Path, sqlite_url: str) -> None:
    mime = require_corpus() / "mime"
    cfg = config(
        tmp_path, sqlite_url, _account("eml", mime, 'pattern = ["*.eml", "*.msg", "*.txt"]'), LOG_ALL
    )
    factory = session_factory(make_engine(sqlite_url))
    report = Pipeline(cfg, factory).sync_account(cfg.accounts[0])
    assert report.error is None
    total = report.total("logged") + report.total("merged") + sum(report.skipped.values())
    assert total + report.total("quarantined") > 90
    with factory() as s:
        for entry in s.scalars(select(SkipLogEntry).where(SkipLogEntry.quarantined.is_(True))):
            assert entry.detail, entry.provider_id
