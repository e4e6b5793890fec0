"""Linking throughput: ``match`` against a CRM of 100,000 contacts and 50,000 deals on SQLite.

The issue's goal: at least 5,000 messages per second on one core, the way the pipeline
matches, i.e. one :class:`BatchCrmLookup` per batch of 500 messages (its prefetch queries
included in the figure), then :func:`match` per message. The peer, measured in the same
run, is the naive way: :class:`SqlCrmLookup` queried per message; it is slow, so it runs on
the first 5,000 messages only, and the ratio compares both ways on those same messages.
The two ways must also agree: the run counts the messages whose links differ.

The CRM is generated (seeded, so every run builds the same one) into a fresh SQLite file
on local disk: companies with their domains, contacts (some on free-mail), deals with
contact roles, stages and owners over two years, and linked activities grouped in threads,
so that the thread and last-activity lookups have data. The messages are generated too, as
participants and :class:`MessageFacts` (the parser is not involved): ~60% with known
contacts, ~15% from a known company domain but an unknown person, ~15% unknown, ~10%
internal only. Building the CRM is timed apart and is not part of the figure.

The figure depends most on how many candidate deals a message has (big accounts have dozens
of deals): the run prints it, and the JSON carries it as ``candidates_per_message``.

CRM facts are cached across batches, process-wide, while the CRM does not change
(``store/crm_cache.py``). The cache starts empty but for the warm-up batch, and the 20,000
messages carry ~22,600 addresses, ~14,500 of the 100,000 contacts among them, mostly seen
once: the figure is mostly the cost of filling the cache. A second pass over the same
messages, with the cache warm (the steady state of a mailbox whose correspondents recur), is
printed and carried as ``warm_messages_per_s``.

The cyclic garbage collector is set up as ``syncd`` sets it up (``syncd.cli.tune_gc``: what
start-up made is frozen, gen0 threshold raised), here once the CRM and the messages are
generated: they stand for start-up, and the generator's structures are not the pipeline's.

Run: ``.venv/bin/python bench/match.py``; the last line is JSON for CI.
"""

from __future__ import annotations

import dataclasses
import gc
import itertools
import json
import random
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from connectors.message import Participant
from matchers.deals import MessageFacts
from matchers.identity import OrgIdentity
from matchers.linking import CrmLookup, MatchResult, match
from store.crm_lookup import BatchCrmLookup, SqlCrmLookup
from store.db import make_engine, session_factory
from store.migrate import upgrade
from store.models import (
    Activity,
    ActivityLink,
    Company,
    CompanyDomain,
    Contact,
    ContactEmail,
    Opportunity,
    OpportunityContact,
)
from syncd.cli import tune_gc

SEED = 20261203
COMPANIES = 20_000
CONTACTS = 100_000
OPPORTUNITIES = 50_000
ACTIVITIES = 50_000
MESSAGES = 20_000
NAIVE_MESSAGES = 5_000  # the peer is slow: a quarter of the messages keeps the run short
BATCH = 500  # as in the pipeline: one BatchCrmLookup per batch the source yields
GOAL_MSGS_PER_S = 5_000
NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)
ORG_DOMAIN = "ourco.com"
REPS = 50

FIRST = """james mary john patricia robert jennifer michael linda william elizabeth david barbara richard
susan joseph jessica thomas sarah charles karen daniel lisa matthew nancy anthony betty mark sandra
paul ashley steven kimberly andrew emily kenneth donna joshua michelle kevin carol brian amanda
george melissa timothy deborah ronald stephanie jason rebecca edward laura jeffrey sharon ryan cynthia
jacob kathleen gary amy nicholas angela eric shirley jonathan anna stephen brenda larry pamela justin
emma scott nicole brandon helen benjamin samantha samuel katherine gregory christine alexander debra
frank rachel patrick carolyn raymond janet jack maria dennis olivia jerry heather tyler diane aaron
julie jose joyce adam victoria henry ruth nathan virginia douglas lauren zachary kelly peter christina
kyle joan noah evelyn ethan judith jeremy andrea walter hannah christian megan keith cheryl roger
jacqueline terry martha austin madison sean teresa gerald gloria carl sara harold janice dylan ann
arthur kathryn lawrence abigail jordan sophia jesse frances bryan jean billy alice bruce judy gabriel
isabella joe julia logan grace albert amber willie denise alan danielle eugene marilyn russell beverly
wayne charlotte randy natalie vincent theresa philip diana bobby brittany johnny doris louis kayla
""".split()
LAST = """smith johnson williams brown jones garcia miller davis rodriguez martinez hernandez lopez
gonzalez wilson anderson thomas taylor moore jackson martin lee perez thompson white harris sanchez
clark ramirez lewis robinson walker young allen king wright scott torres nguyen hill flores green
adams nelson baker hall rivera campbell mitchell carter roberts gomez phillips evans turner diaz
parker cruz edwards collins reyes stewart morris morales murphy cook rogers gutierrez ortiz morgan
cooper peterson bailey reed kelly howard ramos kim cox ward richardson watson brooks chavez wood
james bennett gray mendoza ruiz hughes price alvarez castillo sanders patel myers long ross foster
jimenez powell jenkins perry russell sullivan bell coleman butler henderson barnes gonzales fisher
vasquez simmons romero jordan patterson alexander hamilton graham reynolds griffin wallace moreno west
cole hayes bryant herrera gibson ellis tran medina aguilar stevens murray ford castro marshall owens
harrison fernandez mcdonald woods washington kennedy wells vargas henry chen freeman webb tucker guzman
burns crawford olson simpson porter hunter gordon mendez silva shaw snyder mason dixon munoz hunt hicks
holmes palmer wagner black robertson boyd rose stone salazar fox warren mills meyer rice schmidt garza
""".split()
SYLLABLES_A = """ac glo ini umb vex nor sol tyr cyb won oscor hoo pie vand aper mon ster pres naka zan kor
lum bri cal dra el fen gal hel ith jun kal lar mer nev ora pal quin ros sar tal ulm ver wyn xan yor zeph
""".split()
SYLLABLES_B = """me bex tech rella tora wind aris ell dyne ka li per rix vant na ta lon via mos dex quist
nova gen byte mark sphere core loop wave path stone field""".split()
SECTORS = """Analytica Industries Logistics Foods Health Energy Robotics Media Capital Pharma Motors Retail
Labs Systems Networks Textiles Aerospace Biotech Insurance Holdings Consulting Software Chemicals
Hospitality Mining""".split()
LEGAL = ["", "", " Inc", " GmbH", " Ltd", " SA", " Group", " LLC"]
TLDS = ["com", "com", "com", "io", "de", "co.uk", "fr", "net", "nl", "com.au"]
FREE_MAIL = ["gmail.com", "outlook.com", "yahoo.com", "hotmail.com", "icloud.com", "gmx.de", "proton.me"]
PRODUCTS = """Analytics|Data Platform|Security Suite|Payments|CRM Connector|Forecasting|Mobile SDK|
Data Warehouse|Support Desk|Billing|Identity|Observability|Compliance|Workflow|Messaging|Search|
Reporting|Onboarding|Marketplace|Edge CDN""".replace("\n", "").split("|")
KINDS = ["New Business", "Expansion", "Renewal", "Upsell", "Pilot", "Migration", "Rollout", "POC"]
CODENAMES = "orion atlas hermes apollo zephyr borealis titan nimbus vega lyra".split()
OPEN_STAGES = ["Qualification", "Discovery", "Proposal", "Negotiation"]
ROLES = ["Decision Maker", "Champion", "Economic Buyer", "Technical Evaluator", "Influencer", None, None]
GENERIC_SUBJECTS = [
    "Quick question",
    "Following up",
    "Meeting next week",
    "Intro call",
    "Checking in",
    "Updated proposal",
    "Contract redlines",
    "Invoice",
    "Thanks for your time today",
    "Agenda for Thursday",
    "Security questionnaire",
    "Pricing",
]
PRODUCT_SUBJECTS = [
    "{p} rollout timeline",
    "Questions about {p}",
    "{p} pricing for next year",
    "{p} - next steps",
    "{p} demo follow-up",
    "{p} {k} proposal",
]
BODY = (
    "Hi {name},\n\nThanks for the call earlier. As discussed, {topic}. Could you send over the "
    "numbers by the end of the week? Our team is reviewing the timeline and we would like to "
    "align before the steering committee meets.\n\nBest regards,\n{sender}\n"
)


# --- the CRM --------------------------------------------------------------------------


@dataclass
class DealInfo:
    id: int
    company: int
    product: str
    kind: str
    status: str
    created: datetime
    closed: date | None
    owner: str
    contacts: list[int]
    threads: list[str] = field(default_factory=list)


@dataclass
class Crm:
    """What the generator keeps in memory to write realistic messages about the CRM it built."""

    domains: list[list[str]]  # company index -> its domains
    company_contacts: list[list[int]]  # company index -> contact ids
    contact_emails: dict[int, list[str]]
    company_deals: list[list[int]]  # company index -> deal ids
    deals: dict[int, DealInfo]
    reps: list[str]
    emails: int = 0
    opportunity_contacts: int = 0
    links: int = 0
    threads: int = 0


def _slug(text: str) -> str:
    return "".join(ch for ch in text.lower() if ch.isalnum())


def build_crm(engine: Engine, rng: random.Random) -> Crm:
    """Write the CRM with Core executemany inserts, ids assigned here (1..n) so rows can refer to them."""
    now = NOW.replace(tzinfo=None)
    reps = [f"{rng.choice(FIRST)}.{last}@{ORG_DOMAIN}" for last in rng.sample(LAST, REPS)]

    # Companies and domains. Weight: how big an account is (deals and contacts follow it).
    names = [
        f"{a.capitalize()}{b} {s}" for a in SYLLABLES_A for b in SYLLABLES_B for s in SECTORS
    ]  # 47 x 31 x 25
    names = rng.sample(names, COMPANIES)
    companies, domain_rows, domains, taken = [], [], [], set()
    for i, base in enumerate(names, start=1):
        name = base + rng.choice(LEGAL)
        short, sector = base.rsplit(" ", 1)
        companies.append({"id": i, "name": name, "name_key": name.casefold(), "industry": sector})
        own = []
        candidates = [f"{_slug(short)}{_slug(sector)[:4]}.{rng.choice(TLDS)}"]
        if rng.random() < 0.4:
            candidates.append(f"{_slug(short)}-{_slug(sector)}.{rng.choice(TLDS)}")
        for d in candidates:
            if d not in taken:
                taken.add(d)
                own.append(d)
                domain_rows.append({"company_id": i, "domain": d})
        domains.append(own)
    weight = [min(rng.paretovariate(1.5), 30.0) for _ in range(COMPANIES)]
    with_deals = set(rng.sample(range(COMPANIES), 12_000))
    deal_weight = [w if i in with_deals else 0.0 for i, w in enumerate(weight)]

    # Contacts: ~92% at a company (two at least at every company with deals), the rest free-mail only.
    owners = [i for i in with_deals for _ in range(2)]
    at_company = int(CONTACTS * 0.92)
    owners += rng.choices(range(COMPANIES), weights=[1 + w for w in weight], k=at_company - len(owners))
    owners += [None] * (CONTACTS - len(owners))
    rng.shuffle(owners)
    contacts, email_rows, used = [], [], set()
    company_contacts: list[list[int]] = [[] for _ in range(COMPANIES)]
    contact_emails: dict[int, list[str]] = {}

    def add_email(cid: int, address: str, primary: bool) -> None:
        n = 1
        local, _, dom = address.partition("@")
        while address in used:
            n += 1
            address = f"{local}{n}@{dom}"
        used.add(address)
        email_rows.append({"contact_id": cid, "email": address, "is_primary": primary})
        contact_emails.setdefault(cid, []).append(address)

    for cid, company in enumerate(owners, start=1):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        contacts.append(
            {
                "id": cid,
                "first_name": first.capitalize(),
                "last_name": last.capitalize(),
                "company_id": None if company is None else company + 1,
            }
        )
        if company is None or not domains[company]:
            add_email(cid, f"{first}.{last}{rng.randint(1, 99)}@{rng.choice(FREE_MAIL)}", True)
            continue
        company_contacts[company].append(cid)
        local = f"{first}.{last}" if rng.random() < 0.7 else f"{first[0]}{last}"
        add_email(cid, f"{local}@{domains[company][0]}", True)
        if rng.random() < 0.3:  # a second address: the other company domain, or private mail
            if len(domains[company]) > 1 and rng.random() < 0.5:
                add_email(cid, f"{local}@{domains[company][1]}", False)
            else:
                add_email(cid, f"{first}{last}{rng.randint(1, 999)}@{rng.choice(FREE_MAIL)}", False)

    # Opportunities with 1-4 contact roles; open ones mostly recent, closed ones over two years.
    opps, role_rows, deals = [], [], {}
    company_deals: list[list[int]] = [[] for _ in range(COMPANIES)]
    deal_names: set[tuple[str, int]] = set()
    for oid, company in enumerate(rng.choices(range(COMPANIES), weights=deal_weight, k=OPPORTUNITIES), 1):
        short = names[company].rsplit(" ", 1)[0]
        product, kind = rng.choice(PRODUCTS), rng.choice(KINDS)
        r = rng.random()
        status = "open" if r < 0.35 else "won" if r < 0.75 else "lost"
        age = rng.uniform(0, 270) if status == "open" else rng.uniform(15, 730)
        created = now - timedelta(days=age)
        if status == "open":
            closed = (now + timedelta(days=rng.uniform(10, 150))).date()
            stage = rng.choice(OPEN_STAGES)
        else:
            closed = min(now, created + timedelta(days=rng.uniform(14, 200))).date()
            stage = "Closed Won" if status == "won" else "Closed Lost"
        name = f"{short} - {product} {kind}"
        for suffix in (f" {created.year}", f" {created:%b %Y}", f" #{oid}"):
            if (name.casefold(), company) not in deal_names:
                break
            name = f"{short} - {product} {kind}{suffix}"
        deal_names.add((name.casefold(), company))
        owner = rng.choice(reps)
        opps.append(
            {
                "id": oid,
                "name": name,
                "name_key": name.casefold(),
                "company_id": company + 1,
                "stage": stage,
                "status": status,
                "amount": rng.randrange(5_000, 500_000, 500),
                "close_date": closed,
                "owner_email": owner,
                "product": product if rng.random() < 0.6 else None,
                "keywords": rng.choice(CODENAMES) if rng.random() < 0.15 else None,
                "created_at": created,
            }
        )
        people = company_contacts[company]
        on_deal = rng.sample(people, min(len(people), rng.choice([1, 1, 2, 2, 2, 3, 3, 4])))
        for cid in on_deal:
            role_rows.append({"opportunity_id": oid, "contact_id": cid, "role": rng.choice(ROLES)})
        deals[oid] = DealInfo(oid, company, product, kind, status, created, closed, owner, on_deal)
        company_deals[company].append(oid)

    # Activities in threads, each linked to a deal (a few threads touch a second deal of the company).
    activities, link_rows = [], []
    deal_ids = list(deals)
    recent = list(itertools.accumulate(1.0 + (deals[d].status == "open") * 3 for d in deal_ids))
    aid = thread_no = 0
    while aid < ACTIVITIES:
        deal = deals[rng.choices(deal_ids, cum_weights=recent)[0]]
        thread_no += 1
        key = f"<thread.{thread_no}.{rng.getrandbits(40):x}@mail.{rng.choice(['gmail.com', ORG_DOMAIN])}>"
        deal.threads.append(key)
        other = [d for d in company_deals[deal.company] if d != deal.id]
        second = rng.choice(other) if other and rng.random() < 0.05 else None
        end = min(now, datetime.combine(deal.closed, datetime.min.time())) if deal.closed else now
        for _ in range(min(rng.choice([1, 1, 2, 2, 3, 4, 6]), ACTIVITIES - aid)):
            aid += 1
            when = deal.created + (end - deal.created) * rng.random()
            activities.append(
                {
                    "id": aid,
                    "key": f"msg:{aid}.{key.strip('<>')}",
                    "kind": "email",
                    "message_id": f"{aid}.{key.strip('<>')}",
                    "thread_key": key,
                    "subject": f"{deal.product} {deal.kind.lower()}",
                    "occurred_at": when,
                    "direction": "outbound",
                    "all_day": False,
                    "created_at": when,
                    "updated_at": when,
                }
            )
            status = "linked" if rng.random() < 0.92 else "suggested"
            targets = [("opportunity", deal.id, status)]
            if second is not None:
                targets.append(("opportunity", second, "linked"))
            if deal.contacts:
                targets.append(("contact", rng.choice(deal.contacts), "linked"))
            for target_type, target_id, link_status in targets:
                link_rows.append(
                    {
                        "activity_id": aid,
                        "target_type": target_type,
                        "target_id": target_id,
                        "confidence": 0.9,
                        "rule": "contact_on_deal+open_deal",
                        "reason": "generated",
                        "manual": False,
                        "status": link_status,
                        "created_at": when,
                    }
                )

    with engine.begin() as conn:
        for model, rows in (
            (Company, companies),
            (CompanyDomain, domain_rows),
            (Contact, contacts),
            (ContactEmail, email_rows),
            (Opportunity, opps),
            (OpportunityContact, role_rows),
            (Activity, activities),
            (ActivityLink, link_rows),
        ):
            conn.execute(model.__table__.insert(), rows)
        conn.exec_driver_sql("ANALYZE")
    return Crm(
        domains,
        company_contacts,
        contact_emails,
        company_deals,
        deals,
        reps,
        emails=len(email_rows),
        opportunity_contacts=len(role_rows),
        links=len(link_rows),
        threads=thread_no,
    )


# --- the messages ---------------------------------------------------------------------


@dataclass(frozen=True)
class Message:
    kind: str  # known, domain, unknown, internal
    participants: tuple[Participant, ...]
    facts: MessageFacts


def _people(rng: random.Random, sender: str, recipients: list[str]) -> tuple[Participant, ...]:
    seen, out = {sender}, [Participant(sender, None, "from")]
    for i, address in enumerate(recipients):
        if address not in seen:
            seen.add(address)
            out.append(Participant(address, None, "to" if i == 0 or rng.random() < 0.6 else "cc"))
    return tuple(out)


def make_messages(crm: Crm, rng: random.Random, n: int) -> list[Message]:
    now = NOW.replace(tzinfo=None)
    deal_ids = list(crm.deals)
    open_weight = list(itertools.accumulate(1.0 + (crm.deals[d].status == "open") * 2 for d in deal_ids))
    with_contacts = [i for i, c in enumerate(crm.company_contacts) if c]
    with_domains = [i for i, d in enumerate(crm.domains) if d]
    contact_ids = list(crm.contact_emails)
    fresh_threads: list[str] = []
    out = []
    for i in range(n):
        r = rng.random()
        kind = "known" if r < 0.60 else "domain" if r < 0.75 else "unknown" if r < 0.90 else "internal"
        owner = rng.choice(crm.reps)
        internal = [owner] + ([rng.choice(crm.reps)] if rng.random() < 0.25 else [])
        when = now - timedelta(days=rng.uniform(0, 365))
        deal, thread = None, None
        if kind == "known" and rng.random() < 0.8:  # mail about a deal, with people on it
            deal = crm.deals[rng.choices(deal_ids, cum_weights=open_weight)[0]]
            if rng.random() < 0.6:
                internal[0] = deal.owner
            people = rng.sample(deal.contacts, min(len(deal.contacts), rng.choice([1, 1, 2])))
            colleagues = crm.company_contacts[deal.company]
            if colleagues and (rng.random() < 0.3 or not people):
                people.append(rng.choice(colleagues))
            external = [rng.choice(crm.contact_emails[c]) for c in people]
            start = deal.created - timedelta(days=20)
            end = datetime.combine(deal.closed, datetime.min.time()) + timedelta(days=15)
            when = start + (min(end, now) - start) * rng.random()
            if deal.threads and rng.random() < 0.35:
                thread = rng.choice(deal.threads)
        elif kind == "known":  # any contact, some on private mail or at a company without deals
            external = [rng.choice(crm.contact_emails[rng.choice(contact_ids)])]
            if rng.random() < 0.3:
                company = rng.choice(with_contacts)
                external.append(rng.choice(crm.contact_emails[rng.choice(crm.company_contacts[company])]))
        elif kind == "domain":  # a new person at a CRM company, now and then from a subdomain
            company = rng.choice(with_domains)
            dom = rng.choice(crm.domains[company])
            if rng.random() < 0.1:
                dom = f"{rng.choice(['eu', 'us', 'mail', 'corp'])}.{dom}"
            external = [f"{rng.choice(FIRST)}.{rng.choice(LAST)}.new{i}@{dom}"]
        elif kind == "unknown":
            dom = rng.choice(FREE_MAIL) if rng.random() < 0.4 else f"vendor{rng.randrange(5000)}.com"
            external = [
                f"{rng.choice(FIRST)}{rng.randrange(10_000)}@{dom}" for _ in range(rng.choice([1, 2]))
            ]
        else:
            external = []
            internal += rng.sample(crm.reps, rng.choice([1, 2, 3]))
        everyone = external + internal
        if kind != "internal" and rng.random() < 0.55:
            sender, rest = external[0], external[1:] + internal
        else:
            sender, rest = internal[0], [x for x in everyone if x != internal[0]]
        rest = rest[:5]  # 1 sender and 1-5 recipients
        participants = _people(rng, sender, rest)

        if deal is not None and rng.random() < 0.45:
            product = deal.product
        else:
            product = rng.choice(PRODUCTS) if rng.random() < 0.15 else None
        if product:
            subject = rng.choice(PRODUCT_SUBJECTS).format(p=product, k=deal.kind if deal else "")
            topic = f"the {product} {deal.kind.lower() if deal else 'evaluation'} is on track"
        else:
            subject = rng.choice(GENERIC_SUBJECTS)
            topic = "we are moving forward on our side"
        if thread is None:
            if fresh_threads and rng.random() < 0.2:
                thread = rng.choice(fresh_threads)
            else:
                thread = f"<{i}.{rng.getrandbits(48):x}@mail.example>"
                fresh_threads.append(thread)
        if thread and rng.random() < 0.6:
            subject = "Re: " + subject
        facts = MessageFacts(
            subject=subject,
            text=BODY.format(
                name=rest[0].split(".")[0].capitalize() if rest else "team", topic=topic, sender=sender
            ),
            date=when.replace(tzinfo=UTC),
            thread_key=thread,
            mailbox_owner=owner,
            internal_people=frozenset(p.email for p in participants if p.email.endswith("@" + ORG_DOMAIN)),
        )
        out.append(Message(kind, participants, facts))
    return out


# --- measuring ------------------------------------------------------------------------


@dataclass(frozen=True)
class Summary:
    """What the report needs of a MatchResult (the results themselves are not kept: see gc below)."""

    outcome: str  # linked, suggested, unlinked
    known: bool
    candidates: int
    signature: tuple[object, ...]  # links and suggestions, to compare the two ways


def summarize(result: MatchResult) -> Summary:
    if any(link.target_type == "opportunity" for link in result.links):
        outcome = "linked"
    else:
        outcome = "suggested" if result.suggestions else "unlinked"
    signature = (
        tuple(sorted((x.target_type, x.target_id, x.confidence) for x in result.links)),
        tuple(sorted((x.target_id, x.confidence) for x in result.suggestions)),
    )
    return Summary(outcome, result.known, len(result.candidates), signature)


@dataclass
class Run:
    messages: int = 0
    seconds: float = 0.0
    prefetch_s: float = 0.0
    match_s: float = 0.0
    batch_s: list[float] = field(default_factory=list)
    summaries: list[Summary] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.messages / self.seconds

    def rate_of_first(self, n: int) -> float:
        """Messages per second over the first ``n`` messages (whole batches)."""
        k = -(-n // BATCH)
        return min(n, self.messages) / sum(self.batch_s[:k])


def batches(messages: list[Message]) -> Iterator[list[Message]]:
    for i in range(0, len(messages), BATCH):
        yield messages[i : i + BATCH]


def run_batched(factory: sessionmaker[Session], messages: list[Message], org: OrgIdentity) -> Run:
    """The pipeline's way: per batch, one transaction, one BatchCrmLookup, then match each message."""
    run = Run(len(messages))
    clock = time.perf_counter
    for batch in batches(messages):
        t0 = clock()
        with factory() as session:
            t1 = clock()
            emails = {p.email for m in batch for p in m.participants}
            threads = {m.facts.thread_key for m in batch if m.facts.thread_key}
            crm = BatchCrmLookup(SqlCrmLookup(session), emails, threads)
            t2 = clock()
            results = [match(m.participants, crm, org, m.facts) for m in batch]
            t3 = clock()
            session.rollback()
        t4 = clock()
        run.batch_s.append(t4 - t0)
        run.prefetch_s += t2 - t1
        run.match_s += t3 - t2
        run.summaries += map(summarize, results)  # not timed
    run.seconds = sum(run.batch_s)
    return run


def run_naive(factory: sessionmaker[Session], messages: list[Message], org: OrgIdentity) -> Run:
    """The peer: the same transactions, but the CRM queried for each message."""
    run = Run(len(messages))
    clock = time.perf_counter
    for batch in batches(messages):
        t0 = clock()
        with factory() as session:
            crm: CrmLookup = SqlCrmLookup(session)
            results = [match(m.participants, crm, org, m.facts) for m in batch]
            session.rollback()
        run.batch_s.append(clock() - t0)
        run.summaries += map(summarize, results)
    run.seconds = run.match_s = sum(run.batch_s)
    return run


def fresh(messages: list[Message]) -> list[Message]:
    """The same messages with new MessageFacts: nothing a previous run computed and cached on them
    (the words of the subject and body) is left for the next one."""
    return [dataclasses.replace(m, facts=dataclasses.replace(m.facts)) for m in messages]


def filesystem(path: Path) -> str:
    """The type of the file system holding ``path`` (from /proc/mounts: longest mount point wins)."""
    best, kind = "", "unknown"
    try:
        for line in Path("/proc/mounts").read_text().splitlines():
            _dev, mount, fstype, *_ = line.split()
            if str(path).startswith(mount.rstrip("/") + "/") and len(mount) > len(best):
                best, kind = mount, fstype
    except OSError:
        pass
    return kind


def main() -> int:
    rng = random.Random(SEED)
    # /var/tmp: on disk where /tmp may be a tmpfs (RAM), which would flatter SQLite.
    tmp = "/var/tmp" if Path("/var/tmp").is_dir() else None
    workdir = Path(tempfile.mkdtemp(prefix="syncd-bench-match-", dir=tmp))
    fs = filesystem(workdir)
    if fs in ("tmpfs", "ramfs"):
        print(f"warning: {workdir} is on {fs}, not a local disk")
    try:
        engine = make_engine(f"sqlite:///{workdir / 'crm.db'}")
        t0 = time.perf_counter()
        upgrade(engine)
        crm = build_crm(engine, rng)
        build_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        messages = make_messages(crm, rng, MESSAGES + BATCH)
        gen_s = time.perf_counter() - t0
        warmup, messages = messages[:BATCH], messages[BATCH:]
        org = OrgIdentity.build([ORG_DOMAIN], crm.reps)
        factory = session_factory(engine)
        size_mb = (workdir / "crm.db").stat().st_size / 1e6

        ours_in, peer_in = fresh(messages), fresh(messages[:NAIVE_MESSAGES])
        # As syncd does once started (see the module's docstring). Before the warm-up, so that
        # what it caches is not frozen: in syncd, the CRM cache fills after start-up.
        tune_gc()
        run_batched(factory, warmup, org)  # compiled-statement cache, SQLite page cache
        run_naive(factory, fresh(warmup), org)
        cpu, wall = time.process_time(), time.perf_counter()
        ours = run_batched(factory, ours_in, org)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        warm = run_batched(factory, fresh(messages), org)
        peer = run_naive(factory, peer_in, org)
        engine.dispose()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    # The ratio compares the same messages: the first NAIVE_MESSAGES, whole batches.
    ratio = ours.rate_of_first(peer.messages) / peer.rate
    prefetch_share = ours.prefetch_s / (ours.prefetch_s + ours.match_s)
    outcomes = Counter(x.outcome for x in ours.summaries)
    by_kind: dict[str, Counter[str]] = {}
    for m, x in zip(messages, ours.summaries, strict=True):
        c = by_kind.setdefault(m.kind, Counter())
        c[x.outcome] += 1
        c["candidate"] += x.candidates > 0
        c["known"] += x.known
    differ = [
        i
        for i, (a, b) in enumerate(zip(ours.summaries, peer.summaries, strict=False))
        if a.signature != b.signature
    ]
    candidates = sum(x.candidates for x in ours.summaries)
    with_candidates = sum(1 for x in ours.summaries if x.candidates)

    print(f"SQLite file:            {workdir / 'crm.db'} ({fs}, {size_mb:,.0f} MB, removed after the run)")
    print(
        f"CRM built in {build_s:.1f} s: {COMPANIES:,} companies, {CONTACTS:,} contacts "
        f"({crm.emails:,} emails), {OPPORTUNITIES:,} deals ({crm.opportunity_contacts:,} contact roles), "
        f"{ACTIVITIES:,} activities in {crm.threads:,} threads ({crm.links:,} links)"
    )
    print(f"messages generated in {gen_s:.1f} s: {len(messages):,} (+{BATCH} for the warm-up)")
    print(
        f"batched (pipeline):     {ours.rate:,.0f} msg/s ({ours.seconds:.2f} s, "
        f"CPU {cpu / wall:.0%} of wall; goal {GOAL_MSGS_PER_S:,})"
    )
    print(
        f"  GC:                   as syncd sets it up (syncd.cli.tune_gc): start-up frozen, "
        f"gen0 threshold {gc.get_threshold()[0]:,}"
    )
    print(
        f"  prefetch:             {ours.prefetch_s:.2f} s ({prefetch_share:.0%}), "
        f"{ours.prefetch_s / (len(messages) / BATCH) * 1000:.1f} ms per batch of {BATCH}"
    )
    print(
        f"  match:                {ours.match_s:.2f} s ({1 - prefetch_share:.0%}), "
        f"{ours.match_s / len(messages) * 1e6:.0f} us per message"
    )
    print(
        f"batched, cache warm:    {warm.rate:,.0f} msg/s (the same messages again; "
        f"prefetch {warm.prefetch_s / (len(messages) / BATCH) * 1000:.1f} ms per batch)"
    )
    print(
        f"naive (per message):    {peer.rate:,.0f} msg/s ({peer.messages:,} messages, {peer.seconds:.2f} s)"
    )
    print(
        f"ratio:                  {ratio:.1f}x (batched on the same {peer.messages:,} messages: "
        f"{ours.rate_of_first(peer.messages):,.0f} msg/s)"
    )
    print(
        f"deals:                  linked {outcomes['linked']:,}, suggested {outcomes['suggested']:,}, "
        f"unlinked {outcomes['unlinked']:,}; {with_candidates:,} messages with candidates "
        f"({candidates / max(with_candidates, 1):.1f} candidates each; "
        f"{candidates / len(messages):.1f} per message)"
    )
    for kind in ("known", "domain", "unknown", "internal"):
        c = by_kind.get(kind, Counter())
        total = sum(c[o] for o in ("linked", "suggested", "unlinked"))
        print(
            f"  {kind:<9} {total:>6,}: known {c['known'] / max(total, 1):>4.0%}, "
            f"candidate {c['candidate'] / max(total, 1):>4.0%}, linked {c['linked']:>6,}, "
            f"suggested {c['suggested']:>5,}, unlinked {c['unlinked']:>6,}"
        )
    print(f"batched vs naive:       {len(differ)} of {peer.messages:,} results differ")
    for i in differ[:3]:
        print(f"  message {i} ({messages[i].kind}): {[p.email for p in messages[i].participants]}")
        print(f"    batched {ours.summaries[i].signature}\n    naive   {peer.summaries[i].signature}")
    figures = {
        "bench": "match",
        "contacts": CONTACTS,
        "opportunities": OPPORTUNITIES,
        "companies": COMPANIES,
        "activities": ACTIVITIES,
        "messages": len(messages),
        "batch": BATCH,
        "build_s": round(build_s, 1),
        "messages_per_s": round(ours.rate),
        "warm_messages_per_s": round(warm.rate),
        "naive_messages_per_s": round(peer.rate),
        "naive_messages": peer.messages,
        "ratio": round(ratio, 2),
        "prefetch_share": round(prefetch_share, 3),
        "linked": outcomes["linked"],
        "suggested": outcomes["suggested"],
        "unlinked": outcomes["unlinked"],
        "candidates_per_message": round(candidates / len(messages), 2),
        "batched_vs_naive_differ": len(differ),
        "goal_messages_per_s": GOAL_MSGS_PER_S,
        "meets_goal": ours.rate >= GOAL_MSGS_PER_S,
    }
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
