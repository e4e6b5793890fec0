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
from matchers.deals import DealRef, DealScore, MessageFacts, score_deals
from matchers.domains import is_free_mail
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


class CrmLookup(Protocol):
    def contacts_by_email(self, emails: Iterable[str]) -> dict[str, ContactRef]: ...
    def companies_by_domain(self, domains: Iterable[str]) -> dict[str, CompanyRef]: ...
    def companies_by_id(self, ids: Iterable[int]) -> dict[int, CompanyRef]: ...
    def deals_for(self, contact_ids: Iterable[int], company_ids: Iterable[int]) -> list[DealRef]: ...
    def thread_deals(self, thread_key: str | None) -> dict[int, int]:
        """Deal id -> how many activities of this thread are linked to it."""
        ...


@dataclass(frozen=True)
class Thresholds:
    link: float = 0.5  # at or above: linked automatically
    review: float = 0.2  # at or above (and below ``link``): suggested in the review queue


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
    suggestions: list[Link] = field(default_factory=list)  # deals for the review queue
    notes: list[str] = field(default_factory=list)  # links refused, and why
    candidates: list[DealScore] = field(default_factory=list)
    people: dict[str, str] = field(default_factory=dict)  # address -> how it was identified
    exclusions: str | None = None  # which exclusion rules were checked, for explain

    @property
    def known(self) -> bool:
        """At least one external participant is a CRM contact or from a CRM company."""
        return any(link.target_type in ("contact", "company") for link in self.links)

    def details(self) -> dict[str, object]:
        return {
            "participants": [{"email": e, "identified_as": how} for e, how in sorted(self.people.items())],
            "exclusions": self.exclusions,
            "links": [
                {
                    "type": link.target_type,
                    "target": link.target_name,
                    "rule": link.rule,
                    "reason": link.reason,
                }
                for link in self.links
                if link.target_type != "opportunity"
            ],
            "deal_candidates": [c.as_dict() for c in self.candidates],
            "notes": list(self.notes),
        }


def match(
    participants: Iterable[Participant],
    crm: CrmLookup,
    org: OrgIdentity,
    facts: MessageFacts | None = None,
    thresholds: Thresholds = Thresholds(),
) -> MatchResult:
    people = list(participants)
    internal = {p.email for p in people if org.is_internal(p.email)}
    external = sorted({p.email for p in people} - internal)
    result = MatchResult()
    result.people = {p.email: "internal: our organization" for p in people if p.email in internal}
    if not external:
        result.notes.append("no external participant: not linked to any contact, company or deal")
        return result

    contacts = crm.contacts_by_email(external)
    companies: dict[int, tuple[CompanyRef, str, str]] = {}  # id -> (company, rule, reason)
    for email in external:
        contact = contacts.get(email)
        if contact is None:
            continue
        result.people[email] = f"contact {contact.name}"
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

    unmatched = {e: domain_of(e) for e in external if e not in contacts}
    # A free-mail domain never identifies a company, whatever the CRM says.
    free = {d for d in unmatched.values() if is_free_mail(d)}
    domains = crm.companies_by_domain(set(unmatched.values()) - free)
    for email, domain in unmatched.items():
        if domain in free:
            result.people[email] = "unknown: a free-mail address that is no contact's"
            result.notes.append(f"{email} is not a CRM contact, and a free-mail domain identifies no company")
            continue
        company = domains.get(domain)
        if company is None:
            result.people[email] = "unknown: not a contact, and its domain belongs to no company"
            result.notes.append(f"{email} is not a CRM contact and its domain belongs to no CRM company")
            continue
        result.people[email] = f"not a contact; its domain belongs to {company.name}"
        if company.id not in companies:
            companies[company.id] = (
                company,
                "email_domain",
                f"{email} is not a contact, but {domain} is a domain of {company.name}",
            )
    for company, rule, reason in companies.values():
        confidence = 1.0 if rule == "contact_company" else 0.8
        result.links.append(Link("company", company.id, company.name, confidence, rule, reason))

    _link_deals(result, contacts, set(companies), crm, facts or MessageFacts(), thresholds)
    return result


def _link_deals(
    result: MatchResult,
    contacts: dict[str, ContactRef],
    company_ids: set[int],
    crm: CrmLookup,
    facts: MessageFacts,
    thresholds: Thresholds,
) -> None:
    if not contacts and not company_ids:
        return
    names = {c.id: c.name for c in contacts.values()}
    deals = crm.deals_for(names, company_ids)
    if not deals:
        result.notes.append("not linked to a deal: the contacts and companies have no deal")
        return
    scored = score_deals(deals, names, company_ids, facts, crm.thread_deals(facts.thread_key))
    result.candidates = scored
    floor = min(thresholds.link, thresholds.review)
    for s in scored:
        if s.confidence < floor:
            # Best first: no later candidate can be linked or suggested either, so their Links
            # (the reason strings) would be built for nothing. Their signals stay in candidates.
            break
        positive = "+".join(sig.rule for sig in s.signals if sig.weight > 0) or "none"
        why = "; ".join(sig.reason for sig in s.signals)
        link = Link(
            "opportunity",
            s.deal.id,
            s.deal.name,
            s.confidence,
            positive,
            f"confidence {s.confidence:.2f} (score {s.score:.2f} among {len(scored)} candidate(s)): {why}",
        )
        if s.confidence >= thresholds.link:
            result.links.append(link)
        elif s.confidence >= thresholds.review:
            result.suggestions.append(link)
    if not any(link.target_type == "opportunity" for link in result.links):
        best = scored[0]
        if result.suggestions:
            listed = ", ".join(f"{link.target_name!r} ({link.confidence:.2f})" for link in result.suggestions)
            result.notes.append(
                f"not linked to a deal: no candidate reached confidence {thresholds.link}; "
                f"in the review queue: {listed}"
            )
        else:
            result.notes.append(
                f"not linked to a deal: the best candidate, {best.deal.name!r}, has confidence "
                f"{best.confidence:.2f} ({'; '.join(sig.reason for sig in best.signals)})"
            )
