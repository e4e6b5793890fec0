"""The CRM as the matchers see it: read-only lookups by address, domain and contact."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import Integer, String, func, or_, select
from sqlalchemy.orm import Session

from matchers.deals import DealRef
from matchers.identity import canonical_email
from matchers.linking import CompanyRef, ContactRef
from store.crm_cache import (
    DEALS,
    CrmCache,
    KeyedSelect,
    company_rows,
    contact_rows,
    deal_refs,
    domain_rows,
    domain_suffixes,
    resolve_contacts,
    resolve_domains,
    shared_cache,
)
from store.models import Activity, ActivityLink, Opportunity, OpportunityContact

# Prebuilt Core statements on the session's connection, the keys bound as one parameter (see
# store.crm_cache.KeyedSelect): these two run for every batch, with a thousand keys or more.
_A, _L = Activity.__table__, ActivityLink.__table__
_LATEST = KeyedSelect(
    select(_L.c.target_id, func.max(_A.c.occurred_at))
    .select_from(_L.join(_A, _A.c.id == _L.c.activity_id))
    .where(_L.c.target_type == "opportunity", _L.c.status == "linked")
    .group_by(_L.c.target_id),
    _L.c.target_id,
    Integer,
)
_THREADS = KeyedSelect(
    select(_A.c.thread_key, _L.c.target_id, func.count())
    .select_from(_A.join(_L, _L.c.activity_id == _A.c.id))
    .where(_L.c.target_type == "opportunity", _L.c.status == "linked")
    .group_by(_A.c.thread_key, _L.c.target_id),
    _A.c.thread_key,
    String,
)


def latest_activity(session: Session, deal_ids: Iterable[int]) -> dict[int, datetime]:
    """Deal id -> when its latest linked activity happened (deals without one are left out)."""
    return dict(_LATEST.rows(session, deal_ids))  # type: ignore[arg-type]


def threads_deals(session: Session, thread_keys: Iterable[str | None]) -> dict[str, dict[int, int]]:
    """Thread key -> deal id -> how many activities of the thread are linked to the deal."""
    out: dict[str, dict[int, int]] = {}
    for key, deal_id, count in _THREADS.rows(session, sorted({k for k in thread_keys if k})):
        out.setdefault(key, {})[deal_id] = count
    return out


class SqlCrmLookup:
    """Every question asked of the database as it comes: what a batch falls back to when it is
    replayed item by item, and the reference the cached lookup is tested against."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def contacts_by_email(self, emails: Iterable[str]) -> dict[str, ContactRef]:
        """Contacts by address, compared as the mailbox they reach (j.smith+x@gmail.com is
        jsmith@gmail.com); an exact address wins over a canonical twin."""
        emails = list(emails)
        rows = contact_rows(self.session, {canonical_email(e) for e in emails})
        return resolve_contacts(emails, lambda canonical: rows.get(canonical, ()))

    def companies_by_domain(self, domains: Iterable[str]) -> dict[str, CompanyRef]:
        # A subdomain (mail.acme.com) belongs to the company owning acme.com: ask for every suffix.
        domains = set(domains)
        found = domain_rows(self.session, {s for d in domains for s in domain_suffixes(d)})
        return resolve_domains(domains, found.get)

    def companies_by_id(self, ids: Iterable[int]) -> dict[int, CompanyRef]:
        return company_rows(self.session, set(ids))

    def deals_for(self, contact_ids: Iterable[int], company_ids: Iterable[int]) -> list[DealRef]:
        """Every deal (open or closed) that lists one of the contacts or belongs to one of the companies."""
        contact_ids, company_ids = list(contact_ids), list(company_ids)
        if not contact_ids and not company_ids:
            return []
        by_contact = select(OpportunityContact.opportunity_id).where(
            OpportunityContact.contact_id.in_(contact_ids)
        )
        mine = or_(Opportunity.id.in_(by_contact), Opportunity.company_id.in_(company_ids))
        rows = self.session.execute(DEALS.where(mine).order_by(Opportunity.id)).all()
        if not rows:
            return []
        deals = deal_refs(self.session, rows)
        latest = latest_activity(self.session, [i for i, d in deals.items() if d.status == "open"])
        return [
            dataclasses.replace(d, last_activity_at=latest[i]) if i in latest else d for i, d in deals.items()
        ]

    def thread_deals(self, thread_key: str | None) -> dict[int, int]:
        return self.threads_deals([thread_key]).get(thread_key, {}) if thread_key else {}

    def threads_deals(self, thread_keys: Iterable[str | None]) -> dict[str, dict[int, int]]:
        return threads_deals(self.session, thread_keys)


class BatchCrmLookup:
    """The CRM facts a whole batch can need, gathered once, then served from memory.

    The CRM's own facts (contacts, companies, deals) come from the process-wide
    :class:`~store.crm_cache.CrmCache` while the CRM generation is unchanged, and from the
    database for what it does not hold yet; the facts that change with every sync (deals'
    latest activity, threads' deals) are queried for the batch.

    Links made while the batch is applied are noted with :meth:`note_links`, so that a
    reply later in the same batch follows its thread.
    """

    def __init__(
        self,
        crm: SqlCrmLookup,
        emails: Iterable[str],
        thread_keys: Iterable[str | None] = (),
        cache: CrmCache | None = None,
    ) -> None:
        session = crm.session
        facts = (cache or shared_cache()).facts(session)
        emails = set(emails)
        self._contacts: dict[str, ContactRef] = facts.contacts_by_email(session, emails)
        self._domains: dict[str, CompanyRef] = facts.companies_by_domain(
            session, {e.rpartition("@")[2] for e in emails}
        )
        contact_ids = {c.id for c in self._contacts.values()}
        company_ids = {c.company_id for c in self._contacts.values() if c.company_id} | {
            c.id for c in self._domains.values()
        }
        self._companies = facts.companies_by_id(session, company_ids)
        # Deal ids by contact on the deal and by company, for exactly the batch's contacts and
        # companies: what match() can ask for.
        self._by_contact = facts.deal_ids_by_contact(session, contact_ids)
        companies = facts.deals_of_companies(session, company_ids)
        self._by_company = {i: deals.ids for i, deals in companies.items()}
        refs: dict[int, DealRef] = {}
        open_ids: set[int] = set()
        for deals in companies.values():
            refs.update(zip(deals.ids, deals.deals, strict=True))
            open_ids.update(deals.open)
        # Deals of the contacts at other companies (most are at their own) come by id.
        more = set().union(*self._by_contact.values())
        self._deals = facts.deals(
            session, refs, open_ids, more, lambda open_ids: latest_activity(session, open_ids)
        )
        self._threads = threads_deals(session, thread_keys)

    def contacts_by_email(self, emails: Iterable[str]) -> dict[str, ContactRef]:
        return {e: self._contacts[e] for e in emails if e in self._contacts}

    def companies_by_domain(self, domains: Iterable[str]) -> dict[str, CompanyRef]:
        return {d: self._domains[d] for d in domains if d in self._domains}

    def companies_by_id(self, ids: Iterable[int]) -> dict[int, CompanyRef]:
        return {i: self._companies[i] for i in ids if i in self._companies}

    def deals_for(self, contact_ids: Iterable[int], company_ids: Iterable[int]) -> list[DealRef]:
        hits: set[int] = set()
        for company_id in company_ids:
            hits.update(self._by_company.get(company_id, ()))
        for contact_id in contact_ids:
            hits.update(self._by_contact.get(contact_id, ()))
        deals = self._deals
        return [deals[i] for i in sorted(hits) if i in deals]

    def thread_deals(self, thread_key: str | None) -> dict[int, int]:
        return dict(self._threads.get(thread_key, {})) if thread_key else {}

    def add_contact(self, contact: ContactRef) -> None:
        """A contact created while the batch is applied (the contact policy)."""
        self._contacts[contact.email] = contact

    def note_links(self, thread_key: str | None, deal_ids: Iterable[int]) -> None:
        if thread_key:
            counts = self._threads.setdefault(thread_key, {})
            for deal_id in deal_ids:
                counts[deal_id] = counts.get(deal_id, 0) + 1
