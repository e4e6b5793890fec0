"""parse_message on real mail from the shared corpus: torture files, MimeKit, flanker, Ponymail and Enron."""

from __future__ import annotations

import hashlib
import mailbox
import re
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from connectors.message import ParsedMessage
from connectors.mime_decode import MAX_ID_CHARS, decode_words
from connectors.mime_parse import ParseError, parse_message
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
