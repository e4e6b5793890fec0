"""Who is who: normalized addresses, domains, and our own organization.

Display names are never identity: only addresses are compared.

Canonical addresses
-------------------
:func:`canonical_email` folds the spellings that a provider delivers to ONE mailbox into one
string, so that ``John.Smith+crm@googlemail.com`` and ``johnsmith@gmail.com`` are the same
person. A rule is applied only where the provider documents it; anywhere else a ``+`` or
a dot is part of the mailbox name (RFC 5321 §2.4 leaves the local part to the receiving
server, and some corporate servers do treat ``+`` as a literal character).

=====================  ===========================  =====================================
provider               domains                      what is folded
=====================  ===========================  =====================================
Gmail                  gmail.com, googlemail.com    dots and ``+tag`` dropped;
                       (-> gmail.com)               googlemail.com is gmail.com
Outlook.com            outlook.com, hotmail.*,      ``+tag`` dropped (dots matter)
                       live.*, msn.com
iCloud                 icloud.com, me.com, mac.com  ``+tag`` dropped;
                       (-> icloud.com)              me.com/mac.com are icloud.com
Fastmail               fastmail.com, fastmail.fm    ``+tag`` dropped;
                                                    ``x@user.fastmail.com`` is ``user@``
Proton                 proton.me, protonmail.com,   ``+tag`` dropped (domains kept apart)
                       protonmail.ch, pm.me
Yahoo                  yahoo.*, ymail.com           nothing (see below)
our own domains        ``plus_addressing_domains``  ``+tag`` dropped
=====================  ===========================  =====================================

Sources and reasoning:

- Gmail: Google Help "Dots don't matter in Gmail addresses"
  (https://support.google.com/mail/answer/7436150). It concerns @gmail.com addresses; in
  work and school (Google Workspace) addresses dots do matter, so they are never dropped on
  other domains. ``+anything`` is delivered to the same inbox (Google Help, "Create
  task-specific email addresses"); googlemail.com is the same account namespace as
  gmail.com (the domain Google used in Germany and the UK).
- Outlook.com: Microsoft supports plus addressing in its mail service ("Plus addressing in
  Exchange Online", learn.microsoft.com, now on by default; Outlook.com mailboxes are hosted
  on the same service). A Microsoft account name may contain letters, digits, ``.``, ``-``
  and ``_`` but not ``+``, so dropping ``+tag`` can only merge a subaddress into its mailbox.
- iCloud: the least documented row. ``user+tag@icloud.com`` is delivered to
  ``user@icloud.com`` (receive-only); Apple's own pages describe only separately created
  aliases, so this rests on widely reported behaviour, not on a provider document.
  Apple support article 118230 "About your @icloud.com, @me.com, and @mac.com email
  addresses": an account with a @mac.com address also has the @me.com and @icloud.com ones,
  and one with @me.com also has @icloud.com; accounts made since 2012 have @icloud.com only.
  So ``x@me.com`` and ``x@icloud.com`` are always the same account.
- Fastmail: "Plus addressing and subdomain addressing"
  (https://www.fastmail.help/hc/en-us/articles/360060591053): ``user+anything@domain`` and
  ``anything@user.domain`` both reach ``user@domain``. Only the two main domains are folded;
  Fastmail's other domains (and customers' own) are too many to list safely.
- Proton: "How to create and use an additional address" (proton.me/support/creating-aliases):
  every user can receive at ``username+anything@``. The four domains are NOT folded into one:
  pm.me exists only on paid plans and additional addresses may differ per domain.
- Yahoo: no ``+`` subaddressing is documented. Its own scheme, "disposable addresses"
  (``basename-keyword@yahoo.com``, Yahoo Help "Create and manage disposable email
  addresses", formerly AddressGuard), uses a base name the user picks separately from their
  Yahoo ID, so cutting at ``-`` yields ``basename@yahoo.com``: not the user's mailbox, and
  possibly someone else's. Yahoo addresses are therefore only lower-cased.
- Our own domains: most servers we are deployed on (Google Workspace, Exchange Online,
  Fastmail, Postfix with ``recipient_delimiter = +``) deliver ``+tag``, and which is true is
  known to us, so it is a config choice: :attr:`OrgIdentity.plus_addressing_domains`, by
  default all our domains. A domain there does not cover its subdomains: a subdomain is often
  a different mail system.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Protocol

from matchers.domains import normalize_domain, owning_domain

# Same mailbox, other domain name: the one on the right is the canonical one.
_DOMAIN_ALIASES = {
    "googlemail.com": "gmail.com",
    "me.com": "icloud.com",
    "mac.com": "icloud.com",
}
_DOTS_AND_PLUS = frozenset({"gmail.com"})
# Microsoft's consumer domains (Outlook.com), Apple, Fastmail, Proton: '+tag' only. Only country
# variants the free-mail list confirms are here (a test checks it): folding '+' on a domain that
# is not the provider's would merge distinct mailboxes of some unrelated company.
_PLUS = frozenset(
    {
        "outlook.com",
        "hotmail.com",
        "live.com",
        "msn.com",
        "windowslive.com",
        "outlook.at",
        "outlook.be",
        "outlook.cl",
        "outlook.co.id",
        "outlook.co.il",
        "outlook.co.nz",
        "outlook.co.th",
        "outlook.com.au",
        "outlook.com.br",
        "outlook.com.gr",
        "outlook.com.tr",
        "outlook.com.vn",
        "outlook.cz",
        "outlook.de",
        "outlook.dk",
        "outlook.es",
        "outlook.fr",
        "outlook.hu",
        "outlook.ie",
        "outlook.in",
        "outlook.it",
        "outlook.jp",
        "outlook.kr",
        "outlook.lv",
        "outlook.my",
        "outlook.ph",
        "outlook.pt",
        "outlook.sa",
        "outlook.sg",
        "outlook.sk",
        "hotmail.ca",
        "hotmail.ch",
        "hotmail.co.il",
        "hotmail.co.jp",
        "hotmail.co.nz",
        "hotmail.co.uk",
        "hotmail.co.za",
        "hotmail.com.ar",
        "hotmail.com.au",
        "hotmail.com.br",
        "hotmail.com.tr",
        "hotmail.de",
        "hotmail.es",
        "hotmail.fi",
        "hotmail.fr",
        "hotmail.it",
        "hotmail.nl",
        "hotmail.se",
        "live.at",
        "live.be",
        "live.ca",
        "live.cl",
        "live.cn",
        "live.co.uk",
        "live.co.za",
        "live.com.ar",
        "live.com.au",
        "live.com.mx",
        "live.com.pt",
        "live.com.sg",
        "live.de",
        "live.dk",
        "live.fr",
        "live.ie",
        "live.in",
        "live.it",
        "live.jp",
        "live.nl",
        "live.no",
        "live.ru",
        "live.se",
        "icloud.com",
        "fastmail.com",
        "fastmail.fm",
        "proton.me",
        "protonmail.com",
        "protonmail.ch",
        "pm.me",
    }
)
_SUBDOMAIN_ADDRESSING = frozenset({"fastmail.com", "fastmail.fm"})


def normalize_email(address: str) -> str:
    """Lower-cased, without white space or angle brackets: the form the parser stores.

    Not provider-aware; :func:`canonical_email` is the identity form.
    """
    return address.strip().strip("<>").lower()


def domain_of(address: str) -> str:
    return address.rpartition("@")[2].lower().strip(".")


def domain_matches(domain: str, owned: Iterable[str]) -> bool:
    """True when ``domain`` is one of ``owned`` or a subdomain of one (mail.acme.com is acme.com's)."""
    return any(domain == d or domain.endswith("." + d) for d in owned)


def canonical_email(address: str, plus_addressing_domains: Iterable[str] = frozenset()) -> str:
    """The one spelling of the mailbox ``address`` reaches (see the module's table).

    ``plus_addressing_domains`` are further domains (ours) where ``+tag`` is a subaddress.
    Memoized: a mailbox repeats the same few thousand addresses.
    """
    if not isinstance(plus_addressing_domains, frozenset):
        plus_addressing_domains = frozenset(plus_addressing_domains)
    return _canonical(address, plus_addressing_domains)


@functools.lru_cache(maxsize=1 << 17)
def _canonical(address: str, plus_domains: frozenset[str]) -> str:
    address = normalize_email(address)
    local, at, domain = address.rpartition("@")
    if not at or not local:
        return address
    domain = domain.rstrip(".")
    head, _, parent = domain.partition(".")
    if parent in _SUBDOMAIN_ADDRESSING:  # anything@user.fastmail.com is user+anything@fastmail.com
        local, domain = f"{head}+{local}", parent
    domain = _DOMAIN_ALIASES.get(domain, domain)
    if domain in _DOTS_AND_PLUS:
        base = local.partition("+")[0].replace(".", "")
    elif domain in _PLUS or domain in plus_domains:
        base = local.partition("+")[0]
    else:
        base = local
    # "+tag@gmail.com" has no mailbox part: keep what was written rather than invent "@gmail.com".
    return f"{base or local}@{domain}"


class Mailbox(Protocol):
    """What :meth:`OrgIdentity.from_accounts` reads from a configured account."""

    @property
    def owner(self) -> str: ...
    @property
    def aliases(self) -> tuple[str, ...]: ...


@dataclass(frozen=True)
class OrgIdentity:
    """Our organization: its domains, and the addresses of the mailbox owners and their aliases.

    ``addresses`` are canonical (:func:`canonical_email`), so any spelling of an owner's
    free-mail address (``Bob.Smith+crm@gmail.com``) is recognized as theirs. A domain covers
    its subdomains (``eu.acme.com`` is ``acme.com``'s).
    """

    domains: frozenset[str]
    addresses: frozenset[str]
    plus_addressing_domains: frozenset[str] = frozenset()

    @classmethod
    def build(
        cls,
        domains: Iterable[str],
        addresses: Iterable[str] = (),
        *,
        plus_addressing_domains: Iterable[str] | None = None,
    ) -> OrgIdentity:
        """From config pieces. ``plus_addressing_domains=None`` means all of ``domains``."""
        owned = frozenset(d for d in (normalize_domain(x) for x in domains) if d)
        plus = (
            owned
            if plus_addressing_domains is None
            else frozenset(map(normalize_domain, plus_addressing_domains))
        )
        return cls(owned, frozenset(_canonical(a, plus) for a in addresses if a.strip()), plus)

    @classmethod
    def from_accounts(
        cls,
        domains: Iterable[str],
        accounts: Iterable[Mailbox],
        *,
        plus_addressing_domains: Iterable[str] | None = None,
    ) -> OrgIdentity:
        """Our domains plus every configured account's owner and aliases."""
        addresses = [x for a in accounts for x in (a.owner, *a.aliases)]
        return cls.build(domains, addresses, plus_addressing_domains=plus_addressing_domains)

    def with_addresses(self, addresses: Iterable[str]) -> OrgIdentity:
        """Add addresses learned later (aliases a provider reports, such as Gmail's send-as)."""
        more = {_canonical(a, self.plus_addressing_domains) for a in addresses if a.strip()}
        return replace(self, addresses=self.addresses | more)

    def canonical(self, address: str) -> str:
        return _canonical(address, self.plus_addressing_domains)

    def is_owner(self, address: str) -> bool:
        """A mailbox owner or one of their aliases, in any spelling."""
        return self.canonical(address) in self.addresses

    def owns_domain(self, domain: str) -> bool:
        return owning_domain(normalize_domain(domain), self.domains) is not None

    def is_internal(self, address: str) -> bool:
        # Asked for every participant by several rules of every message: remember answers.
        cache: dict[str, bool] = self.__dict__.setdefault("_internal", {})
        known = cache.get(address)
        if known is None:
            canonical = self.canonical(address)
            known = (
                canonical in self.addresses or owning_domain(domain_of(canonical), self.domains) is not None
            )
            if len(cache) > 200_000:
                cache.clear()
            cache[address] = known
        return known
