"""Matching again what a CRM change affects, incrementally.

A new contact gets its earlier held mail logged; a new or changed deal gets its earlier
threads linked; a company gaining a domain gets the mail from that domain. Only the
activities touching the changed addresses, domains and deals are read, never the whole
store, and links set by hand are never replaced.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import delete, or_, select
from sqlalchemy.orm import Session, selectinload

from connectors.message import Participant
from matchers.deals import MessageFacts
from matchers.linking import match
from store import activity_writer as writer
from store.crm_lookup import BatchCrmLookup, SqlCrmLookup
from store.db import transaction
from store.held import revive
from store.models import (
    Activity,
    ActivityLink,
    ActivityParticipant,
    ActivitySource,
    CompanyDomain,
    ContactEmail,
    HeldAddress,
    MailAccount,
    Opportunity,
    OpportunityContact,
    SkipLogEntry,
)
from syncd.crm_changes import CrmChanges
from syncd.pipeline import Pipeline

log = logging.getLogger(__name__)
CHUNK = 500


@dataclass
class RematchReport:
    activities: int = 0  # activities matched again
    relinked: int = 0  # whose links changed
    held_logged: int = 0  # held messages now logged

    def __str__(self) -> str:
        return (
            f"re-matched {self.activities} activities ({self.relinked} with new links), "
            f"logged {self.held_logged} held message(s)"
        )


def _chunks(values: Iterable[str] | Iterable[int]) -> Iterable[list]:
    items = sorted(set(values))  # type: ignore[type-var]
    for i in range(0, len(items), CHUNK):
        yield items[i : i + CHUNK]


def _address_filter(column_email, column_domain, emails: list[str], domains: list[str]):  # type: ignore[no-untyped-def]
    # A company domain covers its subdomains: mail.acme.co.uk is acme.co.uk's.
    clauses = [column_email.in_(emails)] if emails else []
    for chunk in _chunks(domains):
        clauses.append(column_domain.in_(chunk))
        clauses.extend(column_domain.endswith(f".{d}", autoescape=True) for d in chunk)
    return or_(*clauses) if clauses else None


def _scope(session: Session, changes: CrmChanges) -> tuple[list[str], list[str]]:
    """The addresses and domains whose mail the change affects, deals included."""
    emails, domains = set(changes.emails), set(changes.domains)
    company_ids = set(changes.company_ids)
    for chunk in _chunks(changes.deal_ids):
        contacts = select(OpportunityContact.contact_id).where(OpportunityContact.opportunity_id.in_(chunk))
        emails.update(
            session.scalars(select(ContactEmail.email).where(ContactEmail.contact_id.in_(contacts)))
        )
        company_ids.update(
            c for c in session.scalars(select(Opportunity.company_id).where(Opportunity.id.in_(chunk))) if c
        )
    for chunk in _chunks(company_ids):
        domains.update(
            session.scalars(select(CompanyDomain.domain).where(CompanyDomain.company_id.in_(chunk)))
        )
    return sorted(emails), sorted(domains)


def rematch(pipeline: Pipeline, changes: CrmChanges) -> RematchReport:
    report = RematchReport()
    if not changes:
        return report
    with transaction(pipeline.factory) as session:
        emails, domains = _scope(session, changes)
        ids: set[int] = set()
        where = _address_filter(ActivityParticipant.email, ActivityParticipant.domain, emails, domains)
        if where is not None:
            ids.update(session.scalars(select(ActivityParticipant.activity_id).where(where)))
        for chunk in _chunks(changes.deal_ids):
            ids.update(
                session.scalars(
                    select(ActivityLink.activity_id).where(
                        ActivityLink.target_type == "opportunity", ActivityLink.target_id.in_(chunk)
                    )
                )
            )
        report.held_logged = _log_held(session, pipeline, emails, domains)
        threads = _relink(session, pipeline, ids, report)
        # A thread that just got its deal pulls its other messages along (once, not recursively).
        if threads:
            more = set(session.scalars(select(Activity.id).where(Activity.thread_key.in_(sorted(threads)))))
            _relink(session, pipeline, more - ids, report)
    log.info("%s", report)
    return report


def _log_held(session: Session, pipeline: Pipeline, emails: list[str], domains: list[str]) -> int:
    where = _address_filter(HeldAddress.email, HeldAddress.domain, emails, domains)
    if where is None:
        return 0
    skip_ids = set(session.scalars(select(HeldAddress.skip_id).where(where)))
    groups: dict[tuple[int, str], list[SkipLogEntry]] = defaultdict(list)
    for chunk in _chunks(skip_ids):
        for entry in session.scalars(
            select(SkipLogEntry).where(SkipLogEntry.id.in_(chunk), SkipLogEntry.held.is_not(None))
        ):
            groups[entry.account_id, entry.folder].append(entry)
    owners = dict(session.execute(select(MailAccount.id, MailAccount.owner_email)).all())
    logged = 0
    for (account_id, folder), entries in groups.items():
        held = [(e.provider_id, revive(e.held)) for e in entries if e.held]
        logged += pipeline.log_held(session, account_id, owners[account_id], folder, held)
        now_logged = set(
            session.scalars(
                select(ActivitySource.provider_id).where(
                    ActivitySource.account_id == account_id,
                    ActivitySource.folder == folder,
                    ActivitySource.provider_id.in_([e.provider_id for e in entries]),
                )
            )
        )
        gone = [e.id for e in entries if e.provider_id in now_logged]
        if gone:
            session.execute(delete(SkipLogEntry).where(SkipLogEntry.id.in_(gone)))
    return logged


def _relink(session: Session, pipeline: Pipeline, ids: set[int], report: RematchReport) -> set[str]:
    """Match these activities again; returns the threads whose deal links changed."""
    threads: set[str] = set()
    owners = (
        dict(
            session.execute(
                select(ActivitySource.activity_id, MailAccount.owner_email)
                .join(MailAccount, MailAccount.id == ActivitySource.account_id)
                .where(ActivitySource.activity_id.in_(sorted(ids)))
            ).all()
        )
        if ids
        else {}
    )
    for chunk in _chunks(ids):
        activities = list(
            session.scalars(
                select(Activity)
                .where(Activity.id.in_(chunk))
                .options(selectinload(Activity.participants), selectinload(Activity.links))
                .order_by(Activity.occurred_at)
            )
        )
        crm = BatchCrmLookup(
            SqlCrmLookup(session),
            {p.email for a in activities for p in a.participants},
            {a.thread_key for a in activities},
        )
        for activity in activities:
            report.activities += 1
            people = [Participant(p.email, p.display_name, p.role, p.rsvp) for p in activity.participants]  # type: ignore[arg-type]
            internal = frozenset(p.email for p in people if pipeline.org.is_internal(p.email))
            facts = MessageFacts(
                subject=activity.subject,
                text=activity.body_text or "",
                date=activity.occurred_at,
                thread_key=activity.thread_key,
                mailbox_owner=owners.get(activity.id),
                internal_people=internal,
            )
            result = match(people, crm, pipeline.org, facts, pipeline.config.thresholds)
            manual = {(link.target_type, link.target_id) for link in activity.links if link.manual}
            before = {
                (link.target_type, link.target_id, link.status) for link in activity.links if not link.manual
            }
            after = {
                (link.target_type, link.target_id, status)
                for status, links in (("linked", result.links), ("suggested", result.suggestions))
                for link in links
                if (link.target_type, link.target_id) not in manual
            }
            if before != after:
                writer.replace_links(session, activity, result)
                report.relinked += 1
                if {x for x in before if x[0] == "opportunity"} != {
                    x for x in after if x[0] == "opportunity"
                }:
                    threads.add(activity.thread_key or "")
            deals = [link.target_id for link in result.links if link.target_type == "opportunity"]
            crm.note_links(activity.thread_key, deals)
    threads.discard("")
    return threads
