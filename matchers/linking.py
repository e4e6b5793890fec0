"""Links an activity to contacts, companies and deals, with a confidence and a reason.

A pure decision: :func:`match` reads what the CRM knows through :class:`CrmLookup`
and returns links and the notes of the links it refused; it never writes. That is what
makes ``syncd explain`` free.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

from connectors.message import Participant
from matchers.identity import OrgIdentity, domain_of


@dataclass(frozen=True)
class ContactRef:
    id: int
    name: str
    email: str
    company_id: int | None


@dataclass(frozen=True)
class CompanyRef:
    id: int
    name: str


@dataclass(frozen=True)
class OpportunityRef:
    id: int
    name: str
    company_id: int | None
    stage: str | None
    contact_ids: frozenset[int]


class CrmLookup(Protocol):
    def contacts_by_email(self, emails: Iterable[str]) -> dict[str, ContactRef]: ...
    def companies_by_domain(self, domains: Iterable[str]) -> dict[str, CompanyRef]: ...
    def companies_by_id(self, ids: Iterable[int]) -> dict[int, CompanyRef]: ...
    def open_opportunities(self, contact_ids: Iterable[int]) -> list[OpportunityRef]: ...


@dataclass(frozen=True)
class Link:
    target_type: str  # contact, company, opportunity
    target_id: int
    target_name: str
    confidence: float
    rule: str
    reason: str


@dataclass
class MatchResult:
    links: list[Link] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # links refused, and why

    @property
    def known(self) -> bool:
        """At least one external participant is a CRM contact or from a CRM company."""
        return any(link.target_type in ("contact", "company") for link in self.links)


def match(participants: Iterable[Participant], crm: CrmLookup, org: OrgIdentity) -> MatchResult:
    external = sorted({p.email for p in participants if not org.is_internal(p.email)})
    result = MatchResult()
    if not external:
        result.notes.append("no external participant: not linked to any contact, company or deal")
        return result

    contacts = crm.contacts_by_email(external)
    companies: dict[int, tuple[CompanyRef, str, str]] = {}  # id -> (company, rule, reason)
    for email in external:
        contact = contacts.get(email)
        if contact is None:
            continue
        result.links.append(
            Link(
                "contact", contact.id, contact.name, 1.0, "email_exact", f"{email} is contact {contact.name}"
            )
        )
    by_id = crm.companies_by_id({c.company_id for c in contacts.values() if c.company_id is not None})
    for contact in contacts.values():
        company = by_id.get(contact.company_id) if contact.company_id is not None else None
        if company and company.id not in companies:
            companies[company.id] = (company, "contact_company", f"{contact.name} works at {company.name}")

    unmatched = [e for e in external if e not in contacts]
    domains = crm.companies_by_domain({domain_of(e) for e in unmatched})
    for email in unmatched:
        company = domains.get(domain_of(email))
        if company is None:
            result.notes.append(f"{email} is not a CRM contact and its domain belongs to no CRM company")
        elif company.id not in companies:
            companies[company.id] = (
                company,
                "email_domain",
                f"{email} is not a contact, but {domain_of(email)} is a domain of {company.name}",
            )
    for company, rule, reason in companies.values():
        confidence = 1.0 if rule == "contact_company" else 0.8
        result.links.append(Link("company", company.id, company.name, confidence, rule, reason))

    _link_deal(result, contacts, crm)
    return result


def _link_deal(result: MatchResult, contacts: dict[str, ContactRef], crm: CrmLookup) -> None:
    if not contacts:
        return
    by_id = {c.id: c for c in contacts.values()}
    deals = crm.open_opportunities(by_id)
    if len(deals) == 1:
        deal = deals[0]
        names = ", ".join(sorted(by_id[c].name for c in deal.contact_ids if c in by_id))
        result.links.append(
            Link(
                "opportunity",
                deal.id,
                deal.name,
                0.9,
                "single_open_deal",
                f"{names} {'is a contact' if ',' not in names else 'are contacts'} on {deal.name!r}, "
                "the only open deal they are on",
            )
        )
    elif len(deals) > 1:
        listed = ", ".join(repr(d.name) for d in sorted(deals, key=lambda d: d.name))
        result.notes.append(
            f"not linked to a deal: the contacts are on {len(deals)} open deals ({listed}); "
            "the simple rule needs exactly one"
        )
    else:
        result.notes.append("not linked to a deal: no open deal lists these contacts")
