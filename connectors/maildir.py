"""A local Maildir and its Maildir++ subfolders.

Identity follows the Maildir spec (https://cr.yp.to/proto/maildir.html): a message
file is named ``<unique>:2,<flags>``; MUAs rename it to change flags and move it
from ``new/`` to ``cur/`` once seen, but the unique part never changes. So the
provider id is the unique name, and a flag change or a new/ -> cur/ move is not a
new message. Names starting with a dot are not messages (spec: readers skip them),
and ``tmp/`` holds deliveries in progress, never read.

Maildir++ (Courier, Dovecot) keeps subfolders as ``.<name>`` directories in the
root, with ``.`` as the hierarchy separator: ``.Archive.2024`` is "Archive.2024".
Names are used as they are on disk (IMAP's modified UTF-7 is not decoded), so they
map back to a directory unambiguously.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
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
    settled_mtime,
    unknown_ids,
)

log = logging.getLogger(__name__)

INBOX = "INBOX"
# Folders whose mail is not correspondence worth logging; an explicit ``folders`` list wins.
EXCLUDED_BY_DEFAULT = frozenset({"trash", "junk", "spam", "drafts", "deleted messages", "deleted items"})
FLAG_LETTERS = {"S": "\\Seen", "R": "\\Answered", "F": "\\Flagged", "T": "\\Deleted", "D": "\\Draft"}
# Listed new/ before cur/: mail moves new -> cur, so a message moved while we list is
# seen twice (deduplicated by unique name) rather than missed in both.
SUBDIRS = ("new", "cur")
# A vanished file is looked up again this many times (the MUA may rename it repeatedly).
RELOOKUPS = 3


def split_name(name: str) -> tuple[str, tuple[str, ...]]:
    """(unique name, IMAP flags) of a Maildir file name.

    The info part follows the first ":" (the spec forbids ":" in unique names; some
    Windows ports use "!" instead, which we do not guess at). Only the "2," info
    carries flags; lowercase letters are Dovecot keywords, not standard flags.
    """
    unique, sep, info = name.partition(":")
    if not sep or not info.startswith("2,"):
        return unique, ()
    letters = info[2:]
    return unique, tuple(flag for letter, flag in FLAG_LETTERS.items() if letter in letters)


def _is_maildir(path: Path) -> bool:
    return (path / "cur").is_dir() and (path / "new").is_dir()


def _excluded(name: str) -> bool:
    parts = name.split(".")
    if parts[0].upper() == INBOX and len(parts) > 1:
        parts = parts[1:]
    return parts[0].lower() in EXCLUDED_BY_DEFAULT


class MaildirSource:
    """A Maildir (INBOX) and its Maildir++ subfolders.

    Cursor: ``{"new": mtime_ns, "cur": mtime_ns}`` of the folder's new/ and cur/ taken
    before listing. A directory's mtime changes whenever an entry is added, removed or
    renamed in it, so equal mtimes mean nothing to do, without even listing. An mtime
    too recent to be trusted (see ``MTIME_SETTLE_NS``) is stored as null, which forces
    a listing next time.
    """

    def __init__(
        self,
        path: Path | str,
        folders: list[str] | None = None,
        batch_size: int = 200,
        batch_bytes: int = 8_000_000,
    ) -> None:
        check_limits(batch_size, batch_bytes)
        self.path = expand_path(path)
        self.only = list(folders) if folders is not None else None
        self.batch_size = batch_size
        self.batch_bytes = batch_bytes
        self.stats = SourceStats()

    def folders(self) -> list[str]:
        if not self.path.is_dir():
            raise SourceError(f"{self.path}: no such Maildir")
        found = [INBOX] if _is_maildir(self.path) else []
        with os.scandir(self.path) as it:
            subs = sorted(e.name[1:] for e in it if e.name.startswith("."))
        found += [name for name in subs if name and _is_maildir(self.path / f".{name}")]
        if self.only is None:
            return [name for name in found if name == INBOX or not _excluded(name)]
        missing = [name for name in self.only if name not in found]
        if missing:
            log.warning("%s: no such Maildir folder(s): %s", self.path, ", ".join(missing))
        return [name for name in found if name in self.only]

    def _dir(self, folder: str) -> Path:
        return self.path if folder == INBOX else self.path / f".{folder}"

    def changes(self, folder: str, cursor: str | None, known: KnownFilter) -> Iterator[Batch]:
        base = self._dir(folder)
        try:
            # Before listing, so that a delivery during this sync changes the mtime again
            # and is seen next time.
            mtimes = {sub: os.stat(base / sub).st_mtime_ns for sub in SUBDIRS}
        except OSError as exc:
            raise SourceError(f"{base}: not a readable Maildir folder: {exc}") from exc
        previous = load_cursor(cursor, log)
        if previous is not None and all(previous.get(sub) == mtimes[sub] for sub in SUBDIRS):
            return
        names = self._list(base)
        unknown = unknown_ids(sorted(names), known)
        # Intermediate batches keep the previous cursor (checkpoint None): only the last
        # one may claim that the whole listing is stored.
        yield from make_batches(
            self._read(base, unknown, names),
            batch_size=self.batch_size,
            batch_bytes=self.batch_bytes,
            total=len(unknown),
            final=lambda _items: dump_cursor({sub: settled_mtime(mtimes[sub]) for sub in SUBDIRS}),
        )

    def _list(self, base: Path) -> dict[str, tuple[str, str]]:
        """unique name -> (subdir, file name); cur/ wins over new/ for a message in both."""
        names: dict[str, tuple[str, str]] = {}
        for sub in SUBDIRS:
            try:
                with os.scandir(base / sub) as it:
                    for entry in it:
                        if not entry.name.startswith("."):
                            names[split_name(entry.name)[0]] = (sub, entry.name)
                            self.stats.files_listed += 1
            except FileNotFoundError:
                continue
        return names

    def _relookup(self, base: Path, unique: str) -> tuple[str, str] | None:
        for sub in reversed(SUBDIRS):
            try:
                with os.scandir(base / sub) as it:
                    for entry in it:
                        if split_name(entry.name)[0] == unique:
                            return sub, entry.name
            except FileNotFoundError:
                continue
        return None

    def _read(self, base: Path, unknown: list[str], names: dict[str, tuple[str, str]]) -> Iterator[RawItem]:
        for unique in unknown:
            where: tuple[str, str] | None = names.pop(unique)
            for _ in range(RELOOKUPS):
                if where is None:
                    break
                sub, name = where
                data = read_file(base / sub / name, self.stats, log)
                if data is not None:
                    yield RawItem(unique, "rfc822", data, flags=split_name(name)[1])
                    break
                # Renamed or moved by a concurrent MUA since we listed it.
                where = self._relookup(base, unique)
            else:
                log.warning("%s: %s kept moving while being read; next sync retries", base, unique)
            if where is None:
                log.info("%s: %s was removed before it could be read", base, unique)

    def close(self) -> None:
        """Nothing to release: no file stays open between calls."""
