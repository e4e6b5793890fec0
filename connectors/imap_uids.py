"""Sets of IMAP UIDs kept as sorted, merged ranges ("1:500,502:900").

UIDs are assigned in ascending order (RFC 9051 §2.3.1.1) and mail is mostly deleted a
little at a time, so a folder's UIDs collapse into few ranges: the set of everything we
hold fits in a cursor, and set algebra runs over ranges, never over every UID.
The text form is IMAP's own sequence-set syntax without ``*`` (RFC 9051 §9, ``sequence-set``).
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Iterator

Range = tuple[int, int]  # inclusive


def _merge(ranges: Iterable[Range]) -> list[Range]:
    out: list[Range] = []
    for lo, hi in sorted(ranges):
        if out and lo <= out[-1][1] + 1:
            if hi > out[-1][1]:
                out[-1] = (out[-1][0], hi)
        else:
            out.append((lo, hi))
    return out


class UidSet:
    """An immutable set of positive UIDs; ``|``, ``-`` and ``&`` work range by range."""

    __slots__ = ("_ranges",)

    def __init__(self, ranges: Iterable[Range] = ()) -> None:
        self._ranges: list[Range] = _merge((lo, hi) for lo, hi in ranges if 0 < lo <= hi)

    @classmethod
    def of(cls, uids: Iterable[int]) -> UidSet:
        return cls((u, u) for u in uids)

    @classmethod
    def parse(cls, text: str) -> UidSet:
        """Read ``"1:5,7,9:12"``; raises ValueError on anything else (``*`` included)."""
        ranges: list[Range] = []
        for part in text.split(","):
            if not part:
                continue
            lo, _, hi = part.partition(":")
            a, b = int(lo), int(hi or lo)
            ranges.append((min(a, b), max(a, b)))  # "5:1" is "1:5" (RFC 9051 §9)
        return cls(ranges)

    @property
    def ranges(self) -> list[Range]:
        return list(self._ranges)

    def __str__(self) -> str:
        return ",".join(str(lo) if lo == hi else f"{lo}:{hi}" for lo, hi in self._ranges)

    def __repr__(self) -> str:
        return f"UidSet({str(self)!r})"

    def __len__(self) -> int:
        return sum(hi - lo + 1 for lo, hi in self._ranges)

    def __bool__(self) -> bool:
        return bool(self._ranges)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, UidSet) and self._ranges == other._ranges

    def __hash__(self) -> int:
        return hash(tuple(self._ranges))

    def __contains__(self, uid: object) -> bool:
        if not isinstance(uid, int):
            return False
        i = bisect_right(self._ranges, (uid, float("inf"))) - 1
        return i >= 0 and self._ranges[i][0] <= uid <= self._ranges[i][1]

    def __iter__(self) -> Iterator[int]:
        for lo, hi in self._ranges:
            yield from range(lo, hi + 1)

    def descending(self) -> Iterator[int]:
        for lo, hi in reversed(self._ranges):
            yield from range(hi, lo - 1, -1)

    def max(self) -> int | None:
        return self._ranges[-1][1] if self._ranges else None

    def min(self) -> int | None:
        return self._ranges[0][0] if self._ranges else None

    def __or__(self, other: UidSet) -> UidSet:
        return UidSet(self._ranges + other._ranges)

    def __and__(self, other: UidSet) -> UidSet:
        out: list[Range] = []
        i = j = 0
        a, b = self._ranges, other._ranges
        while i < len(a) and j < len(b):
            lo, hi = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
            if lo <= hi:
                out.append((lo, hi))
            if a[i][1] < b[j][1]:
                i += 1
            else:
                j += 1
        return UidSet(out)

    def __sub__(self, other: UidSet) -> UidSet:
        out: list[Range] = []
        b = other._ranges
        j = 0
        for lo, hi in self._ranges:
            while j < len(b) and b[j][1] < lo:
                j += 1
            k, start = j, lo
            while k < len(b) and b[k][0] <= hi:
                if b[k][0] > start:
                    out.append((start, b[k][0] - 1))
                start = max(start, b[k][1] + 1)
                k += 1
            if start <= hi:
                out.append((start, hi))
        return UidSet(out)

    def below(self, limit: int) -> UidSet:
        """The UIDs smaller than ``limit``."""
        return self & UidSet([(1, limit - 1)]) if limit > 1 else UidSet()
