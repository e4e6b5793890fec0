"""The IMAP source's pure parts, without a server: UID sets, folder choice, FETCH parsing,
Gmail attributes, cursors, error mapping, backoff."""

from __future__ import annotations

import imaplib
from datetime import date
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from imapclient.exceptions import LoginError
from imapclient.response_parser import parse_fetch_response

from connectors.base import AuthError, SourceError, TransientError
from connectors.imap import ImapSource, parse_since
from connectors.imap_cursor import FolderState
from connectors.imap_fetch import parse_fetch
from connectors.imap_folders import choose_folders
from connectors.imap_idle import backoff_delay
from connectors.imap_session import ImapSettings, imap_date, is_loopback, mapped_errors
from connectors.imap_sync import FolderSync, ImapStats, header_message_id, plan_fetches
from connectors.imap_uids import UidSet
from connectors.mime_parse import parse_message

uid_sets = st.sets(st.integers(min_value=1, max_value=60), max_size=40)


@given(uid_sets, uid_sets, st.integers(min_value=0, max_value=70))
def test_uid_set_algebra_matches_python_sets(a: set[int], b: set[int], limit: int) -> None:
    x, y = UidSet.of(a), UidSet.of(b)
    assert set(x) == a and len(x) == len(a) and UidSet.parse(str(x)) == x
    assert set(x | y) == a | b and set(x - y) == a - b and set(x & y) == a & b
    assert set(x.below(limit)) == {u for u in a if u < limit}
    assert list(x.descending()) == sorted(a, reverse=True)
    assert all(u in x for u in a) and not any(u in x for u in b - a)


def test_uid_set_text_form() -> None:
    assert str(UidSet.of([1, 2, 3, 5, 7, 8])) == "1:3,5,7:8"
    assert UidSet.parse("9:7,1") == UidSet.of([1, 7, 8, 9])  # RFC 9051 §9: "9:7" is "7:9"
    with pytest.raises(ValueError):
        UidSet.parse("1:*")


GMAIL = [
    (("\\HasNoChildren",), "INBOX"),
    (("\\Noselect", "\\HasChildren"), "[Gmail]"),
    (("\\All", "\\HasNoChildren"), "[Gmail]/All Mail"),
    (("\\Drafts",), "[Gmail]/Drafts"),
    (("\\Important",), "[Gmail]/Important"),
    (("\\Sent",), "[Gmail]/Sent Mail"),
    (("\\Junk",), "[Gmail]/Spam"),
    (("\\Flagged",), "[Gmail]/Starred"),
    (("\\Trash",), "[Gmail]/Trash"),
    ((), "Clients"),
]


def test_gmail_syncs_all_mail_only_and_falls_back_without_it() -> None:
    assert choose_folders(GMAIL, gmail=True) == ["[Gmail]/All Mail"]
    hidden = [f for f in GMAIL if "\\All" not in f[0]]
    assert choose_folders(hidden, gmail=True) == ["INBOX", "[Gmail]/Sent Mail", "Clients"]
    assert choose_folders(GMAIL, gmail=True, include=["[Gmail]/Sent Mail", "inbox"]) == [
        "INBOX",
        "[Gmail]/Sent Mail",
    ]


def test_folder_names_decide_without_special_use() -> None:
    listing = [
        ((), "INBOX"),
        ((), "INBOX.Sent"),
        ((), "INBOX.Trash"),
        ((), "INBOX.Trash.Old"),
        ((), "Spam"),
        ((), "Deleted Items"),
        ((), "Drafts"),
        ((), "Projects"),
        (("\\Noselect",), "Shared"),
    ]
    assert choose_folders(listing, delimiter=".") == ["INBOX", "INBOX.Sent", "Projects"]
    assert choose_folders(listing, delimiter=".", exclude=["projects"]) == ["INBOX", "INBOX.Sent"]


def test_fast_fetch_parser_agrees_with_imapclient_or_declines() -> None:
    header = b"Message-ID: <a@b>\r\n\r\n"
    data: list[Any] = [
        (b"1 (UID 7 FLAGS (\\Seen $L1) RFC822.SIZE 1234 BODY[HEADER.FIELDS (MESSAGE-ID)] {21}", header),
        b")",
        b"3 (FLAGS (\\Seen) UID 9 MODSEQ (12))",
        b"4 (UID 10 BODY[] NIL)",
        (b"6 (UID 12 BODY[] {3}", b"abc"),
        b" FLAGS (\\Answered))",
    ]
    assert parse_fetch(data) == dict(parse_fetch_response(data, True, True))
    assert parse_fetch([b'1 (UID 3 X-GM-LABELS ("\\\\Inbox" Work))']) is None  # imapclient's job
    assert parse_fetch([b"2 (FLAGS (\\Seen))"]) is None  # unsolicited, keyed by sequence number
    assert parse_fetch([(b"1 (UID 5 BODY[] {10}", b"cut")]) is None  # a short literal


class _GmailSession:
    gmail = True


def test_gmail_attributes_become_thread_and_labels() -> None:
    sync = FolderSync(_GmailSession(), "[Gmail]/All Mail", None, ImapStats(), None, 10, 1000, 0)  # type: ignore[arg-type]
    sync.uidvalidity = 11
    meta = {b"FLAGS": (b"\\Seen",), b"X-GM-THRID": 1678, b"X-GM-LABELS": (b"\\Inbox", b"Kunden &AOQ-")}
    item = sync._item(5, meta, b"data")
    assert (item.provider_id, item.thread_id, item.flags) == ("11:5", "1678", ("\\Seen",))
    assert item.labels == ("\\Inbox", "Kunden ä")


@pytest.mark.parametrize(
    "raw",
    [
        b"Message-ID: <abc@example.com>\r\n\r\n",
        b"Message-ID:\r\n <abc@exa\r\n mple.com>\r\n\r\n",
        b"message-id: <" + b"x" * 1000 + b"@long>\r\n\r\n",
    ],
)
def test_header_message_id_is_the_parsers_id(raw: bytes) -> None:
    assert header_message_id(raw) == parse_message(raw).message_id


def test_header_without_message_id_is_fetched_not_guessed() -> None:
    assert header_message_id(b"\r\n") is None


def test_plan_fetches_bounds_count_and_bytes() -> None:
    sizes = {1: 400, 2: 400, 3: 5000, 4: 100, 5: 100, 6: 100}
    assert plan_fetches([1, 2, 3, 4, 5, 6], sizes, 2, 1000) == [[1, 2], [3], [4, 5], [6]]


def test_cursor_round_trip_and_bad_cursors() -> None:
    state = FolderState(7, 903, 1456, UidSet.parse("1:500,502:902"), (903, 401), "2025-03-01", 1767000000)
    assert FolderState.load(state.dump()) == state
    assert FolderState.load("not json") is None
    assert FolderState.load('{"v": 99}') is None
    assert FolderState.load('{"v": 1, "uidvalidity": "x"}') is None


def _raise(exc: BaseException) -> None:
    with mapped_errors(ImapSettings("mail.example.com", 993, "tls", "ana"), "logging in"):
        raise exc


def test_errors_map_to_states() -> None:
    with pytest.raises(AuthError, match=r"refused the login: \[AUTHENTICATIONFAILED\] Authentication failed"):
        _raise(LoginError("b'[AUTHENTICATIONFAILED] Authentication failed.'"))
    with pytest.raises(TransientError, match="UNAVAILABLE"):
        _raise(LoginError("[UNAVAILABLE] Temporary authentication failure"))
    with pytest.raises(TransientError, match="connection lost"):
        _raise(imaplib.IMAP4.abort("socket error: EOF"))
    with pytest.raises(TransientError, match="cannot reach"):
        _raise(ConnectionRefusedError(111, "Connection refused"))
    with pytest.raises(TransientError, match="timed out"):
        _raise(TimeoutError())
    with pytest.raises(SourceError, match="NONEXISTENT"):
        _raise(imaplib.IMAP4.error("select failed: [NONEXISTENT] Mailbox doesn't exist"))


def test_backoff_is_exponential_with_full_jitter() -> None:
    assert [backoff_delay(n, 1.0, 60.0, rand=lambda: 1.0) for n in (1, 2, 3, 7, 8)] == [1, 2, 4, 60, 60]
    assert backoff_delay(5, rand=lambda: 0.0) == 0.0
    assert all(0 <= backoff_delay(4) <= 8 for _ in range(100))


def test_since_and_dates() -> None:
    assert parse_since("30d", today=date(2026, 3, 31)) == date(2026, 3, 1)
    assert parse_since("2024-01-01") == date(2024, 1, 1)
    assert parse_since(None) is None
    assert imap_date(date(2024, 2, 1)) == "1-Feb-2024"


def test_loopback_and_no_secret_in_repr() -> None:
    assert is_loopback("127.0.0.2") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("192.0.2.1") and not is_loopback("no-such-host.invalid")
    source = ImapSource(host="localhost", username="ana", tls="none", token_provider=lambda: "tok-123")
    assert "tok-123" not in repr(source) and "tok-123" not in repr(source.settings)
    with pytest.raises(ValueError, match="tls must be one of"):
        ImapSource(host="localhost", username="ana", tls="ssl", password_env="X")
