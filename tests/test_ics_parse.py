"""parse_calendar against the real calendars of the shared corpus, and small iTIP messages written here.

Expected UTC times are worked out by hand in the comments from the offsets in force on the day.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from connectors.ics_parse import CalendarError, parse_calendar, parse_calendar_with_errors
from connectors.message import Meeting
from tests.corpus import require_corpus

# icalendar warns when it guesses a vendor-prefixed TZID; the parser silences that, but pytest
# resets warning filters for each test.
pytestmark = pytest.mark.filterwarnings("ignore::icalendar.error.GloballyUniqueTZIDGuessed")

ICALENDAR = "calendar/icalendar/src/icalendar/tests/calendars"
RECURRING = "calendar/recurring_ical_events/recurring_ical_events/test/calendars"

# The corpus files that are not calendars at all: fuzzer output and a VTIMEZONE whose
# offset is "+5744" (57 hours) with no event to salvage around it.
EXPECTED_UNREADABLE = {
    "fuzz_testcase_0_char_in_component_name.ics",
    "fuzz_testcase_invalid_month.ics",
    "fuzz_testcase_vtimezone_lone_cr.ics",
    "parsing_error_in_UTC_offset.ics",
}


def corpus_file(relative: str) -> bytes:
    return (require_corpus() / relative).read_bytes()


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def by_key(meetings: Iterable[Meeting]) -> dict[str, Meeting]:
    return {meeting.key: meeting for meeting in meetings}


def calendar(*lines: str) -> bytes:
    return ("\r\n".join(lines) + "\r\n").encode()


def test_every_corpus_calendar_parses_or_raises_calendar_error() -> None:
    files = sorted((require_corpus() / "calendar").rglob("*.ics"))
    assert len(files) >= 240
    unreadable: dict[str, str] = {}
    meetings = 0
    for path in files:
        data = path.read_bytes()
        try:
            result, problems = parse_calendar_with_errors(data)
        except CalendarError as error:
            assert str(error), path
            unreadable[path.name] = str(error)
            continue
        # Re-reading gives the same meetings: synthetic UIDs and keys are deterministic.
        assert parse_calendar(data) == result, path
        assert all(isinstance(problem, str) and problem for problem in problems)
        for meeting in result:
            check_invariants(meeting, path)
        meetings += len(result)
    for name, reason in sorted(unreadable.items()):
        print(f"CalendarError {name}: {reason}")
    assert set(unreadable) == EXPECTED_UNREADABLE
    assert meetings > 1000


def check_invariants(meeting: Meeting, path: Path) -> None:
    times = [meeting.start, meeting.end, meeting.recurrence_id, *meeting.exdates]
    for value in times:
        assert value is None or value.utcoffset() == timedelta(0), (path, meeting.key)
    assert meeting.uid and meeting.uid == meeting.uid.strip(), path
    if meeting.recurrence_id is not None:
        assert meeting.rrule is None and not meeting.exdates, path
    for person in [meeting.organizer, *meeting.attendees]:
        if person is not None:
            assert person.email == person.email.lower() and "@" in person.email, path
    if meeting.all_day:
        assert meeting.start is not None and meeting.start.time() == datetime.min.time(), path
        assert meeting.timezone is None


def test_exchange_windows_time_zone_names_give_the_right_utc_time() -> None:
    # Exchange 2010, TZID="Pacific Standard Time": 2017-02-24 12:00 PST (UTC-8; DST starts 12 March).
    [pacific] = parse_calendar(corpus_file(f"{ICALENDAR}/timezone_same_start.ics"))
    assert pacific.start == utc(2017, 2, 24, 20, 0)
    assert pacific.end == utc(2017, 2, 24, 20, 30)
    assert pacific.timezone == "America/Los_Angeles"
    assert pacific.method == "REQUEST"
    assert pacific.summary == "Test 4"

    # "Tokyo Standard Time": 12:00 JST (UTC+9, no DST) is 03:00 UTC.
    [tokyo] = parse_calendar(corpus_file(f"{ICALENDAR}/timezone_same_start_and_offset.ics"))
    assert (tokyo.start, tokyo.timezone) == (utc(2017, 2, 24, 3, 0), "Asia/Tokyo")

    # Unquoted "Eastern Standard Time" a week before DST ends: 17:00 EDT (UTC-4) is 21:00 UTC.
    [eastern] = parse_calendar(corpus_file(f"{ICALENDAR}/issue_836_do_not_quote_tzid.ics"))
    assert (eastern.start, eastern.end) == (utc(2024, 10, 28, 21, 0), utc(2024, 10, 28, 22, 0))
    assert eastern.timezone == "America/New_York"


def test_time_zones_known_only_from_the_file_or_not_at_all() -> None:
    # Old Outlook display name, defined only by its VTIMEZONE: 10:00 at +0200 in July.
    meetings, problems = parse_calendar_with_errors(corpus_file(f"{ICALENDAR}/issue_165_missing_event.ics"))
    [standup] = meetings
    assert standup.start == utc(2015, 7, 3, 8, 0)
    assert standup.timezone is None
    # Its RRULE says "BYDAY=MO, TU, ..." (invalid blanks): repaired, and reported.
    assert standup.rrule == "FREQ=DAILY;UNTIL=20150722T080000Z;INTERVAL=1;BYDAY=MO,TU,WE,TH,FR;WKST=SU"
    assert any("RRULE" in problem for problem in problems)

    # A custom TZID with X-LIC-LOCATION: the file's VTIMEZONE, Fiji is UTC+12 in August.
    [fiji] = parse_calendar(corpus_file(f"{ICALENDAR}/pacific_fiji.ics"))
    assert (fiji.start, fiji.timezone) == (utc(2014, 8, 28, 20, 0), "Pacific/Fiji")

    # libical / Lightning "globally unique" TZIDs: 14:00 CEST, EDT, ART.
    starts = {
        m.uid: (m.start, m.timezone)
        for m in parse_calendar(corpus_file(f"{ICALENDAR}/issue_313_globally_unique_tzid.ics"))
    }
    assert starts["libical-evolution@issue-313"] == (utc(2020, 4, 26, 12, 0), "Europe/Berlin")
    assert starts["mozilla-lightning@issue-313"] == (utc(2020, 4, 26, 18, 0), "America/New_York")
    assert starts["multipart-olson@issue-313"] == (utc(2020, 4, 26, 17, 0), "America/Argentina/Buenos_Aires")

    # A TZID with no VTIMEZONE and no known meaning: read as UTC, and said so.
    meetings, problems = parse_calendar_with_errors(
        corpus_file(f"{ICALENDAR}/issue_722_missing_VTIMEZONE_custom.ics")
    )
    assert meetings[0].start == utc(2014, 8, 29, 8, 0)
    assert any("CUSTOM_tzid" in problem for problem in problems)


def test_recurring_series_with_rrule_and_exdate() -> None:
    # Evolution/Exchange: 14:00 Europe/Berlin (CEST, UTC+2) daily, one occurrence removed.
    [series] = parse_calendar(corpus_file(f"{RECURRING}/issue_27_t1.ics"))
    assert series.uid == "3bbe38c205956551730fc9233525fe268296ec02"
    assert series.recurrence_id is None and series.key == f"uid:{series.uid}"
    assert (series.start, series.end) == (utc(2020, 4, 26, 12, 0), utc(2020, 4, 26, 12, 30))
    assert series.rrule == "FREQ=DAILY;UNTIL=20200429T000000"
    assert series.exdates == (utc(2020, 4, 27, 12, 0),)
    assert series.sequence == 7 and series.method == "PUBLISH"

    # Weekly 16:15 Berlin across the October DST change: the UTC EXDATEs move by an hour.
    [weekly] = parse_calendar(corpus_file(f"{RECURRING}/issue_20_exdate_ignored.ics"))
    assert weekly.start == utc(2019, 10, 15, 14, 15)
    assert weekly.exdates[:3] == (
        utc(2019, 10, 15, 14, 15),
        utc(2019, 10, 22, 14, 15),
        utc(2019, 11, 5, 15, 15),
    )


def test_exception_with_recurrence_id_is_its_own_cancelled_meeting() -> None:
    meetings = by_key(parse_calendar(corpus_file(f"{RECURRING}/issue_18_cancel_status.ics")))
    uid = "b65c2b5b-b785-4edc-9560-e0379036d1f2"
    # RECURRENCE-ID 22:00 Europe/Berlin in January (CET, UTC+1) is 21:00 UTC.
    master, exception = meetings[f"uid:{uid}"], meetings[f"uid:{uid}/20200129T210000Z"]
    assert master.key != exception.key and master.uid == exception.uid == uid
    assert master.rrule == "FREQ=DAILY;COUNT=3" and not master.cancelled
    assert exception.recurrence_id == utc(2020, 1, 29, 21, 0)
    assert exception.rrule is None and exception.status == "CANCELLED" and exception.cancelled
    assert exception.sequence == 2
    assert exception.location is None and exception.description == ""


def test_exchange_all_day_series_and_exception_keys_agree() -> None:
    # Exchange gives an all-day series DATE values but its exceptions a RECURRENCE-ID at local
    # midnight in "GMT Standard Time" (BST in April, so 23:00 UTC the day before).
    meetings = by_key(parse_calendar(corpus_file(f"{RECURRING}/issue_28_rrule_with_UTC_endinginZ.ics")))
    uid = (
        "040000008200E00074C5B7101A82E00800000000017E1BADC42ED60100000000000000001"
        "0000000FBF1FBAE2E9FBC4D81F16854E2F4D51B"
    )
    master = meetings[f"uid:{uid}"]
    assert master.all_day and (master.start, master.end) == (utc(2020, 4, 2), utc(2020, 4, 3))
    assert master.rrule == "FREQ=WEEKLY;UNTIL=20200916T230000Z;INTERVAL=2;BYDAY=TH;WKST=MO"
    moved = meetings[f"uid:{uid}/20200416T000000Z"]
    assert moved.all_day and moved.start == utc(2020, 4, 17)

    # The same quirk in an Outlook all-day series (flagged, midnight to midnight) and its EXDATE.
    [series] = parse_calendar(
        itip(
            "METHOD:REQUEST",
            "UID:outlook-all-day",
            "X-MICROSOFT-CDO-ALLDAYEVENT:TRUE",
            "DTSTART;TZID=W. Europe Standard Time:20240701T000000",
            "DTEND;TZID=W. Europe Standard Time:20240702T000000",
            "RRULE:FREQ=WEEKLY;COUNT=4",
            "EXDATE;TZID=W. Europe Standard Time:20240708T000000",
        )
    )
    assert series.all_day and (series.start, series.end) == (utc(2024, 7, 1), utc(2024, 7, 2))
    assert series.exdates == (utc(2024, 7, 8),) and series.timezone is None


def test_attendees_with_partstat_and_all_day_event() -> None:
    [meeting] = parse_calendar(corpus_file(f"{ICALENDAR}/property_params.ics"))
    assert meeting.all_day and meeting.start == utc(2012, 8, 14) and meeting.end == utc(2012, 8, 15)
    assert meeting.timezone is None
    assert meeting.organizer is not None
    assert (meeting.organizer.email, meeting.organizer.role) == ("rembrand@daxlab.com", "organizer")
    assert [(a.email, a.name, a.role, a.rsvp) for a in meeting.attendees] == [
        ("rembrand@xs4all.nl", "RembrandXS", "attendee", "needs_action"),
        ("rembrand@daxlab.com", "RembrandDX", "attendee", "needs_action"),
        ("rembspam@xs4all.nl", "RembrandSB", "attendee", "needs_action"),
    ]
    accepted = [
        a for m in parse_calendar(corpus_file(f"{RECURRING}/machbar_16_feb_2019.ics")) for a in m.attendees
    ]
    assert accepted and {a.rsvp for a in accepted} == {"accepted"}


def test_duration_instead_of_dtend() -> None:
    first, second, third = parse_calendar(corpus_file(f"{RECURRING}/duration.ics"))
    assert first.all_day and (first.start, first.end) == (utc(2018, 1, 10), utc(2018, 1, 13))  # P3D
    assert (second.start, second.end) == (utc(2018, 1, 15, 10), utc(2018, 1, 15, 13))  # floating, PT3H
    assert third.end == third.start  # neither DTEND nor DURATION (RFC 5545 §3.6.1)


def test_duration_days_are_nominal_across_dst() -> None:
    # P1D from Saturday 10:00 CET ends Sunday 10:00 CEST: 23 hours, not 24 (RFC 5545 §3.3.6).
    [meeting] = parse_calendar(
        calendar(
            "BEGIN:VCALENDAR",
            "BEGIN:VEVENT",
            "UID:dst-day",
            "DTSTART;TZID=Europe/Berlin:20240330T100000",
            "DURATION:P1DT1H",
            "END:VEVENT",
            "END:VCALENDAR",
        )
    )
    assert (meeting.start, meeting.end) == (utc(2024, 3, 30, 9, 0), utc(2024, 3, 31, 9, 0))


@pytest.mark.parametrize(
    ("wall", "expected"),
    [
        ("20240331T023000", utc(2024, 3, 31, 1, 30)),  # in the spring gap: the offset before it (+01)
        ("20241027T023000", utc(2024, 10, 27, 0, 30)),  # twice in autumn: the first one (+02)
    ],
)
def test_wall_times_in_dst_gaps_and_overlaps_follow_rfc_5545(wall: str, expected: datetime) -> None:
    # RFC 5545 §3.3.5, for an IANA zone and for the same rules given only as an Exchange VTIMEZONE.
    for tzid in ("Europe/Berlin", "Custom Berlin"):
        vtimezone = [
            "BEGIN:VTIMEZONE",
            "TZID:Custom Berlin",
            *("BEGIN:STANDARD", "DTSTART:16010101T030000", "TZOFFSETFROM:+0200", "TZOFFSETTO:+0100"),
            *("RRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH=10", "END:STANDARD"),
            *("BEGIN:DAYLIGHT", "DTSTART:16010101T020000", "TZOFFSETFROM:+0100", "TZOFFSETTO:+0200"),
            *("RRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH=3", "END:DAYLIGHT"),
            "END:VTIMEZONE",
        ]
        data = calendar(
            "BEGIN:VCALENDAR",
            *vtimezone,
            "BEGIN:VEVENT",
            "UID:x",
            f"DTSTART;TZID={tzid}:{wall}",
            "END:VEVENT",
            "END:VCALENDAR",
        )
        assert parse_calendar(data)[0].start == expected, tzid


def itip(method_line: str | None, *event: str) -> bytes:
    head = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//syncd tests//EN"]
    return calendar(
        *head, *([method_line] if method_line else []), "BEGIN:VEVENT", *event, "END:VEVENT", "END:VCALENDAR"
    )


def test_itip_request_reply_and_cancel() -> None:
    common = ("UID:deal-review-42@example.com", "DTSTAMP:20240301T090000Z", "DTSTART:20240305T150000Z")
    request = itip(
        "METHOD:REQUEST",
        *common,
        "SEQUENCE:1",
        "SUMMARY:Deal review",
        "ORGANIZER;CN=Ann Seller:MAILTO:Ann.Seller@Example.com",
        "ATTENDEE;CN=Bob Buyer;PARTSTAT=NEEDS-ACTION;RSVP=TRUE:mailto:bob@customer.example",
        "ATTENDEE;CUTYPE=ROOM;CN=Room 1:urn:uuid:6f1b-room",
        "X-MICROSOFT-SKYPETEAMSMEETINGURL:https://teams.microsoft.com/l/meetup-join/19%3ameeting_abc/0",
    )
    [invite] = parse_calendar(request, method="PUBLISH")  # the calendar's own METHOD wins
    assert (invite.method, invite.sequence, invite.status, invite.cancelled) == ("REQUEST", 1, None, False)
    assert invite.organizer is not None and invite.organizer.email == "ann.seller@example.com"
    assert [a.email for a in invite.attendees] == ["bob@customer.example"]  # the urn: room is no email
    assert invite.conference_url == "https://teams.microsoft.com/l/meetup-join/19%3ameeting_abc/0"
    assert invite.end == invite.start == utc(2024, 3, 5, 15, 0)

    # No METHOD property: the MIME part's method parameter applies.
    replies = [
        parse_calendar(
            itip(None, *common, f"ATTENDEE;PARTSTAT={partstat}:mailto:Bob@Customer.example"), "reply"
        )[0]
        for partstat in ("ACCEPTED", "DECLINED", "TENTATIVE", "DELEGATED", "X-UNKNOWN")
    ]
    assert {reply.method for reply in replies} == {"REPLY"}
    assert [reply.attendees[0].rsvp for reply in replies] == [
        "accepted",
        "declined",
        "tentative",
        "delegated",
        None,
    ]
    assert {reply.key for reply in replies} == {invite.key}

    [cancel] = parse_calendar(itip("METHOD:CANCEL", *common, "SEQUENCE:2"))
    assert cancel.method == "CANCEL" and cancel.cancelled and cancel.status is None

    [plain] = parse_calendar(itip(None, *common))
    assert plain.method is None and not plain.cancelled


def test_a_broken_event_among_good_ones_keeps_the_good_ones() -> None:
    data = calendar(
        "BEGIN:VCALENDAR",
        "METHOD:PUBLISH",
        "BEGIN:VEVENT",
        "UID:good-1",
        "DTSTART:20240102T100000Z",
        "END:VEVENT",
        "BEGIN:VEVENT",
        "UID:bad",
        "DTSTART:2024-01-03 10:00",
        "END:VEVENT",
        "BEGIN:VEVENT",
        "UID:good-2",
        "DTSTART;TZID=Nowhere/Special:20240104T100000",
        "END:VEVENT",
        "BEGIN:VEVENT",
        "UID:truncated",
        "DTSTART:20240105T100000Z",
    )
    meetings, problems = parse_calendar_with_errors(data)
    assert [m.uid for m in meetings] == ["good-1", "good-2"]
    assert meetings[1].start == utc(2024, 1, 4, 10, 0)  # unknown zone: read as UTC
    assert any("'bad' skipped" in problem and "DTSTART" in problem for problem in problems)
    assert any("never closed" in problem for problem in problems)
    assert any("Nowhere/Special" in problem for problem in problems)
    assert [m.uid for m in parse_calendar(data)] == ["good-1", "good-2"]


def test_calendars_icalendar_refuses_as_a_whole_are_read_event_by_event() -> None:
    # A stray "X" line at calendar level makes icalendar reject the whole file.
    meetings, problems = parse_calendar_with_errors(corpus_file(f"{ICALENDAR}/issue_104_broken_calendar.ics"))
    [event] = meetings
    assert (event.summary, event.start, event.method) == ("Broken Eevnt", utc(2014, 4, 1), "PUBLISH")
    assert event.uid.startswith("syncd-") and event.uid.endswith("@synthetic")
    assert event.uid == parse_calendar(corpus_file(f"{ICALENDAR}/issue_104_broken_calendar.ics"))[0].uid
    assert any("icalendar cannot parse it" in problem for problem in problems)

    # One of two EXDATE lines is empty: only that line is lost.
    _, wrong = parse_calendar(corpus_file(f"{ICALENDAR}/parsing_error.ics"))
    assert wrong.description == "Wrong event" and wrong.exdates == (utc(2008, 3, 11),)


def test_conference_urls() -> None:
    google = parse_calendar(corpus_file(f"{RECURRING}/issue_173_only_modifications_error.ics"))
    assert "https://meet.google.com/xxx" in {m.conference_url for m in google}
    zoom = by_key(parse_calendar(corpus_file(f"{RECURRING}/issue_48_daylight_aware_repeats.ics")))[
        "uid:EVENT2"
    ]
    assert (
        zoom.conference_url
        == "https://videoconf-colibri.zoom.us/j/93800310242?pwd=K3FBUVJUV2hrTm1OR2RWb0ZabTJkZz09"
    )
    [rfc7986] = parse_calendar(corpus_file(f"{ICALENDAR}/issue_1426_value_parameters.ics"))
    assert rfc7986.conference_url == "https://example.com/meet"


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty"),
        (b"   \r\n", "empty"),
        (b"Hello, this is not a calendar", "not a readable calendar"),
        (b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\n", "not a readable calendar"),
        (b"\x00\xff\xfe garbage", "not a readable calendar"),
    ],
)
def test_data_that_is_not_a_calendar_raises_calendar_error(data: bytes, reason: str) -> None:
    with pytest.raises(CalendarError, match=reason):
        parse_calendar(data)


def test_a_calendar_without_events_is_empty_not_an_error() -> None:
    assert parse_calendar(corpus_file(f"{ICALENDAR}/empty.ics")) == []


def test_windows_1252_text_is_decoded() -> None:
    data = itip(None, "UID:cafe", "DTSTART:20240101T100000Z", "SUMMARY:Caf\u00e9 meeting").replace(
        "\u00e9".encode(), b"\xe9"
    )
    assert parse_calendar(data)[0].summary == "Caf\u00e9 meeting"


def test_thousands_of_events_are_fast_even_when_read_event_by_event() -> None:
    events = [
        line
        for n in range(3000)
        for line in (
            "BEGIN:VEVENT",
            f"UID:event-{n}@example.com",
            f"DTSTART;TZID=W. Europe Standard Time:202401{n % 28 + 1:02d}T090000",
            "DURATION:PT30M",
            "ATTENDEE;PARTSTAT=ACCEPTED:mailto:someone@example.com",
            "END:VEVENT",
        )
    ]
    for stray in ([], ["X"]):  # "X" forces the event-by-event path
        began = time.perf_counter()
        meetings = parse_calendar(calendar("BEGIN:VCALENDAR", *stray, *events, "END:VCALENDAR"))
        elapsed = time.perf_counter() - began
        assert len(meetings) == 3000
        assert meetings[0].start == utc(2024, 1, 1, 8, 0)  # 09:00 CET
        assert elapsed < 20, f"{elapsed:.1f}s for 3000 events"
