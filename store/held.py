"""Messages held back because nobody in them was known yet, kept so they can be logged later.

Only what logging needs is kept (participants, subject, date, thread, the text), never
the raw message.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from connectors.message import Headers, Meeting, ParsedMessage, Participant

MAX_TEXT = 100_000


def hold_email(msg: ParsedMessage) -> dict[str, Any]:
    return {
        "kind": "email",
        "message_id": msg.message_id,
        "synthetic_id": msg.synthetic_id,
        "subject": msg.subject,
        "date": msg.date.isoformat() if msg.date else None,
        "participants": [[p.email, p.name, p.role] for p in msg.participants],
        "in_reply_to": msg.in_reply_to,
        "references": list(msg.references),
        "thread_key": msg.thread_key,
        "text": msg.text[:MAX_TEXT],
        "html": msg.html,
    }


def revive_email(held: dict[str, Any]) -> ParsedMessage:
    people = tuple(Participant(email, name, role) for email, name, role in held["participants"])
    return ParsedMessage(
        message_id=held["message_id"],
        synthetic_id=held.get("synthetic_id", False),
        subject=held["subject"],
        date=datetime.fromisoformat(held["date"]) if held.get("date") else None,
        sender=next((p for p in people if p.role == "from"), None),
        participants=people,
        in_reply_to=held.get("in_reply_to"),
        references=tuple(held.get("references", ())),
        thread_key=held["thread_key"],
        text=held.get("text", ""),
        html=held.get("html", False),
        headers=Headers(),  # exclusions already passed when it was held
        attachments=(),
        meetings=(),
        size=0,
    )


def _when(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _at(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _person(p: Participant | None) -> list[Any] | None:
    return [p.email, p.name, p.role, p.rsvp] if p else None


def _revive_person(value: list[Any] | None) -> Participant | None:
    return Participant(*value) if value else None


def hold_meeting(meeting: Meeting) -> dict[str, Any]:
    return {
        "kind": "meeting",
        "uid": meeting.uid,
        "recurrence_id": _when(meeting.recurrence_id),
        "method": meeting.method,
        "sequence": meeting.sequence,
        "status": meeting.status,
        "summary": meeting.summary,
        "description": meeting.description[:MAX_TEXT],
        "location": meeting.location,
        "start": _when(meeting.start),
        "end": _when(meeting.end),
        "all_day": meeting.all_day,
        "rrule": meeting.rrule,
        "exdates": [d.isoformat() for d in meeting.exdates],
        "organizer": _person(meeting.organizer),
        "attendees": [_person(a) for a in meeting.attendees],
        "conference_url": meeting.conference_url,
        "timezone": meeting.timezone,
    }


def revive_meeting(held: dict[str, Any]) -> Meeting:
    return Meeting(
        uid=held["uid"],
        recurrence_id=_at(held.get("recurrence_id")),
        method=held.get("method"),
        sequence=held.get("sequence", 0),
        status=held.get("status"),
        summary=held.get("summary", ""),
        description=held.get("description", ""),
        location=held.get("location"),
        start=_at(held.get("start")),
        end=_at(held.get("end")),
        all_day=held.get("all_day", False),
        rrule=held.get("rrule"),
        exdates=tuple(datetime.fromisoformat(d) for d in held.get("exdates", ())),
        organizer=_revive_person(held.get("organizer")),
        attendees=tuple(p for p in map(_revive_person, held.get("attendees", ())) if p),
        conference_url=held.get("conference_url"),
        timezone=held.get("timezone"),
    )


def revive(held: dict[str, Any]) -> ParsedMessage | Meeting:
    return revive_meeting(held) if held.get("kind") == "meeting" else revive_email(held)
