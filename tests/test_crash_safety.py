"""A sync killed mid-way (SIGKILL of a real process) and run again loses and duplicates nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from store.db import make_engine, session_factory
from store.models import Activity, ActivitySource, SkipLogEntry
from tests.corpus import require_corpus

ENRON = "emails/enron_berkeley_annotated/enron_with_categories"


def _config(tmp_path: Path, url: str, enron: Path) -> Path:
    path = tmp_path / "syncd.toml"
    path.write_text(
        f"""
[store]
url = "{url}"
[organization]
domains = ["enron.com"]
[policy]
log_internal = true
unknown_participants = "log"
[[accounts]]
name = "enron"
provider = "eml"
owner = "jeff.skilling@enron.com"
path = "{enron}"
pattern = "[0-9]*.txt"  # the messages, not the label legend categories.txt
batch_size = 20
"""
    )
    return path


def _seen(url: str) -> tuple[int, int, int]:
    factory = session_factory(make_engine(url))
    with factory() as s:
        return (
            s.scalar(select(func.count()).select_from(Activity)) or 0,
            s.scalar(select(func.count()).select_from(ActivitySource)) or 0,
            s.scalar(select(func.count()).select_from(SkipLogEntry)) or 0,
        )


def _sync(config: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "syncd.cli", "--config", str(config), "sync", "--once"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


@pytest.mark.slow
def test_kill_mid_sync_then_resume(tmp_path: Path, db_url: str) -> None:
    enron = require_corpus() / ENRON
    files = sorted(p.relative_to(enron).as_posix() for p in enron.glob("*/[0-9]*.txt"))
    config = _config(tmp_path, db_url, enron)

    proc = _sync(config)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        _, sources, skips = _seen(db_url)
        if sources + skips >= 300:
            break
        assert proc.poll() is None, proc.communicate()[1].decode()[-2000:]
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    _, sources, skips = _seen(db_url)
    assert 300 <= sources + skips < len(files), "the kill must land mid-way through the sync"

    resumed = _sync(config)
    _, err = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, err.decode()[-2000:]

    factory = session_factory(make_engine(db_url))
    with factory() as s:
        logged = list(s.scalars(select(ActivitySource.provider_id)))
        skipped = list(s.scalars(select(SkipLogEntry.provider_id)))
        activities = s.scalar(select(func.count()).select_from(Activity))
        keys = s.scalar(select(func.count(func.distinct(Activity.key))))
    # No loss: every file is either logged or in the skip log; no duplicate: exactly once.
    assert sorted(logged + skipped) == files
    assert activities == keys
    # Several Enron files are copies of one message (the same Message-ID in two folders):
    # they are one activity with several sources.
    assert activities <= len(logged)

    again = _sync(config)
    again.communicate(timeout=600)
    assert _seen(db_url) == (activities, len(logged), len(skipped))
