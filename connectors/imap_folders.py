"""Which IMAP folders to sync: SPECIAL-USE discovery (RFC 6154) and the include/exclude lists.

A pure decision over the LIST response, so it is tested without a server.

Default choice (no ``folders`` list), what a CRM capture service wants: every message
the user sent or received and kept, once.

- Generic IMAP: INBOX, then ``\\Sent`` and ``\\Archive``, then every other selectable
  folder. People file customer mail into folders of their own; leaving those out would
  make every filed message look deleted. Left out: ``\\Trash``, ``\\Junk`` and
  ``\\Drafts`` (not correspondence, and their children too), and the virtual ``\\All``
  and ``\\Flagged`` views (RFC 6154 §2), which only repeat messages of real folders.
  A server without SPECIAL-USE gets the same exclusions by the usual names.
- Gmail (``X-GM-EXT-1``): only ``\\All`` ("[Gmail]/All Mail"). Gmail labels are views of
  one store and All Mail holds every message, sent ones included, but not Spam or Trash;
  the labels (X-GM-LABELS) say where each message shows, so syncing INBOX or Sent as
  well would read the same messages again. Should All Mail be hidden from IMAP (a Gmail
  setting), the generic choice applies, minus Gmail's virtual ``\\Important``.

``folders`` replaces the default choice; ``exclude_folders`` then removes from either.
Both take exact names or shell-style globs (``Clients/*``), compared case-insensitively;
an exact name wins over glob syntax, so ``[Gmail]/All Mail`` means itself.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from fnmatch import fnmatchcase

log = logging.getLogger(__name__)

INBOX = "INBOX"
LEFT_OUT = frozenset({"\\trash", "\\junk", "\\drafts"})
VIRTUAL = frozenset({"\\all", "\\flagged", "\\important"})
NOT_SELECTABLE = frozenset({"\\noselect", "\\nonexistent"})
# For servers without SPECIAL-USE: the names clients and servers use for these folders.
LEFT_OUT_NAMES = frozenset(
    {"trash", "junk", "spam", "drafts", "deleted messages", "deleted items", "junk e-mail", "bulk mail"}
)
FIRST = ("\\sent", "\\archive")

Listing = Sequence[tuple[Sequence[str], str]]  # (attributes, name) per folder


def _matches(name: str, patterns: Sequence[str]) -> bool:
    lowered = name.lower()
    return any(lowered == p.lower() or fnmatchcase(lowered, p.lower()) for p in patterns)


def _norm_inbox(name: str) -> str:
    # RFC 9051 §5.1: INBOX is case-insensitive; other names are not.
    return INBOX if name.upper() == INBOX else name


def choose_folders(
    listing: Listing,
    *,
    gmail: bool = False,
    include: Sequence[str] | None = None,
    exclude: Sequence[str] | None = None,
    delimiter: str = "/",
) -> list[str]:
    """The folders to sync, INBOX first, then Sent and Archive, then the rest by name."""
    attrs = {_norm_inbox(name): {a.lower() for a in flags} for flags, name in listing}
    selectable = [name for name, flags in attrs.items() if not flags & NOT_SELECTABLE]
    has_special_use = any(flags & (LEFT_OUT | VIRTUAL | set(FIRST)) for flags in attrs.values())

    if include is not None:
        chosen = [name for name in selectable if _matches(name, include)]
        missing = [p for p in include if not any(_matches(n, [p]) for n in selectable)]
        if missing:
            log.warning("IMAP folder(s) not found on the server: %s", ", ".join(missing))
    else:
        all_mail = [name for name in selectable if "\\all" in attrs[name]]
        if gmail and all_mail:
            chosen = all_mail[:1]
        else:
            left_out = [
                name
                for name in attrs
                if attrs[name] & (LEFT_OUT | VIRTUAL)
                or (not has_special_use and _leaf(name, delimiter).lower() in LEFT_OUT_NAMES)
            ]
            chosen = [
                name
                for name in selectable
                if name not in left_out and not any(name.startswith(p + delimiter) for p in left_out)
            ]
    if exclude:
        chosen = [name for name in chosen if not _matches(name, exclude)]

    def order(name: str) -> tuple[int, str]:
        if name == INBOX:
            return 0, ""
        for rank, flag in enumerate(FIRST, start=1):
            if flag in attrs.get(name, set()):
                return rank, name
        return len(FIRST) + 1, name

    return sorted(dict.fromkeys(chosen), key=order)


def _leaf(name: str, delimiter: str) -> str:
    # "INBOX.Trash" and "Trash" are both the trash on servers that nest under INBOX.
    parts = name.split(delimiter) if delimiter else [name]
    if len(parts) > 1 and parts[0].upper() == INBOX:
        parts = parts[1:]
    return parts[0]
