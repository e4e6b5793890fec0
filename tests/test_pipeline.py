"""The pipeline end to end on SQLite and PostgreSQL: parse, filter, store, match, explain."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import func, select

from store import queries
from store.crm_lookup import SqlCrmLookup
from store.db import make_engine, session_factory
from store.models import Activity, ActivitySource, Contact, SkipLogEntry
from syncd.pipeline import Pipeline
from tests.builders import REP, config, email, maildir, maildir_account, seed_crm

ANA_ASKS = email(
    "Ana Ruiz <ana@acme-freight.com>",
    REP,
    "Pricing for 40 pipelines?",
    "Hi Maya,\nCan you send the pricing for 40 pipelines?\nAna",
    message_id="ana-1@acme-freight.com",
)
GUS_WRITES = email(
    "gus@globexhealth.com", REP, "Contract", "We need the MSA redlines.", message_id="gus-1@globexhealth.com"
)
NEWSLETTER = email(
    "news@vendor-weekly.com",
    REP,
    "This week in data",
    "Read more...",
    message_id="nl-1@vendor-weekly.com",
    extra={"List-Unsubscribe": "<mailto:unsub@vendor-weekly.com>", "Precedence": "bulk"},
)
INTERNAL = email("raj@lumenfold.io", REP, "Demo prep", "Can we sync at 3?", message_id="int-1@lumenfold.io")
STRANGER = email("who@unknown-corp.com", REP, "Hello", "Are you hiring?", message_id="unk-1@unknown-corp.com")
DOMAIN_ONLY = email(
    "ops@mail.acme-freight.com",
    REP,
    "Invoice",
    "Please find the invoice.",
    message_id="ops-1@acme-freight.com",
)
REPLY = email(
    REP,
    "ana@acme-freight.com",
    "Re: Pricing for 40 pipelines?",
    "Attached.",
    message_id="maya-1@lumenfold.io",
    extra={"In-Reply-To": "<ana-1@acme-freight.com>", "References": "<ana-1@acme-freight.com>"},
)


def _sync(
    tmp_path: Path, db_url: str, messages: list[bytes], *, name: str = "maya"
) -> tuple[Pipeline, object]:
    box = maildir(tmp_path / name, messages)
    cfg = config(tmp_path, db_url, maildir_account(name, box))
    factory = session_factory(make_engine(db_url))
    pipeline = Pipeline(cfg, factory)
    return pipeline, pipeline.sync_account(cfg.accounts[0])


def test_links_skips_and_explains(tmp_path: Path, db_url: str) -> None:
    factory = session_factory(make_engine(db_url))
    seed_crm(factory)
    _, report = _sync(
        tmp_path, db_url, [ANA_ASKS, GUS_WRITES, NEWSLETTER, INTERNAL, STRANGER, DOMAIN_ONLY, REPLY]
    )
    assert report.error is None
    assert report.total("logged") == 4
    assert dict(report.skipped) == {"bulk_mail": 1, "internal_only": 1, "no_known_participant": 1}

    with factory() as s:
        items = {i["message_id"]: i for i in queries.list_activities(s)}
        ana = items["ana-1@acme-freight.com"]
        assert ana["direction"] == "inbound"
        assert ana["contacts"] == ["ana@acme-freight.com"]
        assert ana["companies"] == ["Acme Freight"]
        assert ana["opportunities"] == [
            {
                "name": "Acme - Observability",
                "confidence": 0.75,
                "rule": "contact_on_deal+contact_role+open_deal+deal_owner",
            }
        ]
        assert {"email": "ana@acme-freight.com", "role": "from"} in [
            {"email": p["email"], "role": p["role"]} for p in ana["participants"]
        ]
        reply = items["maya-1@lumenfold.io"]
        assert (
            reply["direction"] == "outbound" and reply["opportunities"][0]["name"] == "Acme - Observability"
        )

        gus = queries.explain(s, "<gus-1@globexhealth.com>")
        assert gus["status"] == "logged" and gus["activity"]["opportunities"] == []
        # Gus is on two open deals and nothing tells them apart: both wait in the review queue.
        assert {link["target"] for link in gus["links"] if link["status"] == "suggested"} == {
            "Globex - Pilot",
            "Globex - Enterprise",
        }
        assert any("review queue" in note for note in gus["not_linked"])

        ops = items["ops-1@acme-freight.com"]
        # Not a contact, but from Acme's domain: the company's only open deal, owned by this rep.
        assert ops["contacts"] == [] and ops["companies"] == ["Acme Freight"]
        assert [(d["name"], d["rule"]) for d in ops["opportunities"]] == [
            ("Acme - Observability", "company_deal+open_deal+deal_owner")
        ]
        ops_link = queries.explain(s, "ops-1@acme-freight.com")["links"][0]
        assert ops_link["rule"] == "email_domain" and "acme-freight.com" in ops_link["reason"]

        news = queries.explain(s, "nl-1@vendor-weekly.com")
        assert news["status"] == "skipped" and news["reason"] == "bulk_mail"
        assert "List-Unsubscribe" in news["detail"]
        assert queries.explain(s, "int-1@lumenfold.io")["reason"] == "internal_only"
        assert "unknown-corp.com" in queries.explain(s, "unk-1@unknown-corp.com")["detail"]
        assert queries.explain(s, "nothing@here")["status"] == "unknown"


def test_second_sync_adds_nothing_and_reads_nothing(tmp_path: Path, db_url: str) -> None:
    seed_crm(session_factory(make_engine(db_url)))
    box = maildir(tmp_path / "m", [ANA_ASKS, NEWSLETTER, STRANGER])
    cfg = config(tmp_path, db_url, maildir_account("m", box))
    factory = session_factory(make_engine(db_url))
    pipeline = Pipeline(cfg, factory)
    first = pipeline.sync_account(cfg.accounts[0])
    assert first.total("logged") == 1 and sum(first.skipped.values()) == 2

    source = cfg.accounts[0].make_source()
    second = pipeline.sync_account(cfg.accounts[0], source)
    assert second.total("logged") == 0 and sum(second.skipped.values()) == 0
    assert source.stats.files_read == 0
    with factory() as s:
        assert s.scalar(select(func.count()).select_from(Activity)) == 1
        assert s.scalar(select(func.count()).select_from(SkipLogEntry)) == 2

    maildir(box, [GUS_WRITES])  # one new message: only it is read
    source = cfg.accounts[0].make_source()
    third = pipeline.sync_account(cfg.accounts[0], source)
    assert third.total("logged") == 1 and source.stats.files_read == 1


def test_same_message_in_two_mailboxes_is_one_activity(tmp_path: Path, db_url: str) -> None:
    factory = session_factory(make_engine(db_url))
    seed_crm(factory)
    maya = maildir(tmp_path / "maya", [ANA_ASKS])
    raj = maildir(
        tmp_path / "raj", [ANA_ASKS.replace(b"From:", b"Received: by mx2; Mon, 2 Mar 2026\r\nFrom:", 1)]
    )
    cfg = config(
        tmp_path, db_url, maildir_account("maya", maya) + maildir_account("raj", raj, "raj@lumenfold.io")
    )
    reports = Pipeline(cfg, factory).sync_all()
    assert [r.total("logged") for r in reports] == [1, 0]
    assert [r.total("merged") for r in reports] == [0, 1]
    with factory() as s:
        assert s.scalar(select(func.count()).select_from(Activity)) == 1
        assert s.scalar(select(func.count()).select_from(ActivitySource)) == 2
        sources = queries.explain(s, "ana-1@acme-freight.com")["sources"]
        assert sorted(src["account"] for src in sources) == ["maya", "raj"]


def test_unreadable_message_is_quarantined_and_the_rest_goes_on(tmp_path: Path, db_url: str) -> None:
    factory = session_factory(make_engine(db_url))
    seed_crm(factory)
    box = maildir(tmp_path / "m", [ANA_ASKS, GUS_WRITES])
    (box / "cur" / "1700000000.M1P1.host:2,S").write_bytes(b"")
    _, report = _sync(tmp_path, db_url, [], name="m")
    assert report.total("logged") == 2 and report.total("quarantined") == 1
    with factory() as s:
        entry = s.scalar(select(SkipLogEntry).where(SkipLogEntry.quarantined.is_(True)))
        assert entry is not None and entry.provider_id == "1700000000.M1P1.host" and entry.detail


def test_log_policy_keeps_mail_from_unknown_people(tmp_path: Path, db_url: str) -> None:
    box = maildir(tmp_path / "m", [STRANGER])
    cfg = config(tmp_path, db_url, maildir_account("m", box), policy='unknown_participants = "log"')
    factory = session_factory(make_engine(db_url))
    report = Pipeline(cfg, factory).sync_account(cfg.accounts[0])
    assert report.total("logged") == 1
    with factory() as s:
        (item,) = queries.list_activities(s)
        assert item["contacts"] == [] and item["opportunities"] == []


def _refuse_subject(db_url: str, subject: str) -> None:
    """Make the database itself refuse one message, as a real server refuses a bad value."""
    engine = make_engine(db_url)
    with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            conn.exec_driver_sql(
                f"CREATE TRIGGER refuse BEFORE INSERT ON activities WHEN NEW.subject = '{subject}' "
                "BEGIN SELECT RAISE(ABORT, 'subject refused'); END"
            )
        else:
            conn.exec_driver_sql(
                "CREATE FUNCTION refuse() RETURNS trigger AS $$ BEGIN "
                f"IF NEW.subject = '{subject}' THEN RAISE EXCEPTION 'subject refused'; END IF; "
                "RETURN NEW; END $$ LANGUAGE plpgsql"
            )
            conn.exec_driver_sql(
                "CREATE TRIGGER refuse BEFORE INSERT ON activities FOR EACH ROW EXECUTE FUNCTION refuse()"
            )
    engine.dispose()


def test_a_message_the_database_refuses_is_quarantined_alone(tmp_path: Path, db_url: str) -> None:
    factory = session_factory(make_engine(db_url))
    seed_crm(factory)
    _refuse_subject(db_url, "Contract")
    _, report = _sync(tmp_path, db_url, [ANA_ASKS, GUS_WRITES, NEWSLETTER, REPLY])
    assert report.error is None
    assert report.total("logged") == 2 and report.total("quarantined") == 1
    assert dict(report.skipped) == {"bulk_mail": 1}
    with factory() as s:
        assert s.scalar(select(func.count()).select_from(Activity)) == 2
        bad = queries.explain(s, "gus-1@globexhealth.com")
        assert bad["status"] == "quarantined" and "subject refused" in bad["detail"]
        ana = queries.explain(s, "ana-1@acme-freight.com")["activity"]
        assert [deal["name"] for deal in ana["opportunities"]] == ["Acme - Observability"]


def test_contact_policy_creates_the_people_the_owner_writes_to(tmp_path: Path, db_url: str) -> None:
    to_new = email(
        REP,
        '"Kim, Lee" <Lee.Kim@Newcorp.io>, friend@gmail.com, noreply@newcorp.io',
        "Intro",
        "Hi Lee, nice to meet you.",
        message_id="maya-intro@lumenfold.io",
    )
    from_new = email(
        "Lee Kim <lee.kim@newcorp.io>", REP, "Re: Intro", "Likewise.", message_id="lee-1@newcorp.io"
    )
    from_other = email("Joe Ng <joe@othercorp.io>", REP, "Hello", "Hi there", message_id="joe-1@othercorp.io")
    box = maildir(tmp_path / "m", [to_new, from_new, from_other])
    cfg = config(tmp_path, db_url, maildir_account("m", box), policy='create_contacts = "sent"')
    factory = session_factory(make_engine(db_url))
    report = Pipeline(cfg, factory).sync_account(cfg.accounts[0])
    assert report.total("logged") == 2 and dict(report.skipped) == {"no_known_participant": 1}
    with factory() as s:
        contacts = {c.emails[0].email: c for c in s.scalars(select(Contact))}
        assert set(contacts) == {"lee.kim@newcorp.io"}  # not free mail, not a no-reply address
        assert (contacts["lee.kim@newcorp.io"].first_name, contacts["lee.kim@newcorp.io"].last_name) == (
            "Lee",
            "Kim",
        )
        intro = queries.explain(s, "maya-intro@lumenfold.io")
        assert intro["activity"]["contacts"] == ["lee.kim@newcorp.io"]
        assert any("created (create_contacts=sent)" in note for note in intro["not_linked"])
        assert queries.explain(s, "lee-1@newcorp.io")["status"] == "logged"
        assert queries.explain(s, "joe-1@othercorp.io")["reason"] == "no_known_participant"


def test_companies_by_domain_covers_every_subdomain_asked(db_url: str) -> None:
    factory = session_factory(make_engine(db_url))
    seed_crm(factory)
    asked = {
        "acme-freight.com",
        "mail.acme-freight.com",
        "eu.mail.acme-freight.com",
        "shop.acme.co.uk",
        "x.com",
    }
    with factory() as s:
        found = SqlCrmLookup(s).companies_by_domain(asked)
    assert {d: c.name for d, c in found.items()} == {
        "acme-freight.com": "Acme Freight",
        "mail.acme-freight.com": "Acme Freight",
        "eu.mail.acme-freight.com": "Acme Freight",
        "shop.acme.co.uk": "Acme Freight",
    }
