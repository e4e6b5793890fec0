"""CSV column aliases and value parsers of the CRM import (no database needed)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from syncd.crm_columns import (
    ValueProblem,
    derive_status,
    parse_amount,
    parse_bool,
    parse_contact_ref,
    parse_date,
    parse_datetime,
    parse_domain,
    parse_email,
    resolve_header,
)


@pytest.mark.parametrize(
    ("header", "kind", "fields"),
    [
        ("name,domains,industry", "companies", {"name", "domains", "industry"}),
        ("email,first_name,last_name,company,other_emails", "contacts", None),
        ("name,company,contacts,stage,status,amount,close_date,owner,created_at", "opportunities", None),
        ("Record ID,Company name,Company Domain Name,Website URL,Industry,Create Date", "companies", None),
        ("First Name,Last Name,Email,Company Name,Associated Company,Website URL", "contacts", None),
        ("Deal Name,Deal Stage,Pipeline,Amount,Close Date,Deal owner,Create Date", "opportunities", None),
        ("Account Name,Website,Industry,Billing City", "companies", None),
        ("First Name,Last Name,Title,Account Name,Email", "contacts", None),
        ("Opportunity Name,Account Name,Stage,Amount,Close Date,Won,Closed", "opportunities", None),
        # Salesforce Data Loader writes API names
        ("FIRSTNAME,LASTNAME,EMAIL", "contacts", {"first_name", "last_name", "email"}),
        ("NAME,STAGENAME,CLOSEDATE,ISWON,ISCLOSED", "opportunities", None),
        # a contacts export that lost its email column is still contacts (and then fails)
        ("First Name,Last Name,Company Name", "contacts", {"first_name", "last_name", "company"}),
    ],
)
def test_kind_detection(header: str, kind: str, fields: set[str] | None) -> None:
    resolved = resolve_header(header.split(","))
    assert resolved is not None
    assert resolved[0] == kind
    if fields is not None:
        assert set(resolved[1]) == fields


def test_unknown_header_and_combined_columns() -> None:
    assert resolve_header(["foo", "bar"]) is None
    _, columns = resolve_header(["\ufeffCompany name", "Website URL", "Company Domain Name"]) or ("", {})
    assert columns == {"name": [0], "domains": [2, 1]}  # the alias order decides, not the file's


@pytest.mark.parametrize(
    ("raw", "domain"),
    [
        ("acme.com", "acme.com"),
        ("https://www.Acme.com/about?x=1", "acme.com"),
        ("WWW.ACME.COM.", "acme.com"),
        ("acme.com:8443/path", "acme.com"),
        ("http://user@shop.acme.co.uk", "shop.acme.co.uk"),
        ("bücher.de", "xn--bcher-kva.de"),
    ],
)
def test_domains(raw: str, domain: str) -> None:
    assert parse_domain(raw) == domain


@pytest.mark.parametrize("raw", ["acme", "http://", "acme..com", "-acme.com", "acme_corp.com", "[::1"])
def test_bad_domains(raw: str) -> None:
    with pytest.raises(ValueProblem, match="is not a domain or website URL"):
        parse_domain(raw)


def test_emails() -> None:
    assert parse_email("  Ana.Lopez@ACME.com ") == "ana.lopez@acme.com"
    for bad in (
        "ana",
        "ana@acme",
        "ana@@acme.com",
        "a b@acme.com",
        "@acme.com",
        "ana@.acme.com",
        "ana@acme.com.",
    ):
        with pytest.raises(ValueProblem, match="is not a valid email address"):
            parse_email(bad)
    assert parse_contact_ref("ana@acme.com:decision maker") == ("ana@acme.com", "decision maker")
    assert parse_contact_ref("Ana López (ANA@acme.com)") == ("ana@acme.com", None)
    assert parse_contact_ref("Ana <ana@acme.com>") == ("ana@acme.com", None)


@pytest.mark.parametrize(
    ("raw", "amount"),
    [
        ("12500", Decimal("12500.00")),
        ("12,500.00", Decimal("12500.00")),
        ("$12,500", Decimal("12500.00")),
        ("USD 1,234,567.5", Decimal("1234567.50")),
        ("€ 99.99", Decimal("99.99")),
        ("-250", Decimal("-250.00")),
        ("", None),
    ],
)
def test_amounts(raw: str, amount: Decimal | None) -> None:
    assert parse_amount(raw) == amount


@pytest.mark.parametrize(
    "raw", ["12,50", "12.500,00", "1.234", "12 500", "12k", "1,2,3", "$", "12.5.1", "1e5"]
)
def test_ambiguous_amounts_are_refused(raw: str) -> None:
    with pytest.raises(ValueProblem, match="is not an amount"):
        parse_amount(raw)


def test_dates() -> None:
    assert parse_date("2026-12-31") == date(2026, 12, 31)
    assert parse_date("2024-03-05 14:22") == date(2024, 3, 5)
    assert parse_date("2024-03-05T23:59:59+02:00") == date(2024, 3, 5)
    assert parse_date("2024/3/5") == date(2024, 3, 5)  # year first: not ambiguous
    assert parse_date(" ") is None
    with pytest.raises(ValueProblem, match=r"day and month order is ambiguous, export dates in ISO 8601"):
        parse_date("03/05/2024")
    with pytest.raises(
        ValueProblem, match=r'"5 March 2024" is not an ISO 8601 date \(expected YYYY-MM-DD\)$'
    ):
        parse_date("5 March 2024")
    with pytest.raises(ValueProblem, match="not an ISO 8601 date"):
        parse_date("2024-02-30")


def test_datetimes_are_utc() -> None:
    assert parse_datetime("2024-03-05 14:22") == datetime(2024, 3, 5, 14, 22, tzinfo=UTC)
    assert parse_datetime("2024-03-05") == datetime(2024, 3, 5, tzinfo=UTC)
    moment = parse_datetime("2024-03-05T14:22:00+02:00")
    assert moment == datetime(2024, 3, 5, 14, 22, tzinfo=timezone(timedelta(hours=2)))
    assert moment is not None and moment.tzinfo == UTC


@pytest.mark.parametrize(
    ("status", "stage", "won", "closed", "expected"),
    [
        ("lost", "Closed Won", True, True, "lost"),  # an explicit status wins
        (None, "closedwon", None, None, "won"),
        (None, "Closed Lost", None, None, "lost"),
        (None, "Negotiation", None, None, "open"),
        (None, "Closed Dead", False, True, "lost"),  # a custom closed stage: Salesforce flags decide
        (None, "Whatever", True, True, "won"),
        (None, "Closed Won", None, False, "open"),
        (None, None, None, None, "open"),
    ],
)
def test_status(
    status: str | None, stage: str | None, won: bool | None, closed: bool | None, expected: str
) -> None:
    assert derive_status(status, stage, won, closed) == expected  # type: ignore[arg-type]


def test_bools() -> None:
    assert [parse_bool(v) for v in ("1", "TRUE", "yes", "0", "false", "")] == [
        True,
        True,
        True,
        False,
        False,
        None,
    ]
    with pytest.raises(ValueProblem, match="is not a yes/no value"):
        parse_bool("maybe")
