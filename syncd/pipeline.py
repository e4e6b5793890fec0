"""The sync pipeline: connector -> parse -> filter -> store -> match -> extract -> store.

Each batch a source yields is written in ONE transaction together with the cursor that
covers it. A process killed mid-sync therefore re-fetches at most one batch, and the
store's keys (activity key, and (account, folder, provider id) for sources and skips)
make that re-fetch harmless: nothing is lost and nothing is duplicated.
"""

from __future__ import annotations

import copy
import logging
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from connectors.base import AuthError, Batch, RawItem, Source
from connectors.message import Meeting, ParsedMessage, Participant
from connectors.parse_item import Parsed, parse_item
from matchers.contact_policy import NewContact, contacts_to_create
from matchers.deals import MessageFacts
from matchers.exclusions import (
    REASONS,
    Blocklist,
    PrivacySettings,
    Skip,
    meeting_exclusion,
    message_exclusion,
    private_exclusion,
)
from matchers.identity import OrgIdentity, domain_of
from matchers.insights import Extractor, NoExtractor
from matchers.linking import CrmLookup, MatchResult, match
from store import activity_writer as writer
from store.batch_state import BatchState
from store.crm_lookup import BatchCrmLookup, SqlCrmLookup
from store.db import transaction
from store.held import hold_email, hold_meeting
from store.sync_state import (
    ensure_account,
    known_message_ids,
    known_provider_ids,
    load_cursor,
    now,
    save_cursor,
)
from syncd.config import AccountConfig, Config
from syncd.parse_pool import ParsePool
from syncd.prefetch import prefetched

log = logging.getLogger(__name__)


@dataclass
class FolderReport:
    folder: str
    logged: int = 0  # new activities
    merged: int = 0  # already-known activities seen in a new place (another mailbox, a move)
    updated: int = 0  # meetings whose content changed
    skipped: Counter[str] = field(default_factory=Counter)
    quarantined: int = 0
    deleted: int = 0


@dataclass
class AccountReport:
    account: str
    folders: list[FolderReport] = field(default_factory=list)
    error: str | None = None
    state: str = "active"

    def total(self, attr: str) -> int:
        return sum(getattr(f, attr) for f in self.folders)

    @property
    def skipped(self) -> Counter[str]:
        out: Counter[str] = Counter()
        for f in self.folders:
            out.update(f.skipped)
        return out


@dataclass
class _Context:
    session: Session
    state: BatchState
    crm: CrmLookup
    org: OrgIdentity
    report: FolderReport
    rules: MailboxRules

    @property
    def owner(self) -> str:
        return self.rules.owner

    @property
    def folder(self) -> str:
        return self.state.folder


@dataclass(frozen=True)
class MailboxRules:
    """What is decided per mailbox: whose it is, and what must never be logged from it."""

    owner: str
    blocklist: Blocklist
    privacy: PrivacySettings


EXCLUSIONS_PASSED = "none applied; checked: " + ", ".join(REASONS)
MEETING_EXCLUSIONS_PASSED = "none applied; checked: private, blocklisted, internal_only"
# Skips whose subject and sender are not recorded: the message was kept out to stay private.
SECRET_REASONS = frozenset({"private", "blocklisted"})


class _Known:
    """The pipeline's answer to a source asking what the store already holds."""

    def __init__(self, factory: sessionmaker[Session], account_id: int, folder: str) -> None:
        self.factory, self.account_id, self.folder = factory, account_id, folder

    def __call__(self, provider_ids: list[str]) -> set[str]:
        with self.factory() as session:
            return known_provider_ids(session, self.account_id, self.folder, provider_ids)

    def message_ids(self, message_ids: list[str]) -> set[str]:
        with self.factory() as session:
            return known_message_ids(session, message_ids)


class Pipeline:
    def __init__(
        self, config: Config, factory: sessionmaker[Session], extractor: Extractor | None = None
    ) -> None:
        self.config = config
        self.factory = factory
        self.extractor = extractor or NoExtractor()
        self.parse_pool = ParsePool(config.parse_workers)
        self.org = OrgIdentity.from_accounts(
            config.org_domains, config.accounts, plus_addressing_domains=config.plus_addressing_domains
        )

    def sync_all(self) -> list[AccountReport]:
        return [self.sync_account(account) for account in self.config.accounts]

    def close(self) -> None:
        self.parse_pool.close()

    def sync_account(self, account: AccountConfig, source: Source | None = None) -> AccountReport:
        report = AccountReport(account.name)
        with transaction(self.factory) as session:
            account_id = ensure_account(session, account.name, account.provider, account.owner).id
        source = source or account.make_source()
        try:
            for folder in source.folders():
                report.folders.append(self._sync_folder(source, account_id, self.rules(account), folder))
        except AuthError as exc:  # retrying cannot help: a person must sign in again
            log.error("account %s: the provider refused our credentials: %s", account.name, exc)
            report.error, report.state = str(exc), "needs_reauth"
        except Exception as exc:  # a failing account must not stop the others
            log.exception("account %s: sync failed", account.name)
            report.error, report.state = f"{type(exc).__name__}: {exc}", "failing"
        finally:
            source.close()
        with transaction(self.factory) as session:
            acc = ensure_account(session, account.name, account.provider, account.owner)
            acc.state = report.state
            acc.last_error = report.error
            if not report.error:
                acc.last_sync_at = now()
        return report

    def rules(self, account: AccountConfig) -> MailboxRules:
        return MailboxRules(
            account.owner, self.config.blocklist | account.blocklist, self.config.privacy | account.privacy
        )

    def _sync_folder(self, source: Source, account_id: int, rules: MailboxRules, folder: str) -> FolderReport:
        report = FolderReport(folder)
        with self.factory() as session:
            cursor = load_cursor(session, account_id, folder)

        known = _Known(self.factory, account_id, folder)

        def fetch_and_parse() -> Iterator[tuple[Batch, Callable[[], list[Parsed]]]]:
            for batch in source.changes(folder, cursor, known):
                yield batch, self.parse_pool.submit(parse_item, batch.items)

        for batch, pending in prefetched(fetch_and_parse(), name=f"fetch {folder}"):
            parsed = pending()
            with transaction(self.factory) as session:
                self._apply(session, account_id, rules, folder, report, batch, parsed)
                if batch.cursor is not None:
                    save_cursor(session, account_id, folder, batch.cursor)
            if batch.progress:
                log.info("%s: %s of %s", folder, *batch.progress)
        return report

    def _apply(
        self,
        session: Session,
        account_id: int,
        rules: MailboxRules,
        folder: str,
        report: FolderReport,
        batch: Batch,
        parsed: list[Parsed],
    ) -> None:
        """Apply one batch: all at once, or item by item when the database refuses something.

        The fast path prefetches what the batch touches and flushes once. If the database
        rejects the batch (a value too long for PostgreSQL, a concurrent writer's duplicate),
        the batch is replayed with a savepoint per item, so only the offending message is
        quarantined and the rest are stored.
        """
        before = copy.deepcopy(report)
        state = BatchState(session, account_id, folder)
        keys, emails, thread_keys = _keys_and_addresses(parsed)
        provider_ids = [i.provider_id for i in batch.items] + [pid for pid, _ in batch.relocated]
        provider_ids += [
            f"{i.provider_id}#{k}" for i, p in zip(batch.items, parsed, strict=True) for k in _meeting_keys(p)
        ]
        try:
            with session.begin_nested():
                state.prefetch(keys, provider_ids)
                crm = BatchCrmLookup(SqlCrmLookup(session), emails, thread_keys)
                ctx = _Context(session, state, crm, self.org, report, rules)
                for item, result in zip(batch.items, parsed, strict=True):
                    self._ingest(ctx, item, result)
                writer.flush_pending(state)
                session.flush()
        except SQLAlchemyError as exc:
            log.warning("%s: batch refused by the database (%s); replaying it item by item", folder, exc)
            _restore(report, before)
            state = BatchState(session, account_id, folder)
            ctx = _Context(session, state, SqlCrmLookup(session), self.org, report, rules)
            for item, result in zip(batch.items, parsed, strict=True):
                before = copy.deepcopy(report)
                try:
                    with session.begin_nested():
                        self._ingest(ctx, item, result)
                        writer.flush_pending(ctx.state)
                        session.flush()
                except SQLAlchemyError as item_exc:
                    log.warning("quarantined %s/%s: %s", folder, item.provider_id, item_exc)
                    _restore(report, before)
                    ctx.state = BatchState(session, account_id, folder)  # forget rolled-back objects
                    msg = result if isinstance(result, ParsedMessage) else None
                    cause = item_exc.orig if isinstance(item_exc, DBAPIError) else item_exc
                    self._quarantine(ctx, item, f"store error: {type(cause).__name__}: {cause}", msg)
        for provider_id, message_id in batch.relocated:
            if writer.relocate(ctx.state, provider_id, message_id):
                report.merged += 1
            else:  # the source thought we held it; we don't: record the gap, never drop silently
                self._quarantine(
                    ctx, RawItem(provider_id, "rfc822", b""), f"relocated {message_id} is unknown"
                )
        report.deleted += writer.mark_deleted(session, account_id, folder, batch.deleted)

    def _quarantine(self, ctx: _Context, item: RawItem, error: str, msg: ParsedMessage | None = None) -> None:
        ctx.report.quarantined += 1
        writer.record_skip(
            ctx.state,
            item.provider_id,
            "quarantined",
            error[:2000],
            message_id=msg.message_id if msg else None,
            subject=msg.subject if msg else None,
            sender=msg.sender.email if msg and msg.sender else None,
            quarantined=True,
        )

    def _skip(self, ctx: _Context, provider_id: str, skip: Skip, **about: str | None) -> None:
        if skip.reason in SECRET_REASONS:  # what it was about stays out of the store too
            about = {"message_id": about.get("message_id")}
        ctx.report.skipped[skip.reason] += 1
        writer.record_skip(ctx.state, provider_id, skip.reason, skip.detail, **about)

    def _ingest(self, ctx: _Context, item: RawItem, parsed: Parsed) -> None:
        private = private_exclusion(ctx.folder, item.labels, item.flags, ctx.rules.privacy)
        if private:
            mid = parsed.message_id if isinstance(parsed, ParsedMessage) else None
            self._skip(ctx, item.provider_id, private, message_id=mid)
            return
        if isinstance(parsed, str):
            self._quarantine(ctx, item, parsed)
        elif isinstance(parsed, ParsedMessage):
            self._ingest_email(ctx, item, parsed)
        else:
            meetings, problems = parsed
            for problem in problems:
                log.warning("%s/%s: %s", ctx.folder, item.provider_id, problem)
            self._meetings(ctx, item, tuple(meetings))

    def log_held(
        self,
        session: Session,
        account_id: int,
        owner: str,
        folder: str,
        held: list[tuple[str, ParsedMessage | Meeting]],
    ) -> int:
        """Try again to log held mail and meetings (provider id, item) of one folder; how many were logged."""
        state = BatchState(session, account_id, folder)
        emails = {
            p.email
            for _, item in held
            for p in (item.participants if isinstance(item, ParsedMessage) else writer.meeting_people(item))
        }
        threads = {
            item.thread_key if isinstance(item, ParsedMessage) else f"uid:{item.uid}" for _, item in held
        }
        crm = BatchCrmLookup(SqlCrmLookup(session), emails, threads)
        rules = MailboxRules(owner, self.config.blocklist, self.config.privacy)
        ctx = _Context(session, state, crm, self.org, FolderReport(folder), rules)
        state.prefetch([item.key for _, item in held], [pid for pid, _ in held])
        for provider_id, item in held:
            if isinstance(item, ParsedMessage):
                self._ingest_email(ctx, RawItem(provider_id, "rfc822", b""), item)
            else:
                self._ingest_meeting(ctx, provider_id, item)
        writer.flush_pending(state)
        return ctx.report.logged + ctx.report.merged

    def _ingest_email(self, ctx: _Context, item: RawItem, msg: ParsedMessage) -> None:
        about = {
            "message_id": msg.message_id,
            "subject": msg.subject,
            "sender": msg.sender.email if msg.sender else None,
        }
        skip = message_exclusion(msg, ctx.org, self.config.policy.log_internal, blocklist=ctx.rules.blocklist)
        if skip:
            self._skip(ctx, item.provider_id, skip, **about)
            return
        activity = ctx.state.activity(msg.key)
        if activity is None:
            facts = MessageFacts(
                subject=msg.subject,
                text=msg.text,
                date=msg.date,
                thread_key=msg.thread_key,
                mailbox_owner=ctx.owner,
                internal_people=frozenset(p.email for p in msg.participants if ctx.org.is_internal(p.email)),
            )
            created = self._create_contacts(ctx, msg)
            result = match(msg.participants, ctx.crm, ctx.org, facts, self.config.thresholds)
            result.notes.extend(f"contact {c.email} created ({c.rule})" for c in created)
            result.exclusions = EXCLUSIONS_PASSED
            if not result.known and self.config.policy.unknown_participants == "skip":
                detail = "; ".join(result.notes) or "no external participant is a CRM contact or company"
                ctx.report.skipped["no_known_participant"] += 1
                writer.record_skip(
                    ctx.state,
                    item.provider_id,
                    "no_known_participant",
                    detail,
                    **about,
                    held=hold_email(msg),  # logged later if one of them becomes known
                    held_addresses=[p.email for p in msg.participants if not ctx.org.is_internal(p.email)],
                )
                return
            from_customer = msg.sender is not None and not ctx.org.is_internal(msg.sender.email)
            activity = writer.insert_email(
                ctx.state,
                msg,
                self._direction(msg.sender, msg.participants),
                result,
                self.extractor.extract(msg, from_customer),
            )
            ctx.report.logged += 1
            _note_thread(ctx.crm, msg.thread_key, result)
            writer.add_source(ctx.state, activity, item.provider_id, item.thread_id, item.labels)
        elif writer.add_source(ctx.state, activity, item.provider_id, item.thread_id, item.labels):
            ctx.report.merged += 1
        self._meetings(ctx, item, msg.meetings)

    def _create_contacts(self, ctx: _Context, msg: ParsedMessage) -> list[NewContact]:
        policy = self.config.policy
        if policy.create_contacts == "none":
            return []
        external = [p.email for p in msg.participants if not ctx.org.is_internal(p.email)]
        known = set(ctx.crm.contacts_by_email(external))
        new = contacts_to_create(
            msg, ctx.org, known, policy.create_contacts, policy.create_contacts_free_mail
        )
        companies = ctx.crm.companies_by_domain({domain_of(c.email) for c in new})
        for person in new:
            company = companies.get(domain_of(person.email))
            contact = writer.create_contact(ctx.session, person, company.id if company else None)
            if isinstance(ctx.crm, BatchCrmLookup):
                ctx.crm.add_contact(contact)
        return new

    def _meetings(self, ctx: _Context, item: RawItem, meetings: tuple[Meeting, ...]) -> None:
        for meeting in meetings:
            # One calendar item may hold several meetings: each is recorded as "<item>#<key>".
            self._ingest_meeting(ctx, f"{item.provider_id}#{meeting.key}", meeting)

    def _ingest_meeting(self, ctx: _Context, provider_id: str, meeting: Meeting) -> None:
        people = writer.meeting_people(meeting)
        about = {
            "message_id": meeting.uid,
            "subject": meeting.summary,
            "sender": meeting.organizer.email if meeting.organizer else None,
        }
        skip = meeting_exclusion(
            meeting, ctx.org, self.config.policy.log_internal, blocklist=ctx.rules.blocklist
        )
        facts = MessageFacts(
            subject=meeting.summary,
            text=meeting.description,
            date=meeting.start,
            thread_key=f"uid:{meeting.uid}",
            mailbox_owner=ctx.owner,
            internal_people=frozenset(p.email for p in people if ctx.org.is_internal(p.email)),
        )
        result = match(people, ctx.crm, ctx.org, facts, self.config.thresholds)
        result.exclusions = None if skip else MEETING_EXCLUSIONS_PASSED
        if skip is None and not result.known and self.config.policy.unknown_participants == "skip":
            skip = Skip("no_known_participant", "; ".join(result.notes))
        existing = ctx.state.activity(meeting.key)
        if skip and existing is None:
            if skip.reason == "no_known_participant":  # held, to be logged once someone is known
                ctx.report.skipped[skip.reason] += 1
                external = [p.email for p in people if not ctx.org.is_internal(p.email)]
                writer.record_skip(
                    ctx.state,
                    provider_id,
                    skip.reason,
                    skip.detail,
                    **about,
                    held=hold_meeting(meeting),
                    held_addresses=external,
                )
            else:
                self._skip(ctx, provider_id, skip, **about)
            return
        direction = self._direction(meeting.organizer, people)
        activity, changed = writer.upsert_meeting(ctx.state, meeting, direction)
        if existing is None:
            ctx.report.logged += 1
        elif changed:
            ctx.report.updated += 1
        if existing is None:
            activity.links.extend(writer.new_links(result))
            activity.match_notes = list(result.notes) or None
            activity.match_details = result.details()
            _note_thread(ctx.crm, f"uid:{meeting.uid}", result)
        elif changed:
            writer.replace_links(ctx.session, activity, result)
        writer.add_source(ctx.state, activity, provider_id)

    def _direction(self, sender: Participant | None, people: tuple[Participant, ...]) -> str:
        if all(self.org.is_internal(p.email) for p in people):
            return "internal"
        if sender is not None and self.org.is_internal(sender.email):
            return "outbound"
        return "inbound"


def _meeting_keys(parsed: Parsed) -> list[str]:
    if isinstance(parsed, ParsedMessage):
        return [m.key for m in parsed.meetings]
    if isinstance(parsed, tuple):
        return [m.key for m in parsed[0]]
    return []


def _keys_and_addresses(parsed: list[Parsed]) -> tuple[list[str], set[str], set[str]]:
    keys: list[str] = []
    emails: set[str] = set()
    threads: set[str] = set()
    for p in parsed:
        if isinstance(p, ParsedMessage):
            keys.append(p.key)
            threads.add(p.thread_key)
            emails.update(x.email for x in p.participants)
        meetings = p.meetings if isinstance(p, ParsedMessage) else p[0] if isinstance(p, tuple) else []
        for m in meetings:
            keys.append(m.key)
            threads.add(f"uid:{m.uid}")
            emails.update(x.email for x in writer.meeting_people(m))
    return keys, emails, threads


def _restore(report: FolderReport, before: FolderReport) -> None:
    for name in ("logged", "merged", "updated", "quarantined", "deleted"):
        setattr(report, name, getattr(before, name))
    report.skipped = before.skipped


def _note_thread(crm: CrmLookup, thread_key: str | None, result: MatchResult) -> None:
    if isinstance(crm, BatchCrmLookup):
        crm.note_links(
            thread_key, [link.target_id for link in result.links if link.target_type == "opportunity"]
        )
