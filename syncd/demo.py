"""``syncd demo``: the bundled demo data synced into a throwaway SQLite store."""

from __future__ import annotations

import json
import shlex
import sys
import tempfile
from pathlib import Path

from syncd import render
from syncd.config import load_config

DEMO_DATA = Path(__file__).resolve().parents[1] / "config" / "demo"
CRM_FILES = ("companies.csv", "contacts.csv", "opportunities.csv")  # in dependency order

DEMO_CONFIG = """\
# Written by `syncd demo`: the demo's own configuration, usable with any syncd command.
[store]
url = "sqlite:///{store}"

[organization]
name = "Lumenfold"
domains = ["lumenfold.io", "lumenfold.com"]

[[accounts]]
name = "maya-mail"
provider = "maildir"
owner = "maya.chen@lumenfold.io"
path = "{data}/maildir"

[[accounts]]
name = "maya-calendar"
provider = "ics"
owner = "maya.chen@lumenfold.io"
path = "{data}/calendar"
"""


def write_demo_config(directory: Path, data: Path = DEMO_DATA) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "syncd.toml"
    path.write_text(DEMO_CONFIG.format(store=(directory / "demo.db").as_posix(), data=data.as_posix()))
    return path


def run_demo(directory: Path | None, as_json: bool = False) -> int:
    from store import queries
    from syncd.crm_import import import_csv
    from syncd.pipeline import Pipeline
    from syncd.store_access import open_store

    if not (DEMO_DATA / "maildir").is_dir():
        print(
            f"syncd: the demo data is missing (expected {DEMO_DATA}); run from a clone of the repository",
            file=sys.stderr,
        )
        return 1
    directory = directory or Path(tempfile.mkdtemp(prefix="syncd-demo-"))
    (directory / "demo.db").unlink(missing_ok=True)
    config_path = write_demo_config(directory)
    config = load_config(config_path)
    factory = open_store(config.store_url)
    out = sys.stderr if as_json else sys.stdout

    print("== CRM import", file=out)
    for name in CRM_FILES:
        print(import_csv(factory, DEMO_DATA / "crm" / name), file=out)
    print("\n== Sync", file=out)
    pipeline = Pipeline(config, factory)
    failed = False
    for account in config.accounts:
        report = pipeline.sync_account(account)
        failed = failed or report.error is not None
        print(render.sync_report(report), file=out)

    with factory() as session:
        items = queries.list_activities(session)
        skipped = queries.skipped(session)
    if as_json:
        json.dump(items, sys.stdout, indent=2, ensure_ascii=False)
        sys.stdout.write("\n")
    else:
        print("\n== Logged", file=out)
        print("\n".join(render.activity(i) for i in reversed(items)), file=out)
        print("\n== Skipped", file=out)
        for entry in skipped:
            print(
                f"{entry['reason']:<22} {entry['subject'] or '(no subject)'}  <{entry['sender']}>", file=out
            )
            if entry["detail"]:
                print(f"{'':<22} {entry['detail']}", file=out)
    command = shlex.quote(sys.argv[0]) if sys.argv[0].endswith("syncd") else "syncd"
    print(
        f"\nDemo store: {directory / 'demo.db'}\n"
        f"Explore it: {command} --config {config_path} activities (or status, explain MESSAGE_ID)",
        file=out,
    )
    return 1 if failed else 0
