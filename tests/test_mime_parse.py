"""parse_message and html_to_text on real mail (the shared corpus) and on small messages written here."""

from __future__ import annotations

import base64
import hashlib
import mailbox
import re
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.html_text import html_to_text
from connectors.message import ParsedMessage
from connectors.mime_parse import MAX_ID_CHARS, MAX_TEXT_BYTES, ParseError, decode_words, parse_message
from tests.corpus import require_corpus

ENRON = "emails/enron_berkeley_annotated/enron_with_categories"
MIMEKIT = "mime/mimekit/UnitTests/TestData"
FLANKER = "mime/flanker/tests/fixtures/messages"

# Files of the MIME corpus that are not mail: upstream metadata, expected outputs, raw attachments.
NOT_MAIL_SUFFIXES = {".tnef", ".list", ".png", ".wav", ".yaml", ".md", ".upstream"}
BINARY_SUFFIXES = {".tnef", ".png", ".wav"}
# The mail files that must raise ParseError, and a word the reason must contain.
EXPECTED_PARSE_ERRORS = {
    "mime/flanker/tests/fixtures/messages/dkim/email.01": "empty",  # a zero-byte file
    "mime/spamscope_mail_parser/tests/mails/mail_outlook_1": "Outlook",  # a .msg, not RFC 822
}
# Inputs built to hurt parsers: each must still be read quickly.
TORTURE = [
    f"{FLANKER}/long-header.eml",  # a 210 KB Subject
    f"{FLANKER}/enclosed-endless.eml",  # 3 MB of nested message/rfc822
    f"{FLANKER}/torture.eml",
    f"{MIMEKIT}/messages/stack-overflow.txt",  # a To header with a thousand group colons
]


def is_mail(path: Path) -> bool:
    name = path.name
    return not (
        path.suffix in NOT_MAIL_SUFFIXES
        or name == "README"
        or name.startswith("purpose.")
        or ".expected." in name
        or name.endswith("-summary.txt")
    )


def mbox_messages(path: Path, tmp_path: Path) -> list[bytes]:
    """The messages of an mbox file; a UTF-8 BOM (MimeKit's unmunged.mbox.txt) hides the first From line."""
    copy = tmp_path / path.name
    copy.write_bytes(path.read_bytes().removeprefix(b"\xef\xbb\xbf"))
    box = mailbox.mbox(copy, create=False)
    try:
        return [box.get_bytes(key) for key in box.iterkeys()]
    finally:
        box.close()


def outcome(raw: bytes) -> tuple[ParsedMessage | None, str | None, float]:
    start = time.perf_counter()
    try:
        parsed, reason = parse_message(raw), None
    except ParseError as exc:
        parsed, reason = None, str(exc)
    return parsed, reason, time.perf_counter() - start


# --- the real corpus -------------------------------------------------------------------------------------


def test_every_mime_corpus_file_parses_or_raises_parse_error(tmp_path: Path) -> None:
    corpus = require_corpus()
    files = sorted(p for p in (corpus / "mime").rglob("*") if p.is_file())
    assert len(files) > 250
    mail_errors: dict[str, str] = {}
    parsed_mail = 0
    slowest = (0.0, "")
    for path in files:
        name = path.relative_to(corpus).as_posix()
        _, reason, seconds = outcome(path.read_bytes())  # anything but ParseError fails the test
        slowest = max(slowest, (seconds, name))
        if reason is not None:
            assert reason.strip(), f"{name}: ParseError without a reason"
        if path.suffix in BINARY_SUFFIXES:
            assert reason is not None, f"{name} is binary, not mail, yet it parsed"
        elif is_mail(path):
            if reason is None:
                parsed_mail += 1
            else:
                mail_errors[name] = reason
    print(f"\n{parsed_mail} mail files parsed; ParseError on {len(mail_errors)}:")
    for name, reason in mail_errors.items():
        print(f"  {name}: {reason}")
    print(f"slowest: {slowest[1]} in {slowest[0]:.3f}s")
    assert parsed_mail >= 120
    assert set(mail_errors) == set(EXPECTED_PARSE_ERRORS)
    for name, word in EXPECTED_PARSE_ERRORS.items():
        assert word in mail_errors[name]
    assert slowest[0] < 3.0


def test_every_mbox_message_parses_or_raises_parse_error(tmp_path: Path) -> None:
    corpus = require_corpus()
    boxes = sorted(p for p in (corpus / "mime").rglob("*") if p.name.endswith((".mbox", ".mbox.txt")))
    assert len(boxes) == 12
    count, errors = 0, []
    for path in boxes:
        for index, raw in enumerate(mbox_messages(path, tmp_path)):
            count += 1
            _, reason, _ = outcome(raw)
            if reason is not None:
                assert reason.strip()
                errors.append(f"{path.name}#{index}: {reason}")
    print(f"\n{count} mbox messages; ParseError on {len(errors)}: {errors}")
    assert count >= 50
    # unmunged.mbox.txt has a body line "From Russia with love" that mbox readers split on
    # (the file's point): the fragment after it has no header.
    assert len(errors) <= 2
    assert all(e.startswith("unmunged.mbox.txt#") for e in errors)


@pytest.mark.parametrize("relative", TORTURE)
def test_torture_messages_finish_quickly(relative: str) -> None:
    raw = (require_corpus() / relative).read_bytes()
    start = time.perf_counter()
    parsed = parse_message(raw)
    assert time.perf_counter() - start < 1.0
    assert parsed.message_id
    assert parsed.sender is not None


def test_long_encoded_subject_is_decoded() -> None:
    parsed = parse_message((require_corpus() / TORTURE[0]).read_bytes())
    assert parsed.subject.startswith("Die heiße Zypernsonne quälte Max und Victoria ja böse auf dem Weg")
    assert len(parsed.subject) > 100_000
    assert parsed.date == datetime(2013, 5, 7, 23, 11, 57, tzinfo=UTC)


def test_endless_nesting_reads_only_the_outer_message() -> None:
    parsed = parse_message((require_corpus() / TORTURE[1]).read_bytes())
    assert parsed.text == "Hello\n"
    assert parsed.attachments == ("thanks.eml",)
    assert parsed.participants[1].name == "Александр Клижентас☯"


def test_group_syntax_bomb_keeps_the_plain_address() -> None:
    parsed = parse_message((require_corpus() / TORTURE[3]).read_bytes())
    assert [p.email for p in parsed.participants if p.role == "to"] == ["test@test.com"]
    assert any("too convoluted" in d for d in parsed.defects)


def corpus_message(relative: str) -> ParsedMessage:
    return parse_message((require_corpus() / relative).read_bytes())


def test_real_8bit_and_encoded_headers() -> None:
    encoded = corpus_message(f"{FLANKER}/encoded-header.eml")
    assert encoded.sender is not None
    assert (encoded.sender.email, encoded.sender.name) == ("foo.bar@example.com", "Foo, Bar")
    latin1 = corpus_message(f"{FLANKER}/from-encoding.eml")  # raw ISO-8859-1 byte in From
    assert latin1.sender is not None and latin1.sender.name == "Ingo Lütkebohle"
    roles = {(p.role, p.email) for p in latin1.participants}
    assert roles == {
        ("from", "ingo@blank.pages.de"),
        ("sender", "new-httpd-owner@apache.org"),
        ("reply_to", "new-httpd@apache.org"),
        ("to", "new-httpd@apache.org"),
    }
    assert latin1.headers.precedence == "bulk"
    assert latin1.date == datetime(1997, 7, 12, 20, 11, 13, tzinfo=UTC)
    assert latin1.thread_key == "Pine.BSF.3.95q.970712135859.28530B-100000@valis.worldgate.com"
    cut_utf8 = corpus_message(f"{FLANKER}/russian-attachment-yahoo.eml")  # raw UTF-8 cut mid-character
    assert cut_utf8.attachments[0].startswith("Картинка с очень, очень длинным")
    japanese = corpus_message(f"{MIMEKIT}/messages/japanese.txt")
    assert japanese.subject == "日本語メールテスト (testing Japanese emails)"
    assert "日本語が\n正常に" in japanese.text
    chinese = corpus_message("mime/spamscope_mail_parser/tests/mails/mail_test_12")
    assert chinese.subject == "代开各地增值税发票"
    assert chinese.sender is not None and chinese.sender.name == "张先生"


def test_broken_boundaries_are_recovered() -> None:
    # Declared boundary "--=_HsWzsKVZkho", used boundary "----=_GlSzQZUbRbpVOpy".
    spam = corpus_message("mime/spamscope_mail_parser/tests/mails/mail_malformed_3")
    assert spam.html and "Problemas para visualizar" in spam.text
    # boundary="<<001-3e1dcd5a-119e>>", which compat32 unquotes twice into a wrong one.
    ancient = corpus_message("mime/ponymail_edge_cases/corpus/tomcat-ancient-boundary.mbox")
    assert ancient.text.startswith("Lajos...\n\n...this should definitely help")
    assert any("re-split" in d for d in ancient.defects)
    empty_alternative = corpus_message(f"{MIMEKIT}/messages/empty-multipart.txt")
    assert empty_alternative.text.startswith("This part should be on the same level")
    bounce = corpus_message(f"{MIMEKIT}/messages/delivery-status.txt")  # the error is in the preamble
    assert "err.nosuchuser: newsletter-request@imusic.com" in bounce.text
    assert bounce.headers.content_type == "multipart/report"


def test_not_mail_files_get_a_clear_reason() -> None:
    corpus = require_corpus()
    with pytest.raises(ParseError, match=r"Outlook \.msg"):
        parse_message((corpus / "mime/spamscope_mail_parser/tests/mails/mail_outlook_1").read_bytes())
    with pytest.raises(ParseError, match="TNEF"):
        parse_message((corpus / MIMEKIT / "tnef/winmail.tnef").read_bytes())
    with pytest.raises(ParseError, match="binary"):
        parse_message((corpus / FLANKER / "attachments/mailgun.png").read_bytes())
    with pytest.raises(ParseError, match="no header fields found: the first line is 'MIT License'"):
        parse_message((corpus / "mime/mimekit/LICENSE.upstream").read_bytes())


def summary_blocks(path: Path) -> list[dict[str, str]]:
    """MimeKit's *-summary.txt: per message its top-level headers, then the indented MIME tree."""
    blocks = re.split(r"(?m)^From .*\n", path.read_text(encoding="utf-8"))[1:]
    return [dict(re.findall(r"(?m)^(From|Subject|Date|Content-Type): (.*)$", block)) for block in blocks]


@pytest.mark.parametrize("name", ["content-length", "issue1189"])
def test_mbox_matches_mimekit_summary(name: str, tmp_path: Path) -> None:
    base = require_corpus() / MIMEKIT / "mbox"
    expected = summary_blocks(base / f"{name}-summary.txt")
    messages = [parse_message(raw) for raw in mbox_messages(base / f"{name}.mbox.txt", tmp_path)]
    assert len(messages) == len(expected)
    for parsed, summary in zip(messages, expected, strict=True):
        assert parsed.subject == " ".join(decode_words(summary["Subject"]).split())
        assert parsed.headers.content_type == summary["Content-Type"].lower()
        assert parsed.sender is not None
        assert parsed.sender.email.partition("@")[0] in summary["From"].lower()
        assert parsed.date is not None and parsed.date.tzinfo is UTC


def ponymail_expectations(path: Path) -> dict[str, list[tuple[str, str]]]:
    """Ponymail's parsing-*.yaml (no YAML library needed for its fixed layout)."""
    found: dict[str, list[tuple[str, str]]] = {}
    for mbox, entries in re.findall(r"(?m)^  corpus/(\S+):\n((?:  - .*\n(?:    .*\n)*)*)", path.read_text()):
        found[mbox] = re.findall(r"message-id: '?(.*?)'?\n\s+body_sha3_256: (\S+)", entries)
    return found


def test_ponymail_message_ids_and_plain_bodies(tmp_path: Path) -> None:
    base = require_corpus() / "mime/ponymail_edge_cases"
    checked = 0
    for yaml in sorted((base / "yaml").glob("*.yaml")):
        html2text = "parse_html: true" in yaml.read_text()
        for mbox, expected in ponymail_expectations(yaml).items():
            messages = [parse_message(raw) for raw in mbox_messages(base / "corpus" / mbox, tmp_path)]
            assert len(messages) == len(expected)
            for parsed, (message_id, body_sha3) in zip(messages, expected, strict=True):
                checked += 1
                if message_id:
                    assert parsed.message_id == message_id.strip("<>") and not parsed.synthetic_id
                else:  # no_date.mbox has no Message-ID either
                    assert parsed.synthetic_id and parsed.message_id.endswith("@synthetic")
                if not html2text and body_sha3 != "null":  # their HTML conversion is not ours
                    assert hashlib.sha3_256(parsed.text.encode()).hexdigest() == body_sha3, mbox
    assert checked == 10


def enron_files() -> list[Path]:
    return sorted((require_corpus() / ENRON).glob("*/*.txt"))


def test_all_enron_messages_parse() -> None:
    files = enron_files()
    assert len(files) == 1702
    errors = []
    for path in files:
        parsed, reason, _ = outcome(path.read_bytes())
        if parsed is None:
            errors.append(f"{path.name}: {reason}")
            continue
        assert 0 < len(parsed.message_id) <= MAX_ID_CHARS and not parsed.synthetic_id
        assert parsed.date is not None and parsed.date.utcoffset() is not None
        assert parsed.sender is not None and "@" in parsed.sender.email
        assert "\r" not in parsed.text and parsed.thread_key
    print(f"\nEnron: ParseError on {len(errors)}: {errors}")
    assert len(errors) <= 3


def enron(relative: str) -> ParsedMessage:
    return parse_message((require_corpus() / ENRON / relative).read_bytes())


def emails(parsed: ParsedMessage, role: str) -> list[str]:
    return [p.email for p in parsed.participants if p.role == role]


def test_enron_forwarded_memo() -> None:
    parsed = enron("1/10425.txt")
    assert parsed.message_id == "197504.1075840201539.JavaMail.evans@thyme"
    assert parsed.sender is not None and parsed.sender.email == "steven.kean@enron.com"
    assert emails(parsed, "to") == [
        "mark.schroeder@enron.com",
        "kenneth.lay@enron.com",
        "joseph.sutton@enron.com",
        "jeff.skilling@enron.com",
        "mark.frevert@enron.com",
        "john.sherriff@enron.com",
    ]
    assert parsed.subject == "Translation of articles"
    assert parsed.date == datetime(1999, 10, 18, 8, 47, tzinfo=UTC)  # 01:47 -0700 (PDT)
    assert "Forwarded by Steven J Kean/HOU/EES on 10/18/99" in parsed.text
    assert parsed.thread_key == parsed.message_id and parsed.in_reply_to is None


def test_enron_cc_and_bcc() -> None:
    parsed = enron("1/106296.txt")
    assert parsed.subject == "TW Gas Sales: PRIVILEGED AND CONFIDENTIAL ATTORNEY CLIENT PRIVILEGE"
    assert emails(parsed, "to") == ["darrell.schoolcraft@enron.com"]
    copied = ["danny.mccarty@enron.com", "steven.harris@enron.com", "kevin.hyatt@enron.com"]
    assert emails(parsed, "cc") == copied
    assert emails(parsed, "bcc") == copied
    assert parsed.date == datetime(2001, 3, 5, 16, 23, tzinfo=UTC)
    assert parsed.text.startswith("In anticipation of potential litigation involving TW's operational \n")


def test_enron_reply_with_folded_cc() -> None:
    parsed = enron("1/114715.txt")
    assert parsed.message_id == "26804150.1075842955435.JavaMail.evans@thyme"
    assert parsed.subject == "Re: FW: Possible co-sponsorships"
    assert parsed.sender is not None and parsed.sender.email == "jeff.dasovich@enron.com"
    assert emails(parsed, "cc")[-1] == "jeff.dasovich@enron.com"  # also the sender: other role, kept
    assert len(emails(parsed, "cc")) == 6
    assert parsed.date == datetime(2000, 8, 29, 16, 11, tzinfo=UTC)
    assert "I agree with Lee's observations" in parsed.text


# --- small messages written here --------------------------------------------------------------------------


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


# --- html_to_text ----------------------------------------------------------------------------------------


def test_html_to_text_structure() -> None:
    html = (
        "<html><head><title>Newsletter</title><script>var a = '<p>no</p>';</script></head><body>"
        "<h1>Offer</h1><p>Dear&nbsp;customer &amp; friend,<br>line two</p>"
        "<ul><li>one</li><li>two <a href='https://x.example'>link text</a></li></ul>"
        "<table><tr><td>a</td><td>b</td></tr><tr><td>c</td></tr></table>"
        "<div>x</div><div><br></div><div>y</div><pre>  keep\n    indent</pre>"
        "<!--[if mso]>hidden<![endif]--><![if !supportLists]>-<![endif]> z<![bogus]>"
        "</body></html>"
    )
    assert html_to_text(html) == (
        "Offer\n\nDear customer & friend,\nline two\n\n- one\n- two link text\n\n"
        "a b\nc\n\nx\n\ny\n\n  keep\n    indent\n\n- z"
    )


def test_html_to_text_survives_broken_documents() -> None:
    assert html_to_text("<head><meta charset=utf-8><body>never closed head") == "never closed head"
    assert html_to_text("before <!-- never closed comment <p>after") == "before"
    assert html_to_text("a < b and c > d") == "a < b and c > d"
    assert html_to_text("x <b") == "x <b"
    assert html_to_text("") == ""


@pytest.mark.parametrize("unit", ["<!--", "</", "<!", "<?", "<![", "<a x='", "<", "<b>", "&", "<p>a</p>"])
def test_html_to_text_is_linear(unit: str) -> None:
    small, big = unit * (50_000 // len(unit)), unit * (400_000 // len(unit))
    start = time.perf_counter()
    html_to_text(small)
    middle = time.perf_counter()
    html_to_text(big)
    end = time.perf_counter()
    # 8x the input: linear is ~8x the time, quadratic ~64x; the floor absorbs timer noise.
    assert end - middle < 20 * max(middle - start, 0.01), unit
