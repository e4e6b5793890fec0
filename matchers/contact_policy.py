"""Which unknown people to create as CRM contacts (an optional policy; off by default).

``sent``: the people the mailbox owner wrote to. ``sent_and_received``: also the people who
wrote to the owner. Never free-mail addresses unless configured (a personal address says
nothing about a company, and is often not the customer at all), never automated senders.
"""

from __future__ import annotations

from dataclasses import dataclass

from connectors.message import ParsedMessage
from matchers.domains import is_free_mail
from matchers.exclusions import AUTOMATED_SENDER
from matchers.identity import OrgIdentity, domain_of

POLICIES = ("none", "sent", "sent_and_received")


@dataclass(frozen=True)
class NewContact:
    email: str
    first_name: str | None
    last_name: str | None
    rule: str  # which policy created it, for explain


def split_name(display: str | None, email: str) -> tuple[str | None, str | None]:
    """'Ana Ruiz' -> (Ana, Ruiz); 'Ruiz, Ana' -> (Ana, Ruiz); an address as name -> (None, None)."""
    name = (display or "").strip().strip("'\"").strip()
    if not name or "@" in name or name.lower() == email.partition("@")[0].lower():
        return None, None
    if "," in name:
        last, _, first = name.partition(",")
        return first.strip() or None, last.strip() or None
    first, _, last = name.partition(" ")
    return first or None, last.strip() or None


def contacts_to_create(
    msg: ParsedMessage,
    org: OrgIdentity,
    known: set[str],
    policy: str,
    free_mail: bool,
) -> list[NewContact]:
    """The unknown external people of ``msg`` the policy creates (``known``: contacts' emails)."""
    if policy == "none" or msg.sender is None:
        return []
    sent = org.is_internal(msg.sender.email)
    if not sent and policy != "sent_and_received":
        return []
    roles = ("to", "cc") if sent else ("from", "to", "cc")
    rule = f"create_contacts={policy}"
    out: dict[str, NewContact] = {}
    for person in msg.participants:
        email = person.email
        if person.role not in roles or email in known or email in out or org.is_internal(email):
            continue
        if AUTOMATED_SENDER.match(email.partition("@")[0]):
            continue
        if not free_mail and is_free_mail(domain_of(email)):
            continue
        first, last = split_name(person.name, email)
        out[email] = NewContact(email, first, last, rule)
    return list(out.values())
