"""The normalized shapes every connector produces, whatever the provider.

Only these small frozen dataclasses cross from connectors into the pipeline,
matchers and store: provider quirks stay inside their connector.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

Role = Literal["from", "sender", "reply_to", "to", "cc", "bcc", "organizer", "attendee"]
Rsvp = Literal["accepted", "declined", "tentative", "needs_action", "delegated"]


@dataclass(frozen=True, slots=True)
class Participant:
    """One address on a message or meeting. ``email`` is lower-cased; identity never uses ``name``."""

    email: str
    name: str | None
    role: Role
    rsvp: Rsvp | None = None


@dataclass(frozen=True, slots=True)
class Meeting:
    """One calendar event (a series master, a single event, or one exception of a series).

    ``key`` identifies the real-world meeting across mailboxes and calendars:
    the iCalendar UID, plus ``RECURRENCE-ID`` for an exception of a series.
    """

    uid: str
    recurrence_id: datetime | None
    method: str | None  # REQUEST, REPLY, CANCEL, PUBLISH or None for a plain calendar file
    sequence: int
    status: str | None  # CONFIRMED, TENTATIVE, CANCELLED
    summary: str
    description: str
    location: str | None
    start: datetime | None  # UTC, aware; for all-day events midnight UTC of the day
    end: datetime | None
    all_day: bool
    rrule: str | None  # the series' RRULE as text, None for single events and exceptions
    exdates: tuple[datetime, ...]
    organizer: Participant | None
    attendees: tuple[Participant, ...]
    conference_url: str | None
    timezone: str | None  # the IANA name the event was scheduled in, after mapping Windows names

    @property
    def key(self) -> str:
        if self.recurrence_id is None:
            return f"uid:{self.uid}"
        return f"uid:{self.uid}/{self.recurrence_id.strftime('%Y%m%dT%H%M%SZ')}"

    @property
    def cancelled(self) -> bool:
        return self.method == "CANCEL" or (self.status or "").upper() == "CANCELLED"


@dataclass(frozen=True, slots=True)
class Headers:
    """The headers the exclusion rules read (bulk mail, auto-replies, privacy)."""

    list_id: str | None = None
    list_unsubscribe: str | None = None
    precedence: str | None = None
    auto_submitted: str | None = None
    sensitivity: str | None = None
    x_auto_response_suppress: str | None = None
    auto_reply: bool = False  # X-Autoreply / X-Autorespond present
    content_type: str = "text/plain"  # top-level, lower-cased, e.g. multipart/report


@dataclass(frozen=True, slots=True)
class ParsedMessage:
    """An RFC 822 message after parsing and decoding.

    ``message_id`` is the RFC 5322 Message-ID without angle brackets, or a
    deterministic synthetic id (``syncd-<sha256>@synthetic``) when the message has none, so
    that the same message synced from two mailboxes still gets the same key.
    """

    message_id: str
    synthetic_id: bool
    subject: str
    date: datetime | None  # UTC, aware
    sender: Participant | None  # the From address
    participants: tuple[Participant, ...]
    in_reply_to: str | None
    references: tuple[str, ...]
    thread_key: str  # the root of References, else In-Reply-To, else message_id
    text: str  # plain text body: text/plain, else HTML converted to text
    html: bool  # the text came from an HTML part
    headers: Headers
    attachments: tuple[str, ...]  # file names
    meetings: tuple[Meeting, ...]  # from text/calendar parts
    size: int
    defects: tuple[str, ...] = field(default=())  # non-fatal parse problems worth recording

    @property
    def key(self) -> str:
        return f"msg:{self.message_id}"
