#!/usr/bin/env python3
"""IMAP ingest benchmark against a local Dovecot, with mbsync as the peer.

Seeds a throwaway Dovecot with the 1,702 Enron messages repeated (fresh Message-IDs) to
``--messages`` (default 20,000) using MULTIAPPEND, then measures in one run:

(a) raw download: a minimal imapclient loop FETCHing ``BODY.PEEK[]`` in batches;
(b) mbsync (Debian's isync) pulling the mailbox into a Maildir;
(c) syncd's first sync into SQLite (fetch, parse, store, match; no insight extraction),
    in a child process so that its peak RSS is its own, sampled as the sync goes;
(d) syncd's no-change incremental sync of a 1,000-message and of the big mailbox.

Prints messages per second and the ratios, and ends with one JSON line of the figures.
Run: ``.venv/bin/python bench/imap_sync.py [--messages N]``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.corpus import CORPUS  # noqa: E402
from tests.dovecot import PASSWORD, DovecotServer  # noqa: E402

ENRON = CORPUS / "emails/enron_berkeley_annotated/enron_with_categories"
MESSAGE_ID = re.compile(rb"^Message-ID:[^\r\n]*\r?\n", re.IGNORECASE | re.MULTILINE)
PASSWORD_ENV = "SYNCD_BENCH_IMAP_PASSWORD"
PARSE_WORKERS: int | None = None  # set from --parse-workers


def enron_messages(count: int) -> Iterator[bytes]:
    """The Enron set repeated to ``count`` messages, each with a Message-ID of its own."""
    files = sorted(ENRON.glob("*/[0-9]*.txt"))
    if not files:
        sys.exit(f"the Enron corpus is missing (expected {ENRON}); see ../shared/corpus/README.md")
    raws = [f.read_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n") for f in files]
    for i in range(count):
        raw = MESSAGE_ID.sub(b"", raws[i % len(raws)], count=1)
        yield f"Message-ID: <bench-{i}@syncd.bench>\r\n".encode() + raw


def raw_download(server: DovecotServer, user: str, batch: int = 500) -> tuple[int, float]:
    start = time.perf_counter()
    with server.session(user) as conn:
        conn.select_folder("INBOX", readonly=True)
        uids = conn.search("ALL")
        count = 0
        for i in range(0, len(uids), batch):
            for data in conn.fetch(uids[i : i + batch], ["BODY.PEEK[]"]).values():
                count += bool(data.get(b"BODY[]"))
    return count, time.perf_counter() - start


def ensure_mbsync() -> str:
    found = shutil.which("mbsync")
    if not found:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], env=env, check=True, capture_output=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", "isync"], env=env, check=True, capture_output=True)
        found = shutil.which("mbsync") or "/usr/bin/mbsync"
    return found


def mbsync(server: DovecotServer, user: str, work: Path) -> tuple[int, float]:
    dest = work / "mbsync-maildir"
    dest.mkdir()
    conf = work / "mbsyncrc"
    conf.write_text(
        f"IMAPAccount bench\nHost {server.host}\nPort {server.imap_port}\nUser {user}\nPass {PASSWORD}\n"
        "SSLType None\nAuthMechs LOGIN\n\n"
        "IMAPStore remote\nAccount bench\n\n"
        f"MaildirStore local\nPath {dest}/\nInbox {dest}/INBOX\n\n"
        "Channel bench\nFar :remote:\nNear :local:\nPatterns INBOX\nCreate Near\nSync Pull\n"
        f"SyncState {work}/mbsync-state/\n"
    )
    (work / "mbsync-state").mkdir()
    start = time.perf_counter()
    subprocess.run([ensure_mbsync(), "-q", "-c", str(conf), "bench"], check=True)
    elapsed = time.perf_counter() - start
    count = sum(1 for _ in (dest / "INBOX" / "cur").iterdir()) + sum(
        1 for _ in (dest / "INBOX" / "new").iterdir()
    )
    return count, elapsed


def _child(args: argparse.Namespace) -> None:
    """Runs one syncd sync in this process and prints its figures as JSON."""
    from store.db import make_engine, session_factory
    from store.migrate import upgrade
    from syncd.config import parse_config
    from syncd.pipeline import Pipeline

    upgrade(make_engine(args.store))
    sync_section = "" if args.parse_workers is None else f"[sync]\nparse_workers = {args.parse_workers}"
    text = f"""
[store]
url = "{args.store}"
[organization]
domains = ["lumenfold.io"]
[policy]
log_internal = true
unknown_participants = "log"
{sync_section}
[[accounts]]
name = "bench"
provider = "imap"
owner = "rep@lumenfold.io"
host = "127.0.0.1"
port = {args.port}
tls = "none"
username = "{args.user}"
password_env = "{PASSWORD_ENV}"
"""
    import tomllib

    config = parse_config(tomllib.loads(text), Path("bench.toml"), text)
    account = config.accounts[0]
    source = account.make_source()
    samples: list[tuple[int, float]] = []
    done = [0]
    original = source.changes

    def counting_changes(folder, cursor, known):  # type: ignore[no-untyped-def]
        for batch in original(folder, cursor, known):
            done[0] += len(batch.items) + len(batch.relocated)
            yield batch
            samples.append((done[0], _rss_mb()))

    source.changes = counting_changes  # type: ignore[method-assign]
    pipeline = Pipeline(config, session_factory(make_engine(args.store)))
    start = time.perf_counter()
    report = pipeline.sync_account(account, source)
    elapsed = time.perf_counter() - start
    for _ in range(args.repeat - 1):  # a daemon's no-op sync runs warm: take the best of a few
        start = time.perf_counter()
        again = pipeline.sync_account(account, account.make_source())
        elapsed = min(elapsed, time.perf_counter() - start)
        assert again.total("logged") == 0, "a repeated sync must find nothing new"
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "seconds": elapsed,
                "logged": report.total("logged") + report.total("merged"),
                "fetched": done[0],
                "error": report.error,
                "peak_rss_mb": round(peak, 1),
                "rss_samples": samples,
            }
        )
    )


def _rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def syncd_sync(server: DovecotServer, user: str, store: Path, repeat: int = 1) -> dict:
    env = {**os.environ, PASSWORD_ENV: PASSWORD}
    out = subprocess.run(
        [
            sys.executable,
            __file__,
            "--child",
            "--store",
            f"sqlite:///{store}",
            "--user",
            user,
            "--port",
            str(server.imap_port),
            "--repeat",
            str(repeat),
            *([] if PARSE_WORKERS is None else ["--parse-workers", str(PARSE_WORKERS)]),
        ],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    result = json.loads(out.strip().splitlines()[-1])
    if result["error"]:
        sys.exit(f"syncd sync failed: {result['error']}")
    return result


def _rss_at(samples: list[list[float]], count: int) -> float:
    """RSS once ``count`` messages were synced (first sample at or past it)."""
    for done, rss in samples:
        if done >= count:
            return rss
    return samples[-1][1] if samples else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--small", type=int, default=1_000)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--store", help=argparse.SUPPRESS)
    parser.add_argument("--user", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--repeat", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--parse-workers", type=int, default=None, help="syncd's [sync] parse_workers")
    args = parser.parse_args()
    if args.child:
        _child(args)
        return
    global PARSE_WORKERS
    PARSE_WORKERS = args.parse_workers

    work = Path(tempfile.mkdtemp(prefix="syncd-bench-imap-"))
    with DovecotServer.start(users=2) as server:
        big, small = server.users
        t = time.perf_counter()
        seeded = server.seed(big, "INBOX", enron_messages(args.messages))
        server.seed(small, "INBOX", enron_messages(args.small))
        print(f"seeded {seeded} + {args.small} messages with MULTIAPPEND in {time.perf_counter() - t:.1f} s")

        n_raw, t_raw = raw_download(server, big)
        print(f"(a) raw FETCH BODY.PEEK[]: {n_raw} messages in {t_raw:.2f} s = {n_raw / t_raw:,.0f} msg/s")
        n_mb, t_mb = mbsync(server, big, work)
        print(f"(b) mbsync to Maildir:     {n_mb} messages in {t_mb:.2f} s = {n_mb / t_mb:,.0f} msg/s")
        first = syncd_sync(server, big, work / "big.db")
        t_c, n_c = first["seconds"], first["logged"]
        print(
            f"(c) syncd first sync:      {n_c} messages in {t_c:.2f} s = {n_c / t_c:,.0f} msg/s, "
            f"peak RSS {first['peak_rss_mb']:.0f} MB"
        )
        noop_big = syncd_sync(server, big, work / "big.db", repeat=5)
        syncd_sync(server, small, work / "small.db")
        noop_small = syncd_sync(server, small, work / "small.db", repeat=5)
        print(
            f"(d) no-change sync: {args.small} msgs {noop_small['seconds']:.3f} s, "
            f"{args.messages} msgs {noop_big['seconds']:.3f} s"
        )

    rss5k = _rss_at(first["rss_samples"], min(5_000, args.messages))
    rss_end = _rss_at(first["rss_samples"], args.messages)
    figures = {
        "bench": "imap_sync",
        "messages": args.messages,
        "raw_msgs_per_s": round(n_raw / t_raw, 1),
        "mbsync_msgs_per_s": round(n_mb / t_mb, 1),
        "syncd_msgs_per_s": round(n_c / t_c, 1),
        "ingest_vs_mbsync": round((n_c / t_c) / (n_mb / t_mb), 3),
        "ingest_vs_raw": round((n_c / t_c) / (n_raw / t_raw), 3),
        "noop_1k_s": round(noop_small["seconds"], 4),
        "noop_20k_s": round(noop_big["seconds"], 4),
        "noop_ratio_20k_1k": round(noop_big["seconds"] / noop_small["seconds"], 3),
        "peak_rss_mb": first["peak_rss_mb"],
        "rss_at_5k_mb": round(rss5k, 1),
        "rss_at_end_mb": round(rss_end, 1),
        "synced_ok": n_c == args.messages and noop_big["logged"] == 0,
    }
    print(
        f"ratios: ingest/mbsync {figures['ingest_vs_mbsync']:.2f}, "
        f"ingest/raw {figures['ingest_vs_raw']:.2f}, no-op 20k/1k {figures['noop_ratio_20k_1k']:.2f}, "
        f"RSS {rss5k:.0f} MB at 5k -> {rss_end:.0f} MB at end"
    )
    shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
