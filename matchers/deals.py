"""Choosing the deal (opportunity) an email or meeting belongs to, with a score and reasons.

HubSpot links a message to a contact's five most recent deals; Pipedrive gives up when a
contact has more than one open deal. We score every candidate deal of the message's
external contacts and companies on the signals below, each a named rule with a weight
and a sentence, so that ``syncd explain`` can show exactly why.

A candidate's *score* (0..1) is the sum of its signals, clamped. Its *confidence* also
accounts for the competition: ``confidence = score * share`` with
``share = score**4 / sum(candidate scores**4)``. One strong candidate keeps its score;
two equally good candidates halve each other, which sends the message to the review
queue instead of guessing.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import cached_property, lru_cache
from operator import attrgetter
from typing import Any, Generic, NamedTuple, TypeVar

# Signal weights. A contact on an open deal alone (0.45 + 0.20) clears the default link
# threshold of 0.5; a company-only match on an open deal (0.25 + 0.20) does not, unless
# something else (the owner, a keyword, the thread) supports it.
CONTACT_ON_DEAL = 0.45
ROLE_BONUS = 0.05
COMPANY_DEAL = 0.25
OPEN = 0.20
CLOSED_BUT_OPEN_THEN = 0.10
CLOSED = -0.40
THREAD = 0.50
KEYWORD_SUBJECT = 0.25
KEYWORD_BODY = 0.15
OWNER = 0.05
BEFORE_CREATED = -0.20
MOST_RECENT = 0.05
SHARPNESS = 4

# Grace around a deal's dates: mail just before a deal is entered, or just after it
# closed (the signed order form, the thank-you), still belongs to it.
CREATED_GRACE = timedelta(days=14)
CLOSED_GRACE = timedelta(days=21)

T = TypeVar("T")

_WORD = re.compile(r"[a-z0-9][a-z0-9+#.&-]*[a-z0-9+#]|[a-z0-9]")
STOPWORDS = frozenset(
    """a an and the of for to in on at by with from new deal deals opportunity opp renewal expansion
    upsell pilot poc phase project q1 q2 q3 q4 h1 h2 fy inc ltd llc gmbh corp co plc group team
    year annual multi license licenses seat seats plan""".split()
)


def words(text: str) -> set[str]:
    return set(_WORD.findall(text.lower()))


@lru_cache(maxsize=16_384)  # a company has many deals
def _not_keywords(company: str) -> frozenset[str]:
    return frozenset(words(company) | STOPWORDS)


@lru_cache(maxsize=65_536)  # the same deals come back batch after batch
def deal_keywords(
    name: str, product: str | None, keywords: str | None, company: str | None
) -> tuple[str, ...]:
    """Words that set a deal apart from the company's other deals: not the company's name,
    not filler ("renewal", "2026", "deal"); explicit keywords always count."""
    drop = _not_keywords(company or "")
    found = {w for w in words(f"{name} {product or ''}") if w not in drop and not w.isdigit() and len(w) > 2}
    found |= {k.strip().lower() for k in (keywords or "").split(";") if k.strip()}
    return tuple(sorted(found))


class _computed_once(Generic[T]):  # lower case: used as a decorator, like cached_property
    """functools.cached_property without its lock: computed on first access into the instance's
    __dict__ (a frozen dataclass has one), then found there like any attribute. The lock (gone
    in Python 3.12) was taken for every deal entering the cache, ~1 µs each, to prevent a race
    whose only harm would be computing the same value twice."""

    def __init__(self, compute: Callable[[Any], T]) -> None:
        self.compute = compute

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, instance: Any, owner: type | None = None) -> T:
        if instance is None:
            return self  # type: ignore[return-value]
        value = instance.__dict__[self.name] = self.compute(instance)
        return value


@dataclass(frozen=True)
class DealRef:
    id: int
    name: str
    company_id: int | None
    stage: str | None
    status: str  # open, won, lost
    created_at: datetime | None
    close_date: date | None
    owner_email: str | None
    roles: tuple[tuple[int, str | None], ...]  # (contact id, role on the deal)
    keywords: tuple[str, ...]
    # The latest linked activity. Only open deals' is read (the most_recent signal), so the
    # lookups fill it for open deals only: it is the one per-batch query about deals.
    last_activity_at: datetime | None = None

    @_computed_once
    def _signals(self) -> _DealSignals:
        return _DealSignals.of(self)

    def with_last_activity(self, when: datetime | None) -> DealRef:
        """This deal with its latest activity set. What was precomputed for scoring does not
        depend on it and is shared, not computed again (computed now if it was not yet): batch
        after batch, deals get their new latest activity."""
        self._signals  # noqa: B018  # computed into __dict__, to be copied with the fields
        # A copy of the instance dict, not dataclasses.replace(): that runs __init__ again, which
        # for a frozen dataclass sets each of the 11 fields through object.__setattr__, and a
        # batch does this for every open deal whose latest activity changed.
        copy = object.__new__(DealRef)
        copy.__dict__.update(self.__dict__)
        copy.__dict__["last_activity_at"] = when
        return copy


@dataclass
class MessageFacts:
    """What deal scoring reads of a message, beyond its participants."""

    subject: str = ""
    text: str = ""
    date: datetime | None = None
    thread_key: str | None = None
    mailbox_owner: str | None = None
    internal_people: frozenset[str] = frozenset()

    # Tokenizing a body costs more than the rest of matching: do it only for messages that
    # have a candidate deal with keywords, once.
    # The words as words() finds them, straight into a frozenset (not a set, then a copy).
    @cached_property
    def subject_words(self) -> frozenset[str]:
        return frozenset(_WORD.findall(self.subject.lower()))

    @cached_property
    def body_words(self) -> frozenset[str]:
        return frozenset(_WORD.findall(self.text[:20_000].lower()))


@dataclass(frozen=True)
class Signal:
    rule: str
    weight: float
    reason: str


@dataclass
class DealScore:
    deal: DealRef
    signals: list[Signal]
    score: float
    confidence: float = 0.0

    def as_dict(self) -> dict[str, object]:
        return {
            "deal": self.deal.name,
            "score": round(self.score, 3),
            "confidence": round(self.confidence, 3),
            "signals": [{"rule": s.rule, "weight": s.weight, "reason": s.reason} for s in self.signals],
        }


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


# Signals that depend on nothing but their rule and weight, or on a few words that repeat across
# messages (the same contact names and roles come back all day): built once and shared. A Signal
# is frozen, so sharing one between candidates and messages is safe.
COMPANY_DEAL_SIGNAL = Signal("company_deal", COMPANY_DEAL, "a deal of the participants' company")
MOST_RECENT_SIGNAL = Signal("most_recent", MOST_RECENT, "the open deal with the latest activity")


@lru_cache(maxsize=16_384)
def _contact_signal(who: str) -> Signal:
    return Signal("contact_on_deal", CONTACT_ON_DEAL, f"{who} on the deal")


@lru_cache(maxsize=1_024)
def _role_signal(roles: tuple[str, ...]) -> Signal:
    return Signal("contact_role", ROLE_BONUS, f"role: {', '.join(roles)}")


@lru_cache(maxsize=1_024)
def _one_role_signal(role: str) -> Signal:
    return _role_signal((role,))


@lru_cache(maxsize=4_096)  # a message's candidates share keywords (the product's name)
def _subject_signal(found: tuple[str, ...]) -> Signal:
    return Signal("keyword_subject", KEYWORD_SUBJECT, f"subject mentions {', '.join(found)}")


@lru_cache(maxsize=4_096)
def _body_signal(found: tuple[str, ...]) -> Signal:
    return Signal("keyword_body", KEYWORD_BODY, f"body mentions {', '.join(found)}")


_WEIGHT = attrgetter("weight")


class _DealSignals(NamedTuple):
    """What scoring needs of a deal that no message changes: computed once per :class:`DealRef`
    (deal references are cached across batches, see ``store.crm_cache``), not once per candidate.
    A named tuple: built for every deal entering the cache, and a tuple is the cheapest to build."""

    status: Signal | None  # open_deal; None for a closed deal, whose signal depends on the date
    open_then: Signal | None  # open_at_the_time: a closed deal, for mail sent up to its close + grace
    closed: Signal | None  # closed_deal, for later mail
    open_until: datetime | None  # close date + grace
    created_after: datetime | None  # created - grace: mail before this is "before_deal"
    before: Signal | None
    owner: str
    owner_signal: Signal | None

    @classmethod
    def of(cls, deal: DealRef) -> _DealSignals:
        if deal.status == "open":
            status: Signal | None = _open_signal(deal.stage)
            closed = open_then = open_until = None
        else:
            status = None
            closed, open_then, open_until = _closed_signals(deal.status, deal.close_date)
        created = _utc(deal.created_at)
        owner = (deal.owner_email or "").lower()
        return cls(
            status,
            open_then,
            closed,
            open_until,
            created - CREATED_GRACE if created else None,
            _before_signal(created.date()) if created else None,
            owner,
            _owner_signal(owner) if owner else None,
        )


# The per-deal signals through memoized factories: stages, owners, statuses and dates repeat
# from deal to deal, so most deals entering the cache build no new string or Signal at all.
@lru_cache(maxsize=1_024)
def _open_signal(stage: str | None) -> Signal:
    return Signal("open_deal", OPEN, f"open, stage {stage or 'unknown'}")


@lru_cache(maxsize=16_384)
def _closed_signals(status: str, close_date: date | None) -> tuple[Signal, Signal | None, datetime | None]:
    """(closed_deal, open_at_the_time, the end of the grace period) of a closed deal."""
    on = f" on {close_date}" if close_date else ""
    closed = Signal("closed_deal", CLOSED, f"{status}{on}")
    if not close_date:
        return closed, None, None
    open_then = Signal(
        "open_at_the_time", CLOSED_BUT_OPEN_THEN, f"{status} on {close_date}, still open when this was sent"
    )
    return closed, open_then, datetime.combine(close_date, datetime.min.time(), UTC) + CLOSED_GRACE


@lru_cache(maxsize=16_384)
def _before_signal(created: date) -> Signal:
    return Signal("before_deal", BEFORE_CREATED, f"sent before the deal was created ({created})")


@lru_cache(maxsize=4_096)
def _owner_signal(owner: str) -> Signal:
    return Signal("deal_owner", OWNER, f"owned by {owner}, on this message")


def score_deal(
    deal: DealRef,
    contact_names: dict[int, str],
    company_ids: set[int],
    facts: MessageFacts,
    thread_links: int,
) -> DealScore:
    """Score one candidate. ``contact_names``: the message's external contacts by id."""
    return _score(deal, contact_names, company_ids, facts, _utc(facts.date), thread_links)


def _score(
    deal: DealRef,
    contact_names: dict[int, str],
    company_ids: set[int],
    facts: MessageFacts,
    when: datetime | None,
    thread_links: int,
    shared: frozenset[str] = frozenset(),
) -> DealScore:
    """:func:`score_deal` with the message's date already in UTC (once per message, not per candidate).

    ``shared``: keywords every candidate has (our own product line's name, say); they tell
    the candidates nothing apart, so they do not count.
    """
    fixed = deal._signals
    signals: list[Signal] = []
    # A loop rather than a comprehension (a function call of its own in Python 3.11): a deal
    # lists one or two people, and this runs for every candidate of every message.
    on_deal: list[tuple[int, str | None]] | None = None
    for pair in deal.roles:
        if pair[0] in contact_names:
            if on_deal is None:
                on_deal = [pair]
            else:
                on_deal.append(pair)
    if on_deal is not None:
        if len(on_deal) == 1:
            cid, role = on_deal[0]
            signals.append(_contact_signal(contact_names[cid]))
            if role:
                signals.append(_one_role_signal(role))
        else:
            signals.append(_contact_signal(", ".join(sorted(contact_names[c] for c, _ in on_deal))))
            roles = sorted({r for _, r in on_deal if r})
            if roles:
                signals.append(_role_signal(tuple(roles)))
    elif deal.company_id in company_ids:
        signals.append(COMPANY_DEAL_SIGNAL)

    if fixed.status is not None:
        signals.append(fixed.status)
    elif when and fixed.open_until and when <= fixed.open_until:
        signals.append(fixed.open_then)  # type: ignore[arg-type]  # set whenever open_until is
    else:
        signals.append(fixed.closed)  # type: ignore[arg-type]  # set for every closed deal

    if thread_links:
        signals.append(
            Signal("thread", THREAD, f"{thread_links} other message(s) of this thread are linked to it")
        )
    if when and fixed.created_after and when < fixed.created_after and not thread_links:
        signals.append(fixed.before)  # type: ignore[arg-type]  # set whenever created_after is

    keywords = deal.keywords if not shared else tuple(k for k in deal.keywords if k not in shared)
    if keywords:
        # isdisjoint first: most candidates mention none of their keywords, and it is one C call.
        subject_words = facts.subject_words
        if not subject_words.isdisjoint(keywords):
            signals.append(_subject_signal(tuple(sorted(w for w in keywords if w in subject_words))))
        else:
            body_words = facts.body_words
            if not body_words.isdisjoint(keywords):
                signals.append(_body_signal(tuple(sorted(w for w in keywords if w in body_words))))

    owner = fixed.owner
    if owner and (owner == facts.mailbox_owner or owner in facts.internal_people):
        signals.append(fixed.owner_signal)  # type: ignore[arg-type]  # set whenever owner is

    total = sum(map(_WEIGHT, signals))
    return DealScore(deal, signals, total if 0.0 < total < 1.0 else max(0.0, min(1.0, total)))


def _shared_keywords(deals: list[DealRef]) -> frozenset[str]:
    if len(deals) < 2 or not deals[0].keywords:
        return frozenset()
    shared = set(deals[0].keywords)
    for deal in deals[1:]:
        shared.intersection_update(deal.keywords)
        if not shared:
            break
    return frozenset(shared)


def score_deals(
    deals: list[DealRef],
    contact_names: dict[int, str],
    company_ids: set[int],
    facts: MessageFacts,
    thread_deals: dict[int, int],
) -> list[DealScore]:
    """Every candidate scored, best first, with its confidence against the others."""
    when = _utc(facts.date)
    shared = _shared_keywords(deals)
    if thread_deals:
        scored = [
            _score(d, contact_names, company_ids, facts, when, thread_deals.get(d.id, 0), shared)
            for d in deals
        ]
    else:
        scored = [_score(d, contact_names, company_ids, facts, when, 0, shared) for d in deals]
    recent = [s for s in scored if s.deal.last_activity_at and s.deal.status == "open"]
    if len(recent) > 1:
        try:
            # One backend gives all naive (SQLite: UTC) or all aware datetimes, which compare as
            # their UTC forms do: the same first maximum, without a conversion per candidate.
            latest = max(recent, key=_LAST_ACTIVITY)
        except TypeError:  # naive and aware mixed
            latest = max(recent, key=lambda s: _utc(s.deal.last_activity_at) or _EARLIEST)
        latest.signals.append(MOST_RECENT_SIGNAL)
        latest.score = min(1.0, latest.score + MOST_RECENT)
    powers = [s.score**SHARPNESS for s in scored]
    total = sum(powers)
    if total:
        for s, power in zip(scored, powers, strict=True):
            s.confidence = round(s.score * (power / total), 3)
    else:
        for s in scored:
            s.confidence = 0.0
    # Best first, then by name: two stable C-level sorts (reverse=True keeps ties in order)
    # instead of a Python key function building a tuple per candidate.
    scored.sort(key=_DEAL_NAME)
    scored.sort(key=_CONFIDENCE, reverse=True)
    return scored


_LAST_ACTIVITY = attrgetter("deal.last_activity_at")
_EARLIEST = datetime.min.replace(tzinfo=UTC)
_DEAL_NAME = attrgetter("deal.name")
_CONFIDENCE = attrgetter("confidence")
