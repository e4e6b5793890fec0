"""The CRM as the matchers see it: read-only lookups by address, domain and contact."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from matchers.deals import DealRef, deal_keywords
from matchers.identity import canonical_email
from matchers.linking import CompanyRef, ContactRef
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


class SqlCrmLookup:
    def __init__(self, session: Session) -> None:
        self.session = session

    def contacts_by_email(self, emails: Iterable[str]) -> dict[str, ContactRef]:
        """Contacts by address, compared as the mailbox they reach (j.smith+x@gmail.com is
        jsmith@gmail.com); an exact address wins over a canonical twin."""
        by_canonical: dict[str, list[str]] = {}
        for email in emails:
            by_canonical.setdefault(canonical_email(email), []).append(email)
        if not by_canonical:
            return {}
        rows = self.session.execute(
            select(
                ContactEmail.email,
                ContactEmail.canonical,
                Contact.id,
                Contact.first_name,
                Contact.last_name,
                Contact.company_id,
            )
            .join(Contact, Contact.id == ContactEmail.contact_id)
            .where(ContactEmail.canonical.in_(list(by_canonical)))
        )
        out: dict[str, ContactRef] = {}
        exact: set[str] = set()
        for stored, canonical, cid, first, last, company_id in rows:
            name = " ".join(p for p in (first, last) if p) or stored
            for email in by_canonical.get(canonical, ()):
                if email == stored or email not in exact:
                    out[email] = ContactRef(cid, name, email, company_id)
                    if email == stored:
                        exact.add(email)
        return out

    def companies_by_domain(self, domains: Iterable[str]) -> dict[str, CompanyRef]:
        # A subdomain (mail.acme.com) belongs to the company owning acme.com: ask for every suffix.
        domains = set(domains)
        wanted = {".".join(d.split(".")[i:]) for d in domains for i in range(d.count("."))}
        if not wanted:
            return {}
        rows = self.session.execute(
            select(CompanyDomain.domain, Company.id, Company.name)
            .join(Company, Company.id == CompanyDomain.company_id)
            .where(CompanyDomain.domain.in_(sorted(wanted)))
        )
        found = {d: CompanyRef(cid, name) for d, cid, name in rows}
        out: dict[str, CompanyRef] = {}
        for domain in domains:
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

    def deals_for(self, contact_ids: Iterable[int], company_ids: Iterable[int]) -> list[DealRef]:
        """Every deal (open or closed) that lists one of the contacts or belongs to one of the companies."""
        contact_ids, company_ids = list(contact_ids), list(company_ids)
        if not contact_ids and not company_ids:
            return []
        by_contact = select(OpportunityContact.opportunity_id).where(
            OpportunityContact.contact_id.in_(contact_ids)
        )
        # Columns, not the Opportunity entity: loading entities builds ORM objects and fires the
        # lazy="selectin" load of Opportunity.contact_roles, which the roles query below already covers.
        opp = Opportunity.__table__.c
        rows = self.session.execute(
            select(
                opp.id,
                opp.name,
                opp.company_id,
                opp.stage,
                opp.status,
                opp.created_at,
                opp.close_date,
                opp.owner_email,
                opp.product,
                opp.keywords,
                Company.name,
            )
            .outerjoin(Company, Company.id == Opportunity.company_id)
            .where(or_(Opportunity.id.in_(by_contact), Opportunity.company_id.in_(company_ids)))
            .order_by(Opportunity.id)
        ).all()
        if not rows:
            return []
        ids = [row.id for row in rows]
        roles: dict[int, list[tuple[int, str | None]]] = {i: [] for i in ids}
        for oid, cid, role in self.session.execute(
            select(
                OpportunityContact.opportunity_id, OpportunityContact.contact_id, OpportunityContact.role
            ).where(OpportunityContact.opportunity_id.in_(ids))
        ):
            roles[oid].append((cid, role))
        latest = dict(
            self.session.execute(
                select(ActivityLink.target_id, func.max(Activity.occurred_at))
                .join(Activity, Activity.id == ActivityLink.activity_id)
                .where(
                    ActivityLink.target_type == "opportunity",
                    ActivityLink.status == "linked",
                    ActivityLink.target_id.in_(ids),
                )
                .group_by(ActivityLink.target_id)
            ).all()
        )
        return [
            DealRef(
                id=oid,
                name=name,
                company_id=company_id,
                stage=stage,
                status=status,
                created_at=created_at,
                close_date=close_date,
                owner_email=(owner_email or "").lower() or None,
                roles=tuple(sorted(roles[oid], key=lambda r: r[0])),
                keywords=deal_keywords(name, product, keywords, company),
                last_activity_at=latest.get(oid),
            )
            for (
                oid,
                name,
                company_id,
                stage,
                status,
                created_at,
                close_date,
                owner_email,
                product,
                keywords,
                company,
            ) in rows
        ]

    def thread_deals(self, thread_key: str | None) -> dict[int, int]:
        return self.threads_deals([thread_key]).get(thread_key, {}) if thread_key else {}

    def threads_deals(self, thread_keys: Iterable[str | None]) -> dict[str, dict[int, int]]:
        keys = sorted({k for k in thread_keys if k})
        out: dict[str, dict[int, int]] = {}
        for i in range(0, len(keys), 500):
            rows = self.session.execute(
                select(Activity.thread_key, ActivityLink.target_id, func.count())
                .join(ActivityLink, ActivityLink.activity_id == Activity.id)
                .where(
                    Activity.thread_key.in_(keys[i : i + 500]),
                    ActivityLink.target_type == "opportunity",
                    ActivityLink.status == "linked",
                )
                .group_by(Activity.thread_key, ActivityLink.target_id)
            )
            for key, deal_id, count in rows:
                out.setdefault(key, {})[deal_id] = count
        return out


class BatchCrmLookup:
    """The CRM facts a whole batch can need, fetched in a few queries, then served from memory.

    Links made while the batch is applied are noted with :meth:`note_links`, so that a
    reply later in the same batch follows its thread.
    """

    def __init__(
        self, crm: SqlCrmLookup, emails: Iterable[str], thread_keys: Iterable[str | None] = ()
    ) -> None:
        emails = sorted(set(emails))
        self._contacts: dict[str, ContactRef] = {}
        self._domains: dict[str, CompanyRef] = {}
        for i in range(0, len(emails), 500):
            chunk = emails[i : i + 500]
            self._contacts.update(crm.contacts_by_email(chunk))
            self._domains.update(crm.companies_by_domain({e.rpartition("@")[2] for e in chunk}))
        contact_ids = {c.id for c in self._contacts.values()}
        company_ids = {c.company_id for c in self._contacts.values() if c.company_id} | {
            c.id for c in self._domains.values()
        }
        self._companies = crm.companies_by_id(company_ids)
        self._deals = crm.deals_for(contact_ids, company_ids)
        # Positions in self._deals (ordered by id) by company and by contact on the deal.
        self._by_company: dict[int, list[int]] = {}
        self._by_contact: dict[int, list[int]] = {}
        for i, deal in enumerate(self._deals):
            if deal.company_id is not None:
                self._by_company.setdefault(deal.company_id, []).append(i)
            for cid, _ in deal.roles:
                self._by_contact.setdefault(cid, []).append(i)
        self._threads = crm.threads_deals(thread_keys)

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
        return [self._deals[i] for i in sorted(hits)]

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
