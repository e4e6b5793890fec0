"""Helpers shared by the local sources (Maildir, mbox, .eml folder, .ics folder).

The batching loop lives here and only here: every local source turns its folder
into a lazy stream of :class:`RawItem` and lets :func:`make_batches` cut it into
batches bounded by count and bytes, so at most one batch (plus one look-ahead
item) is ever held in memory.

Unreadable files are delivered as ``RawItem(data=b"")``: the pipeline quarantines
empty data as "empty or unreadable file", so one bad file never stops a folder and
still leaves a trace the user can see.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, fields
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from connectors.base import Batch, KnownFilter, RawItem, chunked

# How many provider ids go to the pipeline's KnownFilter per call: one query each.
KNOWN_CHUNK = 500

# A directory or file whose mtime is this recent cannot be trusted as a "nothing changed"
# marker: filesystems stamp mtimes at a coarse tick (1 s on ext3/HFS+, 2 s on FAT, a jiffy
# on ext4), so a delivery in the same tick as our stat would leave the mtime unchanged.
MTIME_SETTLE_NS = 2_000_000_000


@dataclass(slots=True)
class SourceStats:
    """What a source did on disk, cumulated since construction or the last :meth:`reset`."""

    files_listed: int = 0
    files_read: int = 0
    bytes_read: int = 0  # message/calendar bytes read
    bytes_verified: int = 0  # small probes (mbox head/tail hashes) that decide what to read

    def reset(self) -> None:
        for f in fields(self):
            setattr(self, f.name, 0)


def expand_path(path: str | os.PathLike[str]) -> Path:
    return Path(path).expanduser()


def check_limits(batch_size: int, batch_bytes: int) -> None:
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    if batch_bytes < 1:
        raise ValueError(f"batch_bytes must be at least 1, got {batch_bytes}")


def load_cursor(cursor: str | None, log: logging.Logger) -> dict[str, Any] | None:
    """The cursor's JSON object, or None (first sync) when absent or corrupt.

    A corrupt cursor must not wedge the account: falling back to a full listing is
    safe because the pipeline's ``known`` filter (or its upserts) absorbs re-delivery.
    """
    if cursor is None:
        return None
    try:
        state = json.loads(cursor)
    except ValueError:
        state = None
    if not isinstance(state, dict):
        log.warning("ignoring a corrupt cursor (%.80r): doing a full listing", cursor)
        return None
    return state


def dump_cursor(state: Mapping[str, Any]) -> str:
    return json.dumps(state, sort_keys=True, separators=(",", ":"))


def settled_mtime(mtime_ns: int) -> int | None:
    """``mtime_ns``, or None when it is too recent to prove that nothing changed since."""
    return mtime_ns if time.time_ns() - mtime_ns >= MTIME_SETTLE_NS else None


def _read_bytes(path: Path) -> bytes:
    with open(path, "rb") as fh:
        return fh.read()


def read_file(path: Path, stats: SourceStats, log: logging.Logger) -> bytes | None:
    """The file's bytes; None if it vanished; ``b""`` if unreadable (logged)."""
    try:
        data = _read_bytes(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        log.warning("unreadable file %s: %s (delivered empty, to be quarantined)", path, exc)
        return b""
    stats.files_read += 1
    stats.bytes_read += len(data)
    return data


def matches(name: str, patterns: Sequence[str]) -> bool:
    """Case-insensitive glob match: exports from Windows tools say ``.EML`` and ``.ICS``."""
    lowered = name.lower()
    return any(fnmatchcase(lowered, p.lower()) for p in patterns)


def walk_files(
    root: Path, patterns: Sequence[str], recursive: bool, stats: SourceStats, log: logging.Logger
) -> Iterator[tuple[str, os.DirEntry[str]]]:
    """(relative path with "/" separators, entry) of matching files, in sorted order.

    Dot files and dot directories (``.git``, ``.DS_Store``) are skipped, and symlinked
    directories are not followed, so a link loop cannot make the listing endless. An
    unreadable subdirectory is logged and skipped (its files come with a later sync);
    an unreadable ``root`` raises.
    """
    with os.scandir(root) as it:
        entries = sorted(it, key=lambda e: e.name)
    for entry in entries:
        if entry.name.startswith("."):
            continue
        if entry.is_dir(follow_symlinks=False):
            if not recursive:
                continue
            try:
                sub = list(walk_files(Path(entry.path), patterns, recursive, stats, log))
            except OSError as exc:
                log.warning("cannot list %s: %s (skipped this time)", entry.path, exc)
                continue
            yield from ((f"{entry.name}/{rel}", e) for rel, e in sub)
        elif entry.is_file() and matches(entry.name, patterns):
            stats.files_listed += 1
            yield entry.name, entry


def unknown_ids(ids: Iterable[str], known: KnownFilter) -> list[str]:
    """The ids the store does not hold yet, in their original order."""
    unknown: list[str] = []
    for chunk in chunked(ids, KNOWN_CHUNK):
        held = known(chunk)
        unknown.extend(i for i in chunk if i not in held)
    return unknown


def drop_known(items: Iterable[RawItem], known: KnownFilter, max_bytes: int) -> Iterator[RawItem]:
    """The items whose ids the store lacks, for sources whose ids only exist once read.

    ``known`` is asked once per :data:`KNOWN_CHUNK` items or ``max_bytes`` of data,
    whichever comes first, so the look-ahead buffer stays within one batch's memory.
    """
    pending: list[RawItem] = []
    pending_bytes = 0
    for item in items:
        pending.append(item)
        pending_bytes += len(item.data)
        if len(pending) >= KNOWN_CHUNK or pending_bytes >= max_bytes:
            held = known([i.provider_id for i in pending])
            yield from (i for i in pending if i.provider_id not in held)
            pending, pending_bytes = [], 0
    if pending:
        held = known([i.provider_id for i in pending])
        yield from (i for i in pending if i.provider_id not in held)


def make_batches(
    items: Iterable[RawItem],
    *,
    batch_size: int,
    batch_bytes: int,
    total: int | None = None,
    checkpoint: Callable[[list[RawItem]], str | None] | None = None,
    final: Callable[[list[RawItem]], str | None] | None = None,
    deleted: Sequence[str] = (),
) -> Iterator[Batch]:
    """Cut ``items`` into batches of at most ``batch_size`` items and ``batch_bytes`` bytes.

    A batch is emitted only once the next item is in hand, so the last batch is known
    to be last and gets ``final(batch_items)`` (and ``deleted``). Earlier batches get
    ``checkpoint(batch_items)``: a cursor covering exactly those items and the earlier
    batches, or None to keep the previous cursor. Derive them from the items given, never
    from the item generator's side effects: the look-ahead item is not stored yet.
    An item larger than ``batch_bytes`` forms a batch of its own. With no items at all,
    one empty batch still carries the final cursor and the deletions.
    """
    pending: list[RawItem] = []
    pending_bytes = 0
    done = 0
    for item in items:
        size = len(item.data)
        if pending and (len(pending) >= batch_size or pending_bytes + size > batch_bytes):
            done += len(pending)
            cursor = checkpoint(pending) if checkpoint else None
            yield Batch(items=pending, cursor=cursor, progress=(done, total))
            pending, pending_bytes = [], 0
        pending.append(item)
        pending_bytes += size
    done += len(pending)
    cursor = None
    if final is not None:
        cursor = final(pending)
    elif checkpoint is not None and pending:
        cursor = checkpoint(pending)
    if pending or deleted or cursor is not None:
        yield Batch(
            items=pending,
            deleted=list(deleted),
            cursor=cursor,
            progress=(done, total if total is not None else done),
        )
