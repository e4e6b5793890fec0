"""iCalendar (RFC 5545) and iTIP (RFC 5546) data into :class:`Meeting` records.

One Meeting per VEVENT, recurrences not expanded: a series master carries its RRULE text and
EXDATEs, each moved or edited occurrence is its own Meeting keyed by UID and RECURRENCE-ID.
All times come out as aware UTC; time-zone names are resolved by :mod:`connectors.ics_timezones`.
Organizer, attendees and the conference link are read by :mod:`connectors.ics_properties`.

Real calendars are often broken. A bad event is skipped and reported, never allowed to lose
the others; a file icalendar refuses as a whole is read again event by event. Only data that
is not a calendar at all raises :class:`CalendarError`, and nothing else is ever raised.
"""

from __future__ import annotations

import bisect
import hashlib
import re
import warnings
from dataclasses import dataclass, field
from datetime import date, datetime, time
from typing import Any

import icalendar
from icalendar.cal import Component
from icalendar.prop import vRecur

from connectors.ics_properties import all_values, conference_url, first_value, participant, text_value
from connectors.ics_timezones import TimezoneResolver
from connectors.message import Meeting, Participant

__all__ = ["CalendarError", "parse_calendar", "parse_calendar_with_errors"]

try:
    from icalendar.error import GloballyUniqueTZIDGuessed
except ImportError:  # pragma: no cover - icalendar < 7 does not warn
    pass
else:
    # icalendar warns once per vendor-prefixed TZID it guesses; ics_timezones makes (and
    # reports) its own guess, so the warning would only be noise in the daemon's log.
    warnings.filterwarnings("ignore", category=GloballyUniqueTZIDGuessed)


class CalendarError(Exception):
    """The data is not a readable calendar at all; ``str(error)`` says why."""


class _Skip(Exception):
    """This one event cannot become a Meeting; the message says why."""


_BEGIN_VEVENT = re.compile(r"^BEGIN:VEVENT[ \t]*\r?$", re.IGNORECASE | re.MULTILINE)
_LINE_BREAK = re.compile(r"\r\n|\n|\r")
_FOLD = re.compile(r"(?:\r\n|\n|\r)[ \t]")  # RFC 5545 §3.1: a line break plus one blank continues a line
# A VEVENT or VTIMEZONE from BEGIN to its own END, containing no other top-level BEGIN: a
# truncated block followed by the next one must not swallow it.
_BLOCK = re.compile(
    r"^BEGIN:(VEVENT|VTIMEZONE)[ \t]*$(?:(?!^BEGIN:(?:VEVENT|VTIMEZONE|VCALENDAR)\b).)*?^END:\1[ \t]*$",
    re.IGNORECASE | re.MULTILINE | re.DOTALL,
)
_METHOD_OR_CALENDAR = re.compile(r"^(?:METHOD:(.*?)|BEGIN:VCALENDAR)[ \t]*$", re.IGNORECASE | re.MULTILINE)
# Broken values of these are reported where they are read, with what was done instead.
_REPORTED_WHERE_USED = frozenset({"DTEND", "DURATION", "RRULE", "EXDATE"})
_ALL_DAY_FLAGS = ("X-MICROSOFT-CDO-ALLDAYEVENT", "X-MICROSOFT-MSNCALENDAR-ALLDAYEVENT")


@dataclass
class _Calendar:
    method: str | None
    timezones: list[Component] = field(default_factory=list)
    events: list[Component] = field(default_factory=list)


@dataclass
class _Context:
    """What reading one event needs besides the event: its calendar's zones and the problem list."""

    resolver: TimezoneResolver
    problems: list[str]
    label: str

    def note(self, message: str) -> None:
        self.problems.append(f"{self.label}: {message}")


def parse_calendar(data: bytes, method: str | None = None) -> list[Meeting]:
    """The meetings in ``data``; events that cannot be read are skipped.

    ``method`` is the iTIP method from the MIME part (``text/calendar; method=REQUEST``),
    used when the calendar has no METHOD property of its own (RFC 5546 §2.4 wants both to
    agree; when they do not, the calendar's own METHOD is what its content follows).
    """
    return parse_calendar_with_errors(data, method)[0]


def parse_calendar_with_errors(data: bytes, method: str | None = None) -> tuple[list[Meeting], list[str]]:
    """The meetings in ``data`` and a list of human-readable problems.

    Problems name the event (``VEVENT #3 UID '...'``) and say whether it was skipped or only
    partly read (an unknown TZID read as UTC, an unreadable RRULE, a synthetic UID...).
    """
    try:
        return _parse(data, method)
    except CalendarError:
        raise
    except Exception as exc:  # the contract: CalendarError and nothing else
        raise CalendarError(f"unexpected failure reading the calendar: {type(exc).__name__}: {exc}") from exc


def _parse(data: bytes | str, method: str | None) -> tuple[list[Meeting], list[str]]:
    if isinstance(data, str):
        text = data
    elif isinstance(data, bytes | bytearray | memoryview):
        text = _decode(bytes(data))
    else:
        raise CalendarError(f"expected bytes, got {type(data).__name__}")
    if not text.strip():
        raise CalendarError("empty data")
    problems: list[str] = []
    calendars = _read_whole(text)
    if isinstance(calendars, str):
        problems.append(f"{calendars}: reading each event on its own")
        calendars = _read_event_by_event(text, problems, calendars)
    fallback_method = _method(method)
    meetings: list[Meeting] = []
    seen: set[str] = set()
    number = 0
    for calendar in calendars:
        resolver = TimezoneResolver(calendar.timezones)
        for event in calendar.events:
            number += 1
            label = f"VEVENT #{number}"
            uid = text_value(event, "UID")
            if uid:
                label += f" UID {uid.strip()!r}"
            try:
                meeting = _meeting(
                    event, calendar.method or fallback_method, _Context(resolver, problems, label)
                )
            except _Skip as skip:
                problems.append(f"{label} skipped: {skip}")
                continue
            except Exception as exc:  # one odd event must not lose the others
                problems.append(f"{label} skipped: unexpected {type(exc).__name__}: {exc}")
                continue
            if meeting.key in seen:
                problems.append(f"{label}: {meeting.key} appears more than once in the file")
            seen.add(meeting.key)
            meetings.append(meeting)
        problems.extend(f"time zones: {problem}" for problem in resolver.problems)
    return meetings, problems


def _decode(data: bytes) -> str:
    """RFC 5545 §3.1.4 mandates UTF-8, but Outlook exports and old gateways write UTF-16 or Windows-1252."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16", errors="replace")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


def _read_whole(text: str) -> list[_Calendar] | str:
    """The calendars in ``text`` as icalendar reads them, or why that would lose events."""
    try:
        components = icalendar.Calendar.from_ical(text, multiple=True)
    except Exception as exc:  # icalendar raises ValueError, KeyError, IndexError...
        return f"icalendar cannot parse it ({exc})"
    calendars: list[_Calendar] = []
    loose = _Calendar(method=None)
    for component in components:
        if component.name == "VCALENDAR":
            calendars.append(
                _Calendar(
                    _method(text_value(component, "METHOD")),
                    [c for c in component.subcomponents if c.name == "VTIMEZONE"],
                    [c for c in component.subcomponents if c.name == "VEVENT"],
                )
            )
        elif component.name in ("VEVENT", "VTIMEZONE"):
            # A bare VEVENT without VCALENDAR: some gateways send only the event.
            (loose.events if component.name == "VEVENT" else loose.timezones).append(component)
    if loose.events:
        calendars.append(loose)
    found = sum(len(calendar.events) for calendar in calendars)
    # icalendar silently drops a component that is never closed (a truncated file, or a
    # missing END:VCALENDAR), so compare with the events the text announces.
    if not components:
        return "no complete iCalendar component (BEGIN:VCALENDAR ... END:VCALENDAR) found"
    announced = len(_BEGIN_VEVENT.findall(text))
    if found < announced:
        return f"only {found} of {announced} VEVENTs complete (an END line missing?)"
    return calendars


def _read_event_by_event(text: str, problems: list[str], reason: str) -> list[_Calendar]:
    """Each complete VEVENT and VTIMEZONE block of ``text`` parsed on its own."""
    text = _LINE_BREAK.sub("\n", _FOLD.sub("", text))
    # (position, METHOD) of each METHOD line, and of each BEGIN:VCALENDAR, which resets it.
    markers = list(_METHOD_OR_CALENDAR.finditer(text))
    positions = [marker.start() for marker in markers]
    timezones: list[Component] = []  # shared by all, so a VTIMEZONE after its events still counts
    calendars: list[_Calendar] = []
    blocks = list(_BLOCK.finditer(text))
    for match in blocks:
        try:
            component = icalendar.Calendar.from_ical(match.group(0))
        except Exception as exc:  # report and carry on with the next block
            problems.append(f"{match.group(1).upper()} block unreadable, skipped: {exc}")
            continue
        if component.name == "VTIMEZONE":
            timezones.append(component)
            continue
        before = bisect.bisect_left(positions, match.start())
        method = _method(markers[before - 1].group(1)) if before else None
        if not calendars or calendars[-1].method != method:
            calendars.append(_Calendar(method, timezones))
        calendars[-1].events.append(component)
    unclosed = len(_BEGIN_VEVENT.findall(text)) - sum(m.group(1).upper() == "VEVENT" for m in blocks)
    if unclosed > 0:
        problems.append(f"{unclosed} VEVENT block(s) never closed, skipped")
    if not calendars:
        raise CalendarError(f"not a readable calendar: {reason}, and no VEVENT is readable on its own")
    return calendars


def _meeting(event: Component, method: str | None, context: _Context) -> Meeting:
    errors = [(str(name).upper() if name else None, error) for name, error in getattr(event, "errors", ())]
    broken = {name: error for name, error in errors if name}
    for name in ("DTSTART", "RECURRENCE-ID"):
        if name in broken:
            raise _Skip(f"{name} unreadable ({broken[name]})")
    for name, error in errors:
        if name not in _REPORTED_WHERE_USED:
            context.note(f"{name or 'a line'} unreadable, ignored ({error})")

    start_prop = first_value(event.get("DTSTART"))
    if start_prop is None and method is None:
        # RFC 5545 §3.6.1: DTSTART may only be left out when an iTIP METHOD is present.
        raise _Skip("no DTSTART in a calendar without METHOD")
    start_value = start_prop.dt if start_prop is not None else None
    start_tzid = _tzid(start_prop)
    all_day = isinstance(start_value, date) and not isinstance(start_value, datetime)
    if start_value is not None and not all_day and _all_day_flag(event) and start_value.time() == time(0):
        # Outlook sends all-day events as local midnight to midnight plus this flag.
        start_value, all_day = start_value.date(), True
    start = context.resolver.value_to_utc(start_value, start_tzid)
    end_prop, duration_prop = first_value(event.get("DTEND")), first_value(event.get("DURATION"))
    try:
        end = context.resolver.end_to_utc(
            start,
            all_day,
            start_tzid,
            end_prop.dt if end_prop is not None else None,
            _tzid(end_prop),
            duration_prop.dt if duration_prop is not None else None,
        )
    except Exception as exc:  # vBroken raises on .dt; dates can overflow
        context.note(f"end unreadable, left empty ({exc})")
        end = None

    recurrence_id = None
    rid_prop = first_value(event.get("RECURRENCE-ID"))
    if rid_prop is not None:
        recurrence_id = context.resolver.value_to_utc(_day_if_all_day(rid_prop.dt, all_day), _tzid(rid_prop))

    organizer = participant(first_value(event.get("ORGANIZER")), "organizer")
    attendees: dict[str, Participant] = {}
    for prop in all_values(event.get("ATTENDEE")):
        attendee = participant(prop, "attendee")
        if attendee is not None:
            attendees.setdefault(attendee.email, attendee)

    summary = (text_value(event, "SUMMARY") or "").strip()
    description = (text_value(event, "DESCRIPTION") or "").strip()
    location = (text_value(event, "LOCATION") or "").strip() or None
    uid = (text_value(event, "UID") or "").strip()
    if not uid:
        basis = f"{start.isoformat() if start else ''}\x1f{summary}\x1f{organizer.email if organizer else ''}"
        uid = f"syncd-{hashlib.sha256(basis.encode()).hexdigest()}@synthetic"
        context.note(f"no UID, using synthetic {uid}")

    rrule = None
    exdates: tuple[datetime, ...] = ()
    if recurrence_id is None:
        rrule = _rrule(event, "RRULE" in broken, context)
        exdates = _exdates(event, all_day, context)

    return Meeting(
        uid=uid,
        recurrence_id=recurrence_id,
        method=method,
        sequence=_sequence(event, context),
        status=(text_value(event, "STATUS") or "").strip().upper() or None,
        summary=summary,
        description=description,
        location=location,
        start=start,
        end=end,
        all_day=all_day,
        rrule=rrule,
        exdates=exdates,
        organizer=organizer,
        attendees=tuple(attendees.values()),
        conference_url=conference_url(event, description, location),
        timezone=context.resolver.resolve(start_tzid).name if start_tzid and not all_day else None,
    )


def _rrule(event: Component, broken: bool, context: _Context) -> str | None:
    props = all_values(event.get("RRULE"))
    if not props:
        return None
    if len(props) > 1:
        context.note(f"{len(props)} RRULEs, only the first is kept (RFC 5545 allows one)")
    prop = props[0]
    if not broken:
        return prop.to_ical().decode()
    # Exchange CDO writes "BYDAY=MO, TU"; without the blanks the rule is valid.
    try:
        rrule = vRecur(vRecur.from_ical(re.sub(r"\s+", "", str(prop)))).to_ical().decode()
    except Exception as exc:  # keep the occurrence, drop the rule
        context.note(f"RRULE unreadable, kept as a single event ({exc})")
        return None
    context.note(f"RRULE {str(prop)!r} read without its blanks")
    return rrule


def _exdates(event: Component, all_day: bool, context: _Context) -> tuple[datetime, ...]:
    exdates: set[datetime] = set()
    for prop in all_values(event.get("EXDATE")):
        tzid = _tzid(prop)
        try:
            values = [_day_if_all_day(value.dt, all_day) for value in prop.dts]
            exdates.update(filter(None, (context.resolver.value_to_utc(value, tzid) for value in values)))
        except Exception as exc:  # a broken EXDATE line loses only that line
            context.note(f"an EXDATE unreadable, ignored ({exc})")
    return tuple(sorted(exdates))


def _sequence(event: Component, context: _Context) -> int:
    prop = first_value(event.get("SEQUENCE"))
    if prop is None:
        return 0
    try:
        return int(str(prop).strip())
    except ValueError:
        context.note(f"SEQUENCE {str(prop)!r} is not a number, read as 0")
        return 0


def _method(value: str | None) -> str | None:
    return (value or "").strip().upper() or None


def _tzid(prop: Any) -> str | None:
    tzid = getattr(prop, "params", {}).get("TZID")
    return str(tzid) if tzid else None


def _day_if_all_day(value: Any, all_day: bool) -> Any:
    """RFC 5545 §3.8.4.4 and §3.8.5.1 want RECURRENCE-ID and EXDATE typed like DTSTART, but
    Exchange gives all-day series local midnights there; they must key like the master's DATEs."""
    if all_day and isinstance(value, datetime) and value.time() == time(0):
        return value.date()
    return value


def _all_day_flag(event: Component) -> bool:
    return any((text_value(event, name) or "").strip().upper() == "TRUE" for name in _ALL_DAY_FLAGS)
