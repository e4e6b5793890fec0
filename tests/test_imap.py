"""The IMAP source against a real Dovecot, through the real pipeline into the store.

Each test gets a fresh Dovecot user (see ``tests/imap_fixtures.py``). Where a test needs
to see batches and cursors rather than the store, :class:`FakeStore` plays the pipeline's
``known`` filter and commit the way ``tests/test_local_sources.py`` does.
"""

from __future__ import annotations

import io
import logging
import select
import socket
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select as sql_select

from connectors.base import AuthError, SourceError, TransientError
from connectors.imap import ImapSource
from connectors.imap_cursor import FolderState
from connectors.imap_idle import ImapIdleWatcher
from connectors.imap_session import ImapSession
from connectors.imap_sync import header_message_id
from connectors.imap_uids import UidSet
from store.db import make_engine, session_factory
from store.models import MailAccount, SkipLogEntry
from tests.corpus import require_corpus
from tests.dovecot import PASSWORD, free_port
from tests.imap_fixtures import PASSWORD_ENV, FakeStore, ImapAccount, counts, mail, sources

ENRON = "emails/enron_berkeley_annotated/enron_with_categories"
# A plainer server: no CONDSTORE/QRESYNC (RFC 7162), no ESEARCH (RFC 4731).
NO_QRESYNC = frozenset({"QRESYNC", "CONDSTORE", "ESEARCH"})


def test_first_sync_newest_first_then_nothing_to_do(imap_account_any_db: ImapAccount) -> None:
    account = imap_account_any_db
    corpus = require_corpus() / ENRON
    messages = [p.read_bytes() for p in sorted(corpus.glob("*/[0-9]*.txt"))[:120]]
    account.server.seed(account.user, "INBOX", messages)
    report, source = account.sync(batch_size=25)
    assert report.error is None
    distinct = {header_message_id(m) for m in messages}
    c = counts(account)
    assert c["activities"] + c["skipped"] == len(distinct)
    assert c["live"] + c["skipped"] == len(messages)
    # A copy of an already stored message (same Message-ID) is relocated, not downloaded.
    assert source.stats.bodies + source.stats.relocated == len(messages)

    store = FakeStore()
    store.drain(account.source(batch_size=25))
    uids = [int(item.provider_id.split(":")[1]) for b in store.batches for item in b.items]
    assert uids == sorted(uids, reverse=True) and len(uids) == len(messages)  # newest first

    again, source = account.sync(batch_size=25)
    assert again.total("logged") == 0 and again.total("merged") == 0
    assert (source.stats.bodies, source.stats.meta_fetches, source.stats.searches) == (0, 0, 0)
    assert counts(account) == c


def test_new_mail_and_flag_changes(imap_account: ImapAccount) -> None:
    account = imap_account
    account.server.seed(account.user, "INBOX", [{"msg": mail(i), "flags": ["\\Seen"]} for i in range(5)])
    store = FakeStore()
    store.drain(account.source())
    assert all("\\Seen" in item.flags for b in store.batches for item in b.items)
    account.sync()

    account.server.seed(account.user, "INBOX", [mail(5), mail(6)])
    report, source = account.sync()
    assert report.total("logged") == 2 and source.stats.bodies == 2

    account.server.set_flags(account.user, "INBOX", account.server.uids(account.user, "INBOX"), ["\\Flagged"])
    report, source = account.sync()
    assert report.total("logged") == 0 and source.stats.bodies == 0
    assert counts(account) == {"activities": 7, "live": 7, "deleted": 0, "skipped": 0}


@pytest.mark.parametrize("ignore", [frozenset(), NO_QRESYNC], ids=["qresync", "full-uid-compare"])
def test_expunge_marks_the_source_deleted_and_keeps_the_activity(
    imap_account: ImapAccount, ignore: frozenset[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ImapSource, "ignore_capabilities", ignore)
    account = imap_account
    account.server.seed(account.user, "INBOX", [mail(i) for i in range(6)])
    account.sync()
    uids = account.server.uids(account.user, "INBOX")
    account.server.expunge(account.user, "INBOX", uids[1:3])
    report, source = account.sync()
    assert report.total("deleted") == 2 and source.stats.bodies == 0
    assert counts(account) == {"activities": 6, "live": 4, "deleted": 2, "skipped": 0}


@pytest.mark.parametrize("ignore", [frozenset(), NO_QRESYNC], ids=["qresync", "full-uid-compare"])
def test_move_keeps_the_activity_without_downloading_again(
    imap_account: ImapAccount, ignore: frozenset[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ImapSource, "ignore_capabilities", ignore)
    account = imap_account
    account.server.seed(account.user, "INBOX", [mail(i) for i in range(4)])
    account.sync()
    moved = account.server.uids(account.user, "INBOX")[0]
    account.server.move(account.user, "INBOX", [moved], "Archive")
    report, source = account.sync()
    assert report.error is None and source.stats.bodies == 0 and source.stats.relocated == 1
    assert report.total("merged") == 1 and report.total("deleted") == 1
    rows = sources(account)
    archive = [r for r in rows if r[0] == "Archive"]
    assert len(archive) == 1 and archive[0][2] is False
    gone = [pid for folder, pid, deleted in rows if folder == "INBOX" and deleted]
    assert len(gone) == 1 and gone[0].endswith(f":{moved}")
    assert counts(account)["activities"] == 4


def test_full_uid_comparison_runs_on_schedule_without_qresync(
    imap_account: ImapAccount, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ImapSource, "ignore_capabilities", NO_QRESYNC)
    account = imap_account
    recent = datetime.now(UTC) - timedelta(days=1)
    old = [{"msg": mail(i), "date": datetime(2015, 1, 1, tzinfo=UTC)} for i in range(2)]
    account.server.seed(account.user, "INBOX", old + [{"msg": mail(i), "date": recent} for i in range(2, 5)])
    store = FakeStore()
    store.drain(account.source(since="30d"))
    # EXISTS (4) still exceeds what we hold (3 -> 2 present): only a UID comparison can tell.
    account.server.expunge(account.user, "INBOX", account.server.uids(account.user, "INBOX")[-1:])
    source = account.source(since="30d", full_check_every=3600)
    store.drain(source)
    assert source.stats.full_checks == 0 and store.deleted == set()
    source = account.source(since="30d", full_check_every=0)
    store.drain(source)
    assert source.stats.full_checks == 1 and len(store.deleted) == 1 and source.stats.bodies == 0


def test_uidvalidity_reset_remaps_by_message_id(imap_account: ImapAccount) -> None:
    account = imap_account
    messages = [mail(i) for i in range(20)]
    account.server.seed(account.user, "Projects", messages)
    before = account.server.uidvalidity(account.user, "Projects")
    account.sync(folders=["Projects"])
    account.server.delete_folder(account.user, "Projects")
    account.server.seed(account.user, "Projects", messages)
    assert account.server.uidvalidity(account.user, "Projects") != before
    report, source = account.sync(folders=["Projects"])
    assert report.error is None and source.stats.bodies == 0 and source.stats.relocated == 20
    assert report.total("deleted") == 20 and report.total("logged") == 0
    assert counts(account) == {"activities": 20, "live": 20, "deleted": 20, "skipped": 0}
    assert {pid.split(":")[0] for _, pid, deleted in sources(account) if deleted} == {str(before)}


@pytest.mark.parametrize("how", ["doveadm-kick", "cut-mid-response"])
def test_connection_killed_mid_fetch_loses_and_duplicates_nothing(
    imap_account: ImapAccount, how: str
) -> None:
    account = imap_account
    account.server.seed(account.user, "INBOX", [mail(i) for i in range(60)])
    cfg = account.config(batch_size=10)
    source = cfg.accounts[0].make_source()
    calls = 0

    def kill_on_third(_uids: list[int]) -> None:
        nonlocal calls
        calls += 1
        if calls != 3:
            return
        imap = source.session().conn._imap
        if how == "doveadm-kick":  # the server drops us: the FETCH meets a BYE
            account.server.kick(account.user)
            select.select([imap.sock], [], [], 2.0)
            return
        real_read = imap.read

        def read_one_literal_then_lose_the_line(size: int) -> bytes:
            data = real_read(size)  # the first message of the response arrives...
            imap.file = io.BytesIO(b"")  # ...then the connection is gone
            imap.sock.shutdown(socket.SHUT_RDWR)
            return data

        imap.read = read_one_literal_then_lose_the_line

    source.before_body_fetch = kill_on_third
    pipeline = account.pipeline(cfg)
    report = pipeline.sync_account(cfg.accounts[0], source)
    assert report.state == "failing" and "connection lost" in (report.error or "")
    assert counts(account)["activities"] == 20  # the two batches committed before the kill

    source = cfg.accounts[0].make_source()
    report = pipeline.sync_account(cfg.accounts[0], source)
    assert report.error is None and source.stats.bodies == 40  # nothing fetched twice
    assert counts(account) == {"activities": 60, "live": 60, "deleted": 0, "skipped": 0}


def test_crash_mid_backfill_resumes_below_the_last_commit(imap_account: ImapAccount) -> None:
    account = imap_account
    account.server.seed(account.user, "INBOX", [mail(i) for i in range(30)])
    store = FakeStore()
    store.drain(account.source(batch_size=7), stop_after=2)
    state = FolderState.load(store.cursor)
    assert state is not None and state.backfill == (31, 17) and str(state.held) == "17:30"
    account.server.seed(account.user, "INBOX", [mail(30)])  # above the ceiling: new mail
    source = account.source(batch_size=7)
    store.drain(source)
    uids = [int(i.provider_id.split(":")[1]) for b in store.batches for i in b.items]
    assert sorted(uids) == list(range(1, 32)) and source.stats.bodies == 31 - 14
    assert FolderState.load(store.cursor).backfill is None  # type: ignore[union-attr]


def test_since_limits_the_backfill_and_widening_it_goes_further(imap_account: ImapAccount) -> None:
    account = imap_account
    recent = datetime.now(UTC) - timedelta(days=3)
    old = datetime(2015, 6, 1, tzinfo=UTC)
    account.server.seed(
        account.user,
        "INBOX",
        [{"msg": mail(i), "date": old} for i in range(5)]
        + [{"msg": mail(i), "date": recent} for i in range(5, 8)],
    )
    report, source = account.sync(since="365d")
    assert report.total("logged") == 3 and source.stats.bodies == 3
    report, source = account.sync(since="2010-01-01")
    assert report.total("logged") == 5 and source.stats.bodies == 5
    with pytest.raises(ValueError, match="365d"):
        account.source(since="last year")


def test_batches_are_bounded_by_count_and_bytes(imap_account: ImapAccount) -> None:
    account = imap_account
    account.server.seed(account.user, "INBOX", [mail(i, pad=1500) for i in range(20)] + [mail(99, pad=9000)])
    store = FakeStore()
    store.drain(account.source(batch_size=4, batch_bytes=5000))
    sizes = [(len(b.items), sum(len(i.data) for i in b.items)) for b in store.batches if b.items]
    assert sum(n for n, _ in sizes) == 21
    assert all(n <= 4 and (size <= 5000 or n == 1) for n, size in sizes)
    assert (1, max(size for _, size in sizes)) in sizes  # the large one came alone


def test_special_use_discovery_and_folder_lists(imap_account: ImapAccount) -> None:
    account = imap_account
    for folder in ("Clients", "Clients/Acme", "Trash/Old", "Junk/Spam2024"):
        account.server.create_folder(account.user, folder)
    assert account.source().folders() == ["INBOX", "Sent", "Archive", "Clients", "Clients/Acme"]
    assert account.source(folders=["inbox", "Clients/*"]).folders() == ["INBOX", "Clients/Acme"]
    assert account.source(exclude_folders=["clients*"]).folders() == ["INBOX", "Sent", "Archive"]


def test_a_broken_fetch_response_quarantines_one_message(
    imap_account: ImapAccount, monkeypatch: pytest.MonkeyPatch
) -> None:
    account = imap_account
    account.server.seed(account.user, "INBOX", [mail(i) for i in range(5)])
    bad = account.server.uids(account.user, "INBOX")[2]
    real_fetch = ImapSession.fetch

    def fetch(self: ImapSession, uids: object, items: list[str], modifiers: tuple[str, ...] = ()) -> dict:
        if "BODY.PEEK[]" in items and bad in UidSet.parse(str(uids)):
            raise SourceError("the server refused fetching messages: NO [SERVERBUG] broken file")
        return real_fetch(self, uids, items, modifiers)  # type: ignore[arg-type]

    monkeypatch.setattr(ImapSession, "fetch", fetch)
    report, _ = account.sync()
    assert report.error is None and report.total("logged") == 4 and report.total("quarantined") == 1
    with session_factory(make_engine(account.store_url))() as s:
        entry = s.scalar(sql_select(SkipLogEntry))
        assert entry is not None and entry.quarantined and entry.provider_id.endswith(f":{bad}")


def test_idle_push_logs_new_mail_within_two_seconds(imap_account: ImapAccount) -> None:
    account = imap_account
    cfg = account.config()
    pipeline = account.pipeline(cfg)
    pipeline.sync_account(cfg.accounts[0])
    synced: list[float] = []

    def on_change(_folder: str) -> None:
        pipeline.sync_account(cfg.accounts[0])
        synced.append(time.monotonic())

    def deliver_and_wait(i: int) -> float:
        start = time.monotonic()
        account.server.append(account.user, "INBOX", mail(i))
        while counts(account)["activities"] <= i and time.monotonic() - start < 5:
            time.sleep(0.02)
        return time.monotonic() - start

    with ImapIdleWatcher(on_change=on_change, backoff_base=0.05, renew_every=0.4, **account.options()) as w:
        assert w.connected.wait(5)
        assert deliver_and_wait(0) < 2.0
        time.sleep(0.9)
        assert w.renewals >= 1  # IDLE re-issued on schedule, still listening
        account.server.kick(account.user)  # a dropped connection: reconnect with backoff
        deadline = time.monotonic() + 5
        while w.connects < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert w.connects == 2
        assert deliver_and_wait(1) < 2.0
    assert not w._thread.is_alive()  # stopped promptly
    assert counts(account)["activities"] == 2


def test_tls_with_the_test_ca_and_without_it(imap_account: ImapAccount) -> None:
    account = imap_account
    account.server.seed(account.user, "INBOX", [mail(0)])
    tls = {"tls": "tls", "port": account.server.imaps_port}
    report, _ = account.sync(ca_file=str(account.server.ca_file), **tls)
    assert report.error is None and report.total("logged") == 1
    starttls = account.source(tls="starttls", ca_file=account.server.ca_file)
    assert "INBOX" in starttls.folders()
    starttls.close()

    with pytest.raises(SourceError, match=r"certificate is not trusted.*ca_file"):
        account.source(**tls).folders()
    report, _ = account.sync(**tls)
    assert report.state == "failing" and "not trusted" in (report.error or "")


def test_tls_none_is_refused_for_a_remote_host() -> None:
    with pytest.raises(ValueError, match="loopback"):
        ImapSource(host="192.0.2.10", username="u", tls="none", password_env="X")
    with pytest.raises(ValueError, match="exactly one"):
        ImapSource(host="127.0.0.1", username="u", tls="none")


def test_wrong_password_needs_reauth_and_never_shows_the_password(
    imap_account: ImapAccount, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    account = imap_account
    wrong = "Wr0ng-Pa55word-xyz"
    monkeypatch.setenv(PASSWORD_ENV, wrong)
    caplog.set_level(logging.DEBUG)
    source = account.source()
    with pytest.raises(AuthError, match="AUTHENTICATIONFAILED") as raised:
        source.folders()
    report, _ = account.sync()
    assert report.state == "needs_reauth" and "Authentication failed" in (report.error or "")
    with session_factory(make_engine(account.store_url))() as s:
        row = s.scalar(sql_select(MailAccount))
        assert (
            row is not None
            and row.state == "needs_reauth"
            and "AUTHENTICATIONFAILED" in (row.last_error or "")
        )
    for text in (caplog.text, str(raised.value), repr(source), repr(source.settings), report.error or ""):
        assert wrong not in text and PASSWORD not in text


def test_xoauth2_token_and_a_server_that_is_down(imap_account: ImapAccount, tmp_path: Path) -> None:
    account = imap_account
    # Dovecot 2.3 checks an XOAUTH2 token against the passdb like a password.
    source = account.source(password_env=None, token_provider=lambda: PASSWORD)
    assert "INBOX" in source.folders()
    source.close()
    with pytest.raises(AuthError):
        account.source(password_env=None, token_provider=lambda: "expired-token").folders()
    with pytest.raises(TransientError, match="cannot reach"):
        account.source(port=free_port()).folders()
    report, _ = account.sync(port=free_port())
    assert report.state == "failing"


def test_idle_stops_on_a_refused_login(imap_account: ImapAccount, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PASSWORD_ENV, "nope")
    errors: list[Exception] = []
    done = threading.Event()
    watcher = ImapIdleWatcher(
        on_change=lambda _f: None, on_error=lambda e: (errors.append(e), done.set()), **imap_account.options()
    )
    with watcher:
        assert done.wait(5)
    assert isinstance(watcher.error, AuthError) and watcher.connects == 0 and len(errors) == 1
