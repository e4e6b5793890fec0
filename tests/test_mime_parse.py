"""parse_message on small messages whose bytes are written in the test (real mail: test_mime_corpus.py)."""

from __future__ import annotations

import base64
import re
import time
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.mime_decode import MAX_ID_CHARS
from connectors.mime_parse import MAX_TEXT_BYTES, ParseError, parse_message


def message(*headers: str, body: bytes | str = "Hello.\n", crlf: bool = False) -> bytes:
    head = "\n".join(headers).encode("utf-8")
    raw = head + b"\n\n" + (body.encode("utf-8") if isinstance(body, str) else body)
    return raw.replace(b"\n", b"\r\n") if crlf else raw


BASIC = ("From: Ann <ann@example.com>", "To: bob@example.org", "Date: Tue, 05 Mar 2024 10:00:00 +0100")


def test_rfc2047_subject_and_names() -> None:
    parsed = parse_message(
        message(
            "From: =?UTF-8?B?SsO2cmcgTcO8bGxlcg==?= <Joerg@Example.COM>",
            "To: =?iso-8859-1?Q?Fran=E7ois_Lef=E8vre?= <francois@example.fr>,",
            ' "=?utf-8?Q?Smith=2C_Jos=C3=A9?=" <jose@example.com>',
            "Subject: Re: =?utf-8?Q?caf=C3=A9_au_lait?= =?utf-8?B?IOKCrCA1?= ok",
        )
    )
    assert parsed.subject == "Re: café au lait € 5 ok"
    assert parsed.sender is not None
    assert (parsed.sender.email, parsed.sender.name) == ("joerg@example.com", "Jörg Müller")
    assert [(p.email, p.name) for p in parsed.participants if p.role == "to"] == [
        ("francois@example.fr", "François Lefèvre"),
        ("jose@example.com", "Smith, José"),
    ]


def test_utf8_character_split_across_encoded_words() -> None:
    euro = "€".encode()
    first, second = base64.b64encode(b"price " + euro[:1]).decode(), base64.b64encode(euro[1:]).decode()
    parsed = parse_message(message(*BASIC, f"Subject: =?utf-8?B?{first}?= =?utf-8?B?{second}?="))
    assert parsed.subject == "price €"


def test_broken_encoded_words_degrade_gracefully() -> None:
    parsed = parse_message(
        message(
            *BASIC,
            "Subject: =?utf-8?B?not!base64?= and =?x-klingon?Q?caf=E9?= and =?utf-8?Q?fine?=",
            "Cc: =?bogus-charset?B?w6k=?= <c@example.com>",
        )
    )
    # The unknown charset falls back to UTF-8 then cp1252; the broken word stays readable.
    assert "café" in parsed.subject and parsed.subject.endswith("fine")
    assert parsed.participants[-1].name == "é"


def test_unknown_and_mislabelled_body_charsets() -> None:
    unknown = parse_message(message(*BASIC, "Content-Type: text/plain; charset=x-foo", body="naïve café"))
    assert unknown.text == "naïve café"
    assert "unknown charset x-foo in body" in unknown.defects
    ascii_label = parse_message(message(*BASIC, "Content-Type: text/plain; charset=us-ascii", body="größe"))
    assert ascii_label.text == "größe"
    latin1_as_utf8 = parse_message(
        message(*BASIC, "Content-Type: text/plain; charset=utf-8", body="déjà vu".encode("latin-1"))
    )
    assert latin1_as_utf8.text == "déjà vu"
    windows = parse_message(
        message(*BASIC, 'Content-Type: text/plain; charset="windows-1252"', body=b"\x93quoted\x94 \x80")
    )
    assert windows.text == "“quoted” €"


def test_quoted_printable_and_base64_bodies() -> None:
    qp = parse_message(
        message(
            *BASIC,
            "Content-Type: text/plain; charset=utf-8",
            "Content-Transfer-Encoding: quoted-printable",
            body="Gr=C3=BC=C3=9Fe, a long line that is soft=\n-wrapped.\n",
            crlf=True,
        )
    )
    assert qp.text == "Grüße, a long line that is soft-wrapped.\n"
    b64 = parse_message(
        message(
            *BASIC,
            "Content-Type: text/plain; charset=iso-8859-1",
            "Content-Transfer-Encoding: base64",
            body=base64.encodebytes("Ça va?\r\nOui.".encode("latin-1")),
        )
    )
    assert b64.text == "Ça va?\nOui."


def test_html_only_mail_becomes_text() -> None:
    html = (
        "<html><head><style>p{color:red}</style></head><body>"
        "<p>Hi&nbsp;Bob,</p><p>See <a href='x'>the offer</a>.</p></body></html>"
    )
    parsed = parse_message(message(*BASIC, "Content-Type: text/html; charset=utf-8", body=html))
    assert parsed.html
    assert parsed.text == "Hi Bob,\n\nSee the offer."


def multipart(subtype: str, *parts: str, boundary: str = "XYZ") -> str:
    body = "".join(f"--{boundary}\n{part}\n" for part in parts)
    return f"Content-Type: multipart/{subtype}; boundary={boundary}\n\n{body}--{boundary}--\n"


def test_alternative_prefers_plain_text_and_lists_attachments() -> None:
    alternative = multipart(
        "alternative",
        "Content-Type: text/html\n\n<p>HTML version</p>",
        "Content-Type: text/plain\n\nPlain version",
        boundary="ALT",
    )
    mixed = multipart(
        "mixed",
        alternative,
        "Content-Type: application/pdf\n"
        "Content-Disposition: attachment; filename*=utf-8''%C3%A9t%C3%A9.pdf\n\nJVBERi0=",
        'Content-Type: text/plain; name="=?utf-8?Q?notes_=C3=BC.txt?="\n\nattached text, not the body',
        "Content-Type: image/png\nContent-Disposition: attachment\n\niVBORw0K",
        "Content-Type: application/octet-stream\n"
        'Content-Disposition: attachment; filename="C:\\\\tmp\\\\a.doc"\n\nx',
    )
    head, _, body = mixed.partition("\n\n")
    parsed = parse_message(message(*BASIC, head, body=body))
    assert parsed.text == "Plain version" and not parsed.html
    assert parsed.attachments == ("été.pdf", "notes ü.txt", "untitled.png", "a.doc")
    assert parsed.headers.content_type == "multipart/mixed"


def test_forwarded_message_text_is_not_the_body() -> None:
    inner = "Content-Type: message/rfc822\n\nFrom: x@example.com\nSubject: Old news\n\nInner text"
    head, _, body = multipart("mixed", "Content-Type: text/plain\n\nOuter text", inner).partition("\n\n")
    parsed = parse_message(message(*BASIC, head, body=body))
    assert parsed.text == "Outer text"
    assert parsed.attachments == ()


def test_missing_message_id_is_synthesized_identically_across_mailboxes() -> None:
    common = (
        "From: Ann <ann@example.com>",
        "To: bob@example.org",
        "Subject: Quote",
        "Date: Tue, 5 Mar 2024 10:00:00 +0000",
    )
    copy1 = message(
        "Received: from a.example by mx1.example; Tue, 5 Mar 2024 10:00:01 +0000", *common, body="Price?\n"
    )
    copy2 = message(
        "Received: from mx9.other by imap.other; Tue, 5 Mar 2024 10:07:00 +0000",
        "Received: from a.example by mx9.other; Tue, 5 Mar 2024 10:05:00 +0000",
        *common,
        body="Price?\n",
        crlf=True,
    )
    first, second = parse_message(copy1), parse_message(copy2)
    assert first.synthetic_id and second.synthetic_id
    assert first.message_id == second.message_id
    assert re.fullmatch(r"syncd-[0-9a-f]{64}@synthetic", first.message_id)
    assert first.thread_key == first.message_id
    other = parse_message(message(*common, body="Price, please?\n"))
    assert other.message_id != first.message_id


def test_message_ids_are_cleaned_and_capped() -> None:
    spaced = parse_message(message(*BASIC, "Message-ID:  <abc.123@\n host.example>  (comment)"))
    assert spaced.message_id == "abc.123@host.example" and not spaced.synthetic_id
    long_id = "x" * 1000 + "@example.com"
    capped = parse_message(message(*BASIC, f"Message-ID: <{long_id}>"))
    reply = parse_message(message(*BASIC, "Message-ID: <r@example.com>", f"In-Reply-To: <{long_id}>"))
    assert len(capped.message_id) <= MAX_ID_CHARS
    assert capped.message_id.startswith("syncd-")
    assert reply.in_reply_to == capped.message_id == reply.thread_key


def test_threading_headers() -> None:
    parsed = parse_message(
        message(
            *BASIC,
            "Message-ID: <c@example.com>",
            "In-Reply-To: <b@example.com> (Ann's message of Monday)",
            "References: <a@example.com>\n <b@example.com> <a@example.com>",
        )
    )
    assert parsed.in_reply_to == "b@example.com"
    assert parsed.references == ("a@example.com", "b@example.com")
    assert parsed.thread_key == "a@example.com"
    only_reply = parse_message(message(*BASIC, "Message-ID: <d@example.com>", "In-Reply-To: b@example.com"))
    assert only_reply.thread_key == only_reply.in_reply_to == "b@example.com"


def test_dates_become_utc() -> None:
    zoned = parse_message(message("From: a@example.com", "Date: Mon, 18 Oct 1999 01:47:00 -0700 (PDT)"))
    assert zoned.date == datetime(1999, 10, 18, 8, 47, tzinfo=UTC)
    naive = parse_message(message("From: a@example.com", "Date: Mon, 18 Oct 1999 01:47:00 -0000"))
    assert naive.date == datetime(1999, 10, 18, 1, 47, tzinfo=UTC)


def test_missing_or_bad_date_falls_back_to_the_first_hop() -> None:
    received = (
        "Received: from mx.example by imap.example; Wed, 6 Mar 2024 09:00:00 +0000",
        "Received: from client by mx.example; Wed, 6 Mar 2024 08:59:00 +0100",
    )
    missing = parse_message(message(*received, "From: a@example.com"))
    assert missing.date == datetime(2024, 3, 6, 7, 59, tzinfo=UTC)
    assert "no Date header" in missing.defects
    bad = parse_message(message(*received, "From: a@example.com", "Date: someday soon"))
    assert bad.date == missing.date and "bad Date header" in bad.defects
    nothing = parse_message(message("From: a@example.com", "Date: 32 Foo 99999"))
    assert nothing.date is None


def test_participant_roles() -> None:
    parsed = parse_message(
        message(
            "From: Ann <ANN@Example.com>",
            "Sender: ann@example.com",
            "Reply-To: Sales <sales@example.com>",
            "To: Bob <bob@example.org>, undisclosed-recipients:;, bob@example.org",
            "Cc: carol@example.net, not-an-address",
            "Bcc: Dave <dave@example.net>",
        )
    )
    assert [(p.role, p.email, p.name) for p in parsed.participants] == [
        ("from", "ann@example.com", "Ann"),
        ("reply_to", "sales@example.com", "Sales"),
        ("to", "bob@example.org", "Bob"),
        ("cc", "carol@example.net", None),
        ("bcc", "dave@example.net", "Dave"),
    ]
    assert parsed.sender == parsed.participants[0]
    on_behalf = parse_message(message("From: boss@example.com", "Sender: assistant@example.com"))
    assert [p.role for p in on_behalf.participants] == ["from", "sender"]


def test_exclusion_headers() -> None:
    parsed = parse_message(
        message(
            *BASIC,
            "List-Id: Sales team <sales.lists.example.com>",
            "List-Unsubscribe: <mailto:leave@example.com>",
            "Precedence: bulk",
            "Auto-Submitted: auto-replied",
            "Sensitivity: Private",
            "X-Auto-Response-Suppress: All",
            "X-Autorespond: yes",
            "Content-Type: Text/PLAIN; charset=utf-8",
        )
    )
    assert parsed.headers.list_id == "Sales team <sales.lists.example.com>"
    assert parsed.headers.list_unsubscribe == "<mailto:leave@example.com>"
    assert (parsed.headers.precedence, parsed.headers.auto_submitted) == ("bulk", "auto-replied")
    assert (parsed.headers.sensitivity, parsed.headers.x_auto_response_suppress) == ("Private", "All")
    assert parsed.headers.auto_reply and parsed.headers.content_type == "text/plain"
    plain = parse_message(message(*BASIC))
    assert not plain.headers.auto_reply and plain.headers.list_id is None


INVITE = """BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//syncd tests//EN
METHOD:REQUEST
BEGIN:VEVENT
UID:pricing-review-1@customer.example
DTSTAMP:20240301T120000Z
DTSTART:20240305T150000Z
DTEND:20240305T160000Z
SUMMARY:Pricing review
ORGANIZER;CN=Ann Buyer:mailto:ann@customer.example
ATTENDEE;PARTSTAT=NEEDS-ACTION:mailto:bob@vendor.example
END:VEVENT
END:VCALENDAR"""


def test_calendar_parts_become_meetings_once() -> None:
    head, _, body = multipart(
        "mixed",
        multipart(
            "alternative",
            "Content-Type: text/plain\n\nYou are invited.",
            f"Content-Type: text/calendar; charset=utf-8; method=REQUEST\n\n{INVITE}",
            boundary="ALT",
        ),
        'Content-Type: application/ics; name="invite.ics"\nContent-Transfer-Encoding: base64\n'
        "Content-Disposition: attachment; filename=invite.ics\n\n"
        + base64.b64encode(INVITE.encode()).decode(),
    ).partition("\n\n")
    parsed = parse_message(message(*BASIC, head, body=body, crlf=True))
    assert parsed.text == "You are invited."
    assert parsed.attachments == ("invite.ics",)
    [meeting] = parsed.meetings  # the same event in two parts is one meeting
    assert (meeting.uid, meeting.method, meeting.summary) == (
        "pricing-review-1@customer.example",
        "REQUEST",
        "Pricing review",
    )
    assert meeting.start == datetime(2024, 3, 5, 15, tzinfo=UTC)


def test_unreadable_calendar_is_a_defect_not_a_failure() -> None:
    parsed = parse_message(
        message(*BASIC, "Content-Type: text/calendar; method=CANCEL", body="\x00\x01 garbage")
    )
    assert parsed.meetings == ()
    assert any(d.startswith("unreadable calendar part") for d in parsed.defects)
    assert all("\x00" not in d for d in parsed.defects)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"", "empty"),
        (b" \r\n\t\n", "empty"),
        (b"\x00\x01\x02\x03garbage\x00\x00\x05\x06" * 20, "binary"),
        (b"just some text\nwithout any header\n", "no header fields"),
        ("From: a@example.com\n\nstr, not bytes", "expected bytes"),
    ],
)
def test_unreadable_input_raises_parse_error(raw: bytes, reason: str) -> None:
    with pytest.raises(ParseError, match=reason):
        parse_message(raw)


def test_odd_but_readable_input_parses() -> None:
    bom_and_blank_lines = parse_message(
        b"\xef\xbb\xbf\r\n   \r\nFrom: a@example.com\r\nSubject: hi\r\n\r\nbody\r\n"
    )
    assert bom_and_blank_lines.subject == "hi" and bom_and_blank_lines.text == "body\n"
    stray_nul = parse_message(b"From: a@example.com\nSubject: a\x00b\n\nx\x00y\n")
    assert stray_nul.subject == "ab" and stray_nul.text == "xy\n"
    huge = parse_message(message(*BASIC, body="é" * (MAX_TEXT_BYTES)))
    assert len(huge.text.encode()) <= MAX_TEXT_BYTES
    assert huge.size > 2 * MAX_TEXT_BYTES


@pytest.mark.parametrize("kind", ["multipart", "message"])
def test_nesting_beyond_the_stdlib_parser_keeps_the_header(kind: str) -> None:
    if kind == "multipart":
        levels = b"".join(
            b"Content-Type: multipart/mixed; boundary=b%d\n\n--b%d\n" % (i, i) for i in range(3000)
        )
    else:
        levels = b"Content-Type: message/rfc822\n\n" * 3000
    raw = (
        "\n".join(BASIC).encode()
        + b"\nSubject: deep\nMessage-ID: <deep@example.com>\n"
        + levels
        + b"\n\ninner\n"
    )
    start = time.perf_counter()
    parsed = parse_message(raw)
    assert time.perf_counter() - start < 2.0
    assert (parsed.subject, parsed.message_id, parsed.text) == ("deep", "deep@example.com", "")
    assert any("nested too deeply" in d for d in parsed.defects)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2000))
def test_arbitrary_bytes_never_raise_anything_but_parse_error(raw: bytes) -> None:
    try:
        parse_message(raw)
    except ParseError as exc:
        assert str(exc)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_damaged_real_messages_never_raise_anything_but_parse_error(data: st.DataObject) -> None:
    raw = bytearray(
        message(
            *BASIC,
            "Subject: =?utf-8?Q?Gr=C3=BC=C3=9Fe?=",
            "References: <a@example.com> <b@example.com>",
            multipart(
                "mixed",
                "Content-Type: text/plain; charset=utf-8\n\nHi",
                "Content-Type: text/html\n\n<p>x</p>",
            ).partition("\n\n")[0],
            body=multipart(
                "mixed",
                "Content-Type: text/plain; charset=utf-8\n\nHi",
                "Content-Type: text/html\n\n<p>x</p>",
            ).partition("\n\n")[2],
        )
    )
    for _ in range(data.draw(st.integers(1, 8))):
        position = data.draw(st.integers(0, len(raw) - 1))
        raw[position : position + data.draw(st.integers(0, 4))] = data.draw(st.binary(max_size=4))
        if not raw:
            break
    try:
        parse_message(bytes(raw))
    except ParseError as exc:
        assert str(exc)
