"""The cursor of one IMAP folder: what a sync must remember to go on where it stopped."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import date

from connectors.imap_session import Selected
from connectors.imap_uids import UidSet
from connectors.local_common import dump_cursor, load_cursor

log = logging.getLogger(__name__)

CURSOR_VERSION = 1


@dataclass(slots=True)
class FolderState:
    """The folder's cursor. JSON, e.g.::

    {"v":1,"uidvalidity":1712,"uidnext":903,"highestmodseq":1456,"uids":"1:500,502:902",
     "backfill":{"ceiling":903,"low":401},"since":"2025-03-01","checked":1767000000}

    ``uids``: what we hold (stored, skipped or relocated) as ranges, for deletion
    detection and for reporting every old id once UIDVALIDITY changes. ``backfill``:
    UIDs in [low, ceiling) are done; null once the history is complete. ``since``: the
    date the backfill goes down to (null: the whole history). ``checked``: time of the
    last full UID comparison.
    """

    uidvalidity: int
    uidnext: int
    highestmodseq: int | None
    held: UidSet
    backfill: tuple[int, int] | None  # (ceiling, low)
    since: str | None
    checked: int

    @classmethod
    def fresh(cls, sel: Selected, since: date | None) -> FolderState:
        return cls(
            uidvalidity=sel.uidvalidity,
            uidnext=sel.uidnext,
            highestmodseq=sel.highestmodseq,
            held=UidSet(),
            backfill=(sel.uidnext, sel.uidnext),
            since=since.isoformat() if since else None,
            checked=int(time.time()),
        )

    @classmethod
    def load(cls, cursor: str | None) -> FolderState | None:
        data = load_cursor(cursor, log)
        if data is None or data.get("v") != CURSOR_VERSION:
            return None
        try:
            fill = data.get("backfill")
            return cls(
                uidvalidity=int(data["uidvalidity"]),
                uidnext=int(data["uidnext"]),
                highestmodseq=int(data["highestmodseq"]) if data.get("highestmodseq") is not None else None,
                held=UidSet.parse(str(data.get("uids", ""))),
                backfill=(int(fill["ceiling"]), int(fill["low"])) if fill else None,
                since=data.get("since"),
                checked=int(data.get("checked", 0)),
            )
        except (KeyError, TypeError, ValueError):
            log.warning("ignoring an unreadable IMAP cursor (%.80r): syncing the folder afresh", cursor)
            return None

    def dump(self) -> str:
        return dump_cursor(
            {
                "v": CURSOR_VERSION,
                "uidvalidity": self.uidvalidity,
                "uidnext": self.uidnext,
                "highestmodseq": self.highestmodseq,
                "uids": str(self.held),
                "backfill": {"ceiling": self.backfill[0], "low": self.backfill[1]} if self.backfill else None,
                "since": self.since,
                "checked": self.checked,
            }
        )
