"""The sync pipeline: connector -> parse -> filter -> store -> match -> extract -> store.

Each batch a source yields is written in ONE transaction together with the cursor that
covers it. A process killed mid-sync therefore re-fetches at most one batch, and the
store's keys (activity key, and (account, folder, provider id) for sources and skips)
make that re-fetch harmless: nothing is lost and nothing is duplicated.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from connectors.base import AuthError, Batch, RawItem, Source
from connectors.ics_parse import CalendarError, parse_calendar_with_errors
from connectors.message import Meeting, ParsedMessage, Participant
from connectors.mime_parse import ParseError, parse_message
from matchers.exclusions import Skip, meeting_exclusion, message_exclusion
from matchers.identity import OrgIdentity
from matchers.insights import Extractor, NoExtractor
from matchers.linking import match
from store import activity_writer as writer
from store.crm_lookup import SqlCrmLookup
from store.db import transaction
from store.models import Activity
from store.sync_state import (
    ensure_account,
    known_message_ids,
    known_provider_ids,
    load_cursor,
    now,
    save_cursor,
)
from syncd.config import AccountConfig, Config

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
    account_id: int
    folder: str
    org: OrgIdentity
    report: FolderReport


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
        owners = [a.owner for a in config.accounts] + [x for a in config.accounts for x in a.aliases]
        self.org = OrgIdentity.build(config.org_domains, owners)

    def sync_all(self) -> list[AccountReport]:
        return [self.sync_account(account) for account in self.config.accounts]

    def sync_account(self, account: AccountConfig, source: Source | None = None) -> AccountReport:
        report = AccountReport(account.name)
        with transaction(self.factory) as session:
            account_id = ensure_account(session, account.name, account.provider, account.owner).id
        source = source or account.make_source()
        try:
            for folder in source.folders():
                report.folders.append(self._sync_folder(source, account_id, folder))
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

    def _sync_folder(self, source: Source, account_id: int, folder: str) -> FolderReport:
        report = FolderReport(folder)
        with self.factory() as session:
            cursor = load_cursor(session, account_id, folder)

        known = _Known(self.factory, account_id, folder)
        for batch in source.changes(folder, cursor, known):
            with transaction(self.factory) as session:
                ctx = _Context(session, account_id, folder, self.org, report)
                self._apply(ctx, batch)
                if batch.cursor is not None:
                    save_cursor(session, account_id, folder, batch.cursor)
            if batch.progress:
                log.info("%s: %s of %s", folder, *batch.progress)
        return report

    def _apply(self, ctx: _Context, batch: Batch) -> None:
        for item in batch.items:
            # A savepoint per item: a database error on one message (a value the server
            # refuses, say) quarantines that message instead of failing the whole batch.
            try:
                with ctx.session.begin_nested():
                    self._ingest(ctx, item)
            except SQLAlchemyError as exc:
                log.warning("quarantined %s/%s: %s", ctx.folder, item.provider_id, exc)
                self._quarantine(ctx, item, f"store error: {type(exc).__name__}: {exc.__cause__ or exc}")
        for provider_id, message_id in batch.relocated:
            if writer.relocate(ctx.session, ctx.account_id, ctx.folder, provider_id, message_id):
                ctx.report.merged += 1
            else:  # the source thought we held it; we don't: record the gap, never drop silently
                self._quarantine(
                    ctx, RawItem(provider_id, "rfc822", b""), f"relocated {message_id} is unknown"
                )
        ctx.report.deleted += writer.mark_deleted(ctx.session, ctx.account_id, ctx.folder, batch.deleted)

    def _quarantine(self, ctx: _Context, item: RawItem, error: str, msg: ParsedMessage | None = None) -> None:
        ctx.report.quarantined += 1
        writer.record_skip(
            ctx.session,
            ctx.account_id,
            ctx.folder,
            item.provider_id,
            "quarantined",
            error[:2000],
            message_id=msg.message_id if msg else None,
            subject=msg.subject if msg else None,
            sender=msg.sender.email if msg and msg.sender else None,
            quarantined=True,
        )

    def _skip(self, ctx: _Context, provider_id: str, skip: Skip, **about: str | None) -> None:
        ctx.report.skipped[skip.reason] += 1
        writer.record_skip(
            ctx.session, ctx.account_id, ctx.folder, provider_id, skip.reason, skip.detail, **about
        )

    def _ingest(self, ctx: _Context, item: RawItem) -> None:
        if not item.data:
            self._quarantine(ctx, item, "empty or unreadable item")
        elif item.kind == "ics":
            self._ingest_calendar(ctx, item)
        else:
            self._ingest_email(ctx, item)

    def _ingest_email(self, ctx: _Context, item: RawItem) -> None:
        try:
            msg = parse_message(item.data)
        except ParseError as exc:
            self._quarantine(ctx, item, str(exc))
            return
        about = {
            "message_id": msg.message_id,
            "subject": msg.subject,
            "sender": msg.sender.email if msg.sender else None,
        }
        skip = message_exclusion(msg, ctx.org, self.config.policy.log_internal)
        if skip:
            self._skip(ctx, item.provider_id, skip, **about)
            return
        activity = writer.find_activity(ctx.session, msg.key)
        if activity is None:
            result = match(msg.participants, SqlCrmLookup(ctx.session), ctx.org)
            if not result.known and self.config.policy.unknown_participants == "skip":
                detail = "; ".join(result.notes) or "no external participant is a CRM contact or company"
                self._skip(ctx, item.provider_id, Skip("no_known_participant", detail), **about)
                return
            activity = writer.insert_email(ctx.session, msg, self._direction(msg.sender, msg.participants))
            writer.replace_links(ctx.session, activity, result)
            from_customer = msg.sender is not None and not ctx.org.is_internal(msg.sender.email)
            writer.add_insights(ctx.session, activity, self.extractor.extract(msg, from_customer))
            ctx.report.logged += 1
            self._add_source(ctx, activity, item)
        elif self._add_source(ctx, activity, item):
            ctx.report.merged += 1
        self._meetings(ctx, item, msg.meetings)

    def _add_source(self, ctx: _Context, activity: Activity, item: RawItem) -> bool:
        return writer.add_source(
            ctx.session, activity, ctx.account_id, ctx.folder, item.provider_id, item.thread_id, item.labels
        )

    def _ingest_calendar(self, ctx: _Context, item: RawItem) -> None:
        try:
            meetings, problems = parse_calendar_with_errors(item.data)
        except CalendarError as exc:
            self._quarantine(ctx, item, str(exc))
            return
        if not meetings and problems:
            self._quarantine(ctx, item, "; ".join(problems))
            return
        for problem in problems:
            log.warning("%s/%s: %s", ctx.folder, item.provider_id, problem)
        self._meetings(ctx, item, tuple(meetings))

    def _meetings(self, ctx: _Context, item: RawItem, meetings: tuple[Meeting, ...]) -> None:
        for meeting in meetings:
            provider_id = f"{item.provider_id}#{meeting.key}"
            people = writer.meeting_people(meeting)
            about = {
                "message_id": meeting.uid,
                "subject": meeting.summary,
                "sender": meeting.organizer.email if meeting.organizer else None,
            }
            skip = meeting_exclusion(meeting, ctx.org, self.config.policy.log_internal)
            result = match(people, SqlCrmLookup(ctx.session), ctx.org)
            if skip is None and not result.known and self.config.policy.unknown_participants == "skip":
                skip = Skip("no_known_participant", "; ".join(result.notes))
            existing = writer.find_activity(ctx.session, meeting.key)
            if skip and existing is None:
                self._skip(ctx, provider_id, skip, **about)
                continue
            direction = self._direction(meeting.organizer, people)
            activity, changed = writer.upsert_meeting(ctx.session, meeting, direction)
            if existing is None:
                ctx.report.logged += 1
            elif changed:
                ctx.report.updated += 1
            if existing is None or changed:
                writer.replace_links(ctx.session, activity, result)
            writer.add_source(ctx.session, activity, ctx.account_id, ctx.folder, provider_id)

    def _direction(self, sender: Participant | None, people: tuple[Participant, ...]) -> str:
        if all(self.org.is_internal(p.email) for p in people):
            return "internal"
        if sender is not None and self.org.is_internal(sender.email):
            return "outbound"
        return "inbound"
