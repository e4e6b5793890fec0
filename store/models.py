"""SQLAlchemy 2 typed models.

One activity per real-world email or meeting (``Activity.key``: the RFC Message-ID or the
iCalendar UID), so the same message synced from two teammates' mailboxes is one activity
with two :class:`ActivitySource` rows. Schema changes go through Alembic migrations in
``store/migrations``; a test checks that the models and the migrations agree.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from matchers.identity import canonical_email

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


def _ts() -> Mapped[datetime]:
    return mapped_column(DateTime(timezone=True))


# --- CRM -------------------------------------------------------------------------------


class Company(Base):
    __tablename__ = "companies"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(300))
    name_key: Mapped[str] = mapped_column(String(300), unique=True)  # casefolded name
    industry: Mapped[str | None] = mapped_column(String(200))

    domains: Mapped[list[CompanyDomain]] = relationship(
        back_populates="company", cascade="all, delete-orphan", lazy="selectin"
    )


class CompanyDomain(Base):
    __tablename__ = "company_domains"

    id: Mapped[int] = mapped_column(primary_key=True)
    company_id: Mapped[int] = mapped_column(ForeignKey("companies.id", ondelete="CASCADE"), index=True)
    domain: Mapped[str] = mapped_column(String(255), unique=True)  # lower-cased registrable domain

    company: Mapped[Company] = relationship(back_populates="domains")


class Contact(Base):
    __tablename__ = "contacts"

    id: Mapped[int] = mapped_column(primary_key=True)
    first_name: Mapped[str | None] = mapped_column(String(200))
    last_name: Mapped[str | None] = mapped_column(String(200))
    company_id: Mapped[int | None] = mapped_column(
        ForeignKey("companies.id", ondelete="SET NULL"), index=True
    )

    emails: Mapped[list[ContactEmail]] = relationship(
        back_populates="contact", cascade="all, delete-orphan", lazy="selectin"
    )
    company: Mapped[Company | None] = relationship()

    @property
    def display_name(self) -> str:
        name = " ".join(p for p in (self.first_name, self.last_name) if p)
        return name or (self.emails[0].email if self.emails else f"contact {self.id}")


def _canonical_default(context: Any) -> str:
    return canonical_email(context.get_current_parameters()["email"])


class ContactEmail(Base):
    __tablename__ = "contact_emails"

    id: Mapped[int] = mapped_column(primary_key=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"), index=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)  # lower-cased
    # The mailbox the address reaches (Gmail ignores dots and +tags...): what matching compares.
    canonical: Mapped[str | None] = mapped_column(String(320), index=True, default=_canonical_default)
    is_primary: Mapped[bool] = mapped_column(Boolean, default=False)

    contact: Mapped[Contact] = relationship(back_populates="emails")


class Opportunity(Base):
    __tablename__ = "opportunities"
    __table_args__ = (UniqueConstraint("name_key", "company_id", name="uq_opportunities_name_company"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(300))
    name_key: Mapped[str] = mapped_column(String(300))  # casefolded name
    company_id: Mapped[int | None] = mapped_column(
        ForeignKey("companies.id", ondelete="SET NULL"), index=True
    )
    stage: Mapped[str | None] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(10), default="open")  # open, won, lost
    amount: Mapped[Decimal | None] = mapped_column(Numeric(16, 2))
    close_date: Mapped[date | None] = mapped_column(Date)
    owner_email: Mapped[str | None] = mapped_column(String(320))
    product: Mapped[str | None] = mapped_column(String(300))
    keywords: Mapped[str | None] = mapped_column(Text)  # ;-separated words that identify the deal
    created_at: Mapped[datetime | None] = _ts()

    company: Mapped[Company | None] = relationship()
    contact_roles: Mapped[list[OpportunityContact]] = relationship(
        back_populates="opportunity", cascade="all, delete-orphan", lazy="selectin"
    )


class OpportunityContact(Base):
    __tablename__ = "opportunity_contacts"
    __table_args__ = (UniqueConstraint("opportunity_id", "contact_id", name="uq_opportunity_contacts_pair"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    opportunity_id: Mapped[int] = mapped_column(ForeignKey("opportunities.id", ondelete="CASCADE"))
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"), index=True)
    role: Mapped[str | None] = mapped_column(String(100))

    opportunity: Mapped[Opportunity] = relationship(back_populates="contact_roles")
    contact: Mapped[Contact] = relationship()


class CrmState(Base):
    """One row: the CRM's generation. Every transaction that writes CRM records (contacts and
    their emails, companies and their domains, opportunities and their contact roles) bumps it,
    so that a process caching CRM facts knows when they are stale (see ``store/crm_cache.py``).

    ``token`` is new and random at every bump: a bump rolled back never comes back, whereas the
    counter would come back to the same value with other writes behind it.
    """

    __tablename__ = "crm_state"

    id: Mapped[int] = mapped_column(primary_key=True)  # always 1
    generation: Mapped[int] = mapped_column(BigInteger)
    token: Mapped[str] = mapped_column(String(32))


# --- Accounts and sync state ---------------------------------------------------------


class MailAccount(Base):
    __tablename__ = "mail_accounts"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    provider: Mapped[str] = mapped_column(String(40))
    owner_email: Mapped[str] = mapped_column(String(320))
    state: Mapped[str] = mapped_column(String(30), default="active")
    last_error: Mapped[str | None] = mapped_column(Text)
    last_sync_at: Mapped[datetime | None] = _ts()
    created_at: Mapped[datetime] = _ts()


class SyncCursor(Base):
    __tablename__ = "sync_cursors"
    __table_args__ = (UniqueConstraint("account_id", "folder", name="uq_sync_cursors_account_folder"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("mail_accounts.id", ondelete="CASCADE"))
    folder: Mapped[str] = mapped_column(String(500))
    state: Mapped[str | None] = mapped_column(Text)  # opaque, owned by the connector
    updated_at: Mapped[datetime] = _ts()


# --- Activities -----------------------------------------------------------------------


class Activity(Base):
    __tablename__ = "activities"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(1000), unique=True)  # msg:<Message-ID> or uid:<UID>[/<RID>]
    kind: Mapped[str] = mapped_column(String(10))  # email, meeting
    message_id: Mapped[str | None] = mapped_column(String(1000), index=True)
    ical_uid: Mapped[str | None] = mapped_column(String(1000), index=True)
    thread_key: Mapped[str | None] = mapped_column(String(1000), index=True)
    in_reply_to: Mapped[str | None] = mapped_column(String(1000))
    subject: Mapped[str] = mapped_column(Text, default="")
    occurred_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), index=True)
    direction: Mapped[str] = mapped_column(String(10))  # inbound, outbound, internal
    body_text: Mapped[str | None] = mapped_column(Text)
    # Meetings
    ends_at: Mapped[datetime | None] = _ts()
    all_day: Mapped[bool] = mapped_column(Boolean, default=False)
    location: Mapped[str | None] = mapped_column(Text)
    meeting_status: Mapped[str | None] = mapped_column(String(20))
    sequence: Mapped[int | None] = mapped_column(Integer)
    rrule: Mapped[str | None] = mapped_column(Text)
    conference_url: Mapped[str | None] = mapped_column(Text)
    # Decisions the matchers refused to make (e.g. "3 open deals, none chosen"), for `explain`
    match_notes: Mapped[list[str] | None] = mapped_column(JSON)
    # Every rule that fired when matching: participants, and each candidate deal's signals.
    match_details: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = _ts()
    updated_at: Mapped[datetime] = _ts()

    sources: Mapped[list[ActivitySource]] = relationship(
        back_populates="activity", cascade="all, delete-orphan"
    )
    participants: Mapped[list[ActivityParticipant]] = relationship(
        back_populates="activity", cascade="all, delete-orphan", order_by="ActivityParticipant.id"
    )
    links: Mapped[list[ActivityLink]] = relationship(
        back_populates="activity", cascade="all, delete-orphan", order_by="ActivityLink.id"
    )
    insights: Mapped[list[Insight]] = relationship(
        back_populates="activity", cascade="all, delete-orphan", order_by="Insight.position"
    )


class ActivitySource(Base):
    """Where an activity was seen: one row per (account, folder, provider id)."""

    __tablename__ = "activity_sources"
    __table_args__ = (
        UniqueConstraint("account_id", "folder", "provider_id", name="uq_activity_sources_location"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    activity_id: Mapped[int] = mapped_column(ForeignKey("activities.id", ondelete="CASCADE"), index=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("mail_accounts.id", ondelete="CASCADE"))
    folder: Mapped[str] = mapped_column(String(500))
    provider_id: Mapped[str] = mapped_column(String(1000))
    provider_thread_id: Mapped[str | None] = mapped_column(String(200))
    labels: Mapped[list[str] | None] = mapped_column(JSON)
    deleted_at: Mapped[datetime | None] = _ts()
    synced_at: Mapped[datetime] = _ts()

    activity: Mapped[Activity] = relationship(back_populates="sources")


class ActivityParticipant(Base):
    __tablename__ = "participants"
    __table_args__ = (Index("ix_participants_email", "email"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    activity_id: Mapped[int] = mapped_column(ForeignKey("activities.id", ondelete="CASCADE"), index=True)
    email: Mapped[str] = mapped_column(String(320))
    # The address's domain, so that a company gaining a domain finds its past mail by index.
    domain: Mapped[str | None] = mapped_column(String(255), index=True)
    display_name: Mapped[str | None] = mapped_column(String(300))
    role: Mapped[str] = mapped_column(String(20))
    rsvp: Mapped[str | None] = mapped_column(String(20))

    activity: Mapped[Activity] = relationship(back_populates="participants")


class ActivityLink(Base):
    """An activity linked to a contact, company or opportunity, with why and how sure."""

    __tablename__ = "activity_links"
    __table_args__ = (
        UniqueConstraint("activity_id", "target_type", "target_id", name="uq_activity_links_target"),
        Index("ix_activity_links_target", "target_type", "target_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    activity_id: Mapped[int] = mapped_column(ForeignKey("activities.id", ondelete="CASCADE"))
    target_type: Mapped[str] = mapped_column(String(20))  # contact, company, opportunity
    target_id: Mapped[int] = mapped_column(Integer)
    confidence: Mapped[float] = mapped_column(Float)
    rule: Mapped[str] = mapped_column(String(100))
    reason: Mapped[str] = mapped_column(Text)
    manual: Mapped[bool] = mapped_column(Boolean, default=False)
    # linked: in force; suggested: waiting in the review queue; rejected: unlinked by hand,
    # kept so that a recompute never links it again.
    status: Mapped[str] = mapped_column(String(10), default="linked", server_default="linked")
    created_at: Mapped[datetime] = _ts()

    activity: Mapped[Activity] = relationship(back_populates="links")


class Insight(Base):
    __tablename__ = "insights"

    id: Mapped[int] = mapped_column(primary_key=True)
    activity_id: Mapped[int] = mapped_column(ForeignKey("activities.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(20))  # question, objection
    category: Mapped[str | None] = mapped_column(String(100), index=True)
    text: Mapped[str] = mapped_column(Text)
    position: Mapped[int] = mapped_column(Integer)  # character offset in the activity's new text
    author_email: Mapped[str | None] = mapped_column(String(320))
    created_at: Mapped[datetime] = _ts()

    activity: Mapped[Activity] = relationship(back_populates="insights")


class SkipLogEntry(Base):
    """A message not logged, and why: excluded by a rule, or quarantined (unreadable)."""

    __tablename__ = "skip_log"
    __table_args__ = (UniqueConstraint("account_id", "folder", "provider_id", name="uq_skip_log_location"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("mail_accounts.id", ondelete="CASCADE"))
    folder: Mapped[str] = mapped_column(String(500))
    provider_id: Mapped[str] = mapped_column(String(1000))
    message_id: Mapped[str | None] = mapped_column(String(1000), index=True)
    subject: Mapped[str | None] = mapped_column(Text)
    sender: Mapped[str | None] = mapped_column(String(320))
    reason: Mapped[str] = mapped_column(String(60), index=True)  # e.g. bulk_mail, quarantined
    detail: Mapped[str | None] = mapped_column(Text)
    quarantined: Mapped[bool] = mapped_column(Boolean, default=False)
    # For mail skipped because nobody in it is known yet: what is needed to log it later,
    # when a matching contact or company appears (see syncd/rematch.py).
    held: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = _ts()

    addresses: Mapped[list[HeldAddress]] = relationship(cascade="all, delete-orphan", passive_deletes=True)


class HeldAddress(Base):
    """The external addresses of a held message, to find it when one becomes known."""

    __tablename__ = "held_addresses"

    id: Mapped[int] = mapped_column(primary_key=True)
    skip_id: Mapped[int] = mapped_column(ForeignKey("skip_log.id", ondelete="CASCADE"), index=True)
    email: Mapped[str] = mapped_column(String(320), index=True)
    domain: Mapped[str] = mapped_column(String(255), index=True)
