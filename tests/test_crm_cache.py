"""The process-wide CRM cache (store/crm_cache.py) on SQLite and PostgreSQL: every CRM write
invalidates it, in this process or another, a rolled-back write leaves nothing stale behind, and
matching with a warm cache gives exactly what a cold lookup gives."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from connectors.message import Participant
from matchers.contact_policy import NewContact
from matchers.deals import MessageFacts
from matchers.identity import OrgIdentity
from matchers.linking import CrmLookup, MatchResult, match
from store import activity_writer as writer
from store import crm_cache
from store.crm_cache import CrmCache, CrmFacts, read_generation, shared_cache
from store.crm_lookup import BatchCrmLookup, SqlCrmLookup
from store.db import make_engine, session_factory, transaction
from store.models import Activity, ActivityLink, Opportunity
from syncd.crm_import import import_csv
from syncd.pipeline import Pipeline
from tests.builders import REP, config, email, maildir, maildir_account, seed_crm

ROOT = Path(__file__).resolve().parents[1]
NOW = datetime(2026, 3, 2, 15, 30, tzinfo=UTC)
ORG = OrgIdentity.build(["lumenfold.io"], [REP])

COMPANIES = "name,domains\nNimbus Foods,nimbusfoods.com\n"
CONTACTS = "email,first_name,last_name,company\nlea@nimbusfoods.com,Lea,Park,Nimbus Foods\n"
MORE_CONTACTS = (
    "email,first_name,last_name,company\n"
    "lea@nimbusfoods.com,Lea,Parker,Nimbus Foods\n"
    "zoe@nimbusfoods.com,Zoe,Ito,Nimbus Foods\n"
)
OPPORTUNITIES = (
    "name,company,contacts,stage,status,close_date,owner,created_at\n"
    f"Nimbus - Forecasting,Nimbus Foods,zoe@nimbusfoods.com:champion,Demo,open,2026-09-30,{REP},2026-01-10\n"
)


@pytest.fixture
def factory(db_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(db_url)
    yield session_factory(engine)
    engine.dispose()


def csv_file(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def generation(factory: sessionmaker[Session]) -> tuple[int, str]:
    with factory() as s:
        state = read_generation(s)
    assert state is not None
    return state


def known(factory: sessionmaker[Session], cache: CrmCache, *emails: str) -> dict[str, str]:
    """Address -> contact name, as a batch sees it through ``cache``."""
    with factory() as s:
        crm = BatchCrmLookup(SqlCrmLookup(s), emails, cache=cache)
        return {e: c.name for e, c in crm.contacts_by_email(emails).items()}


def deal_names(factory: sessionmaker[Session], cache: CrmCache, email: str) -> list[str]:
    with factory() as s:
        crm = BatchCrmLookup(SqlCrmLookup(s), [email], cache=cache)
        contact = crm.contacts_by_email([email])[email]
        companies = [contact.company_id] if contact.company_id else []
        return [d.name for d in crm.deals_for([contact.id], companies)]


def test_every_crm_write_bumps_the_generation_and_a_rollback_does_not(
    factory: sessionmaker[Session], tmp_path: Path
) -> None:
    start, token = generation(factory)
    seen = {token}
    files = (("companies.csv", COMPANIES), ("contacts.csv", MORE_CONTACTS), ("opps.csv", OPPORTUNITIES))
    for name, text in files:
        import_csv(factory, csv_file(tmp_path, name, text))
        gen, token = generation(factory)
        assert gen == start + len(seen) and token not in seen
        seen.add(token)
    with transaction(factory) as s:
        writer.create_contact(s, NewContact("kim@nimbusfoods.com", "Kim", None, "create_contacts=sent"), None)
    gen, token = generation(factory)
    assert gen == start + 4 and token not in seen

    with pytest.raises(RuntimeError), transaction(factory) as s:
        writer.create_contact(s, NewContact("ray@nimbusfoods.com", "Ray", None, "create_contacts=sent"), None)
        raise RuntimeError("the batch fails")
    assert generation(factory) == (gen, token)


def test_a_crm_import_invalidates_the_cache(factory: sessionmaker[Session], tmp_path: Path) -> None:
    import_csv(factory, csv_file(tmp_path, "companies.csv", COMPANIES))
    import_csv(factory, csv_file(tmp_path, "contacts.csv", CONTACTS))
    cache = CrmCache()
    assert known(factory, cache, "lea@nimbusfoods.com", "zoe@nimbusfoods.com") == {
        "lea@nimbusfoods.com": "Lea Park"  # and zoe cached as no contact
    }
    with factory() as s:
        facts = cache.facts(s)
        assert len(facts) > 0 and cache.facts(s) is facts  # nothing changed: the same facts serve

    import_csv(factory, csv_file(tmp_path, "contacts.csv", MORE_CONTACTS))
    with factory() as s:
        assert cache.facts(s) is not facts
    assert known(factory, cache, "lea@nimbusfoods.com", "zoe@nimbusfoods.com") == {
        "lea@nimbusfoods.com": "Lea Parker",
        "zoe@nimbusfoods.com": "Zoe Ito",
    }
    assert deal_names(factory, cache, "zoe@nimbusfoods.com") == []
    import_csv(factory, csv_file(tmp_path, "opps.csv", OPPORTUNITIES))
    assert deal_names(factory, cache, "zoe@nimbusfoods.com") == ["Nimbus - Forecasting"]


def test_an_import_by_another_process_invalidates_the_cache(
    factory: sessionmaker[Session], db_url: str, tmp_path: Path
) -> None:
    import_csv(factory, csv_file(tmp_path, "companies.csv", COMPANIES))
    cache = CrmCache()
    assert known(factory, cache, "zoe@nimbusfoods.com") == {}  # cached: no contact has it
    path = csv_file(tmp_path, "contacts.csv", MORE_CONTACTS)
    code = textwrap.dedent(
        f"""
        from store.db import make_engine, session_factory
        from syncd.crm_import import import_csv
        print(import_csv(session_factory(make_engine({db_url!r})), {str(path)!r}))
        """
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, capture_output=True, timeout=120)
    assert known(factory, cache, "zoe@nimbusfoods.com") == {"zoe@nimbusfoods.com": "Zoe Ito"}


def test_a_contact_created_by_the_policy_invalidates_the_cache(
    factory: sessionmaker[Session], db_url: str, tmp_path: Path
) -> None:
    """The pipeline uses the process-wide cache: a contact it creates must be seen by every
    later batch, though they had cached that nobody had the address."""
    seed_crm(factory)
    new = "ines.duarte@acme-freight.com"
    cache = shared_cache()
    assert known(factory, cache, new) == {}  # cached: no contact has it
    before = generation(factory)
    to_new = email(REP, f"Ines Duarte <{new}>", "Intro", "Hi Ines.", message_id="maya-ines@lumenfold.io")
    box = maildir(tmp_path / "m", [to_new])
    cfg = config(tmp_path, db_url, maildir_account("m", box), policy='create_contacts = "sent"')
    Pipeline(cfg, factory).sync_account(cfg.accounts[0])
    assert generation(factory)[0] > before[0]
    assert known(factory, cache, new) == {new: "Ines Duarte"}
    assert deal_names(factory, cache, new) == ["Acme - Observability"]  # her company's deal


def test_a_rolled_back_write_leaves_no_stale_facts(factory: sessionmaker[Session]) -> None:
    """Facts read inside a transaction that wrote to the CRM (its own writes included) are cached
    under that transaction's new token, which a rollback makes unreachable: never taken for the
    facts of a later generation, even one with the same counter."""
    seed_crm(factory)
    new, kim = "ines.duarte@acme-freight.com", "kim@acme-freight.com"
    cache = CrmCache()
    with factory() as s:
        writer.create_contact(s, NewContact(new, "Ines", "Duarte", "create_contacts=sent"), None)
        crm = BatchCrmLookup(SqlCrmLookup(s), [new], cache=cache)
        assert crm.contacts_by_email([new])[new].name == "Ines Duarte"  # cached, uncommitted
        rolled_back = read_generation(s)
        s.rollback()
    with transaction(factory) as s:
        writer.create_contact(s, NewContact(kim, "Kim", None, "create_contacts=sent"), None)
    assert rolled_back is not None and generation(factory)[0] == rolled_back[0]  # the same counter
    assert known(factory, cache, new, kim) == {kim: "Kim"}


# --- warm equals cold ------------------------------------------------------------------------


def add_activity(
    s: Session, key: str, thread: str, when: datetime, deal: str, status: str = "linked"
) -> None:
    deal_id = s.scalars(select(Opportunity.id).where(Opportunity.name == deal)).one()
    activity = Activity(
        key=f"msg:{key}",
        kind="email",
        message_id=key,
        thread_key=thread,
        subject="s",
        direction="inbound",
        occurred_at=when,
        created_at=when,
        updated_at=when,
    )
    activity.links.append(
        ActivityLink(
            target_type="opportunity",
            target_id=deal_id,
            confidence=0.9,
            rule="r",
            reason="r",
            status=status,
            created_at=when,
        )
    )
    s.add(activity)


def message(
    sender: str, *to: str, subject: str = "Hello", thread: str | None = None
) -> tuple[tuple[Participant, ...], MessageFacts]:
    people = tuple(Participant(a, None, role) for a, role in [(sender, "from"), *((t, "to") for t in to)])
    facts = MessageFacts(
        subject=subject,
        text="Following up on the pilot and the observability rollout.",
        date=NOW,
        thread_key=thread,
        mailbox_owner=REP,
        internal_people=frozenset(p.email for p in people if ORG.is_internal(p.email)),
    )
    return people, facts


MESSAGES = [
    message("ana@acme-freight.com", REP, subject="Observability pricing"),
    message(REP, "a.n.a.ruiz+crm@gmail.com"),  # Ana's private address, as Gmail spells it too
    message("gus@globexhealth.com", REP, subject="Pilot next steps"),
    message("gus@globexhealth.com", REP, thread="<t-globex@x>"),
    message("ops@eu.globexhealth.com", REP),  # a subdomain of a company's domain
    message("pete@initech.net", REP),  # a won deal
    message("who@unknown-corp.com", REP),
    message("friend@gmail.com", REP),
    message("raj@lumenfold.io", REP),  # internal only
    message("gus@globexhealth.com", "ana@acme-freight.com", "pete@initech.net", REP),
]


def details(result: MatchResult) -> str:
    return json.dumps(
        {
            "links": [vars(link) for link in result.links],
            "suggestions": [vars(link) for link in result.suggestions],
            "notes": result.notes,
            "details": result.details(),
        },
        default=str,
        sort_keys=True,
    )


def match_all(crm: CrmLookup) -> list[str]:
    return [details(match(people, crm, ORG, facts)) for people, facts in MESSAGES]


@pytest.mark.parametrize("keys", ["one parameter", "expanding IN"])
def test_a_warm_cache_gives_what_a_cold_lookup_gives(
    factory: sessionmaker[Session], keys: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if keys == "expanding IN":  # how the keys are bound on other backends
        monkeypatch.setattr(crm_cache, "ONE_PARAMETER", frozenset())
    seed_crm(factory)
    with transaction(factory) as s:
        add_activity(s, "g1", "<t-globex@x>", datetime(2026, 2, 1, tzinfo=UTC), "Globex - Enterprise")
        add_activity(s, "g2", "<t-other@x>", datetime(2026, 2, 20, tzinfo=UTC), "Globex - Pilot")
        add_activity(s, "g3", "<t-other@x>", datetime(2026, 2, 25, tzinfo=UTC), "Globex - Pilot", "suggested")
        add_activity(s, "a1", "<t-acme@x>", datetime(2026, 1, 20, tzinfo=UTC), "Acme - Observability")
    emails = {p.email for people, _ in MESSAGES for p in people}
    threads = {facts.thread_key for _, facts in MESSAGES}
    cache = CrmCache()
    with factory() as s:
        naive = match_all(SqlCrmLookup(s))
        cold = match_all(BatchCrmLookup(SqlCrmLookup(s), emails, threads, cache=cache))
        facts = cache.facts(s)
        assert len(facts) > 0
        warm = match_all(BatchCrmLookup(SqlCrmLookup(s), emails, threads, cache=cache))
        assert cache.facts(s) is facts  # the second batch was served from the cache
        # ...and it holds the deals with their latest activity (most_recent) and threads counted:
        assert any("most_recent" in d for d in warm) and any("thread" in d for d in warm)
        # The deal references themselves, latest activity included (open deals only):
        sql = SqlCrmLookup(s)
        ids = [c.id for c in sql.contacts_by_email(emails).values()]
        companies = {c.id for c in sql.companies_by_domain({e.partition("@")[2] for e in emails}).values()}
        deals = sql.deals_for(ids, companies)
        assert BatchCrmLookup(sql, emails, threads, cache=cache).deals_for(ids, companies) == deals
        assert {d.name: d.last_activity_at is not None for d in deals} == {
            "Acme - Observability": True,
            "Globex - Enterprise": True,
            "Globex - Pilot": True,
            "Initech - 2025": False,  # won: its latest activity is never read
        }
    assert cold == naive
    assert warm == naive


def test_the_cache_keeps_a_bounded_number_of_entries(factory: sessionmaker[Session]) -> None:
    seed_crm(factory)
    with factory() as s:
        facts = CrmFacts("test", limit=2)
        assert set(facts.companies_by_id(s, [1, 2, 3, 4, 5])) == {1, 2, 3}  # 4 and 5: no such company
        assert len(facts) == 2  # the two most recently asked for
        assert facts.companies_by_id(s, [1])[1].name == "Acme Freight"  # evicted, then read again
