"""CRM changes re-match only what they affect: held mail gets logged, new deals get their threads."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from syncd.cli import main
from tests.builders import email, maildir

REP = "sam@brightwave.io"
COMPANIES = "name,domains,industry\nNimbus Foods,nimbusfoods.com,Food\n"
CONTACTS = "email,first_name,last_name,company,other_emails\nlea@nimbusfoods.com,Lea,Park,Nimbus Foods,\n"
OPPS = (
    "name,company,contacts,stage,status,amount,close_date,owner,created_at\n"
    "Nimbus - Forecasting,Nimbus Foods,lea@nimbusfoods.com:champion,Demo,open,30000,2026-09-30,"
    f"{REP},2026-04-01\n"
)


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    assert main(list(argv)) == 0, capsys.readouterr().err
    return capsys.readouterr().out


@pytest.fixture
def setup(tmp_path: Path, db_url: str) -> tuple[Path, Path]:
    first = email(
        "Lea Park <lea@nimbusfoods.com>",
        REP,
        "Forecasting questions",
        "Can you show the demand forecasts?",
        message_id="lea-1@nimbusfoods.com",
        when=datetime(2026, 3, 2, 9, tzinfo=UTC),
    )
    reply = email(
        REP,
        "lea@nimbusfoods.com",
        "Re: Forecasting questions",
        "Sure, next week.",
        message_id="sam-1@brightwave.io",
        when=datetime(2026, 3, 3, 9, tzinfo=UTC),
        extra={"In-Reply-To": "<lea-1@nimbusfoods.com>", "References": "<lea-1@nimbusfoods.com>"},
    )
    ops = email(
        "ops@eu.nimbusfoods.com", REP, "Invoice", "Invoice attached.", message_id="ops-1@nimbusfoods.com"
    )
    box = maildir(tmp_path / "mail", [first, reply, ops])
    cfg = tmp_path / "syncd.toml"
    cfg.write_text(
        f'[store]\nurl = "{db_url}"\n[organization]\ndomains = ["brightwave.io"]\n'
        f'[[accounts]]\nname = "sam"\nprovider = "maildir"\nowner = "{REP}"\npath = "{box}"\n'
    )
    return cfg, tmp_path


def test_crm_changes_log_held_mail_and_link_earlier_threads(
    capsys: pytest.CaptureFixture[str], setup: tuple[Path, Path]
) -> None:
    cfg, tmp = setup
    out = _run(capsys, "--config", str(cfg), "sync", "--once")
    assert "0 logged" in out and "no_known_participant: 3" in out

    (tmp / "companies.csv").write_text(COMPANIES)
    out = _run(capsys, "--config", str(cfg), "crm", "import", str(tmp / "companies.csv"))
    # The company's domain makes all three known (a subdomain counts): logged, not yet on a deal.
    assert "logged 3 held message(s)" in out
    items = {
        i["message_id"]: i for i in json.loads(_run(capsys, "--config", str(cfg), "activities", "--json"))
    }
    assert set(items) == {"lea-1@nimbusfoods.com", "sam-1@brightwave.io", "ops-1@nimbusfoods.com"}
    assert items["ops-1@nimbusfoods.com"]["companies"] == ["Nimbus Foods"]
    assert all(i["opportunities"] == [] for i in items.values())
    status = json.loads(_run(capsys, "--config", str(cfg), "status", "--json"))
    assert status["accounts"][0]["skipped"] == {}

    (tmp / "contacts.csv").write_text(CONTACTS)
    out = _run(capsys, "--config", str(cfg), "crm", "import", str(tmp / "contacts.csv"))
    items = {
        i["message_id"]: i for i in json.loads(_run(capsys, "--config", str(cfg), "activities", "--json"))
    }
    assert items["lea-1@nimbusfoods.com"]["contacts"] == ["lea@nimbusfoods.com"]

    # The deal is created a month after the thread began: the thread is linked once it exists.
    (tmp / "opps.csv").write_text(OPPS)
    out = _run(capsys, "--config", str(cfg), "crm", "import", str(tmp / "opps.csv"))
    assert "re-matched" in out
    items = {
        i["message_id"]: i for i in json.loads(_run(capsys, "--config", str(cfg), "activities", "--json"))
    }
    for mid in ("lea-1@nimbusfoods.com", "sam-1@brightwave.io"):
        assert [d["name"] for d in items[mid]["opportunities"]] == ["Nimbus - Forecasting"], mid

    # An unlink by hand survives any later re-match.
    _run(capsys, "--config", str(cfg), "unlink", "sam-1@brightwave.io", "Nimbus - Forecasting")
    (tmp / "opps.csv").write_text(OPPS.replace("Demo", "Proposal"))
    _run(capsys, "--config", str(cfg), "crm", "import", str(tmp / "opps.csv"))
    items = {
        i["message_id"]: i for i in json.loads(_run(capsys, "--config", str(cfg), "activities", "--json"))
    }
    assert items["sam-1@brightwave.io"]["opportunities"] == []
    assert [d["name"] for d in items["lea-1@nimbusfoods.com"]["opportunities"]] == ["Nimbus - Forecasting"]


ICS = """BEGIN:VCALENDAR\r
VERSION:2.0\r
PRODID:-//syncd tests//EN\r
BEGIN:VEVENT\r
UID:nimbus-demo-1@brightwave.io\r
DTSTAMP:20260301T090000Z\r
DTSTART:20260305T150000Z\r
DTEND:20260305T160000Z\r
SUMMARY:Forecasting demo\r
ORGANIZER;CN=Sam:mailto:sam@brightwave.io\r
ATTENDEE;CN=Lea Park;PARTSTAT=ACCEPTED:mailto:lea@nimbusfoods.com\r
END:VEVENT\r
END:VCALENDAR\r
"""


def test_held_meetings_are_logged_when_their_people_become_known(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, db_url: str
) -> None:
    calendar = tmp_path / "calendar"
    calendar.mkdir()
    (calendar / "demo.ics").write_text(ICS, newline="")
    cfg = tmp_path / "syncd.toml"
    cfg.write_text(
        f'[store]\nurl = "{db_url}"\n[organization]\ndomains = ["brightwave.io"]\n'
        f'[[accounts]]\nname = "cal"\nprovider = "ics"\nowner = "{REP}"\npath = "{calendar}"\n'
    )
    out = _run(capsys, "--config", str(cfg), "sync", "--once")
    assert "0 logged" in out and "no_known_participant: 1" in out
    (tmp_path / "contacts.csv").write_text(CONTACTS)
    out = _run(capsys, "--config", str(cfg), "crm", "import", str(tmp_path / "contacts.csv"))
    assert "logged 1 held message(s)" in out
    (meeting,) = json.loads(_run(capsys, "--config", str(cfg), "activities", "--json"))
    assert (meeting["kind"], meeting["subject"], meeting["contacts"]) == (
        "meeting",
        "Forecasting demo",
        ["lea@nimbusfoods.com"],
    )
    assert {p["email"]: p.get("rsvp") for p in meeting["participants"]}["lea@nimbusfoods.com"] == "accepted"
    assert _run(capsys, "--config", str(cfg), "sync", "--once").count("0 logged") == 1
