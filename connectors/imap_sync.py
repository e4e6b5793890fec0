"""One IMAP folder's sync: its cursor and the state machine that turns server state into batches.

Identity (RFC 9051 §2.3.1.1): a message is (UIDVALIDITY, UID); a changed UIDVALIDITY
voids every UID, so the provider id is ``"<uidvalidity>:<uid>"`` and a reset makes
every id new. Compared with ``!=``, never ``<``: UIDVALIDITY is "strictly ascending"
only per server lifetime, and a restored or migrated mailbox may come back smaller.

A run, after SELECT (EXAMINE) gave UIDVALIDITY, UIDNEXT, EXISTS and, with CONDSTORE,
HIGHESTMODSEQ (RFC 7162 §3.1.2.1):

1. UIDVALIDITY changed: every old id is reported deleted, then the folder is synced as
   new; messages whose Message-ID the store holds are *relocated*, never downloaded again.
2. New mail: UIDs from the cursor's UIDNEXT up to the server's.
3. Deletions: with QRESYNC, ``VANISHED (EARLIER)`` since the stored HIGHESTMODSEQ
   (RFC 7162 §3.2.6); without it, a full UID comparison every ``full_check_every``
   seconds, or at once when EXISTS is smaller than the number of UIDs we hold (then
   something we hold is certainly gone).
4. Backfill (first sync), newest first, down to ``since``: UIDs below the ceiling taken
   at the start; ``low`` records how far down it got, so a crash resumes there while new
   mail above the ceiling goes through step 2.

Every new UID is first fetched with its flags, RFC822.SIZE and only its Message-ID header
(one FETCH per window: the sizes are needed anyway to cut bodies into byte-bounded
FETCHes, so asking the store "do you hold this Message-ID?" costs no round trip). Known
ones are relocated (a move, a copy, a renumbering); the rest are fetched with
``BODY.PEEK[]`` (PEEK: reading must not set \\Seen, RFC 9051 §6.4.5) in UID-set FETCHes
of at most ``batch_size`` messages and ``batch_bytes`` bytes, each one batch.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, fields
from datetime import date
from typing import Any

from imapclient.imap_utf7 import decode as decode_utf7

from connectors.base import Batch, KnownFilter, RawItem, SourceError, TransientError
from connectors.imap_cursor import FolderState
from connectors.imap_session import ImapSession, Selected
from connectors.imap_uids import UidSet

# The parser's own Message-ID normalization, so that an id read from a header-only fetch
# is the id the store keyed the message by (a mismatch would only cost a re-download).
from connectors.mime_decode import cap_id, clean_id, unfold

log = logging.getLogger(__name__)

# Ids per reported deletion batch: the store matches each id (and its "<id>#" calendar
# children) with its own clause, and SQLite caps an expression's depth at 1000.
DELETE_CHUNK = 200
HEADER_ITEM = "BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]"
GMAIL_ITEMS = ("X-GM-MSGID", "X-GM-THRID", "X-GM-LABELS")
_MESSAGE_ID_FIELD = re.compile(r"^message-id:(.*(?:\r?\n[ \t].*)*)", re.IGNORECASE | re.MULTILINE)


@dataclass(slots=True)
class ImapStats:
    """What the source asked of the server, cumulated since construction."""

    selects: int = 0
    searches: int = 0
    meta_fetches: int = 0  # FETCH commands for flags, sizes and Message-IDs
    body_fetches: int = 0  # FETCH commands for bodies
    bodies: int = 0  # messages downloaded
    body_bytes: int = 0
    relocated: int = 0  # known messages recorded at a new place without download
    deleted: int = 0  # ids reported deleted
    full_checks: int = 0

    def reset(self) -> None:
        for f in fields(self):
            setattr(self, f.name, 0)


def header_message_id(raw: bytes) -> str | None:
    """The Message-ID (without brackets) of a ``HEADER.FIELDS (MESSAGE-ID)`` fetch, if any."""
    match = _MESSAGE_ID_FIELD.search(raw.decode("ascii", "surrogateescape"))
    if not match:
        return None
    return cap_id(clean_id(unfold(match.group(1)).strip())) or None


def plan_fetches(
    uids: list[int], sizes: dict[int, int], batch_size: int, batch_bytes: int
) -> list[list[int]]:
    """Cut ``uids`` (in order) into FETCH groups of at most ``batch_size`` and ``batch_bytes``.

    Sizes are RFC822.SIZE, announced before download, so one FETCH response never holds
    more than one batch; a message larger than ``batch_bytes`` is fetched on its own.
    """
    groups: list[list[int]] = []
    current: list[int] = []
    total = 0
    for uid in uids:
        size = sizes.get(uid, 0)
        if current and (len(current) >= batch_size or total + size > batch_bytes):
            groups.append(current)
            current, total = [], 0
        current.append(uid)
        total += size
    if current:
        groups.append(current)
    return groups


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _find(data: dict, prefix: bytes) -> Any:
    """The FETCH item whose name starts with ``prefix``: servers spell section names differently."""
    for key, value in data.items():
        if isinstance(key, bytes) and key.upper().startswith(prefix):
            return value
    return None


def _windows(uids: Iterable[int], size: int) -> Iterator[list[int]]:
    window: list[int] = []
    for uid in uids:
        window.append(uid)
        if len(window) >= size:
            yield window
            window = []
    if window:
        yield window


@dataclass
class FolderSync:
    """One run of :meth:`changes` for one folder; see the module docstring."""

    session: ImapSession
    folder: str
    known: KnownFilter
    stats: ImapStats
    since: date | None
    batch_size: int
    batch_bytes: int
    full_check_every: int
    before_body_fetch: Callable[[list[int]], None] | None = None  # a test hook
    state: FolderState = field(init=False)
    uidvalidity: int = field(init=False)

    def changes(self, cursor: str | None) -> Iterator[Batch]:
        sel = self.session.select(self.folder)
        self.stats.selects += 1
        if not sel.uidvalidity or not sel.uidnext:
            raise SourceError(f"{self.folder}: the server sent no UIDVALIDITY/UIDNEXT on SELECT")
        state = FolderState.load(cursor)
        if state is not None and state.uidvalidity != sel.uidvalidity:
            log.warning(
                "%s: UIDVALIDITY changed from %s to %s: every UID is new; re-mapping by Message-ID",
                self.folder,
                state.uidvalidity,
                sel.uidvalidity,
            )
            yield from self._forget(state)
            state = None
        if state is None:
            state = FolderState.fresh(sel, self.since)
        elif state.since and (self.since is None or self.since.isoformat() < state.since):
            # The history limit was widened: go down again from the top, since what the
            # old limit passed over lies anywhere below; what we hold is skipped for free.
            state.since = self.since.isoformat() if self.since else None
            state.backfill = (state.uidnext, state.uidnext)
        self.state = state
        self.uidvalidity = sel.uidvalidity
        sent = cursor

        if sel.uidnext > state.uidnext:
            new = self._search(state.uidnext, sel.uidnext - 1) - state.held

            def new_done(_window: list[int] | None = None) -> None:
                state.uidnext = sel.uidnext

            for batch in self._take(new, finish=new_done):
                sent = batch.cursor
                yield batch

        for batch in self._deletions(sel):
            sent = batch.cursor
            yield batch

        if state.backfill is not None:
            ceiling, low = state.backfill
            since = date.fromisoformat(state.since) if state.since else None
            todo = self._search(1, low - 1, since) - state.held

            def window_done(window: list[int] | None) -> None:
                if window:
                    state.backfill = (ceiling, min(window))

            def backfill_done(_window: list[int] | None = None) -> None:
                state.backfill = None

            for batch in self._take(todo, window_done=window_done, finish=backfill_done):
                sent = batch.cursor
                yield batch

        final = state.dump()
        if final != sent:
            yield Batch(cursor=final)

    def pid(self, uid: int) -> str:
        return f"{self.uidvalidity}:{uid}"

    def _search(self, lo: int, hi: int, since: date | None = None) -> UidSet:
        self.stats.searches += 1
        return self.session.search(lo, hi, since)

    def _forget(self, old: FolderState) -> Iterator[Batch]:
        """Report every id of the old UIDVALIDITY deleted, in bounded batches.

        Each batch carries the *old* state minus what it reported, so a crash part-way
        resumes the reporting (the new UIDVALIDITY differs from the cursor's again).
        """
        for window in _windows(old.held.descending(), DELETE_CHUNK):
            old.held = old.held - UidSet.of(window)
            self.stats.deleted += len(window)
            yield Batch(deleted=[f"{old.uidvalidity}:{u}" for u in window], cursor=old.dump())

    def _deletions(self, sel: Selected) -> Iterator[Batch]:
        state = self.state
        gone = UidSet()
        if (
            self.session.qresync
            and state.highestmodseq is not None
            and sel.highestmodseq is not None
            and sel.highestmodseq != state.highestmodseq
        ):
            gone = self.session.vanished_since(state.highestmodseq, state.held.max() or 0) & state.held
            self.stats.searches += 1
        due = not self.session.qresync and time.time() - state.checked >= self.full_check_every
        if due or sel.exists < len(state.held - gone):
            present = self._search(1, sel.uidnext - 1)
            self.stats.full_checks += 1
            if not present and sel.exists > 0:
                raise TransientError(f"{self.folder}: the server listed no UIDs but says {sel.exists} exist")
            gone = gone | (state.held - present)
            state.checked = int(time.time())
        state.highestmodseq = sel.highestmodseq
        for window in _windows(gone.descending(), DELETE_CHUNK):
            state.held = state.held - UidSet.of(window)
            self.stats.deleted += len(window)
            yield Batch(deleted=[self.pid(u) for u in window], cursor=state.dump())

    def _take(
        self,
        todo: UidSet,
        *,
        window_done: Callable[[list[int] | None], None] | None = None,
        finish: Callable[[list[int] | None], None] | None = None,
    ) -> Iterator[Batch]:
        """Batches for the UIDs in ``todo``, newest first; ``finish`` runs before the last one."""
        state, total, done = self.state, len(todo), 0
        windows = _windows(todo.descending(), self.batch_size)
        window = next(windows, None)
        if window is None and finish:
            finish(None)
        while window is not None:
            following = next(windows, None)  # one window of look-ahead: is this the last one?
            pids = {uid: self.pid(uid) for uid in window}
            already = self.known(list(pids.values()))
            fresh = [uid for uid in window if pids[uid] not in already]
            meta = self._meta(fresh)
            ids = {uid: mid for uid in fresh if uid in meta and (mid := self._message_id(meta[uid]))}
            held_ids = self.known.message_ids(list(set(ids.values()))) if ids else set()
            relocated = [(pids[uid], ids[uid]) for uid in fresh if ids.get(uid) in held_ids]
            moved = {uid for uid in fresh if ids.get(uid) in held_ids}
            wanted = [uid for uid in fresh if uid in meta and uid not in moved]
            sizes = {uid: int(meta[uid].get(b"RFC822.SIZE") or 0) for uid in wanted}
            groups = plan_fetches(wanted, sizes, self.batch_size, self.batch_bytes) or [[]]
            settled = UidSet.of([uid for uid in window if pids[uid] in already] + sorted(moved))
            self.stats.relocated += len(relocated)
            for number, group in enumerate(groups):
                items, handled = self._bodies(group, meta) if group else ([], UidSet())
                first = number == 0
                state.held = state.held | handled | (settled if first else UidSet())
                done += len(group) + (len(window) - len(wanted) if first else 0)
                if number == len(groups) - 1:
                    if window_done:
                        window_done(window)
                    if finish and following is None:
                        finish(window)
                yield Batch(
                    items=items,
                    relocated=relocated if first else [],
                    cursor=state.dump(),
                    progress=(done, total),
                )
            window = following

    def _meta(self, uids: list[int]) -> dict:
        if not uids:
            return {}
        items = ["UID", "FLAGS", "RFC822.SIZE", HEADER_ITEM]
        if self.session.gmail:
            items += GMAIL_ITEMS
        self.stats.meta_fetches += 1
        wanted = set(uids)
        # Unsolicited FETCH responses (flag changes by another client) may ride along.
        return {
            uid: data for uid, data in self.session.fetch(UidSet.of(uids), items).items() if uid in wanted
        }

    @staticmethod
    def _message_id(data: dict) -> str | None:
        header = _find(data, b"BODY[HEADER")
        return header_message_id(header) if isinstance(header, bytes) else None

    def _bodies(self, group: list[int], meta: dict) -> tuple[list[RawItem], UidSet]:
        """RawItems of ``group`` (in order) and the UIDs they cover.

        A message the server cannot deliver (a NO for the FETCH, a response imapclient
        cannot parse, no BODY[] in it) becomes ``RawItem(data=b"")``, which the pipeline
        quarantines: the folder goes on. If the whole FETCH fails, each message is tried
        alone to find the bad one. A UID missing from the response was expunged meanwhile:
        it gets no item and is not held.
        """
        if self.before_body_fetch is not None:
            self.before_body_fetch(group)
        self.stats.body_fetches += 1
        try:
            bodies = self.session.fetch(UidSet.of(group), ["BODY.PEEK[]"])
        except TransientError:
            raise
        except SourceError as exc:
            log.warning(
                "%s: FETCH of %d messages failed (%s): trying them one by one", self.folder, len(group), exc
            )
            bodies = {}
            for uid in group:
                try:
                    bodies.update(self.session.fetch(str(uid), ["BODY.PEEK[]"]))
                except TransientError:
                    raise
                except SourceError as one:
                    bodies[uid] = {b"ERROR": str(one)}
        items: list[RawItem] = []
        for uid in group:
            data = bodies.get(uid)
            if data is None:
                continue
            body = data.get(b"BODY[]")
            if not isinstance(body, bytes) or not body:
                log.warning(
                    "%s: UID %s: no usable body in the FETCH response (quarantined)", self.folder, uid
                )
                body = b""
            else:
                self.stats.bodies += 1
                self.stats.body_bytes += len(body)
            items.append(self._item(uid, meta.get(uid, {}), body))
        return items, UidSet.of(uid for uid in group if uid in bodies)

    def _item(self, uid: int, meta: dict, body: bytes) -> RawItem:
        flags = tuple(_text(f) for f in meta.get(b"FLAGS") or ())
        labels: tuple[str, ...] = ()
        thread: str | None = None
        if self.session.gmail:
            labels = tuple(_gmail_label(x) for x in meta.get(b"X-GM-LABELS") or ())
            thrid = meta.get(b"X-GM-THRID")
            thread = str(thrid) if thrid is not None else None
        return RawItem(self.pid(uid), "rfc822", body, flags=flags, labels=labels, thread_id=thread)


def _gmail_label(value: Any) -> str:
    """X-GM-LABELS are modified UTF-7 (RFC 3501 §5.1.3) like folder names, or \\System labels."""
    return decode_utf7(value) if isinstance(value, bytes) else str(value)
