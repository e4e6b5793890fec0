"""Writing parsed CRM rows: match each row to its record, create or update it, count what changed.

Rows are written in batches, each flushed and then expunged from the session, so a 100k-row
file keeps only ids between batches; the caller's single transaction covers them all.

Every writer starts by bumping the CRM generation in that transaction, so that every process
caching CRM facts for matching (``store/crm_cache.py``) drops them once the import commits, and
keeps them if it rolls back. Before writing, not after: on PostgreSQL the bump locks the one
``crm_state`` row, and a CRM writer that always takes it first cannot deadlock with another
(the contact policy's writes take it first too). Even an import that changes nothing bumps it:
what changed is known only at the end.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar, TypeVarTuple

from sqlalchemy import Row, Select, select
from sqlalchemy.orm import QueryableAttribute, Session, selectinload

from matchers.identity import canonical_email
from store.crm_cache import bump_generation, domain_suffixes
from store.models import Company, CompanyDomain, Contact, ContactEmail, Opportunity, OpportunityContact
from syncd.crm_changes import CrmChanges
from syncd.crm_columns import Kind
from syncd.crm_csv import CompanyRow, ContactRow, CrmImportError, OpportunityRow, name_key

T = TypeVar("T")
Ts = TypeVarTuple("Ts")
_BATCH = 500  # rows per flush; also the size of IN (...) lists


@dataclass
class ImportReport:
    """What one import did, per entity: "companies", "contacts", "opportunities"."""

    kind: Kind
    path: Path
    rows: int = 0
    created: Counter[str] = field(default_factory=Counter)
    updated: Counter[str] = field(default_factory=Counter)
    unchanged: Counter[str] = field(default_factory=Counter)
    changes: CrmChanges = field(default_factory=CrmChanges)  # what matching must look at again

    def __str__(self) -> str:
        counts = "; ".join(
            f"{e}: {self.created[e]} created, {self.updated[e]} updated, {self.unchanged[e]} unchanged"
            for e in sorted(set(self.created) | set(self.updated) | set(self.unchanged))
        )
        return f"{self.path}: {self.rows} {self.kind} rows ({counts or 'nothing to do'})"

    def count(self, entity: str, created: bool, changed: bool) -> None:
        (self.created if created else self.updated if changed else self.unchanged)[entity] += 1


def _chunks(items: Sequence[T]) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), _BATCH):
        yield items[start : start + _BATCH]


def _rows(
    session: Session, query: Select[*Ts], column: QueryableAttribute[Any], values: Iterable[Any]
) -> Iterator[Row[*Ts]]:
    """``query`` filtered on ``column IN (values)``, run over IN-list sized chunks of values."""
    for chunk in _chunks(list(dict.fromkeys(values))):
        yield from session.execute(query.where(column.in_(chunk)))


def _assign(obj: object, attr: str, value: object) -> bool:
    current = getattr(obj, attr)
    if isinstance(current, datetime) and isinstance(value, datetime):
        # SQLite hands timestamps back naive; they were stored as UTC.
        current, value = (
            current.replace(tzinfo=current.tzinfo or UTC),
            value.replace(tzinfo=value.tzinfo or UTC),
        )
    if current == value:
        return False
    setattr(obj, attr, value)
    return True


class _Tally:
    """Counts rows; a matched record is counted at the end, because a later row may still
    take an email or a domain away from it after its own row found nothing to change."""

    def __init__(self, report: ImportReport, entity: str):
        self.report, self.entity = report, entity
        self.matched: dict[int, bool] = {}  # record id -> changed by its own row
        self.robbed: set[int] = set()  # records that lost an email or domain to another row

    def add(self, record_id: int | None, changed: bool) -> None:
        if record_id is None:
            self.report.count(self.entity, created=True, changed=True)
        else:
            self.matched[record_id] = changed

    def close(self) -> None:
        for record_id, changed in self.matched.items():
            self.report.count(self.entity, created=False, changed=changed or record_id in self.robbed)


def _ensure_companies(session: Session, names: Sequence[str], report: ImportReport) -> dict[str, int]:
    """Company id by name key, creating (name only) the companies that do not exist yet."""
    wanted = {name_key(n): n for n in reversed(names)}  # reversed: the first spelling wins
    found = _rows(session, select(Company.name_key, Company.id), Company.name_key, wanted)
    ids: dict[str, int] = {key: id_ for key, id_ in found}
    new = [Company(name=n, name_key=k) for k, n in wanted.items() if k not in ids]
    session.add_all(new)
    session.flush()
    ids.update((c.name_key, c.id) for c in new)
    if new:
        report.created["companies"] += len(new)
    return ids


def write_companies(
    session: Session, rows: list[CompanyRow], present: frozenset[str], report: ImportReport
) -> None:
    bump_generation(session)  # first: see the module's docstring
    domain_query = select(CompanyDomain).options(
        selectinload(CompanyDomain.company).selectinload(Company.domains)
    )
    # A company that some row names must not be taken over by another row through a domain.
    keys = (name_key(r.name) for r in rows)
    claimed = {id_ for (id_,) in _rows(session, select(Company.id), Company.name_key, keys)}
    tally = _Tally(report, "companies")
    for batch in _chunks(rows):
        keys = (name_key(r.name) for r in batch)
        companies = {c.name_key: c for (c,) in _rows(session, select(Company), Company.name_key, keys)}
        domains = (d for r in batch for d in r.domains)
        owners = {d.domain: d for (d,) in _rows(session, domain_query, CompanyDomain.domain, domains)}
        for row in batch:
            company = companies.get(name_key(row.name))
            if company is None and "domains" in present:
                free = (owners[d].company for d in row.domains if d in owners)
                company = next((c for c in free if c.id not in claimed and c.id not in tally.matched), None)
            record_id = company.id if company else None
            if company is None:
                company = Company()
                session.add(company)
            changed = _assign(company, "name", row.name) | _assign(company, "name_key", name_key(row.name))
            if "industry" in present:
                changed |= _assign(company, "industry", row.industry)
            before = {d.domain for d in company.domains} if record_id else set()
            if "domains" in present:
                changed |= _sync_domains(session, company, row.domains, owners, tally.robbed)
            if changed or record_id is None:
                report.changes.domains |= before ^ {d.domain for d in company.domains}
            tally.add(record_id, changed)
        session.flush()
        session.expunge_all()
    tally.close()


def _sync_domains(
    session: Session, company: Company, wanted: list[str], owners: dict[str, CompanyDomain], robbed: set[int]
) -> bool:
    current = {d.domain for d in company.domains}
    stale = [d for d in company.domains if d.domain not in wanted]
    for d in stale:
        company.domains.remove(d)
        owners.pop(d.domain, None)
    if stale:
        # A flush inserts before it deletes: delete now, in case a later row takes it.
        session.flush()
    added = [name for name in wanted if name not in current]
    for name in added:
        # A domain another company had moves by re-parenting its row (an UPDATE), so the
        # unique domain is never in two rows at once.
        owned = owners.get(name)
        if owned is None:
            owned = owners[name] = CompanyDomain(domain=name)
        elif owned.company_id is not None:
            robbed.add(owned.company_id)
        company.domains.append(owned)
    return bool(stale or added)


def write_contacts(
    session: Session, rows: list[ContactRow], present: frozenset[str], report: ImportReport
) -> None:
    bump_generation(session)  # first: see the module's docstring
    company_ids = _ensure_companies(session, [r.company for r in rows if r.company], report)
    by_domain = _companies_by_email_domain(session, [r.email for r in rows if not r.company])
    email_query = select(ContactEmail).options(
        selectinload(ContactEmail.contact).selectinload(Contact.emails)
    )
    tally = _Tally(report, "contacts")  # its matched contacts: a later row cannot take them over
    for batch in _chunks(rows):
        emails = (e for r in batch for e in _emails(r))
        owners = {ce.email: ce for (ce,) in _rows(session, email_query, ContactEmail.email, emails)}
        for row in batch:
            found = (owners[e].contact for e in _emails(row) if e in owners)
            contact = next((c for c in found if c.id not in tally.matched), None)
            record_id = contact.id if contact else None
            if contact is None:
                contact = Contact()
                session.add(contact)
            changed = False
            for attr in ("first_name", "last_name"):
                if attr in present:
                    changed |= _assign(contact, attr, getattr(row, attr))
            if row.company:
                changed |= _assign(contact, "company_id", company_ids[name_key(row.company)])
            elif record_id is None or "company" in present:
                changed |= _assign(contact, "company_id", _company_of(row.email, by_domain))
            before = {ce.email for ce in contact.emails}
            changed |= _sync_emails(session, contact, row, "other_emails" in present, owners, tally.robbed)
            if changed or record_id is None:
                # A contact's company or name changing changes its mail's links too.
                report.changes.emails |= before | {ce.email for ce in contact.emails}
            tally.add(record_id, changed)
        session.flush()
        session.expunge_all()
    tally.close()


def _emails(row: ContactRow) -> list[str]:
    return [row.email, *row.other_emails]


def _sync_emails(
    session: Session,
    contact: Contact,
    row: ContactRow,
    exact: bool,
    owners: dict[str, ContactEmail],
    robbed: set[int],
) -> bool:
    wanted = _emails(row)
    current = {ce.email: ce for ce in contact.emails}
    stale = [ce for email, ce in current.items() if exact and email not in wanted]
    for gone in stale:
        contact.emails.remove(gone)
        owners.pop(gone.email, None)
    if stale:
        session.flush()  # as in _sync_domains: a later row may take this email
    changed = bool(stale)
    for email in wanted:
        ce = current.get(email) or owners.get(email)
        if ce is None:
            ce = owners[email] = ContactEmail(email=email, canonical=canonical_email(email), is_primary=False)
            contact.emails.append(ce)
            changed = True
        elif ce.contact is not contact:
            # The email moved here from another contact: re-parent its row (see _sync_domains).
            previous = ce.contact
            robbed.add(previous.id)
            contact.emails.append(ce)
            changed = True
            if ce.is_primary and previous.emails and not any(e.is_primary for e in previous.emails):
                previous.emails[0].is_primary = True
        changed |= _assign(ce, "is_primary", email == row.email)
    if not exact:
        for email, ce in current.items():
            if email not in wanted:
                changed |= _assign(ce, "is_primary", False)
    return changed


def _companies_by_email_domain(session: Session, emails: Sequence[str]) -> dict[str, int]:
    domains = (s for e in emails for s in domain_suffixes(e.rpartition("@")[2]))
    query = select(CompanyDomain.domain, CompanyDomain.company_id)
    return {domain: company_id for domain, company_id in _rows(session, query, CompanyDomain.domain, domains)}


def _company_of(email: str, by_domain: dict[str, int]) -> int | None:
    return next((by_domain[s] for s in domain_suffixes(email.rpartition("@")[2]) if s in by_domain), None)


_OPPORTUNITY_ATTRS: dict[str, frozenset[str]] = {  # attribute -> the columns that set it
    "stage": frozenset({"stage"}),
    "amount": frozenset({"amount"}),
    "close_date": frozenset({"close_date"}),
    "owner_email": frozenset({"owner", "owner_name"}),
    "created_at": frozenset({"created_at"}),
    "product": frozenset({"product"}),
    "keywords": frozenset({"keywords"}),
    "status": frozenset({"status", "stage", "won", "closed"}),
}


def write_opportunities(
    session: Session, rows: list[OpportunityRow], present: frozenset[str], report: ImportReport
) -> None:
    bump_generation(session)  # first: see the module's docstring
    query = select(ContactEmail.email, ContactEmail.contact_id)
    emails = (c.email for r in rows for c in r.contacts)
    contact_of = {email: cid for email, cid in _rows(session, query, ContactEmail.email, emails)}
    for ref in (ref for r in rows for ref in r.contacts if ref.email not in contact_of):
        problem = f'no contact has the email "{ref.email}" (import contacts before opportunities)'
        raise CrmImportError(report.path, problem, line=ref.line, column=ref.column)
    company_ids = _ensure_companies(session, [r.company for r in rows if r.company], report)
    attrs = [attr for attr, columns in _OPPORTUNITY_ATTRS.items() if columns & present]
    touched: list[Opportunity] = []
    for batch in _chunks(rows):
        keys = (name_key(r.name) for r in batch)
        found = _rows(session, select(Opportunity), Opportunity.name_key, keys)
        existing = {(o.name_key, o.company_id): o for (o,) in found}
        for row in batch:
            company_id = company_ids[name_key(row.company)] if row.company else None
            opp = existing.get((name_key(row.name), company_id))
            created = opp is None
            if opp is None:
                opp = Opportunity(company_id=company_id, status="open")
                session.add(opp)
            changed = _assign(opp, "name", row.name) | _assign(opp, "name_key", name_key(row.name))
            for attr in attrs:
                changed |= _assign(opp, attr, getattr(row, attr))
            if "contacts" in present:
                roles: dict[int, str | None] = {}
                for ref in row.contacts:  # two emails of one contact make one role
                    roles[contact_of[ref.email]] = roles.get(contact_of[ref.email]) or ref.role
                changed |= _sync_roles(opp, roles)
            report.count("opportunities", created, changed)
            if created or changed:
                touched.append(opp)
        session.flush()
        report.changes.deal_ids.update(opp.id for opp in touched)
        touched.clear()
        session.expunge_all()


def _sync_roles(opp: Opportunity, wanted: dict[int, str | None]) -> bool:
    current = {oc.contact_id: oc for oc in opp.contact_roles}
    changed = False
    for contact_id, gone in current.items():
        if contact_id not in wanted:
            opp.contact_roles.remove(gone)
            changed = True
    for contact_id, role in wanted.items():
        if (oc := current.get(contact_id)) is None:
            opp.contact_roles.append(OpportunityContact(contact_id=contact_id, role=role))
            changed = True
        else:
            changed |= _assign(oc, "role", role)
    return changed
