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
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import cached_property, lru_cache

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

_WORD = re.compile(r"[a-z0-9][a-z0-9+#.&-]*[a-z0-9+#]|[a-z0-9]")
STOPWORDS = frozenset(
    """a an and the of for to in on at by with from new deal deals opportunity opp renewal expansion
    upsell pilot poc phase project q1 q2 q3 q4 h1 h2 fy inc ltd llc gmbh corp co plc group team
    year annual multi license licenses seat seats plan""".split()
)


def words(text: str) -> set[str]:
    return set(_WORD.findall(text.lower()))


@lru_cache(maxsize=65_536)  # the same deals come back batch after batch
def deal_keywords(
    name: str, product: str | None, keywords: str | None, company: str | None
) -> tuple[str, ...]:
    """Words that set a deal apart from the company's other deals: not the company's name,
    not filler ("renewal", "2026", "deal"); explicit keywords always count."""
    drop = words(company or "") | STOPWORDS
    found = {w for w in words(f"{name} {product or ''}") if w not in drop and not w.isdigit() and len(w) > 2}
    found |= {k.strip().lower() for k in (keywords or "").split(";") if k.strip()}
    return tuple(sorted(found))


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
    last_activity_at: datetime | None = None


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
    @cached_property
    def subject_words(self) -> frozenset[str]:
        return frozenset(words(self.subject))

    @cached_property
    def body_words(self) -> frozenset[str]:
        return frozenset(words(self.text[:20_000]))


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


def score_deal(
    deal: DealRef,
    contact_names: dict[int, str],
    company_ids: set[int],
    facts: MessageFacts,
    thread_links: int,
) -> DealScore:
    """Score one candidate. ``contact_names``: the message's external contacts by id."""
    signals: list[Signal] = []
    on_deal = [(cid, role) for cid, role in deal.roles if cid in contact_names]
    if on_deal:
        who = ", ".join(sorted(contact_names[c] for c, _ in on_deal))
        signals.append(Signal("contact_on_deal", CONTACT_ON_DEAL, f"{who} on the deal"))
        roles = sorted({r for _, r in on_deal if r})
        if roles:
            signals.append(Signal("contact_role", ROLE_BONUS, f"role: {', '.join(roles)}"))
    elif deal.company_id in company_ids:
        signals.append(Signal("company_deal", COMPANY_DEAL, "a deal of the participants' company"))

    when = _utc(facts.date)
    closed_on = datetime.combine(deal.close_date, datetime.min.time(), UTC) if deal.close_date else None
    if deal.status == "open":
        signals.append(Signal("open_deal", OPEN, f"open, stage {deal.stage or 'unknown'}"))
    elif when and closed_on and when <= closed_on + CLOSED_GRACE:
        signals.append(
            Signal(
                "open_at_the_time",
                CLOSED_BUT_OPEN_THEN,
                f"{deal.status} on {deal.close_date}, still open when this was sent",
            )
        )
    else:
        signals.append(
            Signal(
                "closed_deal",
                CLOSED,
                f"{deal.status}" + (f" on {deal.close_date}" if deal.close_date else ""),
            )
        )

    if thread_links:
        signals.append(
            Signal("thread", THREAD, f"{thread_links} other message(s) of this thread are linked to it")
        )
    created = _utc(deal.created_at)
    if when and created and when < created - CREATED_GRACE and not thread_links:
        signals.append(
            Signal("before_deal", BEFORE_CREATED, f"sent before the deal was created ({created.date()})")
        )

    in_subject = sorted(w for w in deal.keywords if w in facts.subject_words) if deal.keywords else []
    in_body = (
        [] if in_subject or not deal.keywords else sorted(w for w in deal.keywords if w in facts.body_words)
    )
    if in_subject:
        signals.append(
            Signal("keyword_subject", KEYWORD_SUBJECT, f"subject mentions {', '.join(in_subject)}")
        )
    elif in_body:
        signals.append(Signal("keyword_body", KEYWORD_BODY, f"body mentions {', '.join(in_body)}"))

    owner = (deal.owner_email or "").lower()
    if owner and (owner == facts.mailbox_owner or owner in facts.internal_people):
        signals.append(Signal("deal_owner", OWNER, f"owned by {owner}, on this message"))

    score = max(0.0, min(1.0, sum(s.weight for s in signals)))
    return DealScore(deal, signals, score)


def score_deals(
    deals: list[DealRef],
    contact_names: dict[int, str],
    company_ids: set[int],
    facts: MessageFacts,
    thread_deals: dict[int, int],
) -> list[DealScore]:
    """Every candidate scored, best first, with its confidence against the others."""
    scored = [score_deal(d, contact_names, company_ids, facts, thread_deals.get(d.id, 0)) for d in deals]
    recent = [s for s in scored if s.deal.last_activity_at and s.deal.status == "open"]
    if len(recent) > 1:
        latest = max(recent, key=lambda s: _utc(s.deal.last_activity_at) or datetime.min.replace(tzinfo=UTC))
        latest.signals.append(Signal("most_recent", MOST_RECENT, "the open deal with the latest activity"))
        latest.score = min(1.0, latest.score + MOST_RECENT)
    total = sum(s.score**SHARPNESS for s in scored)
    for s in scored:
        s.confidence = round(s.score * (s.score**SHARPNESS / total), 3) if total else 0.0
    return sorted(scored, key=lambda s: (-s.confidence, s.deal.name))
