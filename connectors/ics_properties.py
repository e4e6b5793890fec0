"""Reading single iCalendar properties: who takes part in an event and where to join it.

ORGANIZER and ATTENDEE become :class:`Participant` records (RFC 5545 §3.8.4.1, §3.8.4.3), and
the conference link comes from the vendor properties, RFC 7986 CONFERENCE, or a known
meeting link in the text. Also the accessors for the shapes icalendar gives property values
in, which :mod:`connectors.ics_parse` uses for every other property.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import unquote

from icalendar.cal import Component

from connectors.message import Participant, Role, Rsvp

__all__ = ["all_values", "conference_url", "first_value", "participant", "text_value"]

_RSVP: dict[str, Rsvp] = {
    "ACCEPTED": "accepted",
    "DECLINED": "declined",
    "TENTATIVE": "tentative",
    "NEEDS-ACTION": "needs_action",
    "DELEGATED": "delegated",
}
_EMAIL = re.compile(r"[^@\s<>(),;:\"\[\]]+@[^@\s<>(),;:\"\[\]]+")
_MEETING_LINK = re.compile(
    r"""https?://(?:
        (?:[\w-]+\.)*zoom(?:gov)?\.(?:us|com)/(?:j|my|w|s)/
      | teams\.microsoft\.com/(?:l/meetup-join|meet)/
      | teams\.live\.com/meet/
      | meet\.google\.com/(?=[a-z]{3}-[a-z]{4}-[a-z]{3})
      | (?:[\w-]+\.)*webex\.com/
    )[^\s<>"'\\]*""",
    re.IGNORECASE | re.VERBOSE,
)
_CONFERENCE_PROPERTIES = (
    "X-GOOGLE-CONFERENCE",
    "X-MICROSOFT-ONLINEMEETINGURL",
    "X-MICROSOFT-SKYPETEAMSMEETINGURL",
)


def participant(prop: Any, role: Role) -> Participant | None:
    if prop is None:
        return None
    params = getattr(prop, "params", {})
    value = str(prop).strip()
    if value.lower().startswith("mailto:"):
        address = unquote(value[7:].split("?", 1)[0])
    elif params.get("EMAIL"):
        address = str(params["EMAIL"])  # RFC 7986 §6.9: the email when the address is not mailto:
    elif ":" not in value:
        address = value  # a bare address, as some gateways write
    else:
        return None
    address = address.strip().strip("<>").strip()
    if not _EMAIL.fullmatch(address):
        return None
    name = str(params.get("CN") or "").strip().strip('"').strip() or None
    rsvp = _RSVP.get(str(params.get("PARTSTAT") or "").strip().upper())
    return Participant(email=address.lower(), name=name, role=role, rsvp=rsvp)


def conference_url(event: Component, description: str, location: str | None) -> str | None:
    for name in _CONFERENCE_PROPERTIES:
        url = _http_url(text_value(event, name))
        if url:
            return url
    conferences = [str(prop).strip() for prop in all_values(event.get("CONFERENCE"))]  # RFC 7986 §5.11
    for url in sorted(conferences, key=lambda url: _http_url(url) is None):
        if url:
            return url
    # URL is usually the event's own web page, not a place to meet: only a known meeting link counts.
    for text in (text_value(event, "URL"), description, location):
        match = _MEETING_LINK.search(text or "")
        if match:
            return match.group(0).rstrip(".,;:!?)]}*")
    return None


def _http_url(value: str | None) -> str | None:
    value = (value or "").strip()
    return value if re.fullmatch(r"https?://\S+", value, re.IGNORECASE) else None


# Accessors for the shapes icalendar gives property values in.


def text_value(component: Component, name: str) -> str | None:
    value = first_value(component.get(name))
    return None if value is None else str(value)


def first_value(value: Any) -> Any:
    # A property that occurs several times comes back from icalendar as a plain list.
    if isinstance(value, list):
        return value[0] if value else None
    return value


def all_values(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]
