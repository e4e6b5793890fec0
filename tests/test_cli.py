"""The CLI as a user runs it: init, crm import, sync, status, activities, explain, demo."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from syncd.cli import main
from syncd.demo import DEMO_DATA

ACTIVITY_KEYS = {
    "message_id",
    "kind",
    "subject",
    "occurred_at",
    "direction",
    "participants",
    "contacts",
    "companies",
    "opportunities",
    "insights",
}


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def demo_config(tmp_path: Path) -> Path:
    maildir = tmp_path / "maildir"
    shutil.copytree(DEMO_DATA / "maildir", maildir)
    path = tmp_path / "syncd.toml"
    path.write_text(
        f"""
[store]
url = "sqlite:///store.db"
[organization]
domains = ["lumenfold.io", "lumenfold.com"]
[[accounts]]
name = "maya"
provider = "maildir"
owner = "maya.chen@lumenfold.io"
path = "maildir"
[[accounts]]
name = "calendar"
provider = "ics"
owner = "maya.chen@lumenfold.io"
path = "{DEMO_DATA / "calendar"}"
"""
    )
    return path


def test_the_whole_cli_flow(capsys: pytest.CaptureFixture[str], demo_config: Path) -> None:
    cfg = str(demo_config)
    code, out, _ = _run(capsys, "--config", cfg, "init")
    assert code == 0 and "2 account(s)" in out
    crm = [str(DEMO_DATA / "crm" / n) for n in ("companies.csv", "contacts.csv", "opportunities.csv")]
    code, out, _ = _run(capsys, "--config", cfg, "crm", "import", *crm)
    assert code == 0 and "7 created" in out

    code, out, _ = _run(capsys, "--config", cfg, "sync", "--once")
    assert code == 0
    assert "maya: 12 logged" in out and "bulk_mail: 1, internal_only: 1, no_known_participant: 1" in out
    assert "calendar: 4 logged" in out

    code, out, _ = _run(capsys, "--config", cfg, "sync", "--once")
    assert code == 0 and "maya: 0 logged" in out and "calendar: 0 logged" in out

    code, out, _ = _run(capsys, "--config", cfg, "activities", "--json")
    items = json.loads(out)
    assert len(items) == 16
    for item in items:
        assert set(item) >= ACTIVITY_KEYS
        assert item["kind"] in ("email", "meeting")
        assert item["direction"] in ("inbound", "outbound", "internal")
        assert item["occurred_at"].endswith("Z")
    by_subject = {i["subject"]: i for i in items}
    kwame = by_subject["Vendor security review - risk data platform"]
    # Kwame is on one of Halvard's two open deals, and the subject names it.
    (deal,) = kwame["opportunities"]
    assert deal["name"] == "Halvard Capital - Risk Data Platform" and deal["confidence"] >= 0.9
    assert deal["rule"].split("+")[:3] == ["contact_on_deal", "contact_role", "open_deal"]
    assert kwame["companies"] == ["Halvard Capital Systems"]
    # four from the calendar, one from the invitation email in the mailbox
    meetings = [i for i in items if i["kind"] == "meeting"]
    assert len(meetings) == 5 and all(m["participants"] for m in meetings)

    code, out, _ = _run(capsys, "--config", cfg, "explain", kwame["message_id"], "--json")
    view = json.loads(out)
    assert code == 0 and view["status"] == "logged"
    assert [link["rule"] for link in view["links"]][:2] == ["email_exact", "contact_company"]
    assert all(link["reason"] for link in view["links"])
    assert view["rules"]["exclusions"].startswith("none applied; checked: private, blocklisted")
    identified = {p["email"]: p["identified_as"] for p in view["rules"]["participants"]}
    assert identified["kwame.asante@halvardcapital.com"] == "contact Kwame Asante"
    assert identified["maya.chen@lumenfold.io"].startswith("internal")
    candidates = {c["deal"]: c for c in view["rules"]["deal_candidates"]}
    assert set(candidates) == {
        "Halvard Capital - Risk Data Platform",
        "Halvard Capital - Regulatory Reporting Pipelines",
    }
    assert "keyword_subject" in {
        s["rule"] for s in candidates["Halvard Capital - Risk Data Platform"]["signals"]
    }

    # Ingrid is on both open Halvard deals: the subject points at one, the other waits for review.
    ingrid = "AM9PR07MB7345D2E1F0A94C6B8E7D5A3C2B1F0@AM9PR07MB7345.eurprd07.prod.outlook.com"
    code, out, _ = _run(capsys, "--config", cfg, "review", "--json")
    queue = {item["message_id"]: item for item in json.loads(out)}
    assert [s["deal"] for s in queue[ingrid]["suggestions"]] == ["Halvard Capital - Risk Data Platform"]
    code, out, _ = _run(capsys, "--config", cfg, "link", ingrid, "halvard capital - risk data platform")
    assert code == 0 and "linked to 'Halvard Capital - Risk Data Platform'" in out
    code, out, _ = _run(
        capsys, "--config", cfg, "unlink", ingrid, "Halvard Capital - Regulatory Reporting Pipelines"
    )
    assert code == 0 and "unlinked" in out
    code, out, _ = _run(capsys, "--config", cfg, "review", "--json")
    assert ingrid not in {item["message_id"] for item in json.loads(out)}
    code, out, _ = _run(capsys, "--config", cfg, "activities", "--json")
    (after,) = [i for i in json.loads(out) if i["message_id"] == ingrid]
    assert after["opportunities"] == [
        {"name": "Halvard Capital - Risk Data Platform", "confidence": 1.0, "rule": "manual"}
    ]
    code, _, err = _run(capsys, "--config", cfg, "link", ingrid, "No Such Deal")
    assert code == 1 and "no deal named 'No Such Deal'" in err

    newsletter = "20260127130005.1a2b3c4d5e6f@news.tidewelldata.com"
    code, out, _ = _run(capsys, "--config", cfg, "explain", f"<{newsletter}>")
    assert code == 0 and "skipped" in out and "bulk_mail" in out

    code, out, _ = _run(capsys, "--config", cfg, "status", "--json")
    status = {a["name"]: a for a in json.loads(out)["accounts"]}
    assert status["maya"]["state"] == "active" and status["maya"]["activities"] == 12
    assert status["maya"]["skipped"] == {"bulk_mail": 1, "internal_only": 1, "no_known_participant": 1}


def test_bad_config_is_a_clear_error(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "syncd.toml"
    path.write_text('[store]\nurl = "sqlite:///x.db"\n[[accounts]]\nname = "a"\nprovider = "pop3"\n')
    code, _, err = _run(capsys, "--config", str(path), "status")
    assert code == 2
    assert f"{path}, line 5: [accounts] provider: expected one of" in err


def test_crm_import_error_names_file_line_and_column(
    capsys: pytest.CaptureFixture[str], demo_config: Path
) -> None:
    bad = demo_config.parent / "opps.csv"
    bad.write_text(
        "name,company,contacts,stage,status,amount,close_date,owner,created_at\n"
        "Deal,Acme,,Demo,open,100,31/12/2026,rep@lumenfold.io,2026-01-01\n"
    )
    code, _, err = _run(capsys, "--config", str(demo_config), "crm", "import", str(bad))
    assert code == 1 and "opps.csv" in err and "line 2" in err and "close_date" in err


def test_demo_command_as_a_user_runs_it(tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "syncd"
    result = subprocess.run(
        [str(script), "demo", "--dir", str(tmp_path)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "maya-mail: 12 logged" in out
    assert "bulk_mail" in out and "internal_only" in out and "no_known_participant" in out
    assert "deal: Northgate Freight - Pipeline Observability (confidence 1.00, rule contact_on_deal+" in out
    assert "in the review queue" in out
    assert (tmp_path / "demo.db").exists()

    again = subprocess.run(
        [str(script), "demo", "--dir", str(tmp_path), "--json"], capture_output=True, text=True, timeout=120
    )
    assert again.returncode == 0, again.stderr
    assert len(json.loads(again.stdout)) == 16
