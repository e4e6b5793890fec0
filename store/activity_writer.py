"""Writes activities, their sources, participants, links, insights and skips.

An activity is the real-world email or meeting; the same message seen in two mailboxes
(or twice in one) becomes one activity with several sources.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import insert, or_, select, update
from sqlalchemy.orm import Session

from connectors.message import Meeting, ParsedMessage, Participant
from matchers.contact_policy import NewContact
from matchers.identity import canonical_email, domain_of
from matchers.insights import InsightDraft
from matchers.linking import ContactRef, MatchResult
from store.batch_state import BatchState, PendingEmail
from store.crm_cache import bump_generation
from store.models import (
    Activity,
    ActivityLink,
    ActivityParticipant,
    ActivitySource,
    Contact,
    ContactEmail,
    HeldAddress,
    Insight,
    SkipLogEntry,
)
from store.sync_state import now


def _set_participants(activity: Activity, people: Iterable[Participant]) -> None:
    activity.participants[:] = [
        ActivityParticipant(
            email=p.email, domain=domain_of(p.email), display_name=p.name, role=p.role, rsvp=p.rsvp
        )
        for p in people
    ]


def new_links(result: MatchResult, stamp: datetime | None = None) -> list[ActivityLink]:
    """The matcher's links in force, and its suggestions for the review queue."""
    stamp = stamp or now()
    return [
        ActivityLink(
            target_type=link.target_type,
            target_id=link.target_id,
            confidence=link.confidence,
            rule=link.rule,
            reason=link.reason,
            manual=False,
            status=status,
            created_at=stamp,
        )
        for status, links in (("linked", result.links), ("suggested", result.suggestions))
        for link in links
    ]


def insert_email(
    state: BatchState,
    msg: ParsedMessage,
    direction: str,
    result: MatchResult,
    insights: Iterable[InsightDraft],
) -> PendingEmail:
    """A new email activity, written with the rest of the batch by :func:`flush_pending`.

    New emails are most of what a sync writes, so they bypass the ORM's unit of work and
    go out as a few multi-row INSERTs per batch.
    """
    stamp = now()
    pending = PendingEmail(
        row={
            "key": msg.key,
            "kind": "email",
            "message_id": msg.message_id,
            "thread_key": msg.thread_key,
            "in_reply_to": msg.in_reply_to,
            "subject": msg.subject,
            "occurred_at": msg.date,
            "direction": direction,
            "body_text": msg.text,
            "all_day": False,
            "match_notes": list(result.notes) or None,
            "match_details": result.details(),
            "created_at": stamp,
            "updated_at": stamp,
        },
        participants=[
            {
                "email": p.email,
                "domain": domain_of(p.email),
                "display_name": p.name,
                "role": p.role,
                "rsvp": p.rsvp,
            }
            for p in msg.participants
        ],
        links=[
            {
                "target_type": link.target_type,
                "target_id": link.target_id,
                "confidence": link.confidence,
                "rule": link.rule,
                "reason": link.reason,
                "manual": False,
                "status": status,
                "created_at": stamp,
            }
            for status, links in (("linked", result.links), ("suggested", result.suggestions))
            for link in links
        ],
        insights=[
            {
                "kind": d.kind,
                "category": d.category,
                "text": d.text,
                "position": d.position,
                "author_email": d.author_email,
                "created_at": stamp,
            }
            for d in insights
        ],
    )
    state.add_pending(pending)
    return pending


def flush_pending(state: BatchState) -> None:
    """Insert the batch's new emails and everything hanging off them, a statement per table."""
    pending = state.take_pending()
    if not pending:
        return
    # Core, not the ORM's bulk INSERT: these rows never become ORM objects, and the ORM's
    # per-row bookkeeping was a third of a whole IMAP ingest.
    connection = state.session.connection()
    activities = Activity.__table__
    rows = connection.execute(
        insert(activities).returning(activities.c.id, activities.c.key), [p.row for p in pending]
    ).all()
    ids = {key: activity_id for activity_id, key in rows}
    children: dict[type, list[dict[str, object]]] = {
        ActivityParticipant: [],
        ActivityLink: [],
        Insight: [],
        ActivitySource: [],
    }
    for p in pending:
        p.id = ids[p.row["key"]]
        for model, items in (
            (ActivityParticipant, p.participants),
            (ActivityLink, p.links),
            (Insight, p.insights),
            (ActivitySource, p.sources),
        ):
            children[model].extend({**item, "activity_id": p.id} for item in items)
    for model, items in children.items():
        if items:
            connection.execute(insert(model.__table__), items)


def meeting_people(meeting: Meeting) -> tuple[Participant, ...]:
    return ((meeting.organizer,) if meeting.organizer else ()) + meeting.attendees


def upsert_meeting(state: BatchState, meeting: Meeting, direction: str) -> tuple[Activity, bool]:
    """Insert or update a meeting by UID; returns (activity, whether its content changed).

    Per RFC 5546 a REPLY only carries the replying attendee's PARTSTAT, and a REQUEST
    with a lower SEQUENCE than what we hold is stale: neither replaces the stored event.
    """
    activity = state.activity(meeting.key)
    stamp = now()
    if activity is None:
        activity = Activity(key=meeting.key, kind="meeting", created_at=stamp, all_day=False)
        state.session.add(activity)
        state.remember(activity)
    elif meeting.method == "REPLY":
        by_email = {p.email: p for p in activity.participants}
        for person in meeting.attendees:
            if person.email in by_email:
                by_email[person.email].rsvp = person.rsvp
            else:
                activity.participants.append(
                    ActivityParticipant(
                        email=person.email,
                        domain=domain_of(person.email),
                        display_name=person.name,
                        role="attendee",
                        rsvp=person.rsvp,
                    )
                )
        activity.updated_at = stamp
        return activity, False
    elif meeting.method == "CANCEL":
        activity.meeting_status = "CANCELLED"
        activity.updated_at = stamp
        return activity, False
    elif (activity.sequence or 0) > meeting.sequence:
        return activity, False
    activity.ical_uid = meeting.uid
    activity.thread_key = f"uid:{meeting.uid}"
    activity.subject = meeting.summary
    activity.occurred_at = meeting.start
    activity.ends_at = meeting.end
    activity.all_day = meeting.all_day
    activity.location = meeting.location
    activity.meeting_status = "CANCELLED" if meeting.cancelled else (meeting.status or "CONFIRMED")
    activity.sequence = meeting.sequence
    activity.rrule = meeting.rrule
    activity.conference_url = meeting.conference_url
    activity.body_text = meeting.description
    activity.direction = direction
    activity.updated_at = stamp
    _set_participants(activity, meeting_people(meeting))
    return activity, True


def add_source(
    state: BatchState,
    activity: Activity | PendingEmail,
    provider_id: str,
    thread_id: str | None = None,
    labels: Sequence[str] = (),
) -> bool:
    """Record where the activity was seen; False when that location was already known."""
    if provider_id in state.pending_source_ids:
        return False
    existing = state.source(provider_id)
    if existing is not None:
        existing.deleted_at = None
        return False
    row = {
        "account_id": state.account_id,
        "folder": state.folder,
        "provider_id": provider_id,
        "provider_thread_id": thread_id,
        "labels": list(labels) or None,
        "synced_at": now(),
    }
    if isinstance(activity, PendingEmail) and activity.id is None:
        activity.sources.append(row)
    elif isinstance(activity, PendingEmail):
        state.session.add(ActivitySource(activity_id=activity.id, **row))
    elif activity.id is None:  # a meeting new in this batch: the ORM flush fills in the key
        activity.sources.append(ActivitySource(**row))
    else:  # don't load the activity's other sources just to append one
        state.session.add(ActivitySource(activity_id=activity.id, **row))
    state.pending_source_ids.add(provider_id)
    return True


def replace_links(session: Session, activity: Activity, result: MatchResult) -> None:
    """Store the matcher's links on an existing activity; links set by hand are never replaced."""
    manual = {(link.target_type, link.target_id) for link in activity.links if link.manual}
    for link in [link for link in activity.links if not link.manual]:
        activity.links.remove(link)
    session.flush()  # the delete must reach the database before re-inserting the same targets
    activity.links.extend(
        link for link in new_links(result) if (link.target_type, link.target_id) not in manual
    )
    activity.match_notes = list(result.notes) or None
    activity.match_details = result.details()


def record_skip(
    state: BatchState,
    provider_id: str,
    reason: str,
    detail: str | None,
    *,
    message_id: str | None = None,
    subject: str | None = None,
    sender: str | None = None,
    quarantined: bool = False,
    held: dict[str, Any] | None = None,
    held_addresses: Iterable[str] = (),
) -> None:
    """Record a skip; ``held`` keeps what is needed to log the message later (see rematch)."""
    entry = state.skip(provider_id)
    if entry is None:
        entry = SkipLogEntry(account_id=state.account_id, folder=state.folder, provider_id=provider_id)
        state.session.add(entry)
        state.remember(entry)
    entry.reason, entry.detail, entry.quarantined = reason, detail, quarantined
    entry.message_id = message_id
    entry.subject = subject[:1000] if subject else subject
    entry.sender = sender
    entry.created_at = now()
    entry.held = held
    entry.addresses = [HeldAddress(email=e, domain=domain_of(e)) for e in sorted(set(held_addresses))]


def mark_deleted(session: Session, account_id: int, folder: str, provider_ids: Sequence[str]) -> int:
    """Deleted from the mailbox: the source is marked, the activity is kept (never dropped silently)."""
    if not provider_ids:
        return 0
    result = session.execute(
        update(ActivitySource)
        .where(
            ActivitySource.account_id == account_id,
            ActivitySource.folder == folder,
            # An item holding several activities (a calendar file) records them as "<id>#<key>".
            or_(
                ActivitySource.provider_id.in_(list(provider_ids)),
                *(ActivitySource.provider_id.startswith(f"{pid}#", autoescape=True) for pid in provider_ids),
            ),
            ActivitySource.deleted_at.is_(None),
        )
        .values(deleted_at=now())
    )
    return result.rowcount or 0


def relocate(state: BatchState, provider_id: str, message_id: str) -> str | None:
    """Record a known message at a new location without fetching it; returns what it was.

    A moved message (or one renumbered by a UIDVALIDITY change) keeps its activity, or its
    skip-log decision, under the new provider id. Returns "logged", "skipped" or None when
    the Message-ID is not in the store after all.
    """
    activity = state.activity(f"msg:{message_id}")
    if activity is not None:
        add_source(state, activity, provider_id)
        return "logged"
    entry = state.session.scalar(
        select(SkipLogEntry).where(SkipLogEntry.message_id == message_id).order_by(SkipLogEntry.id).limit(1)
    )
    if entry is None:
        return None
    record_skip(
        state,
        provider_id,
        entry.reason,
        entry.detail,
        message_id=message_id,
        subject=entry.subject,
        sender=entry.sender,
        quarantined=entry.quarantined,
    )
    return "skipped"


def create_contact(session: Session, person: NewContact, company_id: int | None) -> ContactRef:
    """A contact created by the contact policy; flushed so that the rest of the batch sees it."""
    # A CRM write: every process's cached CRM facts must go (the cached "no contact has this
    # address" above all). Bumped before the insert, like every CRM writer (see crm_write).
    bump_generation(session)
    contact = Contact(first_name=person.first_name, last_name=person.last_name, company_id=company_id)
    contact.emails.append(
        ContactEmail(email=person.email, canonical=canonical_email(person.email), is_primary=True)
    )
    session.add(contact)
    session.flush()
    name = " ".join(p for p in (person.first_name, person.last_name) if p) or person.email
    return ContactRef(contact.id, name, person.email, company_id)
