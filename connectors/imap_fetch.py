"""A fast path for parsing the FETCH responses the IMAP source asks for.

imapclient's parser lexes responses one character at a time: two thirds of a first
sync's client time went into it. The responses to our own FETCHes have a fixed, small
grammar (RFC 9051 §7.5.2): ``UID``, ``FLAGS``, ``RFC822.SIZE``, ``MODSEQ`` (RFC 7162)
and ``BODY[section]`` literals, so a few regular expressions over the text *between*
the literals parse them. Anything else (Gmail's X-GM-* items, quoted strings, a server's
surprise) makes :func:`parse_fetch` return None, and the caller falls back to imapclient's
parser: the fast path never guesses.

Input is imaplib's raw FETCH data: a list of ``bytes`` (a whole response line) and of
``(line up to and including "{size}", literal bytes)`` tuples, where the text after a
literal comes as the next element.
"""

from __future__ import annotations

import re
from typing import Any

_LITERAL_AT_END = re.compile(rb"\{(\d+)\}$")
_RESPONSE = re.compile(rb"(\d+) \((.*)\)", re.DOTALL)
_ITEM = re.compile(
    rb"""[ ]?(?:
        UID[ ](?P<uid>\d+)
      | FLAGS[ ]\((?P<flags>[^()"{}\x00]*)\)
      | RFC822\.SIZE[ ](?P<size>\d+)
      | MODSEQ[ ]\((?P<modseq>\d+)\)
      | (?P<section>BODY\[[^\]\x00"]*\](?:<\d+>)?)[ ](?:\x00(?P<lit>\d+)\x00|(?P<nil>NIL)|"(?P<qs>[^"\\]*)")
    )""",
    re.VERBOSE | re.IGNORECASE,
)


def parse_fetch(data: list[Any]) -> dict[int, dict[bytes, Any]] | None:
    """{uid: {item: value}} like imapclient's ``parse_fetch_response``, or None to fall back."""
    lines: list[bytes] = []
    literals: list[bytes] = []
    current = b""
    for element in data:
        if element is None:
            continue
        if isinstance(element, tuple):
            head, literal = element
            match = _LITERAL_AT_END.search(head)
            if match is None or not isinstance(literal, bytes) or len(literal) != int(match.group(1)):
                return None  # a short literal is a cut connection: imapclient raises for it
            current += head[: match.start()] + b"\x00%d\x00" % len(literals)
            literals.append(literal)
        elif isinstance(element, bytes):
            lines.append(current + element)
            current = b""
        else:
            return None
    if current:
        lines.append(current)

    out: dict[int, dict[bytes, Any]] = {}
    for line in lines:
        response = _RESPONSE.fullmatch(line)
        if response is None:
            return None
        items: dict[bytes, Any] = {b"SEQ": int(response.group(1))}
        uid: int | None = None
        body, pos = response.group(2), 0
        while pos < len(body):
            match = _ITEM.match(body, pos)
            if match is None or match.end() == pos:
                return None
            pos = match.end()
            if match.group("uid") is not None:
                uid = int(match.group("uid"))
            elif match.group("flags") is not None:
                items[b"FLAGS"] = tuple(match.group("flags").split())
            elif match.group("size") is not None:
                items[b"RFC822.SIZE"] = int(match.group("size"))
            elif match.group("modseq") is not None:
                items[b"MODSEQ"] = (int(match.group("modseq")),)
            else:
                key = match.group("section").upper()
                if match.group("lit") is not None:
                    items[key] = literals[int(match.group("lit"))]
                elif match.group("nil") is not None:
                    items[key] = None
                else:
                    items[key] = match.group("qs")
        if uid is None:  # an unsolicited FETCH keyed by sequence number: let imapclient decide
            return None
        out.setdefault(uid, {}).update(items)
    return out
