"""Rules that keep a message out of the CRM, each with a named reason for the skip log.

Pure functions: they read a parsed message and our organization's identity, and return
the reason to skip, or None. The CRM-dependent rule (no known participant) lives in the
pipeline, after matching, because it needs the store.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from connectors.message import Meeting, ParsedMessage, Participant
from matchers.identity import OrgIdentity

BULK_PRECEDENCE = {"bulk", "list", "junk"}
# Local parts that only machines write from.
AUTOMATED_SENDER = re.compile(
    r"^(no[-_.]?reply|do[-_.]?not[-_.]?reply|mailer-daemon|postmaster|bounces?|notifications?|alerts?)"
    r"([-+_.].*)?$"
)


@dataclass(frozen=True)
class Skip:
    reason: str  # a stable machine name, e.g. bulk_mail
    detail: str  # for humans: which header or rule decided it


def message_exclusion(msg: ParsedMessage, org: OrgIdentity, log_internal: bool) -> Skip | None:
    h = msg.headers
    if h.content_type == "multipart/report":
        return Skip("delivery_report", "multipart/report (a bounce or delivery notification)")
    if h.list_id:
        return Skip("bulk_mail", f"List-Id: {h.list_id}")
    if h.list_unsubscribe:
        return Skip("bulk_mail", "List-Unsubscribe header present")
    if h.precedence and h.precedence.strip().lower() in BULK_PRECEDENCE:
        return Skip("bulk_mail", f"Precedence: {h.precedence.strip()}")
    if h.auto_submitted and h.auto_submitted.strip().lower() != "no":
        return Skip("auto_submitted", f"Auto-Submitted: {h.auto_submitted.strip()}")
    if h.auto_reply:
        return Skip("auto_reply", "X-Autoreply/X-Autorespond header present")
    if msg.sender and AUTOMATED_SENDER.match(msg.sender.email.partition("@")[0]):
        return Skip("automated_sender", f"sender {msg.sender.email} is an automated address")
    if h.sensitivity and h.sensitivity.strip().lower() in ("private", "personal"):
        return Skip("private", f"Sensitivity: {h.sensitivity.strip()}")
    return _internal_only(msg.participants, org, log_internal)


def meeting_exclusion(meeting: Meeting, org: OrgIdentity, log_internal: bool) -> Skip | None:
    people = ((meeting.organizer,) if meeting.organizer else ()) + meeting.attendees
    return _internal_only(people, org, log_internal)


def _internal_only(people: tuple[Participant, ...], org: OrgIdentity, log_internal: bool) -> Skip | None:
    if log_internal or any(not org.is_internal(p.email) for p in people):
        return None
    return Skip("internal_only", "no external participant (only our own organization)")
