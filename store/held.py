"""Messages held back because nobody in them was known yet, kept so they can be logged later.

Only what logging needs is kept (participants, subject, date, thread, the text), never
the raw message.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from connectors.message import Headers, ParsedMessage, Participant

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
