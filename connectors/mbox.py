"""mbox files, streamed: one folder per file.

The file is split by hand rather than with :class:`mailbox.mbox`, which builds a
table of contents of the whole file before the first message is available. A
message starts at a line beginning with ``From `` at the start of the file or after
a blank line (the mboxo/mboxrd separator rule, qmail's mbox(5)); LF and CRLF files
are both supported. ``>From `` escapes are left as they are: whether a file is mboxo
or mboxrd is not declared anywhere, and message parsers cope with either. The
``From `` envelope line is not part of the message and is not delivered.

Provider id: ``"<offset>:<fingerprint>"``, the byte offset of the ``From `` line and
the first 16 hex digits of the message's sha256. The offset alone is stable only while
the file is append-only: after an MUA rewrites it (expunge), later messages move to
new offsets and a new message can land on an offset already stored (expunge the last
message, receive one). With the fingerprint such a message gets a new id and is
delivered; a message that merely moved gets a new id too and is re-delivered, which
the pipeline folds into the existing activity by Message-ID.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from connectors.base import Batch, KnownFilter, RawItem, SourceError
from connectors.local_common import (
    SourceStats,
    check_limits,
    drop_known,
    dump_cursor,
    expand_path,
    load_cursor,
    make_batches,
)

log = logging.getLogger(__name__)

SUFFIXES = (".mbox", ".mbx")
PROBE = 4096  # bytes hashed at the head of the file and before the resume offset
LINE_CHUNK = 1 << 16  # a base64 blob without newlines must not be read in one piece
BLANK = (b"\n", b"\r\n")


def provider_id(offset: int, data: bytes) -> str:
    return f"{offset}:{hashlib.sha256(data).hexdigest()[:16]}"


class MboxSource:
    """One mbox file (folder = its stem) or a directory of them (not recursive).

    In a directory, ``*.mbox`` and ``*.mbx`` files are mailboxes, and so are files
    without an extension that start with ``From `` (Thunderbird's ``Inbox``); index
    files such as ``Inbox.msf`` are ignored.

    Cursor: ``{"offset", "size", "mtime_ns", "head", "tail"}``: ``offset`` is the end of
    the last message stored, ``size`` and ``mtime_ns`` describe the file when it was
    scanned, ``head`` hashes its first ``min(4096, size)`` bytes and ``tail`` the
    (up to) 4096 bytes before ``offset``. An unchanged file (same size and mtime, fully
    scanned) is not even opened. When head and tail still match and a ``From `` line
    sits at ``offset``, the file only grew (or a previous sync stopped mid-way) and is
    read from ``offset``; otherwise it was rewritten and is rescanned from 0, with
    ``known`` skipping messages whose id (offset and fingerprint) is already stored.
    Every batch carries the cursor valid after it, so a crash resumes mid-file.

    A last message that is still being written is delivered as it stands; once
    completed it has a new fingerprint and is delivered again (same Message-ID).
    A same-size in-place rewrite that keeps head and tail is not detected.
    """

    def __init__(self, path: Path | str, batch_size: int = 200, batch_bytes: int = 8_000_000) -> None:
        check_limits(batch_size, batch_bytes)
        self.path = expand_path(path)
        self.batch_size = batch_size
        self.batch_bytes = batch_bytes
        self.stats = SourceStats()
        self._files: dict[str, Path] = {}

    def folders(self) -> list[str]:
        if self.path.is_file():
            self._files = {self.path.stem: self.path}
        elif self.path.is_dir():
            self._files = {}
            for file in self._mailboxes():
                # "a.mbox" next to "a.mbx": the second keeps its full name.
                name = file.stem if file.stem not in self._files else file.name
                self._files[name] = file
        else:
            raise SourceError(f"{self.path}: no such mbox file or directory")
        return list(self._files)

    def _mailboxes(self) -> Iterator[Path]:
        with os.scandir(self.path) as it:
            entries = sorted(
                (e for e in it if not e.name.startswith(".") and e.is_file()), key=lambda e: e.name
            )
        for entry in entries:
            self.stats.files_listed += 1
            suffix = Path(entry.name).suffix.lower()
            if suffix in SUFFIXES or (not suffix and self._starts_with_from(Path(entry.path))):
                yield Path(entry.path)

    def _starts_with_from(self, path: Path) -> bool:
        try:
            with open(path, "rb") as fh:
                start = fh.read(5)
        except OSError:
            return False
        self.stats.bytes_verified += len(start)
        return start == b"From "

    def _probe(self, fd: int, start: int, end: int) -> str:
        data = os.pread(fd, max(0, end - start), start)
        self.stats.bytes_verified += len(data)
        return hashlib.sha256(data).hexdigest()

    def changes(self, folder: str, cursor: str | None, known: KnownFilter) -> Iterator[Batch]:
        if folder not in self._files:
            self.folders()
        file = self._files.get(folder)
        if file is None:
            raise SourceError(f"{self.path}: no mbox folder {folder!r}")
        try:
            st = os.stat(file)
        except OSError as exc:
            raise SourceError(f"{file}: cannot stat the mbox: {exc}") from exc
        previous = load_cursor(cursor, log)
        if previous is not None and self._unchanged(previous, st):
            return
        try:
            fh = open(file, "rb")  # noqa: SIM115 - held across yields, closed below
        except OSError as exc:
            raise SourceError(f"{file}: cannot read the mbox: {exc}") from exc
        with fh:
            fd = fh.fileno()
            size, mtime_ns = st.st_size, st.st_mtime_ns
            head = self._probe(fd, 0, min(PROBE, size))
            start = self._resume_offset(fh, previous, size, head)
            if start == 0 and previous is not None:
                log.info("%s: rewritten since the last sync, rescanning from the start", file)
            ends: dict[str, int] = {}
            scanned = [start]  # where the scan stopped: the final cursor's offset

            def cursor_at(offset: int) -> str:
                tail = self._probe(fd, max(0, offset - PROBE), offset)
                state = {"offset": offset, "size": size, "mtime_ns": mtime_ns, "head": head, "tail": tail}
                return dump_cursor(state)

            yield from make_batches(
                drop_known(self._scan(fh, start, size, ends, scanned), known, self.batch_bytes),
                batch_size=self.batch_size,
                batch_bytes=self.batch_bytes,
                checkpoint=lambda items: cursor_at(ends[items[-1].provider_id]),
                final=lambda _items: cursor_at(scanned[0]),
            )

    @staticmethod
    def _unchanged(previous: dict[str, Any], st: os.stat_result) -> bool:
        return (
            previous.get("size") == st.st_size
            and previous.get("mtime_ns") == st.st_mtime_ns
            and previous.get("offset") == st.st_size
        )

    def _resume_offset(self, fh: BinaryIO, previous: dict[str, Any] | None, size: int, head: str) -> int:
        """Where to start reading: the cursor's offset if the file only grew, else 0."""
        if previous is None:
            return 0
        try:
            offset, old_size = int(previous["offset"]), int(previous["size"])
            old_head, old_tail = str(previous["head"]), str(previous["tail"])
        except (KeyError, TypeError, ValueError):
            log.warning("%s: ignoring a cursor of the wrong shape: rescanning", fh.name)
            return 0
        if offset <= 0 or offset > size or old_size > size:
            return 0
        fd = fh.fileno()
        same_span = min(PROBE, old_size) == min(PROBE, size)
        if old_head != (head if same_span else self._probe(fd, 0, min(PROBE, old_size))):
            return 0
        if old_tail != self._probe(fd, max(0, offset - PROBE), offset):
            return 0
        if offset < size:
            start = os.pread(fd, 5, offset)
            self.stats.bytes_verified += len(start)
            if start != b"From ":
                return 0
        return offset

    def _scan(
        self, fh: BinaryIO, start: int, limit: int, ends: dict[str, int], scanned: list[int]
    ) -> Iterator[RawItem]:
        """Messages from ``start`` (a ``From `` line, or 0) up to ``limit`` bytes.

        ``ends`` maps each yielded id to the end offset of its message (the resume
        point once it is stored); ``scanned[0]`` is where reading stopped.
        """
        fh.seek(start)
        self.stats.files_read += 1
        pos = start
        msg_start = start
        lines: list[bytes] = []
        prev_blank = at_line_start = True
        while pos < limit:
            line = fh.readline(min(LINE_CHUNK, limit - pos))
            if not line:  # truncated while we read: stop at what exists
                break
            if at_line_start and prev_blank and line.startswith(b"From "):
                yield from self._emit(msg_start, pos, lines, ends)
                msg_start, lines = pos, []
            else:
                lines.append(line)
            prev_blank = at_line_start and line in BLANK
            at_line_start = line.endswith(b"\n")
            pos += len(line)
            self.stats.bytes_read += len(line)
            scanned[0] = pos
        yield from self._emit(msg_start, pos, lines, ends)

    @staticmethod
    def _emit(offset: int, end: int, lines: list[bytes], ends: dict[str, int]) -> Iterator[RawItem]:
        data = b"".join(lines)
        if not data.strip():
            # Nothing before the first "From " line, or an empty envelope: not a message.
            return
        # The blank line before the next "From " separates messages; it is not content.
        if data.endswith(b"\r\n\r\n"):
            data = data[:-2]
        elif data.endswith(b"\n\n"):
            data = data[:-1]
        pid = provider_id(offset, data)
        ends[pid] = end
        yield RawItem(pid, "rfc822", data)

    def close(self) -> None:
        """Nothing to release: files are opened and closed within each sync."""
