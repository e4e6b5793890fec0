"""Read views for the CLI (and later the web app): activities, explanations, status."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from store.models import (
    Activity,
    ActivityLink,
    ActivitySource,
    Company,
    Contact,
    ContactEmail,
    MailAccount,
    Opportunity,
    SkipLogEntry,
    SyncCursor,
)


def iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:  # SQLite hands back naive datetimes; we only ever store UTC
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _names(session: Session, links: list[ActivityLink]) -> dict[tuple[str, int], str]:
    wanted: dict[str, set[int]] = defaultdict(set)
    for link in links:
        wanted[link.target_type].add(link.target_id)
    out: dict[tuple[str, int], str] = {}
    if wanted["company"]:
        for cid, name in session.execute(
            select(Company.id, Company.name).where(Company.id.in_(wanted["company"]))
        ):
            out["company", cid] = name
    if wanted["opportunity"]:
        rows = session.execute(
            select(Opportunity.id, Opportunity.name).where(Opportunity.id.in_(wanted["opportunity"]))
        )
        for oid, name in rows:
            out["opportunity", oid] = name
    if wanted["contact"]:
        rows = session.execute(
            select(ContactEmail.contact_id, ContactEmail.email)
            .where(ContactEmail.contact_id.in_(wanted["contact"]))
            .order_by(ContactEmail.is_primary.desc(), ContactEmail.id)
        )
        for cid, email in rows:
            out.setdefault(("contact", cid), email)
    return out


def activity_view(session: Session, activity: Activity, names: dict[tuple[str, int], str]) -> dict[str, Any]:
    links = activity.links
    by_type: dict[str, list[ActivityLink]] = defaultdict(list)
    for link in links:
        if link.status == "linked":
            by_type[link.target_type].append(link)
    return {
        "key": activity.key,
        "message_id": activity.message_id or activity.ical_uid,
        "kind": activity.kind,
        "subject": activity.subject,
        "occurred_at": iso(activity.occurred_at),
        "direction": activity.direction,
        "participants": [
            {"email": p.email, "name": p.display_name, "role": p.role, **({"rsvp": p.rsvp} if p.rsvp else {})}
            for p in activity.participants
        ],
        "contacts": [names.get(("contact", link.target_id), "") for link in by_type["contact"]],
        "companies": [names.get(("company", link.target_id), "") for link in by_type["company"]],
        "opportunities": [
            {
                "name": names.get(("opportunity", link.target_id), ""),
                "confidence": link.confidence,
                "rule": link.rule,
            }
            for link in by_type["opportunity"]
        ],
        "insights": [{"kind": i.kind, "category": i.category, "text": i.text} for i in activity.insights],
        "not_linked": list(activity.match_notes or []),
        **(
            {"meeting_status": activity.meeting_status, "ends_at": iso(activity.ends_at)}
            if activity.kind == "meeting"
            else {}
        ),
    }


def list_activities(
    session: Session, limit: int | None = None, account: str | None = None
) -> list[dict[str, Any]]:
    query = (
        select(Activity)
        .options(
            selectinload(Activity.participants), selectinload(Activity.links), selectinload(Activity.insights)
        )
        .order_by(Activity.occurred_at.desc().nulls_last(), Activity.id.desc())
    )
    if account:
        query = query.where(
            Activity.id.in_(
                select(ActivitySource.activity_id)
                .join(MailAccount, MailAccount.id == ActivitySource.account_id)
                .where(MailAccount.name == account)
            )
        )
    if limit:
        query = query.limit(limit)
    activities = list(session.scalars(query))
    names = _names(session, [link for a in activities for link in a.links])
    return [activity_view(session, a, names) for a in activities]


def clean_message_id(message_id: str) -> str:
    return message_id.strip().strip("<>")


def activity_by_message_id(session: Session, message_id: str) -> Activity | None:
    """The activity of a Message-ID (with or without brackets), a meeting UID, or a key."""
    mid = clean_message_id(message_id)
    return session.scalar(
        select(Activity)
        .where((Activity.message_id == mid) | (Activity.ical_uid == mid) | (Activity.key == mid))
        .order_by(Activity.id)
        .limit(1)
    )


def explain(session: Session, message_id: str) -> dict[str, Any]:
    """Why a message was logged, skipped or quarantined, and why each link was made or refused."""
    mid = clean_message_id(message_id)
    activity = activity_by_message_id(session, mid)
    if activity is not None:
        names = _names(session, activity.links)
        sources = session.execute(
            select(
                MailAccount.name, ActivitySource.folder, ActivitySource.provider_id, ActivitySource.deleted_at
            )
            .join(MailAccount, MailAccount.id == ActivitySource.account_id)
            .where(ActivitySource.activity_id == activity.id)
            .order_by(ActivitySource.id)
        )
        return {
            "message_id": mid,
            "status": "logged",
            "activity": activity_view(session, activity, names),
            "sources": [
                {"account": a, "folder": f, "provider_id": p, **({"deleted_at": iso(d)} if d else {})}
                for a, f, p, d in sources
            ],
            "links": [
                {
                    "type": link.target_type,
                    "target": names.get((link.target_type, link.target_id), ""),
                    "confidence": link.confidence,
                    "rule": link.rule,
                    "reason": link.reason,
                    "manual": link.manual,
                    "status": link.status,
                }
                for link in activity.links
            ],
            "not_linked": list(activity.match_notes or []),
            "rules": activity.match_details or {},
        }
    entries = session.execute(
        select(SkipLogEntry, MailAccount.name)
        .join(MailAccount, MailAccount.id == SkipLogEntry.account_id)
        .where(SkipLogEntry.message_id == mid)
        .order_by(SkipLogEntry.id)
    ).all()
    if entries:
        first = entries[0][0]
        return {
            "message_id": mid,
            "status": "quarantined" if first.quarantined else "skipped",
            "reason": first.reason,
            "detail": first.detail,
            "subject": first.subject,
            "sender": first.sender,
            "seen_in": [
                {"account": name, "folder": e.folder, "provider_id": e.provider_id} for e, name in entries
            ],
        }
    return {
        "message_id": mid,
        "status": "unknown",
        "detail": "no message with this Message-ID or UID was synced",
    }


def status(session: Session) -> dict[str, Any]:
    accounts = []
    for account in session.scalars(select(MailAccount).order_by(MailAccount.name)):
        activities = session.scalar(
            select(func.count(func.distinct(ActivitySource.activity_id))).where(
                ActivitySource.account_id == account.id
            )
        )
        skipped = dict(
            session.execute(
                select(SkipLogEntry.reason, func.count())
                .where(SkipLogEntry.account_id == account.id)
                .group_by(SkipLogEntry.reason)
                .order_by(SkipLogEntry.reason)
            ).all()
        )
        folders = [
            {"folder": folder, "synced_at": iso(updated)}
            for folder, updated in session.execute(
                select(SyncCursor.folder, SyncCursor.updated_at)
                .where(SyncCursor.account_id == account.id)
                .order_by(SyncCursor.folder)
            )
        ]
        accounts.append(
            {
                "name": account.name,
                "provider": account.provider,
                "owner": account.owner_email,
                "state": account.state,
                "last_sync_at": iso(account.last_sync_at),
                "last_error": account.last_error,
                "activities": activities,
                "skipped": skipped,
                "folders": folders,
            }
        )
    totals = {
        "activities": session.scalar(select(func.count()).select_from(Activity)),
        "contacts": session.scalar(select(func.count()).select_from(Contact)),
        "companies": session.scalar(select(func.count()).select_from(Company)),
        "opportunities": session.scalar(select(func.count()).select_from(Opportunity)),
    }
    return {"accounts": accounts, "totals": totals}


def skipped(session: Session, account: str | None = None) -> list[dict[str, Any]]:
    query = (
        select(SkipLogEntry, MailAccount.name)
        .join(MailAccount, MailAccount.id == SkipLogEntry.account_id)
        .order_by(SkipLogEntry.id)
    )
    if account:
        query = query.where(MailAccount.name == account)
    return [
        {
            "account": name,
            "folder": e.folder,
            "provider_id": e.provider_id,
            "message_id": e.message_id,
            "subject": e.subject,
            "sender": e.sender,
            "reason": e.reason,
            "detail": e.detail,
        }
        for e, name in session.execute(query)
    ]
