"""A folder of iCalendar (``.ics``) files: one folder, "calendar".

Unlike mail, calendar files are edited in place (an export refreshed, an event
moved), so a file is re-delivered whenever its mtime or size changes; the pipeline
upserts meetings by UID, so re-delivery updates the meeting rather than duplicating
it. Content hashes would catch more but would mean reading every file on every sync.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from connectors.base import Batch, KnownFilter, RawItem, SourceError
from connectors.local_common import (
    SourceStats,
    check_limits,
    dump_cursor,
    expand_path,
    load_cursor,
    make_batches,
    read_file,
    walk_files,
)

log = logging.getLogger(__name__)

CALENDAR = "calendar"
PATTERNS = ("*.ics",)

Stamp = list[int]  # [mtime_ns, size], as JSON keeps it


def _stamps(state: dict[str, Any] | None) -> dict[str, Stamp]:
    """The cursor's {relative path: [mtime_ns, size]}; a malformed entry is dropped (re-read)."""
    if state is None:
        return {}
    return {
        k: [v[0], v[1]]
        for k, v in state.items()
        if isinstance(v, list) and len(v) == 2 and all(type(x) is int for x in v)
    }


class IcsFolderSource:
    """``*.ics`` files under ``path`` (case-insensitive; dot files skipped).

    Provider id: the path relative to ``path``, with "/" separators; kind "ics".
    Cursor: ``{relative path: [mtime_ns, size]}`` of the files stored.
    A new or changed file is delivered; a path in the cursor that no longer exists is
    reported in ``Batch.deleted``. Every batch carries the previous map updated with
    its own files, so a crash mid-way re-reads only what was not stored; deletions
    leave the map only with the last batch, which reports them. An unreadable file is
    delivered empty and not recorded, so it is retried at each sync until readable.
    ``known`` is not consulted: the map, not the store, says what changed.
    """

    def __init__(
        self,
        path: Path | str,
        recursive: bool = True,
        batch_size: int = 200,
        batch_bytes: int = 8_000_000,
    ) -> None:
        check_limits(batch_size, batch_bytes)
        self.path = expand_path(path)
        self.recursive = recursive
        self.batch_size = batch_size
        self.batch_bytes = batch_bytes
        self.stats = SourceStats()

    def folders(self) -> list[str]:
        if not self.path.is_dir():
            raise SourceError(f"{self.path}: no such directory")
        return [CALENDAR]

    def changes(self, folder: str, cursor: str | None, known: KnownFilter) -> Iterator[Batch]:
        if folder != CALENDAR:
            raise SourceError(f"{self.path}: no folder {folder!r} (only {CALENDAR!r})")
        previous = _stamps(load_cursor(cursor, log))
        listing: dict[str, tuple[Path, Stamp]] = {}
        try:
            for rel, entry in walk_files(self.path, PATTERNS, self.recursive, self.stats, log):
                try:
                    st = entry.stat()
                except OSError:
                    continue  # vanished since listed: absent, as if listed a moment later
                listing[rel] = (Path(entry.path), [st.st_mtime_ns, st.st_size])
        except OSError as exc:
            raise SourceError(f"{self.path}: cannot list the folder: {exc}") from exc
        changed = [rel for rel, (_, stamp) in listing.items() if previous.get(rel) != stamp]
        deleted = sorted(set(previous) - set(listing))
        if not changed and not deleted:
            return
        stored = dict(previous)
        failed: set[str] = set()

        def record(items: list[RawItem]) -> dict[str, Stamp]:
            for item in items:
                if item.provider_id not in failed:
                    stored[item.provider_id] = listing[item.provider_id][1]
            return stored

        def final(items: list[RawItem]) -> str:
            record(items)
            for rel in deleted:
                stored.pop(rel, None)
            return dump_cursor(stored)

        yield from make_batches(
            self._read(changed, listing, failed),
            batch_size=self.batch_size,
            batch_bytes=self.batch_bytes,
            total=len(changed),
            checkpoint=lambda items: dump_cursor(record(items)),
            final=final,
            deleted=deleted,
        )

    def _read(
        self, changed: list[str], listing: dict[str, tuple[Path, Stamp]], failed: set[str]
    ) -> Iterator[RawItem]:
        for rel in changed:
            path = listing[rel][0]
            data = read_file(path, self.stats, log)
            if data is None:
                # Removed since listed: keep its old stamp (if any) so that the next sync,
                # not finding it, reports the deletion.
                log.info("%s was removed before it could be read", path)
                continue
            if not data and listing[rel][1][1] > 0:
                failed.add(rel)
            yield RawItem(rel, "ics", data)

    def close(self) -> None:
        """Nothing to release: no file stays open between calls."""
