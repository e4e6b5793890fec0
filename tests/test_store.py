"""The store on both backends: schema from migrations, constraints, one activity per message."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import func, inspect, select, text
from sqlalchemy.exc import IntegrityError

from store.db import make_engine, session_factory, transaction
from store.migrate import downgrade, upgrade
from store.models import (
    Activity,
    ActivityLink,
    ActivityParticipant,
    ActivitySource,
    Base,
    MailAccount,
    SyncCursor,
)
from store.sync_state import known_provider_ids, load_cursor, save_cursor

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _account(session, name: str = "rep") -> MailAccount:
    account = MailAccount(name=name, provider="maildir", owner_email=f"{name}@ours.io", created_at=NOW)
    session.add(account)
    session.flush()
    return account


def _activity(key: str = "msg:a@x") -> Activity:
    return Activity(
        key=key,
        kind="email",
        message_id=key[4:],
        subject="s",
        direction="inbound",
        occurred_at=NOW,
        created_at=NOW,
        updated_at=NOW,
    )


def test_migrations_match_models(db_url: str) -> None:
    engine = make_engine(db_url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
    engine.dispose()
    assert diff == [], f"models and migrations disagree: {diff}"


def test_downgrade_and_upgrade_again(db_url: str) -> None:
    engine = make_engine(db_url)
    downgrade(engine, "base")
    assert "activities" not in inspect(engine).get_table_names()
    upgrade(engine)
    assert {"activities", "activity_sources", "skip_log", "opportunities"} <= set(
        inspect(engine).get_table_names()
    )
    engine.dispose()


def test_sqlite_runs_in_wal_mode_with_foreign_keys(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
    engine.dispose()


def test_one_activity_per_key_with_many_sources(db_url: str) -> None:
    factory = session_factory(make_engine(db_url))
    with transaction(factory) as s:
        a, b = _account(s, "ana"), _account(s, "ben")
        activity = _activity()
        s.add(activity)
        s.flush()
        for account in (a, b):
            s.add(
                ActivitySource(
                    activity_id=activity.id,
                    account_id=account.id,
                    folder="INBOX",
                    provider_id="1",
                    synced_at=NOW,
                )
            )
    with factory() as s:
        assert s.scalar(select(func.count()).select_from(Activity)) == 1
        assert s.scalar(select(func.count()).select_from(ActivitySource)) == 2
    with pytest.raises(IntegrityError), transaction(factory) as s:
        s.add(_activity())
    with pytest.raises(IntegrityError), transaction(factory) as s:
        account_id = s.scalar(select(MailAccount.id).where(MailAccount.name == "ana"))
        activity_id = s.scalar(select(Activity.id))
        s.add(
            ActivitySource(
                activity_id=activity_id, account_id=account_id, folder="INBOX", provider_id="1", synced_at=NOW
            )
        )


def test_deleting_an_activity_cascades(db_url: str) -> None:
    factory = session_factory(make_engine(db_url))
    with transaction(factory) as s:
        account = _account(s)
        activity = _activity()
        activity.participants.append(ActivityParticipant(email="x@y.com", role="from"))
        s.add(activity)
        s.flush()
        s.add(
            ActivitySource(
                activity_id=activity.id, account_id=account.id, folder="INBOX", provider_id="9", synced_at=NOW
            )
        )
        s.add(
            ActivityLink(
                activity_id=activity.id,
                target_type="contact",
                target_id=1,
                confidence=1.0,
                rule="email_exact",
                reason="r",
                manual=False,
                created_at=NOW,
            )
        )
    with transaction(factory) as s:
        # A bulk delete relies on the database's own ON DELETE CASCADE (foreign keys must be on).
        s.execute(Activity.__table__.delete())
    with factory() as s:
        for model in (ActivitySource, ActivityParticipant, ActivityLink):
            assert s.scalar(select(func.count()).select_from(model)) == 0


def test_cursor_and_known_ids(db_url: str) -> None:
    factory = session_factory(make_engine(db_url))
    with transaction(factory) as s:
        account = _account(s)
        assert load_cursor(s, account.id, "INBOX") is None
        save_cursor(s, account.id, "INBOX", '{"uidnext": 5}')
        save_cursor(s, account.id, "INBOX", '{"uidnext": 9}')
        activity = _activity()
        s.add(activity)
        s.flush()
        s.add(
            ActivitySource(
                activity_id=activity.id, account_id=account.id, folder="INBOX", provider_id="3", synced_at=NOW
            )
        )
        account_id = account.id
    with factory() as s:
        assert load_cursor(s, account_id, "INBOX") == '{"uidnext": 9}'
        assert s.scalar(select(func.count()).select_from(SyncCursor)) == 1
        assert known_provider_ids(s, account_id, "INBOX", ["1", "3", "4"]) == {"3"}
        assert known_provider_ids(s, account_id, "Sent", ["3"]) == set()
