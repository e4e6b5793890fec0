"""Who is who: registrable domains (the real PSL), free mail, canonical addresses, our organization."""

from __future__ import annotations

import time

import pytest

from matchers.domains import (
    free_mail_domains,
    is_free_mail,
    is_public_suffix,
    org_domain_problem,
    owning_domain,
    registrable_domain,
)
from matchers.identity import _PLUS, OrgIdentity, canonical_email, domain_of, normalize_email
from syncd.config import AccountConfig


@pytest.mark.parametrize(
    ("domain", "expected"),
    [
        ("mail.acme.co.uk", "acme.co.uk"),
        ("acme.co.uk", "acme.co.uk"),
        (" MAIL.Acme.COM. ", "acme.com"),  # case, white space and the root's trailing dot
        ("a.b.example.com.au", "example.com.au"),
        ("eu.mail.globex.com.br", "globex.com.br"),
        ("a.b.kawasaki.jp", "a.b.kawasaki.jp"),  # wildcard rule *.kawasaki.jp
        ("www.city.kawasaki.jp", "city.kawasaki.jp"),  # exception rule !city.kawasaki.jp
        ("www.xn--mnchen-3ya.de", "xn--mnchen-3ya.de"),  # punycode
        ("post.münchen.de", "münchen.de"),  # and its Unicode form
        ("foo.github.io", "foo.github.io"),  # private section: each Pages user is its own owner
        ("sales.acme.uk.com", "acme.uk.com"),  # CentralNic's uk.com: acme is not the company uk.com
        ("co.uk", "co.uk"),  # a bare public suffix has no registrable part: returned as it is
        ("localhost", "localhost"),
        ("[192.0.2.1]", "[192.0.2.1]"),
        ("192.0.2.1", "192.0.2.1"),
        ("[ipv6:2001:db8::1]", "[ipv6:2001:db8::1]"),
    ],
)
def test_registrable_domain(domain: str, expected: str) -> None:
    assert registrable_domain(domain) == expected


def test_icann_only_reading_merges_private_registrants() -> None:
    # Why the default includes the PSL's private section: ICANN-only makes these one "company".
    assert registrable_domain("sales.acme.uk.com", include_private=False) == "uk.com"
    assert registrable_domain("globex.uk.com", include_private=False) == "uk.com"
    assert registrable_domain("foo.github.io", include_private=False) == "github.io"
    assert registrable_domain("mail.acme.co.uk", include_private=False) == "acme.co.uk"


def test_public_suffixes() -> None:
    assert is_public_suffix("co.uk") and is_public_suffix("com") and is_public_suffix("github.io")
    assert not is_public_suffix("acme.co.uk") and not is_public_suffix("mail.acme.com")


@pytest.mark.parametrize(
    "domain",
    [
        *(
            "gmail.com",
            "GMAIL.COM",
            "googlemail.com",
            "outlook.com",
            "hotmail.co.uk",
            "yahoo.co.jp",
            "gmx.de",
        ),
        *("web.de", "qq.com", "163.com", "mail.ru", "icloud.com", "proton.me", "naver.com", "libero.it"),
        *("mail.gmail.com", "bounces.amazon.com", "x.bounces.amazon.com", "za.com"),
    ],
)
def test_free_mail(domain: str) -> None:
    assert is_free_mail(domain)


@pytest.mark.parametrize(
    "domain",
    [
        *("acme.com", "acme.co.uk", "google.com", "amazon.com", "microsoft.com", "lumenfold.io"),
        # za.com is on the list, but acme.za.com is a company's own name (the walk stops at the
        # registrable domain).
        *("acme.za.com", "corp.acme.za.com"),
    ],
)
def test_not_free_mail(domain: str) -> None:
    assert not is_free_mail(domain)


def test_free_mail_list_is_loaded_once_and_large() -> None:
    assert free_mail_domains() is free_mail_domains()
    assert len(free_mail_domains()) > 4000


def test_org_domain_problems_name_the_fix() -> None:
    assert org_domain_problem("lumenfold.io") is None
    assert org_domain_problem("eu.lumenfold.io") is None
    problem = org_domain_problem("Gmail.com")
    assert problem and "free-mail" in problem and "aliases" in problem
    assert "public suffix" in (org_domain_problem("co.uk") or "")
    assert "not a domain" in (org_domain_problem("localhost") or "")


def test_owning_domain_walks_suffixes() -> None:
    owned = frozenset({"acme.com", "globex.co.uk"})
    assert owning_domain("acme.com", owned) == "acme.com"
    assert owning_domain("eu.mail.acme.com", owned) == "acme.com"
    assert owning_domain("globex.co.uk", owned) == "globex.co.uk"
    assert owning_domain("notacme.com", owned) is None
    assert owning_domain("co.uk", owned) is None


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        # Gmail: dots and +tag dropped, googlemail.com is gmail.com
        ("John.Smith+crm@Gmail.com", "johnsmith@gmail.com"),
        ("j.o.h.n.smith@googlemail.com", "johnsmith@gmail.com"),
        ("john.smith+a.b@gmail.com", "johnsmith@gmail.com"),  # a dot inside the tag goes with it
        ("+tag@gmail.com", "+tag@gmail.com"),  # no mailbox part: kept rather than invented
        # Outlook.com: +tag dropped, dots kept
        ("ana.ruiz+deals@outlook.com", "ana.ruiz@outlook.com"),
        ("ana.ruiz+x@hotmail.co.uk", "ana.ruiz@hotmail.co.uk"),
        ("ana+x@live.com", "ana@live.com"),
        # iCloud: +tag dropped, me.com and mac.com are icloud.com
        ("tim+shop@icloud.com", "tim@icloud.com"),
        ("Tim.Cook@me.com", "tim.cook@icloud.com"),
        ("tim@mac.com", "tim@icloud.com"),
        # Fastmail: plus and subdomain addressing
        ("joe+lists@fastmail.com", "joe@fastmail.com"),
        ("shop@joe.fastmail.com", "joe@fastmail.com"),
        ("news@joe.fastmail.fm", "joe@fastmail.fm"),
        # Proton: +tag dropped, its domains stay apart
        ("alice+news@proton.me", "alice@proton.me"),
        ("alice+x@pm.me", "alice@pm.me"),
        ("alice.jones+x@protonmail.com", "alice.jones@protonmail.com"),
        # Yahoo: its disposable "base-keyword" addresses are not the base's mailbox; no '+'
        ("jane-shopping@yahoo.com", "jane-shopping@yahoo.com"),
        ("jane.doe@yahoo.co.uk", "jane.doe@yahoo.co.uk"),
        # Any other domain: only lower-cased (a '+' may be a literal character there)
        ("Bob+Sales@Acme.com", "bob+sales@acme.com"),
        ("first.last@acme.com", "first.last@acme.com"),
        ("bob+x@mail.gmail.com.evil.example", "bob+x@mail.gmail.com.evil.example"),
        (" <Ann@Example.COM> ", "ann@example.com"),
        ("not-an-address", "not-an-address"),
    ],
)
def test_canonical_email_per_provider(address: str, expected: str) -> None:
    assert canonical_email(address) == expected


def test_plus_addressing_on_our_own_domains_is_opt_in_per_domain() -> None:
    assert canonical_email("maya+crm@lumenfold.io") == "maya+crm@lumenfold.io"
    assert canonical_email("maya+crm@lumenfold.io", {"lumenfold.io"}) == "maya@lumenfold.io"
    assert canonical_email("m.a.y.a+crm@lumenfold.io", ["lumenfold.io"]) == "m.a.y.a@lumenfold.io"
    # A listed domain does not cover its subdomains: they are often other mail systems.
    assert canonical_email("maya+crm@legacy.lumenfold.io", {"lumenfold.io"}) == "maya+crm@legacy.lumenfold.io"


def test_every_plus_domain_is_a_known_free_mail_provider() -> None:
    # Folding '+' on a domain that is not the provider's would merge some company's mailboxes.
    assert _PLUS.issubset(free_mail_domains())


def test_normalize_email_stays_plain() -> None:
    assert normalize_email(" <John.Smith+crm@GMAIL.com> ") == "john.smith+crm@gmail.com"
    assert domain_of("ann@Mail.Example.COM.") == "mail.example.com"


def test_org_identity_build_keeps_working() -> None:
    org = OrgIdentity.build(["LumenFold.io."], ["Maya@lumenfold.io", "maya.k@gmail.com"])
    assert org.domains == frozenset({"lumenfold.io"})
    assert org.plus_addressing_domains == org.domains  # by default our domains do plus addressing
    assert org.is_internal("maya@lumenfold.io")
    assert org.is_internal("anyone@eu.lumenfold.io")  # a domain covers its subdomains
    assert not org.is_internal("ana@acme-freight.com")
    assert not org.is_internal("anyone@notlumenfold.io")
    # The owner's free-mail alias is ours in any spelling Gmail delivers to it; others' are not.
    assert org.is_internal("Maya.K+crm@googlemail.com")
    assert not org.is_internal("maya.k2@gmail.com")


def test_owner_aliases_fold_plus_only_where_configured() -> None:
    default = OrgIdentity.build(["lumenfold.io"], ["maya@lumenfold.io"])
    assert default.is_owner("maya+crm@lumenfold.io")
    literal = OrgIdentity.build(["lumenfold.io"], ["maya@lumenfold.io"], plus_addressing_domains=[])
    assert not literal.is_owner("maya+crm@lumenfold.io")
    assert literal.is_internal("maya+crm@lumenfold.io")  # still our domain


def test_org_identity_from_config_accounts() -> None:
    accounts = [
        AccountConfig("maya", "maildir", "maya@lumenfold.io", ("m.k@gmail.com",), {}),
        AccountConfig("raj", "maildir", "raj@lumenfold.io", (), {}),
    ]
    org = OrgIdentity.from_accounts(["lumenfold.io"], accounts, plus_addressing_domains=["lumenfold.io"])
    assert org.addresses == frozenset({"maya@lumenfold.io", "mk@gmail.com", "raj@lumenfold.io"})
    assert org.is_owner("M.K+x@gmail.com") and org.owns_domain("Mail.LumenFold.io")
    later = org.with_addresses(["maya.sales@outlook.com"])  # an alias the provider reported
    assert later.is_internal("maya.sales+x@outlook.com") and not org.is_internal("maya.sales@outlook.com")


def test_identity_lookups_are_cheap() -> None:
    org = OrgIdentity.build(["lumenfold.io", "lumenfold.co.uk"], ["maya@lumenfold.io", "m.k@gmail.com"])
    addresses = [
        f"user{i % 3000}.x+t@{('gmail.com', 'acme.com', 'eu.lumenfold.io')[i % 3]}" for i in range(60_000)
    ]
    start = time.perf_counter()
    internal = sum(org.is_internal(a) for a in addresses)
    free = sum(is_free_mail(domain_of(a)) for a in addresses)
    registrable = {registrable_domain(domain_of(a)) for a in addresses}
    elapsed = time.perf_counter() - start
    assert internal == 20_000 and free == 20_000 and registrable == {"gmail.com", "acme.com", "lumenfold.io"}
    # ~1 µs each once memoized; the budget is 5,000 messages/s with a few addresses each.
    assert elapsed < 1.5, f"{elapsed:.2f}s for 180,000 lookups"
