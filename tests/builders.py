"""Small builders for pipeline tests: a CRM in the store, a Maildir on disk, a config."""

from __future__ import annotations

import mailbox
from datetime import UTC, date, datetime
from email.utils import format_datetime
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from store.db import transaction
from store.models import Company, CompanyDomain, Contact, ContactEmail, Opportunity, OpportunityContact
from syncd.config import Config, parse_config

ORG = ["lumenfold.io"]
REP = "maya@lumenfold.io"


def seed_crm(factory: sessionmaker[Session]) -> None:
    """Acme (one open deal with Ana), Globex (Gus on two open deals), Initech (a won deal)."""
    with transaction(factory) as s:
        acme = Company(
            name="Acme Freight",
            name_key="acme freight",
            industry="Logistics",
            domains=[CompanyDomain(domain="acme-freight.com"), CompanyDomain(domain="acme.co.uk")],
        )
        globex = Company(
            name="Globex Health",
            name_key="globex health",
            industry="Healthcare",
            domains=[CompanyDomain(domain="globexhealth.com")],
        )
        initech = Company(name="Initech", name_key="initech", domains=[CompanyDomain(domain="initech.net")])
        s.add_all([acme, globex, initech])
        s.flush()
        ana = Contact(
            first_name="Ana",
            last_name="Ruiz",
            company_id=acme.id,
            emails=[
                ContactEmail(email="ana@acme-freight.com", is_primary=True),
                ContactEmail(email="ana.ruiz@gmail.com"),
            ],
        )
        gus = Contact(
            first_name="Gus",
            last_name="Fring",
            company_id=globex.id,
            emails=[ContactEmail(email="gus@globexhealth.com", is_primary=True)],
        )
        pete = Contact(
            first_name="Pete",
            last_name="Gibbons",
            company_id=initech.id,
            emails=[ContactEmail(email="pete@initech.net", is_primary=True)],
        )
        s.add_all([ana, gus, pete])
        s.flush()

        def deal(name: str, company: Company, status: str, *contacts: Contact) -> Opportunity:
            return Opportunity(
                name=name,
                name_key=name.casefold(),
                company_id=company.id,
                stage="Proposal",
                status=status,
                close_date=date(2026, 6, 30),
                owner_email=REP,
                created_at=datetime(2026, 1, 5, tzinfo=UTC),
                contact_roles=[OpportunityContact(contact_id=c.id, role="decision maker") for c in contacts],
            )

        s.add_all(
            [
                deal("Acme - Observability", acme, "open", ana),
                deal("Globex - Pilot", globex, "open", gus),
                deal("Globex - Enterprise", globex, "open", gus),
                deal("Initech - 2025", initech, "won", pete),
            ]
        )


def email(
    sender: str,
    to: str,
    subject: str,
    body: str,
    *,
    message_id: str | None,
    when: datetime = datetime(2026, 3, 2, 15, 30, tzinfo=UTC),
    extra: dict[str, str] | None = None,
) -> bytes:
    headers = {
        "From": sender,
        "To": to,
        "Subject": subject,
        "Date": format_datetime(when),
        "MIME-Version": "1.0",
        "Content-Type": "text/plain; charset=utf-8",
    }
    if message_id:
        headers["Message-ID"] = f"<{message_id}>"
    headers.update(extra or {})
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    return (head + "\r\n" + body.replace("\n", "\r\n") + "\r\n").encode()


def maildir(path: Path, messages: list[bytes]) -> Path:
    box = mailbox.Maildir(path, create=True)
    for raw in messages:
        box.add(raw)
    box.close()
    return path


def config(tmp_path: Path, store_url: str, accounts: str, policy: str = "") -> Config:
    text = f"""
[store]
url = "{store_url}"
[organization]
domains = {ORG!r}
[policy]
{policy}
{accounts}
"""
    import tomllib

    return parse_config(tomllib.loads(text.replace("'", '"')), tmp_path / "syncd.toml", text)


def maildir_account(name: str, path: Path, owner: str = REP) -> str:
    return f'[[accounts]]\nname = "{name}"\nprovider = "maildir"\nowner = "{owner}"\npath = "{path}"\n'
