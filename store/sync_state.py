"""Accounts, per-folder cursors, and what the store already holds of a folder."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from store.models import Activity, ActivitySource, MailAccount, SkipLogEntry, SyncCursor


def now() -> datetime:
    return datetime.now(UTC)


def ensure_account(session: Session, name: str, provider: str, owner: str) -> MailAccount:
    account = session.scalar(select(MailAccount).where(MailAccount.name == name))
    if account is None:
        account = MailAccount(
            name=name, provider=provider, owner_email=owner, state="active", created_at=now()
        )
        session.add(account)
        session.flush()
    else:
        account.provider, account.owner_email = provider, owner
    return account


def load_cursor(session: Session, account_id: int, folder: str) -> str | None:
    return session.scalar(
        select(SyncCursor.state).where(SyncCursor.account_id == account_id, SyncCursor.folder == folder)
    )


def save_cursor(session: Session, account_id: int, folder: str, state: str) -> None:
    row = session.scalar(
        select(SyncCursor).where(SyncCursor.account_id == account_id, SyncCursor.folder == folder)
    )
    if row is None:
        session.add(SyncCursor(account_id=account_id, folder=folder, state=state, updated_at=now()))
    else:
        row.state, row.updated_at = state, now()


def known_provider_ids(session: Session, account_id: int, folder: str, ids: list[str]) -> set[str]:
    """The ids of ``folder`` already logged, skipped or quarantined (so never read twice)."""
    if not ids:
        return set()
    logged = session.scalars(
        select(ActivitySource.provider_id).where(
            ActivitySource.account_id == account_id,
            ActivitySource.folder == folder,
            ActivitySource.provider_id.in_(ids),
        )
    )
    skipped = session.scalars(
        select(SkipLogEntry.provider_id).where(
            SkipLogEntry.account_id == account_id,
            SkipLogEntry.folder == folder,
            SkipLogEntry.provider_id.in_(ids),
        )
    )
    return set(logged) | set(skipped)


def known_message_ids(session: Session, message_ids: list[str]) -> set[str]:
    """The Message-IDs logged or skipped anywhere in the store."""
    if not message_ids:
        return set()
    logged = session.scalars(select(Activity.message_id).where(Activity.message_id.in_(message_ids)))
    skipped = session.scalars(select(SkipLogEntry.message_id).where(SkipLogEntry.message_id.in_(message_ids)))
    return {m for m in logged if m} | {m for m in skipped if m}
