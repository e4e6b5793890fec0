"""``syncd sync --watch`` as a user runs it: a real process, a real Dovecot, push within 2 s."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import func, select

from store.db import make_engine, session_factory
from store.models import Activity
from tests.imap_fixtures import ImapAccount, mail


def _activities(url: str) -> int:
    with session_factory(make_engine(url))() as s:
        return s.scalar(select(func.count()).select_from(Activity)) or 0


def test_watch_logs_pushed_mail_within_two_seconds_and_stops_on_sigterm(
    imap_account: ImapAccount, tmp_path: Path
) -> None:
    account = imap_account
    account.server.append(account.user, "INBOX", mail(0))
    cfg = tmp_path / "syncd.toml"
    options = account.options()
    cfg.write_text(
        f'[store]\nurl = "{account.store_url}"\n[organization]\ndomains = ["lumenfold.io"]\n'
        '[policy]\nunknown_participants = "log"\n'
        f'[[accounts]]\nname = "imap"\nprovider = "imap"\nowner = "rep@lumenfold.io"\n'
        + "".join(
            f'{k} = "{v}"\n' if isinstance(v, str | Path) else f"{k} = {v}\n" for k, v in options.items()
        )
    )
    env = {**os.environ}
    proc = subprocess.Popen(
        [sys.executable, "-m", "syncd.cli", "--config", str(cfg), "sync", "--watch", "--interval", "600"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    try:
        deadline = time.monotonic() + 20
        while _activities(account.store_url) < 1:  # the first poll
            assert proc.poll() is None, proc.communicate()[1].decode()[-2000:]
            assert time.monotonic() < deadline, "the first poll did not log the message"
            time.sleep(0.05)
        time.sleep(1.0)  # let the IDLE watcher settle in
        start = time.monotonic()
        account.server.append(account.user, "INBOX", mail(1))
        while _activities(account.store_url) < 2 and time.monotonic() - start < 5:
            time.sleep(0.02)
        latency = time.monotonic() - start
        assert latency < 2.0, f"pushed mail took {latency:.2f} s"
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=15)
    assert proc.returncode == 0, err.decode()[-2000:]
    assert b"1 logged" in out


def test_failing_accounts_back_off_and_refused_credentials_stop(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from syncd.pipeline import AccountReport
    from syncd.watch import _Health

    monkeypatch.setattr(
        "syncd.watch.backoff_delay", lambda attempt, base, cap: min(cap, base * 2 ** (attempt - 1))
    )
    health = _Health(interval=60)
    down = AccountReport("a", error="TransientError: connection refused", state="failing")
    health.record("a", down, now=0)
    assert health.skip("a", 29) and not health.skip("a", 31)
    health.record("a", down, now=31)
    assert health.skip("a", 31 + 59) and not health.skip("a", 31 + 61)  # twice as long
    health.record("a", AccountReport("a"), now=100)
    assert not health.skip("a", 100)
    health.record("b", AccountReport("b", error="AUTHENTICATIONFAILED", state="needs_reauth"), now=0)
    assert health.skip("b", 10**9)
