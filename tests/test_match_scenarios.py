"""The labelled scenario suite for the matcher (issue 4).

A CRM (``tests/scenarios/crm``) and a mailbox of 71 messages (``tests/scenarios/mail``) go
through the real pipeline: the CSV import, then an ``eml`` account synced into the store.
Each message's outcome, read back with :func:`store.queries.explain`, is compared with its
label in ``tests/scenarios/labels.json``. ``tests/scenarios/README.md`` says who is who and
why each label is what it is.

A link decision is right when the message was skipped for the labelled reason, or logged
with exactly the labelled set of auto-linked deals. Review-queue candidates and the contact
and company links are shown in the table but do not count towards the accuracy. An
excluded message that was logged anyway is always a failure, whatever the accuracy.
Run ``pytest tests/test_match_scenarios.py -s`` to see the per-message table.
"""

from __future__ import annotations

import csv
import json
import tomllib
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from connectors.mime_parse import parse_message
from store import queries
from store.db import make_engine, session_factory
from syncd.config import parse_config
from syncd.crm_import import import_csv
from syncd.pipeline import Pipeline

SCENARIOS = Path(__file__).parent / "scenarios"
MAIL = SCENARIOS / "mail"
CRM = SCENARIOS / "crm"
LABELS: list[dict[str, Any]] = json.loads((SCENARIOS / "labels.json").read_text(encoding="utf-8"))

ORG_DOMAINS = ["brightwave.io", "brightwave.com"]
OWNER = "sam.ortiz@brightwave.io"
ALIASES = ["sam@brightwave.com"]
TARGET = 0.97

SKIP_REASONS = {
    "blocklisted",
    "bulk_mail",
    "auto_submitted",
    "out_of_office",
    "delivery_report",
    "automated_sender",
    "private",
    "internal_only",
    "no_known_participant",
}
# The cases issue 4 asks for; each must be the "case" of at least one label.
ISSUE_CASES = {
    "several open deals for one contact",
    "several open deals for one company",
    "company with two domains",
    "free-mail customer",
    "forwarded email",
    "colleagues in CC",
    "internal-only thread",
    "newsletter",
    "auto-reply",
    "bounce",
    "private email",
    "address in upper case",
    "contact's second address",
    "reply in a thread whose deal was created later",
    "alias of the owner",
}


@dataclass(frozen=True)
class Outcome:
    label: dict[str, Any]
    status: str  # logged, skipped, quarantined, unknown
    reason: str | None = None
    deals: frozenset[str] = frozenset()  # auto-linked
    review: frozenset[str] | None = None  # suggested; None when the store keeps no review queue
    contacts: frozenset[str] = frozenset()
    companies: frozenset[str] = frozenset()

    @property
    def expect_skip(self) -> bool:
        return self.label["expect"] == "skipped"

    @property
    def excluded_but_logged(self) -> bool:
        return self.expect_skip and self.status == "logged"

    @property
    def right(self) -> bool:
        if self.expect_skip:
            return self.status == "skipped" and self.reason == self.label["reason"]
        return self.status == "logged" and self.deals == frozenset(self.label["deals"])

    @property
    def identity_right(self) -> bool | None:
        if self.expect_skip or self.status != "logged":
            return None
        return self.contacts == frozenset(self.label["contacts"]) and self.companies == frozenset(
            self.label["companies"]
        )


def _outcome(label: dict[str, Any], explained: dict[str, Any]) -> Outcome:
    status = explained["status"]
    if status != "logged":
        return Outcome(label, status, reason=explained.get("reason"))
    deal_links = [link for link in explained["links"] if link["type"] == "opportunity"]
    has_queue = any("status" in link for link in explained["links"])
    activity = explained["activity"]
    return Outcome(
        label,
        status,
        deals=frozenset(x["target"] for x in deal_links if x.get("status", "linked") == "linked"),
        review=frozenset(x["target"] for x in deal_links if x.get("status") == "suggested")
        if has_queue
        else None,
        contacts=frozenset(activity["contacts"]),
        companies=frozenset(activity["companies"]),
    )


def sync_scenarios(url: str, tmp_path: Path) -> list[Outcome]:
    """Import the scenario CRM into the store at ``url``, sync the mailbox, read back every label."""
    engine = make_engine(url)
    factory = session_factory(engine)
    try:
        for kind in ("companies", "contacts", "opportunities"):
            import_csv(factory, CRM / f"{kind}.csv")
        text = f"""
[store]
url = {json.dumps(url)}
[organization]
name = "Brightwave"
domains = {json.dumps(ORG_DOMAINS)}
[[accounts]]
name = "sam"
provider = "eml"
owner = "{OWNER}"
aliases = {json.dumps(ALIASES)}
path = {json.dumps(str(MAIL))}
"""
        config = parse_config(tomllib.loads(text), tmp_path / "syncd.toml", text)
        report = Pipeline(config, factory).sync_account(config.accounts[0])
        assert report.error is None, report.error
        with factory() as session:
            return [_outcome(label, queries.explain(session, label["message_id"])) for label in LABELS]
    finally:
        engine.dispose()


def _names(items: Any) -> str:
    return "; ".join(sorted(items)) or "(none)"


def _decision(status: str, reason: str | None, deals: Any) -> str:
    if status == "skipped":
        return f"skipped: {reason}"
    if status == "logged":
        return f"deals: {_names(deals)}"
    return status


def render(outcomes: list[Outcome], backend: str) -> str:
    """The per-message table, the accuracy by case and the accuracy line."""
    lines = ["", f"matcher scenarios on {backend}: {len(outcomes)} messages"]
    for o in outcomes:
        label = o.label
        expected = _decision(label["expect"], label.get("reason"), label.get("deals", ()))
        name = label["file"].removesuffix(".eml")
        if o.right:
            lines.append(f"  ok    {name:48} {expected}")
        else:
            mark = "LOGGED" if o.excluded_but_logged else "WRONG"
            lines.append(f"  {mark:5} {name:48} expected {expected}")
            lines.append(f"  {'':5} {'':48} got      {_decision(o.status, o.reason, o.deals)}")
            lines.append(f"  {'':5} {'':48} why: {label['why']}")
        wanted_review = frozenset(label.get("review", ()))
        if o.status == "logged" and (wanted_review or o.review):
            got = "(no review queue)" if o.review is None else _names(o.review)
            lines.append(f"  {'':5} {'':48} review: expected {_names(wanted_review)}, got {got}")
        if o.identity_right is False:
            lines.append(
                f"  {'':5} {'':48} identity (not scored): expected {_names(label['contacts'])} | "
                f"{_names(label['companies'])}; got {_names(o.contacts)} | {_names(o.companies)}"
            )
    by_case: dict[str, list[Outcome]] = defaultdict(list)
    for o in outcomes:
        by_case[o.label["case"]].append(o)
    lines.append("  by case:")
    for case, group in sorted(by_case.items()):
        lines.append(f"    {sum(o.right for o in group)}/{len(group)}  {case}")
    identity = [o.identity_right for o in outcomes if o.identity_right is not None]
    lines.append(f"  contacts and companies right (not scored): {sum(identity)}/{len(identity)}")
    excluded = sum(o.excluded_but_logged for o in outcomes)
    lines.append(f"  excluded but logged: {excluded}")
    right = sum(o.right for o in outcomes)
    lines.append(f"link accuracy: {right}/{len(outcomes)} = {100 * right / len(outcomes):.1f}%")
    return "\n".join(lines)


def _csv_column(name: str, column: str) -> set[str]:
    with (CRM / f"{name}.csv").open(encoding="utf-8", newline="") as f:
        return {row[column] for row in csv.DictReader(f)}


def test_labels_describe_every_message() -> None:
    files = sorted(p.name for p in MAIL.glob("*.eml"))
    assert len(files) >= 60
    assert sorted(label["file"] for label in LABELS) == files, "one label per message file"
    deals, companies = _csv_column("opportunities", "name"), _csv_column("companies", "name")
    contacts = _csv_column("contacts", "email")
    seen: set[str] = set()
    for label in LABELS:
        msg = parse_message((MAIL / label["file"]).read_bytes())
        assert msg.message_id == label["message_id"] and not msg.synthetic_id, label["file"]
        assert msg.date is not None and msg.date.year == 2026 and not msg.defects, label["file"]
        assert msg.message_id not in seen, f"{label['file']}: duplicate Message-ID"
        seen.add(msg.message_id)
        assert label["why"] and label["case"], label["file"]
        if label["expect"] == "skipped":
            assert label["reason"] in SKIP_REASONS, label["file"]
        else:
            assert label["expect"] == "logged", label["file"]
            assert set(label["deals"]) <= deals and set(label.get("review", ())) <= deals, label["file"]
            assert not set(label["deals"]) & set(label.get("review", ())), label["file"]
            assert set(label["companies"]) <= companies and set(label["contacts"]) <= contacts, label["file"]
    missing = ISSUE_CASES - {label["case"] for label in LABELS}
    assert not missing, f"cases of issue 4 with no message: {sorted(missing)}"


def test_scenarios_sync_and_no_excluded_message_is_logged(
    db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    outcomes = sync_scenarios(db_url, tmp_path)
    with capsys.disabled():
        print(render(outcomes, db_url.partition(":")[0]))
    unseen = [o.label["file"] for o in outcomes if o.status not in ("logged", "skipped")]
    assert not unseen, f"messages the sync did not log or skip: {unseen}"
    logged = [o.label["file"] for o in outcomes if o.excluded_but_logged]
    assert not logged, f"excluded messages were logged: {logged}"


def test_scenarios_link_accuracy(db_url: str, tmp_path: Path) -> None:
    outcomes = sync_scenarios(db_url, tmp_path)
    right = sum(o.right for o in outcomes)
    wrong = [o.label["file"] for o in outcomes if not o.right]
    assert right / len(outcomes) >= TARGET, f"link accuracy {right}/{len(outcomes)}; wrong: {wrong}"
