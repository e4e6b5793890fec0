"""CRM facts cached across batches, for as long as the CRM does not change.

Matching a batch needs the contacts of its addresses, the companies of its domains, and every
deal of those contacts and companies. Fetching them again for each batch of 500 messages cost
more than matching itself, though they change only when the CRM does: on an import, or when
the contact policy creates a contact. Each of those writes bumps the CRM *generation*, a
single row (:class:`store.models.CrmState`) written in the same transaction
(:func:`bump_generation`). A batch reads the generation once, in one tiny query, and keeps
using what this process cached while the generation is the one it was cached for. Because the
generation lives in the database, a CRM import by another process invalidates this one's cache.

Only what batches ask for is cached, key by key, each in an LRU of bounded size: a CRM far
larger than the working set of the mail does not end up in memory.

What changes with every sync (a deal's latest activity, which deals a thread is linked to) is
not cached here: :mod:`store.crm_lookup` asks for it per batch.

Why a random token beside the counter: a transaction that bumped the generation and then rolled
back leaves the counter where it was, and the next writer would bump it to the same number with
other data behind it. A process that cached facts read inside the rolled-back transaction (its
own, uncommitted writes included) would then take them for the new generation's. A token drawn
anew at every bump is never seen again once rolled back.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Collection, Hashable, Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any, Generic, NamedTuple, TypeVar

from sqlalchemy import (
    ARRAY,
    ColumnElement,
    Integer,
    Row,
    Select,
    String,
    any_,
    bindparam,
    func,
    select,
    update,
)
from sqlalchemy.orm import Session
from sqlalchemy.types import TypeEngine

from matchers.deals import DealRef, deal_keywords
from matchers.identity import canonical_email
from matchers.linking import CompanyRef, ContactRef
from store.models import (
    Company,
    CompanyDomain,
    Contact,
    ContactEmail,
    CrmState,
    Opportunity,
    OpportunityContact,
)

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

CHUNK = 500  # keys per IN (...) list where they are bound one by one (see KeyedSelect)
# Entries per kind of fact (addresses, domains, companies, deals by id, by contact, by company,
# deals with their latest activity). Measured: a deal ~2.4 KB with its precomputed signals and
# its company's list, an address ~0.7 KB. With every kind full, ~0.5 GB: that takes a CRM and
# a mail flow touching 100,000 deals and 100,000 addresses within one CRM generation.
DEFAULT_LIMIT = 100_000

_STATE = CrmState.__table__.c


def _new_token() -> str:
    return uuid.uuid4().hex


def bump_generation(session: Session) -> None:
    """Tell every process that the CRM changed; call it in the transaction that changes it.

    Call it BEFORE writing CRM rows: on PostgreSQL the UPDATE locks the row until the
    transaction ends, so CRM writers always take that lock first and never deadlock on it.
    """
    session.execute(update(CrmState).values(generation=CrmState.generation + 1, token=_new_token()))


def read_generation(session: Session) -> tuple[int, str] | None:
    """(generation, token), or None for a store without the row (nothing can be cached then)."""
    row = session.execute(select(_STATE.generation, _STATE.token).where(_STATE.id == 1)).first()
    return (row[0], row[1]) if row is not None else None


def chunks(values: Iterable[Any]) -> Iterator[list[Any]]:
    items = list(values)
    for i in range(0, len(items), CHUNK):
        yield items[i : i + CHUNK]


# --- the facts, as the queries return them -----------------------------------------------
#
# Core statements, built once, run on the session's connection: the ORM's handling of each
# execution cost as much as SQLite answering. (The ORM statement in read_generation, run first
# for every batch, still autoflushes the session as the ORM queries here used to.)


class KeyedSelect:
    """A SELECT filtered on ``column IN (keys)``, the keys bound as ONE parameter where the
    backend takes a list as one value: SQLite's json_each() over a JSON array, PostgreSQL's
    ``= ANY(array)``. SQLAlchemy's expanding IN, the fallback elsewhere, binds every key apart,
    which cost about as much per key as SQLite looking it up, and a batch asks for thousands.
    Either way each key is an index lookup, as with an IN list."""

    def __init__(
        self, query: Select[Any], column: ColumnElement[Any], key_type: type[TypeEngine[Any]]
    ) -> None:
        keys = func.json_each(bindparam("keys", type_=String)).table_valued("value")
        self.sqlite = query.where(column.in_(select(keys.c.value).scalar_subquery()))
        self.postgresql = query.where(column == any_(bindparam("keys", type_=ARRAY(key_type))))
        self.expanding = query.where(column.in_(bindparam("keys", expanding=True)))

    def rows(self, session: Session, keys: Iterable[Any]) -> list[Row[Any]]:
        keys = list(keys)
        if not keys:
            return []
        conn = session.connection()
        backend = conn.dialect.name
        if backend in ONE_PARAMETER:
            if backend == "sqlite":
                return conn.execute(self.sqlite, {"keys": json.dumps(keys)}).all()
            return conn.execute(self.postgresql, {"keys": keys}).all()
        rows: list[Row[Any]] = []
        for chunk in chunks(keys):
            rows += conn.execute(self.expanding, {"keys": chunk}).all()
        return rows


# The backends that take the keys as one parameter (SQLite has JSON functions built in from 3.38).
ONE_PARAMETER = frozenset({"postgresql", *(["sqlite"] if sqlite3.sqlite_version_info >= (3, 38) else [])})

_CE, _C = ContactEmail.__table__, Contact.__table__
_CONTACTS = KeyedSelect(
    select(
        _CE.c.id, _CE.c.email, _CE.c.canonical, _C.c.id, _C.c.first_name, _C.c.last_name, _C.c.company_id
    ).select_from(_CE.join(_C, _C.c.id == _CE.c.contact_id)),
    _CE.c.canonical,
    String,
)
_CD, _CO = CompanyDomain.__table__, Company.__table__
_DOMAINS = KeyedSelect(
    select(_CD.c.domain, _CO.c.id, _CO.c.name).select_from(_CD.join(_CO, _CO.c.id == _CD.c.company_id)),
    _CD.c.domain,
    String,
)
_COMPANIES = KeyedSelect(select(_CO.c.id, _CO.c.name), _CO.c.id, Integer)
_OC, _OPP = OpportunityContact.__table__, Opportunity.__table__
_CONTACT_DEALS = KeyedSelect(select(_OC.c.contact_id, _OC.c.opportunity_id), _OC.c.contact_id, Integer)
_ROLES = KeyedSelect(
    select(_OC.c.opportunity_id, _OC.c.contact_id, _OC.c.role), _OC.c.opportunity_id, Integer
)
DEAL_COLUMNS = (
    _OPP.c.id,
    _OPP.c.name,
    _OPP.c.company_id,
    _OPP.c.stage,
    _OPP.c.status,
    _OPP.c.created_at,
    _OPP.c.close_date,
    _OPP.c.owner_email,
    _OPP.c.product,
    _OPP.c.keywords,
    _CO.c.name,
)
DEALS = select(*DEAL_COLUMNS).select_from(_OPP.outerjoin(_CO, _CO.c.id == _OPP.c.company_id))
_DEALS_BY_ID = KeyedSelect(DEALS, _OPP.c.id, Integer)
_DEALS_BY_COMPANY = KeyedSelect(DEALS, _OPP.c.company_id, Integer)


class ContactRow(NamedTuple):
    email_id: int
    email: str  # as stored
    contact_id: int
    name: str
    company_id: int | None


def contact_rows(session: Session, canonicals: Collection[str]) -> dict[str, list[ContactRow]]:
    """The contact addresses whose canonical form is one of ``canonicals``, grouped by it, each
    group in address id order (what :func:`resolve_contacts` needs to choose the same way on
    every backend and whichever addresses were asked together)."""
    out: dict[str, list[ContactRow]] = {}
    for email_id, stored, canonical, cid, first, last, company_id in _CONTACTS.rows(session, canonicals):
        name = " ".join(p for p in (first, last) if p) or stored
        out.setdefault(canonical, []).append(ContactRow(email_id, stored, cid, name, company_id))
    for group in out.values():
        group.sort()
    return out


def resolve_contacts(
    emails: Iterable[str], rows_of: Callable[[str], Sequence[ContactRow]]
) -> dict[str, ContactRef]:
    """Contacts by address, compared as the mailbox they reach (j.smith+x@gmail.com is
    jsmith@gmail.com); an exact address wins over a canonical twin, and of several twins the
    last added."""
    out: dict[str, ContactRef] = {}
    for email in emails:
        rows = rows_of(canonical_email(email))
        if not rows:
            continue
        row = next((r for r in rows if r.email == email), rows[-1])
        out[email] = ContactRef(row.contact_id, row.name, email, row.company_id)
    return out


def domain_suffixes(domain: str) -> list[str]:
    """mail.acme.co.uk -> [mail.acme.co.uk, acme.co.uk, co.uk]: longest first."""
    parts = domain.split(".")
    return [".".join(parts[i:]) for i in range(len(parts) - 1)]


def resolve_domains(
    domains: Iterable[str], owner_of: Callable[[str], CompanyRef | None]
) -> dict[str, CompanyRef]:
    """A subdomain (mail.acme.com) belongs to the company owning acme.com: the longest owned
    suffix wins."""
    out: dict[str, CompanyRef] = {}
    for domain in domains:
        for suffix in domain_suffixes(domain):
            ref = owner_of(suffix)
            if ref:
                out[domain] = ref
                break
    return out


def domain_rows(session: Session, domains: Collection[str]) -> dict[str, CompanyRef]:
    return {d: CompanyRef(cid, name) for d, cid, name in _DOMAINS.rows(session, domains)}


def company_rows(session: Session, ids: Collection[int]) -> dict[int, CompanyRef]:
    return {cid: CompanyRef(cid, name) for cid, name in _COMPANIES.rows(session, ids)}


def deal_ids_by_contact(session: Session, contact_ids: Collection[int]) -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for cid, oid in _CONTACT_DEALS.rows(session, contact_ids):
        out.setdefault(cid, []).append(oid)
    return out


def deal_refs(session: Session, rows: Sequence[Any]) -> dict[int, DealRef]:
    """Deal references (without their latest activity) from rows of :data:`DEAL_COLUMNS`, with
    their contact roles."""
    roles: dict[int, list[tuple[int, str | None]]] = {row[0]: [] for row in rows}
    for oid, cid, role in _ROLES.rows(session, roles):
        roles[oid].append((cid, role))
    return {
        oid: DealRef(
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
    }


def deal_rows(session: Session, ids: Collection[int]) -> dict[int, DealRef]:
    return deal_refs(session, _DEALS_BY_ID.rows(session, ids))


def deals_of_companies(session: Session, company_ids: Collection[int]) -> dict[int, DealRef]:
    """Every deal of the companies, by id: a company's deals are asked for together."""
    return deal_refs(session, _DEALS_BY_COMPANY.rows(session, company_ids))


# --- the cache ---------------------------------------------------------------------------


_MISSING: Any = object()


class _Lru(Generic[K, V]):
    """A dict that forgets its least recently used entries beyond ``limit``. Not thread-safe:
    :class:`CrmFacts` holds its lock around every use."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.data: OrderedDict[K, V] = OrderedDict()

    def lookup(self, keys: Iterable[K]) -> tuple[dict[K, V], list[K]]:
        """(the entries found, the keys missing)."""
        data, found, missing = self.data, {}, []
        for key in keys:
            value = data.get(key, _MISSING)  # not try/except: a cold batch misses thousands
            if value is _MISSING:
                missing.append(key)
            else:
                found[key] = value
                data.move_to_end(key)
        return found, missing  # type: ignore[return-value]  # _MISSING never gets in

    def store(self, items: dict[K, V]) -> None:
        data = self.data
        data.update(items)
        while len(data) > self.limit:
            data.popitem(last=False)


class CompanyDeals(NamedTuple):
    """A company's deals, their ids, and which of them are open: a batch takes all of them at
    once, and finds its open deals without visiting thousands of deal objects (a CPU cache miss
    each) or looking each one up again."""

    ids: tuple[int, ...]
    deals: tuple[DealRef, ...]
    open: tuple[int, ...]


_NO_DEALS = CompanyDeals((), (), ())


class CrmFacts:
    """What one generation of the CRM says, filled on demand: every method returns what the
    cache holds for its keys and loads the rest with one query per 500 keys. An absence is
    cached too (most addresses of a mailbox are no contact's)."""

    def __init__(self, key: Hashable, limit: int = DEFAULT_LIMIT) -> None:
        self.key = key
        self._lock = threading.Lock()
        self._contacts: _Lru[str, tuple[ContactRow, ...]] = _Lru(limit)  # by canonical address
        self._domains: _Lru[str, CompanyRef | None] = _Lru(limit)
        self._companies: _Lru[int, CompanyRef | None] = _Lru(limit)
        self._contact_deals: _Lru[int, tuple[int, ...]] = _Lru(limit)
        self._company_deals: _Lru[int, CompanyDeals] = _Lru(limit)
        self._deals: _Lru[int, DealRef] = _Lru(limit)
        # A deal with its latest activity, as last asked for: while that does not change, the
        # same object (and the signals it has precomputed) serves batch after batch.
        self._recent: _Lru[int, DealRef] = _Lru(limit)

    def _get(
        self,
        lru: _Lru[K, V],
        keys: Iterable[K],
        load: Callable[[Collection[K]], dict[K, Any]],
        absent: V,
        convert: Callable[[Any], V] = lambda v: v,
    ) -> dict[K, V]:
        with self._lock:
            found, missing = lru.lookup(keys)
        if missing:
            loaded = load(missing)  # no lock held while the database works
            new = {k: convert(loaded[k]) if k in loaded else absent for k in missing}
            with self._lock:
                lru.store(new)
            found.update(new)
        return found

    def contacts_by_email(self, session: Session, emails: Iterable[str]) -> dict[str, ContactRef]:
        emails = list(emails)
        rows = self._get(
            self._contacts,
            {canonical_email(e) for e in emails},
            lambda keys: contact_rows(session, keys),
            (),
            tuple,
        )
        return resolve_contacts(emails, rows.__getitem__)

    def companies_by_domain(self, session: Session, domains: Iterable[str]) -> dict[str, CompanyRef]:
        domains = set(domains)
        suffixes = {s for d in domains for s in domain_suffixes(d)}
        owners = self._get(self._domains, suffixes, lambda keys: domain_rows(session, keys), None)
        return resolve_domains(domains, owners.__getitem__)

    def companies_by_id(self, session: Session, ids: Iterable[int]) -> dict[int, CompanyRef]:
        found = self._get(self._companies, set(ids), lambda keys: company_rows(session, keys), None)
        return {i: ref for i, ref in found.items() if ref is not None}

    def deal_ids_by_contact(self, session: Session, ids: Iterable[int]) -> dict[int, tuple[int, ...]]:
        return self._get(
            self._contact_deals, set(ids), lambda keys: deal_ids_by_contact(session, keys), (), tuple
        )

    def deals_of_companies(self, session: Session, ids: Iterable[int]) -> dict[int, CompanyDeals]:
        with self._lock:
            found, missing = self._company_deals.lookup(set(ids))
        if missing:
            deals = deals_of_companies(session, missing)
            with self._lock:  # share the deal objects already cached (and their signals)
                cached, _ = self._deals.lookup(deals)
                deals.update(cached)
                self._deals.store(deals)
            grouped: dict[int, list[DealRef]] = {i: [] for i in missing}
            for ref in deals.values():
                grouped[ref.company_id].append(ref)  # type: ignore[index]  # one of missing
            lists = {
                i: CompanyDeals(
                    tuple(d.id for d in refs), tuple(refs), tuple(d.id for d in refs if d.status == "open")
                )
                if refs
                else _NO_DEALS
                for i, refs in grouped.items()
            }
            with self._lock:
                self._company_deals.store(lists)
            found.update(lists)
        return found

    def deals(
        self,
        session: Session,
        refs: dict[int, DealRef],
        open_ids: set[int],
        more: Collection[int],
        latest: Callable[[Collection[int]], dict[int, datetime]],
    ) -> dict[int, DealRef]:
        """``refs`` (the deals of the batch's companies, ``open_ids`` the open ones among them)
        and the deals ``more`` by id, an open deal with its latest activity: ``latest`` gives it,
        per batch, for the open deals' ids."""
        wanted = set(more).difference(refs)
        found = self._get(self._deals, wanted, lambda keys: deal_rows(session, keys), None)
        others = {i: ref for i, ref in found.items() if ref is not None}  # None: deleted meanwhile
        refs = {**refs, **others}
        open_ids = open_ids | {i for i, ref in others.items() if ref.status == "open"}
        activity = latest(open_ids)
        if activity:
            with self._lock:
                recent, _ = self._recent.lookup(activity)
            fresh: dict[int, DealRef] = {}
            for i, when in activity.items():
                ref = recent.get(i)
                if ref is None or ref.last_activity_at != when:
                    base = refs.get(i)
                    if base is None:  # deleted meanwhile
                        continue
                    ref = fresh[i] = base.with_last_activity(when)
                refs[i] = ref
            if fresh:
                with self._lock:
                    self._recent.store(fresh)
        return refs

    def __len__(self) -> int:
        """Entries cached, over every kind of fact."""
        return sum(
            len(lru.data)
            for lru in (
                self._contacts,
                self._domains,
                self._companies,
                self._contact_deals,
                self._company_deals,
                self._deals,
                self._recent,
            )
        )


class CrmCache:
    """The process's cache: the facts of the CRM generation last seen, of one database at a time
    (a daemon has one; tests switch, and start cold each time they do)."""

    def __init__(self, limit: int = DEFAULT_LIMIT) -> None:
        self.limit = limit
        self._lock = threading.Lock()
        self._facts: CrmFacts | None = None

    def facts(self, session: Session) -> CrmFacts:
        """The facts valid for what ``session`` sees now: the cached ones if the CRM has not
        changed since they were cached, else new, empty ones (which replace them)."""
        state = read_generation(session)
        if state is None:
            return CrmFacts(None, self.limit)  # no generation to check against: cache nothing
        key = (str(session.get_bind().url), *state)
        with self._lock:
            if self._facts is None or self._facts.key != key:
                self._facts = CrmFacts(key, self.limit)
            return self._facts

    def clear(self) -> None:
        with self._lock:
            self._facts = None


_SHARED = CrmCache()


def shared_cache() -> CrmCache:
    """The process-wide cache that :class:`store.crm_lookup.BatchCrmLookup` uses by default."""
    return _SHARED
