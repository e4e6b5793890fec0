"""The one interface every source implements (local files, IMAP, Gmail, Graph).

The pipeline never asks which provider it has: it asks a :class:`Source` for its
folders, then for batches of changes since the folder's cursor, and commits each
batch's data together with the batch's cursor in one transaction. A crash after
fetching and before the commit re-fetches that batch; it never skips one.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

ItemKind = Literal["rfc822", "ics"]


class KnownFilter(Protocol):
    """What the store already holds, asked by a source so it never reads a message twice.

    Supplied by the pipeline, so that sources never touch the database themselves.
    Calling it with provider ids of the folder being synced returns the subset already
    logged, skipped or quarantined there.
    """

    def __call__(self, provider_ids: list[str], /) -> set[str]: ...

    def message_ids(self, message_ids: list[str], /) -> set[str]:
        """The RFC Message-IDs (without brackets) the store holds in any account or folder.

        A source that can read a message's Message-ID cheaply (an IMAP header fetch after a
        UIDVALIDITY change or a move) reports those as :attr:`Batch.relocated` instead of
        downloading them again.
        """
        ...


@dataclass(frozen=True, slots=True)
class RawItem:
    """One message or calendar file as the provider gave it, not yet parsed."""

    provider_id: str  # stable within (account, folder): a UID, a file name, a Gmail id...
    kind: ItemKind
    data: bytes
    flags: tuple[str, ...] = ()
    labels: tuple[str, ...] = ()
    thread_id: str | None = None  # the provider's own thread id, when it has one


@dataclass(slots=True)
class Batch:
    """Changes to commit together with ``cursor`` (the folder's state once they are stored)."""

    items: list[RawItem] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)  # provider ids gone from the folder
    # (provider id, Message-ID) of messages the store already holds under another location
    # (moved, or renumbered by a UIDVALIDITY change): recorded without fetching them again.
    relocated: list[tuple[str, str]] = field(default_factory=list)
    cursor: str | None = None  # opaque to the pipeline; None keeps the previous cursor
    progress: tuple[int, int | None] | None = None  # (done, total) for progress reporting


@runtime_checkable
class Source(Protocol):
    """A mail or calendar source for one account.

    The keyword parameters of a source's constructor are its config keys (keyword-only
    ones are for programmatic use). Constructing a source does no I/O; it raises
    ValueError, with a message saying what is expected, for options it cannot accept.
    """

    def folders(self) -> list[str]:
        """The folders to sync, in the order to sync them."""
        ...

    def changes(self, folder: str, cursor: str | None, known: KnownFilter) -> Iterator[Batch]:
        """Batches of changes in ``folder`` since ``cursor`` (None: first sync).

        Each batch carries the cursor that is valid once it is stored. Batches are
        bounded in count and bytes, so memory stays flat whatever the folder's size.
        """
        ...

    def close(self) -> None: ...


class SourceError(Exception):
    """A failure of a whole source or folder (not of one message)."""


class AuthError(SourceError):
    """The provider refused our credentials: the account needs re-authorization."""


class TransientError(SourceError):
    """A failure that may pass by itself (server down, connection dropped, timeout, throttling).

    The pipeline retries the account later with backoff; ``retry_after`` (seconds), when the
    provider said how long to wait, is the least it should wait.
    """

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def chunked(items: Iterable[str], size: int) -> Iterator[list[str]]:
    chunk: list[str] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
