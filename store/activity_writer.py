"""Writes activities, their sources, participants, links, insights and skips.

An activity is the real-world email or meeting; the same message seen in two mailboxes
(or twice in one) becomes one activity with several sources.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import delete, or_, select, update
from sqlalchemy.orm import Session

from connectors.message import Meeting, ParsedMessage, Participant
from matchers.insights import InsightDraft
from matchers.linking import MatchResult
from store.models import (
    Activity,
    ActivityLink,
    ActivityParticipant,
    ActivitySource,
    Insight,
    SkipLogEntry,
)
from store.sync_state import now


def find_activity(session: Session, key: str) -> Activity | None:
    return session.scalar(select(Activity).where(Activity.key == key))


def _set_participants(activity: Activity, people: Iterable[Participant]) -> None:
    activity.participants[:] = [
        ActivityParticipant(email=p.email, display_name=p.name, role=p.role, rsvp=p.rsvp) for p in people
    ]


def insert_email(session: Session, msg: ParsedMessage, direction: str) -> Activity:
    stamp = now()
    activity = Activity(
        key=msg.key,
        kind="email",
        message_id=msg.message_id,
        thread_key=msg.thread_key,
        in_reply_to=msg.in_reply_to,
        subject=msg.subject,
        occurred_at=msg.date,
        direction=direction,
        body_text=msg.text,
        all_day=False,
        created_at=stamp,
        updated_at=stamp,
    )
    _set_participants(activity, msg.participants)
    session.add(activity)
    session.flush()
    return activity


def meeting_people(meeting: Meeting) -> tuple[Participant, ...]:
    return ((meeting.organizer,) if meeting.organizer else ()) + meeting.attendees


def upsert_meeting(session: Session, meeting: Meeting, direction: str) -> tuple[Activity, bool]:
    """Insert or update a meeting by UID; returns (activity, whether its content changed).

    Per RFC 5546 a REPLY only carries the replying attendee's PARTSTAT, and a REQUEST
    with a lower SEQUENCE than what we hold is stale: neither replaces the stored event.
    """
    activity = find_activity(session, meeting.key)
    stamp = now()
    if activity is None:
        activity = Activity(key=meeting.key, kind="meeting", created_at=stamp, all_day=False)
        session.add(activity)
    elif meeting.method == "REPLY":
        by_email = {p.email: p for p in activity.participants}
        for person in meeting.attendees:
            if person.email in by_email:
                by_email[person.email].rsvp = person.rsvp
            else:
                activity.participants.append(
                    ActivityParticipant(
                        email=person.email, display_name=person.name, role="attendee", rsvp=person.rsvp
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
    session.flush()
    return activity, True


def add_source(
    session: Session,
    activity: Activity,
    account_id: int,
    folder: str,
    provider_id: str,
    thread_id: str | None = None,
    labels: Sequence[str] = (),
) -> bool:
    """Record where the activity was seen; False when that location was already known."""
    existing = session.scalar(
        select(ActivitySource).where(
            ActivitySource.account_id == account_id,
            ActivitySource.folder == folder,
            ActivitySource.provider_id == provider_id,
        )
    )
    if existing is not None:
        existing.deleted_at = None
        return False
    session.add(
        ActivitySource(
            activity_id=activity.id,
            account_id=account_id,
            folder=folder,
            provider_id=provider_id,
            provider_thread_id=thread_id,
            labels=list(labels) or None,
            synced_at=now(),
        )
    )
    return True


def replace_links(session: Session, activity: Activity, result: MatchResult) -> None:
    """Store the matcher's links; links set by hand are never overwritten."""
    manual = {(link.target_type, link.target_id) for link in activity.links if link.manual}
    session.execute(
        delete(ActivityLink).where(ActivityLink.activity_id == activity.id, ActivityLink.manual.is_(False))
    )
    session.expire(activity, ["links"])
    stamp = now()
    for link in result.links:
        if (link.target_type, link.target_id) in manual:
            continue
        session.add(
            ActivityLink(
                activity_id=activity.id,
                target_type=link.target_type,
                target_id=link.target_id,
                confidence=link.confidence,
                rule=link.rule,
                reason=link.reason,
                manual=False,
                created_at=stamp,
            )
        )
    activity.match_notes = list(result.notes) or None


def add_insights(session: Session, activity: Activity, drafts: Iterable[InsightDraft]) -> None:
    stamp = now()
    for draft in drafts:
        session.add(
            Insight(
                activity_id=activity.id,
                kind=draft.kind,
                category=draft.category,
                text=draft.text,
                position=draft.position,
                author_email=draft.author_email,
                created_at=stamp,
            )
        )


def record_skip(
    session: Session,
    account_id: int,
    folder: str,
    provider_id: str,
    reason: str,
    detail: str | None,
    *,
    message_id: str | None = None,
    subject: str | None = None,
    sender: str | None = None,
    quarantined: bool = False,
) -> None:
    entry = session.scalar(
        select(SkipLogEntry).where(
            SkipLogEntry.account_id == account_id,
            SkipLogEntry.folder == folder,
            SkipLogEntry.provider_id == provider_id,
        )
    )
    if entry is None:
        entry = SkipLogEntry(account_id=account_id, folder=folder, provider_id=provider_id)
        session.add(entry)
    entry.reason, entry.detail, entry.quarantined = reason, detail, quarantined
    entry.message_id = message_id
    entry.subject = subject[:1000] if subject else subject
    entry.sender = sender
    entry.created_at = now()


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


def relocate(session: Session, account_id: int, folder: str, provider_id: str, message_id: str) -> str | None:
    """Record a known message at a new location without fetching it; returns what it was.

    A moved message (or one renumbered by a UIDVALIDITY change) keeps its activity, or its
    skip-log decision, under the new provider id. Returns "logged", "skipped" or None when
    the Message-ID is not in the store after all.
    """
    activity = session.scalar(select(Activity).where(Activity.key == f"msg:{message_id}"))
    if activity is not None:
        add_source(session, activity, account_id, folder, provider_id)
        return "logged"
    entry = session.scalar(
        select(SkipLogEntry).where(SkipLogEntry.message_id == message_id).order_by(SkipLogEntry.id).limit(1)
    )
    if entry is None:
        return None
    record_skip(
        session,
        account_id,
        folder,
        provider_id,
        entry.reason,
        entry.detail,
        message_id=message_id,
        subject=entry.subject,
        sender=entry.sender,
        quarantined=entry.quarantined,
    )
    return "skipped"
