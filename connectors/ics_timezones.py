"""Turning iCalendar TZIDs into time zones, and event times into UTC, one calendar file at a time.

RFC 5545 §3.2.19 says a TZID names a VTIMEZONE in the same object, but real senders
differ: Google sends IANA names, Exchange sends Windows names ("W. Europe Standard Time")
with a VTIMEZONE describing only today's rule, libical and Lightning send "globally unique"
ids ("/freeassociation.sourceforge.net/Europe/Berlin"), old Outlook sends display names
("GMT +0100 (Standard) / GMT +0200 (Daylight)"), and some send a TZID with no VTIMEZONE at all.

Order of trust: a name tzdata knows (IANA, or Windows mapped through CLDR) wins, because
tzdata carries the full history of rule changes that a VTIMEZONE copy usually lacks; then the
file's own VTIMEZONE; then an IANA name guessed from a vendor prefix; then a "UTC+hh:mm" style
fixed offset; then UTC, reported as a problem and never raised.

This never uses icalendar's process-wide time-zone cache, which keeps the first VTIMEZONE seen
for a TZID for the life of the process: a daemon reading mail from many senders would apply one
sender's "Custom" zone to everybody else's.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta, timezone, tzinfo
from typing import NamedTuple
from zoneinfo import ZoneInfo, available_timezones

from icalendar.cal import Component
from icalendar.timezone import TZP

try:
    from icalendar.timezone.windows_to_olson import WINDOWS_TO_OLSON
except ImportError:  # pragma: no cover - icalendar < 6 kept the table elsewhere
    try:
        from icalendar.windows_to_olson import WINDOWS_TO_OLSON  # type: ignore[no-redef]
    except ImportError:
        WINDOWS_TO_OLSON = {}

# A private provider so that building a zone from a VTIMEZONE neither reads nor fills the
# global cache, and always yields zoneinfo-style tzinfo objects even if someone in the
# process switched icalendar to pytz.
_PROVIDER = TZP("zoneinfo")

# In available_timezones() on some systems but not zones a sender can mean: "localtime" is the
# host's own zone.
_NOT_ZONES = frozenset({"localtime", "Factory", "posixrules"})

_FIXED_OFFSET = re.compile(r"(?:UTC|GMT)\s*([+-])\s*(\d{1,2})(?::?(\d{2}))?", re.IGNORECASE)


@functools.cache
def _zone_names() -> dict[str, str]:
    return {name.lower(): name for name in available_timezones() - _NOT_ZONES}


@functools.cache
def _windows_names() -> dict[str, str]:
    return {name.lower(): iana for name, iana in WINDOWS_TO_OLSON.items()}


def _clean(tzid: str) -> str:
    return " ".join(tzid.strip().strip('"').split())


def _definition_key(tzid: str) -> str:
    # Lenient because issue_107 in the corpus defines "Pacific Standard Time:" for events
    # that say "Pacific Standard Time".
    return _clean(tzid).rstrip(":").lower()


@functools.lru_cache(maxsize=4096)
def known_name(tzid: str) -> str | None:
    """The IANA name for a TZID that is an IANA name or a Windows name, case-insensitively."""
    key = _clean(tzid).strip("/").lower()
    return _zone_names().get(key.replace(" ", "_")) or _windows_names().get(key)


@functools.lru_cache(maxsize=4096)
def guessed_name(tzid: str) -> str | None:
    """The IANA name ending a vendor-prefixed TZID, as in ``/mozilla.org/20070129_1/America/New_York``.

    Only suffixes of two or more path parts count: a one-word tail ("CUSTOM", "GMT") is too
    likely to be a coincidence.
    """
    parts = _clean(tzid).strip("/").split("/")
    for first in range(1, len(parts) - 1):
        name = _zone_names().get("/".join(parts[first:]).lower().replace(" ", "_"))
        if name:
            return name
    return None


def _fixed_offset(tzid: str) -> tzinfo | None:
    match = _FIXED_OFFSET.fullmatch(_clean(tzid))
    if not match:
        return None
    sign, hours, minutes = match.group(1), int(match.group(2)), int(match.group(3) or 0)
    if hours > 14 or minutes > 59:
        return None
    offset = timedelta(hours=hours, minutes=minutes)
    return timezone(-offset if sign == "-" else offset)


class Resolved(NamedTuple):
    tz: tzinfo
    name: str | None  # IANA name when known
    problem: str | None


class TimezoneResolver:
    """Resolves the TZIDs of one calendar, each once, against that calendar's VTIMEZONEs."""

    def __init__(self, vtimezones: Iterable[Component]) -> None:
        self._definitions: dict[str, Component] = {}
        for component in vtimezones:
            tzid = component.get("TZID")
            if tzid is not None:
                self._definitions.setdefault(_definition_key(str(tzid)), component)
        self._resolved: dict[str, Resolved] = {}
        self.problems: list[str] = []

    def resolve(self, tzid: str) -> Resolved:
        found = self._resolved.get(tzid)
        if found is None:
            found = self._resolve(tzid)
            self._resolved[tzid] = found
            if found.problem:
                self.problems.append(found.problem)
        return found

    def _resolve(self, tzid: str) -> Resolved:
        name = known_name(tzid)
        if name:
            return Resolved(ZoneInfo(name), name, None)
        definition = self._definitions.get(_definition_key(tzid))
        guess = guessed_name(tzid)
        problem = None
        if definition is not None:
            location = definition.get("X-LIC-LOCATION")
            label = guess or (known_name(str(location)) if location is not None else None)
            try:
                return Resolved(definition.to_tz(_PROVIDER, lookup_tzid=False), label, None)
            except Exception as exc:  # any failure inside dateutil's tzical
                problem = f"VTIMEZONE {tzid!r} unreadable ({exc})"
                guess = guess or label
        if guess:
            return Resolved(ZoneInfo(guess), guess, problem)
        offset = _fixed_offset(tzid)
        if offset is not None:
            return Resolved(offset, None, problem)
        reason = problem or f"unknown TZID {tzid!r} without a VTIMEZONE"
        return Resolved(UTC, None, f"{reason}: its times are read as UTC")

    def value_to_utc(self, value: date | datetime | None, tzid: str | None) -> datetime | None:
        """A DTSTART-like value as aware UTC; a DATE becomes midnight UTC of that day.

        icalendar has already attached its own guess of the zone to ``value`` (or none, when the
        VTIMEZONE comes later in the file); only the wall time is taken from it.
        """
        if value is None:
            return None
        if not isinstance(value, datetime):
            if not isinstance(value, date):
                raise ValueError(f"expected a date or date-time, got {type(value).__name__}")
            return datetime.combine(value, time(0), UTC)
        if tzid:
            return self.to_utc(value.replace(tzinfo=None), tzid)
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)  # floating time (RFC 5545 §3.3.5 form #1): read as UTC
        return value.astimezone(UTC)

    def end_to_utc(
        self,
        start: datetime | None,
        all_day: bool,
        start_tzid: str | None,
        end: date | datetime | None,
        end_tzid: str | None,
        duration: timedelta | None,
    ) -> datetime | None:
        """DTEND, else DTSTART + DURATION, else the RFC 5545 §3.6.1 default (a day for a DATE, else none).

        Days in a DURATION are nominal (RFC 5545 §3.3.6): "P1D" from 10:00 ends at 10:00 the next
        day even across a DST change. icalendar's timedelta cannot tell "P1D" from "PT24H", so
        whole days are always read as nominal; the writers we see use "P1D" for that.
        """
        if end is not None:
            if all_day and isinstance(end, datetime) and end.time() == time(0):
                end = end.date()  # Outlook's all-day events end at local midnight
            return self.value_to_utc(end, end_tzid)
        if start is None:
            return None
        if duration is None:
            return start + timedelta(days=1) if all_day else start
        if not isinstance(duration, timedelta) or duration < timedelta(0):
            raise ValueError(f"not a positive duration: {duration!r}")
        if all_day or not start_tzid or not duration.days:
            return start + duration
        exact = duration - timedelta(days=duration.days)
        return self.add_days(start, duration.days, start_tzid) + exact

    def to_utc(self, wall: datetime, tzid: str) -> datetime:
        """A wall-clock time in ``tzid`` as aware UTC.

        RFC 5545 §3.3.5: a wall time that occurs twice (autumn) means the first occurrence, which
        ``fold=0`` gives; one that does not exist (the spring gap) takes the offset in force before
        the gap, which zoneinfo gives but dateutil's VTIMEZONE zones do not, hence the round trip.
        """
        tz = self.resolve(tzid).tz
        try:
            utc = wall.replace(tzinfo=tz, fold=0).astimezone(UTC)
            if utc.astimezone(tz).replace(tzinfo=None) != wall:
                before = (wall - timedelta(days=1)).replace(tzinfo=tz).utcoffset() or timedelta(0)
                utc = (wall - before).replace(tzinfo=UTC)
            return utc
        except Exception as exc:
            # Years near 1 or 9999 overflow once shifted, and a strange VTIMEZONE can fail only
            # now, inside dateutil: keep the wall time rather than lose the event.
            self.problems.append(f"time {wall.isoformat()} in {tzid!r} not convertible ({exc}): read as UTC")
            return wall.replace(tzinfo=UTC)

    def add_days(self, start_utc: datetime, days: int, tzid: str) -> datetime:
        """``start_utc`` plus nominal days in ``tzid`` (a day across DST is 23 or 25 hours)."""
        wall = start_utc.astimezone(self.resolve(tzid).tz).replace(tzinfo=None)
        return self.to_utc(wall + timedelta(days=days), tzid)
