"""A folder of RFC 822 files, one message per file (``.eml`` exports, the Enron ``*.txt``).

Such folders have no cheap change marker that covers nested subdirectories, so
every sync lists them; listing is cheap, reading is what must not happen twice, and
the pipeline's ``known`` filter decides which files get read. An edited file keeps
its provider id (its path) and is not read again: a message does not change.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from connectors.base import Batch, KnownFilter, RawItem, SourceError
from connectors.local_common import (
    SourceStats,
    check_limits,
    dump_cursor,
    expand_path,
    load_cursor,
    make_batches,
    read_file,
    unknown_ids,
    walk_files,
)

log = logging.getLogger(__name__)

INBOX = "INBOX"


class EmlFolderSource:
    """Files matching ``pattern`` (one glob or a list, case-insensitive) under ``path``.

    One folder, "INBOX", unless ``folders_from_subdirs``: then each top-level
    subdirectory is a folder and files lying directly in ``path`` belong to none
    (the Enron set keeps ``categories.txt`` there, next to its numbered folders).
    Provider id: the path relative to ``path``, with "/" separators, whatever the folder.
    Dot files and dot directories are skipped.

    Cursor: ``{"files": <count listed>, "listed_at": <ISO time>}``, for humans only.
    """

    def __init__(
        self,
        path: Path | str,
        pattern: str | list[str] = "*.eml",
        recursive: bool = True,
        folders_from_subdirs: bool = False,
        batch_size: int = 200,
        batch_bytes: int = 8_000_000,
    ) -> None:
        check_limits(batch_size, batch_bytes)
        self.path = expand_path(path)
        self.patterns = [pattern] if isinstance(pattern, str) else list(pattern)
        if not self.patterns:
            raise ValueError("pattern must name at least one glob, such as '*.eml'")
        self.recursive = recursive
        self.folders_from_subdirs = folders_from_subdirs
        self.batch_size = batch_size
        self.batch_bytes = batch_bytes
        self.stats = SourceStats()

    def folders(self) -> list[str]:
        if not self.path.is_dir():
            raise SourceError(f"{self.path}: no such directory")
        if not self.folders_from_subdirs:
            return [INBOX]
        with os.scandir(self.path) as it:
            return sorted(
                e.name for e in it if not e.name.startswith(".") and e.is_dir(follow_symlinks=False)
            )

    def _base(self, folder: str) -> tuple[Path, str]:
        """The folder's directory and the prefix that makes its paths relative to the root."""
        if not self.folders_from_subdirs:
            if folder != INBOX:
                raise SourceError(f"{self.path}: no folder {folder!r} (only {INBOX!r})")
            return self.path, ""
        if "/" in folder or folder.startswith(".") or not (self.path / folder).is_dir():
            raise SourceError(f"{self.path}: no subdirectory {folder!r}")
        return self.path / folder, f"{folder}/"

    def changes(self, folder: str, cursor: str | None, known: KnownFilter) -> Iterator[Batch]:
        base, prefix = self._base(folder)
        load_cursor(cursor, log)  # only to warn about a corrupt one: it decides nothing
        try:
            paths = {
                prefix + rel: Path(e.path)
                for rel, e in walk_files(base, self.patterns, self.recursive, self.stats, log)
            }
        except OSError as exc:
            raise SourceError(f"{base}: cannot list the folder: {exc}") from exc
        unknown = unknown_ids(paths, known)
        listed_at = datetime.now(UTC).isoformat(timespec="seconds")
        yield from make_batches(
            self._read(unknown, paths),
            batch_size=self.batch_size,
            batch_bytes=self.batch_bytes,
            total=len(unknown),
            final=lambda _items: dump_cursor({"files": len(paths), "listed_at": listed_at}),
        )

    def _read(self, unknown: list[str], paths: dict[str, Path]) -> Iterator[RawItem]:
        for pid in unknown:
            data = read_file(paths[pid], self.stats, log)
            if data is None:
                log.info("%s was removed before it could be read", paths[pid])
                continue
            yield RawItem(pid, "rfc822", data)

    def close(self) -> None:
        """Nothing to release: no file stays open between calls."""
