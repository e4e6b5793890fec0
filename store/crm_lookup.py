"""The CRM as the matchers see it: read-only lookups by address, domain and contact."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from matchers.linking import CompanyRef, ContactRef, OpportunityRef
from store.models import Company, CompanyDomain, Contact, ContactEmail, Opportunity, OpportunityContact


class SqlCrmLookup:
    def __init__(self, session: Session) -> None:
        self.session = session

    def contacts_by_email(self, emails: Iterable[str]) -> dict[str, ContactRef]:
        emails = list(emails)
        if not emails:
            return {}
        rows = self.session.execute(
            select(ContactEmail.email, Contact.id, Contact.first_name, Contact.last_name, Contact.company_id)
            .join(Contact, Contact.id == ContactEmail.contact_id)
            .where(ContactEmail.email.in_(emails))
        )
        out: dict[str, ContactRef] = {}
        for email, cid, first, last, company_id in rows:
            name = " ".join(p for p in (first, last) if p) or email
            out[email] = ContactRef(cid, name, email, company_id)
        return out

    def companies_by_domain(self, domains: Iterable[str]) -> dict[str, CompanyRef]:
        # A subdomain (mail.acme.com) belongs to the company owning acme.com: ask for every suffix.
        wanted: dict[str, str] = {}
        for domain in domains:
            parts = domain.split(".")
            for i in range(len(parts) - 1):
                wanted.setdefault(".".join(parts[i:]), domain)
        if not wanted:
            return {}
        rows = self.session.execute(
            select(CompanyDomain.domain, Company.id, Company.name)
            .join(Company, Company.id == CompanyDomain.company_id)
            .where(CompanyDomain.domain.in_(list(wanted)))
        )
        found = {d: CompanyRef(cid, name) for d, cid, name in rows}
        out: dict[str, CompanyRef] = {}
        for domain in {v for v in wanted.values()}:
            parts = domain.split(".")
            for i in range(len(parts) - 1):  # the longest owned suffix wins
                ref = found.get(".".join(parts[i:]))
                if ref:
                    out[domain] = ref
                    break
        return out

    def companies_by_id(self, ids: Iterable[int]) -> dict[int, CompanyRef]:
        ids = list(ids)
        if not ids:
            return {}
        rows = self.session.execute(select(Company.id, Company.name).where(Company.id.in_(ids)))
        return {cid: CompanyRef(cid, name) for cid, name in rows}

    def open_opportunities(self, contact_ids: Iterable[int]) -> list[OpportunityRef]:
        contact_ids = list(contact_ids)
        if not contact_ids:
            return []
        rows = self.session.execute(
            select(
                Opportunity.id,
                Opportunity.name,
                Opportunity.company_id,
                Opportunity.stage,
                OpportunityContact.contact_id,
            )
            .join(OpportunityContact, OpportunityContact.opportunity_id == Opportunity.id)
            .where(OpportunityContact.contact_id.in_(contact_ids), Opportunity.status == "open")
            .order_by(Opportunity.id)
        )
        deals: dict[int, tuple[str, int | None, str | None, set[int]]] = {}
        for oid, name, company_id, stage, contact_id in rows:
            deals.setdefault(oid, (name, company_id, stage, set()))[3].add(contact_id)
        return [
            OpportunityRef(oid, name, company_id, stage, frozenset(cids))
            for oid, (name, company_id, stage, cids) in deals.items()
        ]


class BatchCrmLookup:
    """The CRM facts a whole batch can need, fetched in four queries, then served from memory."""

    def __init__(self, crm: SqlCrmLookup, emails: Iterable[str]) -> None:
        emails = sorted(set(emails))
        self._contacts: dict[str, ContactRef] = {}
        self._domains: dict[str, CompanyRef] = {}
        for i in range(0, len(emails), 500):
            chunk = emails[i : i + 500]
            self._contacts.update(crm.contacts_by_email(chunk))
            self._domains.update(crm.companies_by_domain({e.rpartition("@")[2] for e in chunk}))
        contact_ids = {c.id for c in self._contacts.values()}
        self._companies = crm.companies_by_id({c.company_id for c in self._contacts.values() if c.company_id})
        self._deals = crm.open_opportunities(contact_ids)

    def contacts_by_email(self, emails: Iterable[str]) -> dict[str, ContactRef]:
        return {e: self._contacts[e] for e in emails if e in self._contacts}

    def companies_by_domain(self, domains: Iterable[str]) -> dict[str, CompanyRef]:
        return {d: self._domains[d] for d in domains if d in self._domains}

    def companies_by_id(self, ids: Iterable[int]) -> dict[int, CompanyRef]:
        return {i: self._companies[i] for i in ids if i in self._companies}

    def open_opportunities(self, contact_ids: Iterable[int]) -> list[OpportunityRef]:
        wanted = set(contact_ids)
        return [
            OpportunityRef(d.id, d.name, d.company_id, d.stage, d.contact_ids & wanted)
            for d in self._deals
            if d.contact_ids & wanted
        ]
