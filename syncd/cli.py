"""``syncd --config FILE <command>``: the command-line interface."""

from __future__ import annotations

import argparse
import functools
import gc
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from syncd.config import Config, ConfigError, load_config

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="syncd",
        description="Email and calendar sync for CRMs: logs mail and meetings to contacts, companies, deals.",
    )
    parser.add_argument(
        "--config",
        type=Path,
        help="configuration file (default: $SYNCD_CONFIG, else ./syncd.toml)",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sub.add_parser("init", help="create or migrate the store and register the configured accounts")

    crm = sub.add_parser("crm", help="CRM data")
    crm_sub = crm.add_subparsers(dest="crm_command", required=True, metavar="COMMAND")
    imp = crm_sub.add_parser("import", help="import companies, contacts or opportunities from CSV files")
    imp.add_argument("files", nargs="+", type=Path, metavar="FILE.csv")

    sync = sub.add_parser("sync", help="sync the configured accounts")
    mode = sync.add_mutually_exclusive_group(required=True)
    mode.add_argument("--once", action="store_true", help="one pass over every account, then exit")
    mode.add_argument(
        "--watch",
        action="store_true",
        help="keep syncing until stopped: IMAP IDLE push, other accounts polled",
    )
    sync.add_argument("--interval", type=float, default=300.0, help="seconds between polls with --watch")
    sync.add_argument("--account", action="append", help="only this account (repeatable)")

    st = sub.add_parser("status", help="accounts, their state and what was synced")
    st.add_argument("--json", action="store_true")

    act = sub.add_parser("activities", help="the logged emails and meetings, newest first")
    act.add_argument("--json", action="store_true")
    act.add_argument("--limit", type=int, default=None)
    act.add_argument("--account", default=None, help="only activities seen in this account")

    exp = sub.add_parser(
        "explain", help="why a message was logged, skipped or quarantined, and why each link"
    )
    exp.add_argument("message_id", metavar="MESSAGE_ID")
    exp.add_argument("--json", action="store_true")

    rev = sub.add_parser("review", help="deal links waiting for a decision (the review queue)")
    rev.add_argument("--json", action="store_true")
    rev.add_argument("--limit", type=int, default=None)
    for name, what in (
        ("link", "link a message to a deal by hand"),
        ("unlink", "unlink a message from a deal"),
    ):
        cmd = sub.add_parser(name, help=f"{what}; the matcher never overrides it")
        cmd.add_argument("message_id", metavar="MESSAGE_ID")
        cmd.add_argument(
            "deal", metavar="DEAL_NAME", help="the deal's name, or 'Company: Deal' when ambiguous"
        )

    demo = sub.add_parser(
        "demo", help="sync the bundled demo data into a throwaway store and show the result"
    )
    demo.add_argument(
        "--dir", type=Path, default=None, help="where to put the demo store (default: a temp dir)"
    )
    demo.add_argument("--json", action="store_true", help="print the logged activities as JSON")
    return parser


def _config_path(arg: Path | None) -> Path:
    if arg is not None:
        return arg
    env = os.environ.get("SYNCD_CONFIG")
    return Path(env) if env else Path("syncd.toml")


def _print_json(data: Any) -> None:
    json.dump(data, sys.stdout, indent=2, ensure_ascii=False, default=str)
    sys.stdout.write("\n")


# The cyclic GC's first threshold: container objects allocated (net of those freed) before a
# collection of the youngest generation. Python's default, 700, suits small scripts.
GC_GEN0_THRESHOLD = 100_000


@functools.cache  # once per process
def tune_gc() -> None:
    """Fit the cyclic garbage collector to a sync: run once start-up is done.

    Matching allocates thousands of container objects per batch (candidates, signals, links),
    and the CRM cache (store/crm_cache.py) grows while it warms up. With the default
    thresholds a young collection runs every 700 net allocations and, as the cache grows, full
    collections traverse everything alive: on bench/match.py (20,000 messages against 100,000
    contacts and 50,000 deals) a dozen full collections took ~1.6 s of a ~5.5 s run, and the
    collector about a third of the time overall. With a gen0 threshold of 100,000 there was no
    full collection and the collector took ~5% (~0.23 s); thresholds from 10,000 to 100,000
    cost about the same in young collections, the higher ones avoid the older ones. Cyclic
    garbage waits longer to be freed: at most ~100,000 objects, a few tens of MB.

    ``gc.freeze()`` moves what start-up created (modules, SQLAlchemy's and Alembic's objects,
    the configuration, ~90,000 objects) out of the collector's sight: it lives as long as the
    process, and every full collection would traverse it again. Collected first, so that no
    garbage is frozen.
    """
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GC_GEN0_THRESHOLD, gen1, gen2)


def main(argv: Sequence[str] | None = None) -> int:
    # GC settings are the process's: tuned when syncd is the program (the console script, or
    # python -m syncd.cli: no argv), not when a test or another program calls main(argv).
    own_process = argv is None
    args = _parser().parse_args(argv)
    level = [logging.WARNING, logging.INFO, logging.DEBUG][min(args.verbose, 2)]
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        if args.command == "demo":
            from syncd.demo import run_demo

            return run_demo(args.dir, as_json=args.json)
        config = load_config(_config_path(args.config))
        return _run(args, config, own_process)
    except ConfigError as exc:
        print(f"syncd: config error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


def _run(args: argparse.Namespace, config: Config, own_process: bool = False) -> int:
    from store import queries
    from syncd import render
    from syncd.store_access import open_store

    factory = open_store(config.store_url)
    if own_process:
        tune_gc()  # start-up is done: the store is open and migrated
    if args.command == "init":
        from store.db import transaction
        from store.sync_state import ensure_account

        with transaction(factory) as session:
            for account in config.accounts:
                ensure_account(session, account.name, account.provider, account.owner)
        print(f"store ready at {config.store_url} with {len(config.accounts)} account(s)")
        return EXIT_OK
    if args.command == "crm":
        from syncd.crm_import import CrmImportError, import_csv
        from syncd.pipeline import Pipeline
        from syncd.rematch import rematch

        pipeline = Pipeline(config, factory)
        for path in args.files:
            try:
                report = import_csv(factory, path)
            except CrmImportError as exc:
                print(f"syncd: {exc}", file=sys.stderr)
                return EXIT_FAILED
            print(report)
            if report.changes:
                print(f"  {rematch(pipeline, report.changes)}")
        return EXIT_OK
    if args.command == "sync":
        from syncd.pipeline import Pipeline

        pipeline = Pipeline(config, factory)
        accounts = [config.account(n) for n in args.account] if args.account else list(config.accounts)
        failed = False
        try:
            if args.watch:
                return _watch(config, pipeline, args.interval)
            for account in accounts:
                report = pipeline.sync_account(account)
                print(render.sync_report(report))
                failed = failed or report.error is not None
        finally:
            pipeline.close()
        return EXIT_FAILED if failed else EXIT_OK
    if args.command in ("link", "unlink"):
        from store import link_edits
        from store.db import transaction

        try:
            with transaction(factory) as session:
                edit = link_edits.link if args.command == "link" else link_edits.unlink
                print(edit(session, args.message_id, args.deal))
        except link_edits.LinkError as exc:
            print(f"syncd: {exc}", file=sys.stderr)
            return EXIT_FAILED
        return EXIT_OK
    with factory() as session:
        if args.command == "review":
            from store.link_edits import review_queue

            queue = review_queue(session, args.limit)
            _print_json(queue) if args.json else print(render.review(queue))
        elif args.command == "status":
            view = queries.status(session)
            _print_json(view) if args.json else print(render.status(view))
        elif args.command == "activities":
            items = queries.list_activities(session, limit=args.limit, account=args.account)
            if args.json:
                _print_json(items)
            else:
                print("\n".join(render.activity(i) for i in items) or "no activities yet")
        elif args.command == "explain":
            view = queries.explain(session, args.message_id)
            _print_json(view) if args.json else print(render.explanation(view))
            return EXIT_OK if view["status"] != "unknown" else EXIT_FAILED
    return EXIT_OK


def _watch(config: Config, pipeline: Any, interval: float) -> int:
    import signal
    import threading

    from syncd import render
    from syncd.watch import watch

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    watch(config, pipeline, interval, stop, on_report=lambda r: print(render.sync_report(r), flush=True))
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
