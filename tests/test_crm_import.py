"""CRM import from CSV, on SQLite and PostgreSQL: our format, HubSpot and Salesforce exports,
idempotent re-imports, errors that point at a file, line and column, and all-or-nothing files."""

from __future__ import annotations

import csv
import io
import textwrap
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

import syncd.crm_write
from store.db import make_engine, session_factory
from store.models import Base, Company, Contact, ContactEmail, Opportunity
from syncd.crm_import import CrmImportError, ImportReport, import_csv

CRM_TABLES = (
    "companies",
    "company_domains",
    "contacts",
    "contact_emails",
    "opportunities",
    "opportunity_contacts",
)

COMPANIES = """\
name,domains,industry
Acme,https://www.Acme.com/about;acme.io,Manufacturing
Globex Corporation,globex.com:443,Energy
Initech,initech.com.,
"""

CONTACTS = """\
email,first_name,last_name,company,other_emails
Ana@Acme.com,Ana,López,,ana.lopez@gmail.com
bob@globex.com,Bob,Stone,Globex Corporation,
carol@sales.acme.io,Carol,,,
dan@hooli.xyz,Dan,Brown,Hooli,
"""

OPPORTUNITIES = """\
name,company,contacts,stage,status,amount,close_date,owner,created_at
Acme rollout,Acme,ana@acme.com:decision maker;carol@sales.acme.io,Negotiation,,"$12,500",2026-12-31,\
rep@ours.io,2026-01-02T10:00:00Z
Globex renewal,globex corporation,bob@globex.com,Closed Won,,12500.5,2026-06-30,,2026-01-05 09:30
Hooli pilot,Hooli,,Discovery,lost,,,,
"""


@pytest.fixture
def factory(db_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(db_url)
    yield session_factory(engine)
    engine.dispose()


def write(tmp_path: Path, name: str, text: str, encoding: str = "utf-8") -> Path:
    path = tmp_path / "crm" / name
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(textwrap.dedent(text).encode(encoding))
    return path


def snapshot(factory: sessionmaker[Session]) -> dict[str, list[tuple[Any, ...]]]:
    with factory() as session:
        return {
            name: sorted((tuple(r) for r in session.execute(select(Base.metadata.tables[name]))), key=repr)
            for name in CRM_TABLES
        }


def counts(report: ImportReport, entity: str) -> tuple[int, int, int]:
    return report.created[entity], report.updated[entity], report.unchanged[entity]


def import_all(factory: sessionmaker[Session], tmp_path: Path) -> list[ImportReport]:
    return [
        import_csv(factory, write(tmp_path, "companies.csv", COMPANIES)),
        import_csv(factory, write(tmp_path, "contacts.csv", CONTACTS)),
        import_csv(factory, write(tmp_path, "opportunities.csv", OPPORTUNITIES)),
    ]


def company(session: Session, name: str) -> Company:
    return session.scalars(select(Company).where(Company.name_key == name.casefold())).one()


def contact(session: Session, email: str) -> Contact:
    return session.scalars(select(ContactEmail).where(ContactEmail.email == email)).one().contact


def opportunity(session: Session, name: str) -> Opportunity:
    return session.scalars(select(Opportunity).where(Opportunity.name_key == name.casefold())).one()


def company_name(record: Contact | Opportunity) -> str | None:
    return record.company.name if record.company else None


def utc(moment: datetime | None) -> datetime | None:
    """SQLite gives timestamps back naive (stored as UTC); PostgreSQL in the session's zone."""
    return moment.replace(tzinfo=moment.tzinfo or UTC).astimezone(UTC) if moment else None


def domains(c: Company) -> set[str]:
    return {d.domain for d in c.domains}


def emails(c: Contact) -> dict[str, bool]:
    return {e.email: e.is_primary for e in c.emails}


# --- our own format ----------------------------------------------------------------------


def test_own_format_all_kinds(factory: sessionmaker[Session], tmp_path: Path) -> None:
    comp, cont, opps = import_all(factory, tmp_path)
    assert (comp.kind, cont.kind, opps.kind) == ("companies", "contacts", "opportunities")
    assert counts(comp, "companies") == (3, 0, 0)
    assert counts(cont, "contacts") == (4, 0, 0)
    assert counts(cont, "companies") == (1, 0, 0)  # Hooli, created from dan's row
    assert counts(opps, "opportunities") == (3, 0, 0)
    with factory() as s:
        acme = company(s, "ACME")
        assert (acme.name, acme.industry, domains(acme)) == ("Acme", "Manufacturing", {"acme.com", "acme.io"})
        assert domains(company(s, "Globex Corporation")) == {"globex.com"}
        assert domains(company(s, "initech")) == {"initech.com"}
        assert company(s, "hooli").domains == []

        ana = contact(s, "ana@acme.com")
        assert (ana.first_name, ana.last_name) == ("Ana", "López")
        assert emails(ana) == {"ana@acme.com": True, "ana.lopez@gmail.com": False}
        assert ana.company_id == acme.id  # no company column value: found by email domain
        assert contact(s, "carol@sales.acme.io").company_id == acme.id  # a subdomain of acme.io
        assert company_name(contact(s, "bob@globex.com")) == "Globex Corporation"
        assert company_name(contact(s, "dan@hooli.xyz")) == "Hooli"

        rollout = opportunity(s, "acme rollout")
        assert (rollout.company_id, rollout.stage, rollout.status) == (acme.id, "Negotiation", "open")
        assert (rollout.amount, rollout.close_date) == (Decimal("12500.00"), date(2026, 12, 31))
        assert rollout.owner_email == "rep@ours.io"
        assert utc(rollout.created_at) == datetime(2026, 1, 2, 10, 0, tzinfo=UTC)
        by_contact = {r.contact_id: r.role for r in rollout.contact_roles}
        ana_id, carol_id = ana.id, contact(s, "carol@sales.acme.io").id
        assert by_contact == {ana_id: "decision maker", carol_id: None}

        renewal = opportunity(s, "Globex renewal")
        assert (renewal.status, renewal.amount) == ("won", Decimal("12500.50"))
        assert company_name(renewal) == "Globex Corporation"
        pilot = opportunity(s, "hooli pilot")
        assert (pilot.status, pilot.amount, pilot.close_date, pilot.contact_roles) == ("lost", None, None, [])


def test_product_and_keywords_columns(factory: sessionmaker[Session], tmp_path: Path) -> None:
    """What a deal sells and the words that identify it: the matcher looks for them in mail."""
    import_csv(factory, write(tmp_path, "companies.csv", COMPANIES))
    path = write(
        tmp_path,
        "deals.csv",
        """\
        name,company,stage,status,product,keywords
        Acme Backup,Acme,Demo,open,Brightwave Backup,backup;restore;field sites
        """,
    )
    import_csv(factory, path)
    with factory() as s:
        deal = opportunity(s, "acme backup")
        assert (deal.product, deal.keywords) == ("Brightwave Backup", "backup;restore;field sites")


def test_reimport_changes_nothing(factory: sessionmaker[Session], tmp_path: Path) -> None:
    import_all(factory, tmp_path)
    before = snapshot(factory)
    comp, cont, opps = import_all(factory, tmp_path)
    assert counts(comp, "companies") == (0, 0, 3)
    assert counts(cont, "contacts") == (0, 0, 4)
    assert counts(opps, "opportunities") == (0, 0, 3)
    assert not (cont.created or opps.created)
    assert snapshot(factory) == before


def test_edited_rows_update_their_records(factory: sessionmaker[Session], tmp_path: Path) -> None:
    import_all(factory, tmp_path)
    edited_companies = COMPANIES.replace(
        "https://www.Acme.com/about;acme.io,Manufacturing", "acme.com,Robotics"
    )
    report = import_csv(factory, write(tmp_path, "companies.csv", edited_companies))
    assert counts(report, "companies") == (0, 1, 2)
    edited_contacts = CONTACTS.replace("Bob,Stone", "Robert,Stone").replace(",ana.lopez@gmail.com", ",")
    report = import_csv(factory, write(tmp_path, "contacts.csv", edited_contacts))
    assert counts(report, "contacts") == (0, 3, 1)  # carol@sales.acme.io: acme.io is gone
    edited_opps = OPPORTUNITIES.replace("Negotiation,,", "Closed Lost,,").replace(
        ":decision maker", ":champion"
    )
    report = import_csv(factory, write(tmp_path, "opportunities.csv", edited_opps))
    assert counts(report, "opportunities") == (0, 1, 2)
    with factory() as s:
        acme = company(s, "acme")
        assert (acme.industry, domains(acme)) == ("Robotics", {"acme.com"})
        assert s.scalars(select(Company)).all().__len__() == 4
        assert contact(s, "bob@globex.com").first_name == "Robert"
        assert emails(contact(s, "ana@acme.com")) == {"ana@acme.com": True}
        assert contact(s, "carol@sales.acme.io").company_id is None
        assert s.scalars(select(Contact)).all().__len__() == 4
        rollout = opportunity(s, "acme rollout")
        assert (rollout.stage, rollout.status) == ("Closed Lost", "lost")
        assert sorted(r.role or "" for r in rollout.contact_roles) == ["", "champion"]
        assert s.scalars(select(Opportunity)).all().__len__() == 3


def test_company_renamed_in_the_crm_is_matched_by_domain(
    factory: sessionmaker[Session], tmp_path: Path
) -> None:
    import_csv(factory, write(tmp_path, "companies.csv", COMPANIES))
    renamed = COMPANIES.replace("Initech,", "Initech Holdings,")
    report = import_csv(factory, write(tmp_path, "companies.csv", renamed))
    assert counts(report, "companies") == (0, 1, 2)
    with factory() as s:
        assert sorted(c.name for c in s.scalars(select(Company))) == [
            "Acme",
            "Globex Corporation",
            "Initech Holdings",
        ]


@pytest.mark.parametrize("losing_row_first", [True, False])
def test_email_moving_between_contacts(
    factory: sessionmaker[Session], tmp_path: Path, losing_row_first: bool
) -> None:
    first = "email,first_name,other_emails\nann@x.io,Ann,shared@x.io;ann2@x.io\nben@x.io,Ben,\n"
    import_csv(factory, write(tmp_path, "contacts.csv", first))
    ann_row, ben_row = "ann@x.io,Ann,ann2@x.io\n", "ben@x.io,Ben,shared@x.io\n"
    rows = ann_row + ben_row if losing_row_first else ben_row + ann_row
    report = import_csv(factory, write(tmp_path, "contacts.csv", "email,first_name,other_emails\n" + rows))
    assert counts(report, "contacts") == (0, 2, 0)
    with factory() as s:
        assert emails(contact(s, "ann@x.io")) == {"ann@x.io": True, "ann2@x.io": False}
        assert emails(contact(s, "ben@x.io")) == {"ben@x.io": True, "shared@x.io": False}
    report = import_csv(factory, write(tmp_path, "contacts.csv", "email,first_name,other_emails\n" + rows))
    assert counts(report, "contacts") == (0, 0, 2)


def test_contact_split_in_two_takes_over_the_email(factory: sessionmaker[Session], tmp_path: Path) -> None:
    import_csv(factory, write(tmp_path, "c.csv", "email,other_emails,first_name\nann@x.io,info@x.io,Ann\n"))
    # No other_emails column: existing emails stay, but info@ now has a row (and contact) of its own.
    report = import_csv(factory, write(tmp_path, "c.csv", "email,first_name\nann@x.io,Ann\ninfo@x.io,Info\n"))
    assert counts(report, "contacts") == (1, 1, 0)  # ann lost info@x.io
    with factory() as s:
        assert emails(contact(s, "ann@x.io")) == {"ann@x.io": True}
        assert contact(s, "info@x.io").first_name == "Info"


# --- HubSpot and Salesforce exports ------------------------------------------------------


def exported(*records: tuple[str, ...]) -> str:
    """CSV as HubSpot and Salesforce write it: every field quoted, CRLF line ends."""
    out = io.StringIO()
    csv.writer(out, quoting=csv.QUOTE_ALL).writerows(records)
    return out.getvalue()


# fmt: off
HUBSPOT_COMPANIES = exported(
    ("Record ID", "Company name", "Company owner", "Create Date", "Company Domain Name", "Website URL",
     "Industry", "Lifecycle Stage"),
    ("5012", "Acme", "Jane Rep", "2024-03-05 14:22", "acme.com", "https://www.acme.com/", "MACHINERY",
     "Customer"),
    ("5013", "Globex", "", "2024-03-06 09:00", "", "http://globex.com/en", "", ""),
)

HUBSPOT_CONTACTS = exported(
    ("Record ID", "First Name", "Last Name", "Email", "Phone Number", "Contact owner", "Lifecycle Stage",
     "Create Date", "Company Name", "Associated Company", "Additional email addresses"),
    ("101", "Ana", "López", "ana@acme.com", "+1 555 0100", "Jane Rep", "Customer", "2024-03-05 14:30",
     "Acme", "Acme", "ana.l@acme.com;ana@gmail.com"),
    ("102", "Bob", "", "BOB@globex.com", "", "", "Lead", "2024-03-07 10:00", "", "Globex", ""),
)

HUBSPOT_DEALS = exported(
    ("Record ID", "Deal Name", "Deal Stage", "Pipeline", "Amount", "Close Date", "Deal owner",
     "Create Date", "Associated Company", "Associated Contact"),
    ("9001", "Acme expansion", "closedwon", "Sales Pipeline", "48000", "2024-06-30 00:00", "Jane Rep",
     "2024-03-05 14:22", "Acme", "Ana López (ana@acme.com)"),
    ("9002", "Globex trial", "Closed Lost", "Sales Pipeline", "1,200.00", "2024-05-01", "jane@ours.io",
     "2024-03-08 08:00", "Globex", "Bob (bob@globex.com)"),
    ("9003", "Globex upsell", "appointmentscheduled", "Sales Pipeline", "", "", "", "2024-03-09", "Globex",
     ""),
)
# fmt: on


def test_hubspot_exports(factory: sessionmaker[Session], tmp_path: Path) -> None:
    reports = [
        import_csv(factory, write(tmp_path, "hubspot-companies.csv", HUBSPOT_COMPANIES)),
        import_csv(factory, write(tmp_path, "hubspot-contacts.csv", HUBSPOT_CONTACTS)),
        import_csv(factory, write(tmp_path, "hubspot-deals.csv", HUBSPOT_DEALS)),
    ]
    assert [r.kind for r in reports] == ["companies", "contacts", "opportunities"]
    assert [sum(r.created.values()) for r in reports] == [2, 2, 3]
    with factory() as s:
        assert (domains(company(s, "acme")), company(s, "acme").industry) == ({"acme.com"}, "MACHINERY")
        assert domains(company(s, "globex")) == {"globex.com"}
        ana = contact(s, "ana@acme.com")
        assert emails(ana) == {"ana@acme.com": True, "ana.l@acme.com": False, "ana@gmail.com": False}
        assert company_name(ana) == "Acme"
        assert company_name(contact(s, "bob@globex.com")) == "Globex"  # from "Associated Company"
        won, lost, upsell = (opportunity(s, n) for n in ("Acme expansion", "Globex trial", "Globex upsell"))
        assert (won.status, won.stage, won.amount, won.close_date) == (
            "won",
            "closedwon",
            Decimal("48000.00"),
            date(2024, 6, 30),
        )
        assert won.owner_email is None  # an owner's name, not an email
        assert [r.contact_id for r in won.contact_roles] == [ana.id]
        assert (lost.status, lost.amount, lost.owner_email) == ("lost", Decimal("1200.00"), "jane@ours.io")
        assert (upsell.status, utc(upsell.created_at)) == (
            "open",
            datetime(2024, 3, 9, tzinfo=UTC),
        )
    again = [import_csv(factory, r.path) for r in reports]
    assert [sum(r.created.values()) + sum(r.updated.values()) for r in again] == [0, 0, 0]


# fmt: off
SALESFORCE_ACCOUNTS = exported(
    ("Account ID", "Account Name", "Account Owner", "Type", "Industry", "Website", "Billing City"),
    ("0015g00000AbCdE", "Umbrella Corp", "Sam Seller", "Customer", "Biotechnology", "www.umbrella.com",
     "Raccoon City"),
    ("0015g00000AbCdF", "Soylent", "Sam Seller", "Prospect", "Food & Beverage", "https://soylent.com",
     "New York"),
)

SALESFORCE_CONTACTS = exported(
    ("Contact ID", "First Name", "Last Name", "Title", "Account Name", "Email", "Phone", "Mailing City"),
    ("0035g00000XyZaA", "Alice", "Wesker", "CTO", "Umbrella Corp", "alice@umbrella.com", "555-0101",
     "Raccoon City"),
    ("0035g00000XyZaB", "Sol", "Green", "Buyer", "Soylent", "sol@soylent.com", "", ""),
)

SALESFORCE_OPPORTUNITIES = exported(
    ("Opportunity ID", "Opportunity Name", "Account Name", "Stage", "Amount", "Probability (%)",
     "Close Date", "Opportunity Owner", "Owner Email", "Created Date", "Won", "Closed", "Fiscal Period"),
    ("0065g00000QrStU", "Umbrella - T-Virus", "Umbrella Corp", "Closed Won", "$250,000.00", "100",
     "2024-09-30", "Sam Seller", "sam@ours.io", "2024-01-15", "1", "1", "Q3-2024"),
    ("0065g00000QrStV", "Soylent Green", "Soylent", "Negotiation/Review", "45000", "80", "2024-12-31",
     "Sam Seller", "sam@ours.io", "2024-02-01", "0", "0", "Q4-2024"),
    ("0065g00000QrStW", "Soylent Red", "Soylent", "Closed Dead", "1000", "0", "2024-04-30", "Sam Seller",
     "", "2024-02-02", "0", "1", "Q2-2024"),
)
# fmt: on


def test_salesforce_exports(factory: sessionmaker[Session], tmp_path: Path) -> None:
    reports = [
        import_csv(factory, write(tmp_path, "Accounts.csv", SALESFORCE_ACCOUNTS)),
        import_csv(factory, write(tmp_path, "Contacts.csv", SALESFORCE_CONTACTS)),
        import_csv(factory, write(tmp_path, "Opportunities.csv", SALESFORCE_OPPORTUNITIES)),
    ]
    assert [r.kind for r in reports] == ["companies", "contacts", "opportunities"]
    assert counts(reports[1], "companies") == (0, 0, 0)  # both accounts already there
    with factory() as s:
        umbrella = company(s, "umbrella corp")
        assert (domains(umbrella), umbrella.industry) == ({"umbrella.com"}, "Biotechnology")
        assert contact(s, "alice@umbrella.com").company_id == umbrella.id
        virus, green, red = (
            opportunity(s, n) for n in ("Umbrella - T-Virus", "Soylent Green", "Soylent Red")
        )
        assert (virus.status, virus.amount, virus.owner_email) == ("won", Decimal("250000.00"), "sam@ours.io")
        assert (green.status, green.stage) == ("open", "Negotiation/Review")
        assert red.status == "lost"  # closed, not won, whatever the stage is called


# --- errors: file, line, column, and nothing written ---------------------------------------

# The bad row is always the last one: everything before it must not be written either.
# fmt: off
BAD_ROWS = [
    pytest.param("opportunities.csv", OPPORTUNITIES + "Late deal,Acme,,Proposal,,100,31/12/2026,,\n",
                 5, "close_date", '"31/12/2026" is not an ISO 8601 date (expected YYYY-MM-DD)',
                 id="bad-date"),
    pytest.param("opportunities.csv", OPPORTUNITIES + "Late deal,Acme,,Proposal,,100,03/05/2024,,\n",
                 5, "close_date", "ambiguous, export dates in ISO 8601", id="us-date"),
    pytest.param("contacts.csv", CONTACTS + "erin@acme,Erin,,,\n",
                 6, "email", '"erin@acme" is not a valid email address', id="bad-email"),
    pytest.param("contacts.csv", CONTACTS + "erin@acme.com,Erin,,,erin@@acme.com\n",
                 6, "other_emails", "not a valid email address", id="bad-other-email"),
    pytest.param("opportunities.csv", OPPORTUNITIES + 'Late deal,Acme,,Proposal,,"12.500,00",,,\n',
                 5, "amount", '"12.500,00" is not an amount', id="bad-amount"),
    pytest.param("opportunities.csv", OPPORTUNITIES + "Late deal,Acme,,Proposal,,12k,,,\n",
                 5, "amount", '"12k" is not an amount', id="garbage-amount"),
    pytest.param("opportunities.csv", OPPORTUNITIES + "Late deal,Acme,nobody@acme.com:buyer,Proposal,,,,,\n",
                 5, "contacts", 'no contact has the email "nobody@acme.com" (import contacts before '
                 "opportunities)", id="unknown-opportunity-contact"),
    pytest.param("opportunities.csv", OPPORTUNITIES + "Late deal,Acme,,Proposal,maybe,,,,\n",
                 5, "status", '"maybe" is not a status (expected open, won or lost)', id="bad-status"),
    pytest.param("companies.csv", COMPANIES + "Acme Europe,acme.io,\n",
                 5, "domains", 'domain "acme.io" is already on line 2', id="domain-twice"),
    pytest.param("companies.csv", COMPANIES + "Hooli,http://,\n",
                 5, "domains", '"http://" is not a domain or website URL', id="bad-domain"),
    pytest.param("contacts.csv", CONTACTS + "erin@acme.com,Erin,,,ANA@acme.com\n",
                 6, "other_emails", 'email "ana@acme.com" is already on line 2', id="email-twice"),
    pytest.param("companies.csv", COMPANIES + ",nameless.com,\n",
                 5, "name", "is empty", id="empty-required"),
    pytest.param("companies.csv", COMPANIES + "Hooli,hooli.xyz,,unquoted comma\n",
                 5, "#4", "has 4 fields but the header has 3", id="too-many-fields"),
]
# fmt: on


@pytest.mark.parametrize(("name", "text", "line", "column", "problem"), BAD_ROWS)
def test_bad_last_row_names_file_line_column_and_writes_nothing(
    factory: sessionmaker[Session], tmp_path: Path, name: str, text: str, line: int, column: str, problem: str
) -> None:
    if name == "opportunities.csv":  # contacts must exist for the valid rows
        import_csv(factory, write(tmp_path, "companies.csv", COMPANIES))
        import_csv(factory, write(tmp_path, "contacts.csv", CONTACTS))
    before = snapshot(factory)
    path = write(tmp_path, name, text)
    with pytest.raises(CrmImportError) as caught:
        import_csv(factory, path)
    err = caught.value
    assert str(err).startswith(f'{path}, line {line}, column "{column}": ')
    assert problem in str(err)
    assert (err.path, err.line, err.column) == (path, line, column)
    assert snapshot(factory) == before


def test_missing_required_column(factory: sessionmaker[Session], tmp_path: Path) -> None:
    path = write(tmp_path, "contacts.csv", "First Name,Last Name,Company Name\nAna,López,Acme\n")
    with pytest.raises(CrmImportError, match=r'contacts.csv, line 1: missing required column "email"'):
        import_csv(factory, path)
    path = write(tmp_path, "deals.csv", "Deal Stage,Amount,Close Date\nclosedwon,100,2024-01-01\n")
    with pytest.raises(CrmImportError, match=r'line 1: missing required column "name" for opportunities'):
        import_csv(factory, path)
    assert snapshot(factory) == {t: [] for t in CRM_TABLES}


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "is empty"),
        ("\n\n", "is empty"),
        ("foo,bar\n1,2\n", "the header names no known column"),
        ('name,domains\n"Acme,acme.com\nGlobex,globex.com\n', "malformed CSV"),
    ],
)
def test_unreadable_files(factory: sessionmaker[Session], tmp_path: Path, text: str, problem: str) -> None:
    with pytest.raises(CrmImportError, match=problem):
        import_csv(factory, write(tmp_path, "x.csv", text))


def test_failure_after_batches_were_flushed_rolls_back_the_whole_file(
    factory: sessionmaker[Session], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(syncd.crm_write, "_BATCH", 2)
    real_sync = syncd.crm_write._sync_emails

    def failing_sync(session: Session, contact: Contact, row: Any, *args: Any) -> bool:
        if row.email == "last@x.io":
            raise RuntimeError("disk full")
        return real_sync(session, contact, row, *args)

    monkeypatch.setattr(syncd.crm_write, "_sync_emails", failing_sync)
    rows = "".join(f"p{i}@x.io,P{i},Co{i % 3}\n" for i in range(7))
    with pytest.raises(RuntimeError, match="disk full"):
        import_csv(
            factory, write(tmp_path, "c.csv", "email,first_name,company\n" + rows + "last@x.io,L,Co\n")
        )
    assert snapshot(factory) == {t: [] for t in CRM_TABLES}


# --- line numbers, encodings -------------------------------------------------------------


def test_line_numbers_count_quoted_multi_line_fields(factory: sessionmaker[Session], tmp_path: Path) -> None:
    text = (
        "name,domains,industry\r\n"
        '"Acme","acme.com","Heavy\r\nmachinery\r\nand tools"\r\n'
        "\r\n"
        'Globex,"globex.com",Energy\r\n'
        'Initech,"initech.com;not a domain",Software\r\n'
    )
    with pytest.raises(CrmImportError) as caught:
        import_csv(factory, write(tmp_path, "companies.csv", text))
    assert (caught.value.line, caught.value.column) == (7, "domains")
    # Within one record, a cell after a multi-line cell is on a later line than the record.
    text = (
        'email,first_name,last_name\nana@acme.com,"Ana\nMaría",López\nbob@globex.com,"Bob\n\nJr",bad name\n'
    )
    text = text.replace("bad name", '"x' + "y" * 300 + '"')
    with pytest.raises(CrmImportError) as caught:
        import_csv(factory, write(tmp_path, "contacts.csv", text))
    assert (caught.value.line, caught.value.column) == (6, "last_name")
    assert "longer than 200 characters" in str(caught.value)


def test_multi_line_values_are_kept(factory: sessionmaker[Session], tmp_path: Path) -> None:
    import_csv(factory, write(tmp_path, "c.csv", 'name,industry\n"Acme","Heavy\nmachinery"\n'))
    with factory() as s:
        assert company(s, "acme").industry == "Heavy machinery"


def test_bytes_neither_utf8_nor_cp1252(factory: sessionmaker[Session], tmp_path: Path) -> None:
    path = tmp_path / "odd.csv"
    path.write_bytes(b"name,industry\nAcme,ok\nGlobex,bad \x81 byte\n")
    with pytest.raises(CrmImportError, match="is neither UTF-8 nor Windows-1252 text"):
        import_csv(factory, path)


def test_two_emails_of_one_contact_make_one_role(factory: sessionmaker[Session], tmp_path: Path) -> None:
    import_csv(factory, write(tmp_path, "c.csv", "email,other_emails\nana@acme.com,ana@gmail.com\n"))
    opps = "name,company,contacts\nDeal,Acme,ana@gmail.com;ana@acme.com:buyer\n"
    report = import_csv(factory, write(tmp_path, "o.csv", opps))
    assert (counts(report, "opportunities"), counts(report, "companies")) == ((1, 0, 0), (1, 0, 0))
    with factory() as s:
        assert [(r.contact_id, r.role) for r in opportunity(s, "deal").contact_roles] == [
            (contact(s, "ana@acme.com").id, "buyer")
        ]


def test_utf8_bom(factory: sessionmaker[Session], tmp_path: Path) -> None:
    path = write(
        tmp_path, "contacts.csv", "\ufeffEmail,First Name,Company Name\nana@acme.com,Zoë,Société Générale\n"
    )
    report = import_csv(factory, path)
    assert report.kind == "contacts"
    with factory() as s:
        ana = contact(s, "ana@acme.com")
        assert (ana.first_name, company_name(ana)) == ("Zoë", "Société Générale")


def test_cp1252_export(factory: sessionmaker[Session], tmp_path: Path) -> None:
    text = (
        "Account Name,Website,Industry\n"
        "Société Générale,societegenerale.fr,Banque – Finance\n"
        "Müller GmbH,mueller.de,\n"
    )
    path = write(tmp_path, "accounts.csv", text, encoding="cp1252")
    with pytest.raises(UnicodeDecodeError):
        path.read_text(encoding="utf-8")
    report = import_csv(factory, path)
    assert counts(report, "companies") == (2, 0, 0)
    with factory() as s:
        assert company(s, "société générale").industry == "Banque – Finance"
        assert domains(company(s, "MÜLLER GMBH")) == {"mueller.de"}


@pytest.mark.slow
def test_large_contact_export(factory: sessionmaker[Session], tmp_path: Path) -> None:
    path = tmp_path / "big.csv"
    with path.open("w", encoding="utf-8") as f:
        f.write("Email,First Name,Last Name,Company Name,Additional email addresses\n")
        for i in range(20_000):
            f.write(f"person{i}@corp{i % 500}.com,First{i},Last{i},Corp {i % 500},alt{i}@mail.com\n")
    report = import_csv(factory, path)
    assert counts(report, "contacts") == (20_000, 0, 0)
    assert counts(report, "companies") == (500, 0, 0)
    report = import_csv(factory, path)
    assert counts(report, "contacts") == (0, 0, 20_000)
