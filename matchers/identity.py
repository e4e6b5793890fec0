"""Who is who: normalized addresses, domains, and our own organization.

Display names are never identity: only addresses are compared.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


def normalize_email(address: str) -> str:
    return address.strip().strip("<>").lower()


def domain_of(address: str) -> str:
    return address.rpartition("@")[2].lower().strip(".")


def domain_matches(domain: str, owned: Iterable[str]) -> bool:
    """True when ``domain`` is one of ``owned`` or a subdomain of one (mail.acme.com is acme.com's)."""
    return any(domain == d or domain.endswith("." + d) for d in owned)


@dataclass(frozen=True)
class OrgIdentity:
    """Our organization: its domains, and the addresses of the mailbox owners and their aliases."""

    domains: frozenset[str]
    addresses: frozenset[str]

    @classmethod
    def build(cls, domains: Iterable[str], addresses: Iterable[str] = ()) -> OrgIdentity:
        return cls(
            frozenset(d.lower().strip(".") for d in domains),
            frozenset(normalize_email(a) for a in addresses),
        )

    def is_internal(self, address: str) -> bool:
        address = normalize_email(address)
        return address in self.addresses or domain_matches(domain_of(address), self.domains)
