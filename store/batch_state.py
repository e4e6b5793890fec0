"""What the store holds about one batch, fetched in a few queries before the batch is applied.

Applying a batch of 500 messages one query at a time costs thousands of round trips;
prefetching the activities, sources and skip entries the batch can touch turns that
into a handful. ``prefetched=False`` gives the careful mode (every lookup queries), used
when a batch is replayed item by item after a database error.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from store.models import Activity, ActivitySource, SkipLogEntry

CHUNK = 500  # bound IN (...) lists well under every backend's parameter limit


def _chunks(values: Iterable[str]) -> Iterable[list[str]]:
    values = sorted(set(values))
    for i in range(0, len(values), CHUNK):
        yield values[i : i + CHUNK]


@dataclass
class PendingEmail:
    """A new email activity and its rows, waiting for the batch's multi-row INSERTs."""

    row: dict[str, Any]
    participants: list[dict[str, Any]]
    links: list[dict[str, Any]]
    insights: list[dict[str, Any]]
    sources: list[dict[str, Any]] = field(default_factory=list)
    id: int | None = None  # set once inserted


class BatchState:
    def __init__(self, session: Session, account_id: int, folder: str) -> None:
        self.session, self.account_id, self.folder = session, account_id, folder
        self.prefetched = False
        self._activities: dict[str, Activity | None] = {}
        self._sources: dict[str, ActivitySource | None] = {}
        self._skips: dict[str, SkipLogEntry | None] = {}
        self._pending: dict[str, PendingEmail] = {}
        self._new: dict[str, PendingEmail] = {}  # inserted by this batch, by key
        self.pending_source_ids: set[str] = set()  # sources added by this batch

    def prefetch(self, keys: Iterable[str], provider_ids: Iterable[str]) -> None:
        s = self.session
        keys, provider_ids = list(keys), list(provider_ids)
        self._activities = dict.fromkeys(keys)
        for chunk in _chunks(keys):
            for activity in s.scalars(select(Activity).where(Activity.key.in_(chunk))):
                self._activities[activity.key] = activity
        self._sources = dict.fromkeys(provider_ids)
        self._skips = dict.fromkeys(provider_ids)
        for chunk in _chunks(provider_ids):
            for source in s.scalars(
                select(ActivitySource).where(
                    ActivitySource.account_id == self.account_id,
                    ActivitySource.folder == self.folder,
                    ActivitySource.provider_id.in_(chunk),
                )
            ):
                self._sources[source.provider_id] = source
            for entry in s.scalars(
                select(SkipLogEntry).where(
                    SkipLogEntry.account_id == self.account_id,
                    SkipLogEntry.folder == self.folder,
                    SkipLogEntry.provider_id.in_(chunk),
                )
            ):
                self._skips[entry.provider_id] = entry
        self.prefetched = True

    def activity(self, key: str) -> Activity | PendingEmail | None:
        if key in self._pending or key in self._new:
            return self._pending.get(key) or self._new[key]
        if self.prefetched and key in self._activities:
            return self._activities[key]
        found = self.session.scalar(select(Activity).where(Activity.key == key))
        self._activities[key] = found
        return found

    def source(self, provider_id: str) -> ActivitySource | None:
        if self.prefetched and provider_id in self._sources:
            return self._sources[provider_id]
        return self.session.scalar(
            select(ActivitySource).where(
                ActivitySource.account_id == self.account_id,
                ActivitySource.folder == self.folder,
                ActivitySource.provider_id == provider_id,
            )
        )

    def skip(self, provider_id: str) -> SkipLogEntry | None:
        if self.prefetched and provider_id in self._skips:
            return self._skips[provider_id]
        return self.session.scalar(
            select(SkipLogEntry).where(
                SkipLogEntry.account_id == self.account_id,
                SkipLogEntry.folder == self.folder,
                SkipLogEntry.provider_id == provider_id,
            )
        )

    def remember(self, item: Activity | ActivitySource | SkipLogEntry) -> None:
        if isinstance(item, Activity):
            self._activities[item.key] = item
        elif isinstance(item, ActivitySource):
            self._sources[item.provider_id] = item
        else:
            self._skips[item.provider_id] = item

    def add_pending(self, pending: PendingEmail) -> None:
        self._pending[pending.row["key"]] = pending

    def take_pending(self) -> list[PendingEmail]:
        """The new emails not yet inserted; they stay findable by key once inserted."""
        pending = list(self._pending.values())
        self._new.update(self._pending)
        self._pending.clear()
        return pending
