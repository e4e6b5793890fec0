"""RFC 822 / MIME bytes to :class:`~connectors.message.ParsedMessage`.

Speed: the stdlib parser runs with ``policy.compat32`` and the few headers we need are
decoded by :mod:`connectors.mime_decode`; ``policy.default`` decodes every header eagerly
and is ~8x slower. This module walks the parts: body text, attachments, calendar parts.
Robustness: real mail is routinely wrong (mislabelled charsets, broken boundaries, raw
8-bit headers, endless nesting). What still leaves a readable message becomes a short
``defects`` string; only input that is not a message at all raises :class:`ParseError`.
"""

from __future__ import annotations

import codecs
import hashlib
import mimetypes
import re
from datetime import datetime
from email.message import Message
from email.parser import BytesParser
from email.policy import compat32

from connectors.html_text import html_to_text
from connectors.ics_parse import CalendarError, parse_calendar
from connectors.message import Headers, Meeting, ParsedMessage, Participant, Role
from connectors.mime_decode import (
    address_pairs,
    cap_id,
    clean_id,
    decode_bytes,
    decode_words,
    id_list,
    parse_date,
    unfold,
)

MAX_TEXT_BYTES = 1 << 20
MAX_HTML_CHARS = 2 << 20  # html_to_text runs at ~2 MB/s; real HTML mail is far smaller
MAX_PARTS = 2000
MAX_DEPTH = 60
SYNTHETIC_BODY_CHARS = 4096

_PARSER = BytesParser(policy=compat32)
_WS = re.compile(r"\s+")
_BOUNDARY_LINE = re.compile(rb"^--([^\s][^\r\n]{0,200}?)[ \t]*\r?$", re.MULTILINE)
_LEADING_BLANK_LINES = re.compile(rb"\A(?:[ \t]*\r?\n)+")
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")
_BLANK_LINE = re.compile(rb"\r?\n\r?\n")
_CONTROL = re.compile(rb"[\x00-\x08\x0b\x0e-\x1a\x1c-\x1f\x7f]")  # ESC stays: raw ISO-2022-JP
_BINARY_MAGIC = {b"\xd0\xcf\x11\xe0": "an Outlook .msg (OLE2) file", b"\x78\x9f\x3e\x22": "a TNEF blob"}
_ROLES: tuple[Role, ...] = ("from", "sender", "reply_to", "to", "cc", "bcc")
_CALENDAR_TYPES = {"text/calendar", "application/ics"}
_KNOWN_CTE = {"", "7bit", "8bit", "binary", "base64", "quoted-printable", "x-uuencode", "uuencode", "uue"}


class ParseError(Exception):
    """The input cannot be read as a message at all; ``str(exc)`` says why."""


def _normalize(text: str) -> str:
    # NUL cannot be stored in a PostgreSQL text column.
    return text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "").removeprefix("\ufeff")


def _sniff(raw: bytes) -> bytes:
    """Reject what is plainly not a message, with a reason a person can act on."""
    if raw.startswith(codecs.BOM_UTF8):  # Windows tools save .eml files with one
        raw = raw[3:]
    raw = _LEADING_BLANK_LINES.sub(b"", raw)
    if not raw.strip():
        raise ParseError("empty message: no bytes besides white space")
    for magic, what in _BINARY_MAGIC.items():
        if raw.startswith(magic):
            raise ParseError(f"not an RFC 822 message: this is {what}")
    head = _BLANK_LINE.split(raw[:8192], maxsplit=1)[0]
    if head.count(b"\x00") > 2 or len(_CONTROL.findall(head)) > len(head) // 10:
        raise ParseError("not an RFC 822 message: binary data where the header should be")
    return raw


class _Reader:
    """Reads one parsed message tree; collects defects instead of failing."""

    def __init__(self, root: Message) -> None:
        self.root = root
        self.defects: list[str] = []
        self.raw_headers: dict[str, list[str]] = {}
        for name, value in root.raw_items():
            self.raw_headers.setdefault(name.lower(), []).append(value)

    def header(self, name: str) -> str | None:
        values = self.raw_headers.get(name)
        return unfold(values[0]).strip() if values else None

    def text_header(self, name: str) -> str | None:
        value = self.header(name)
        return _WS.sub(" ", decode_words(value)).strip() or None if value else None

    def participants(self) -> list[Participant]:
        found: dict[tuple[str, str], Participant] = {}
        from_emails: set[str] = set()
        for role in _ROLES:
            header = role.replace("_", "-")
            for name, address in address_pairs(self.raw_headers.get(header, []), header, self.defects):
                email = address.strip().strip("<>").lower()
                local, _, domain = email.rpartition("@")
                if not local or not domain or (role == "sender" and email in from_emails):
                    continue
                if role == "from":
                    from_emails.add(email)
                display = _WS.sub(" ", decode_words(name)).strip().strip("\"'").strip() or None
                found.setdefault((email, role), Participant(email=email, name=display, role=role))
        return list(found.values())

    def date(self) -> datetime | None:
        raw = self.header("date")
        parsed = parse_date(raw)
        if parsed is None:
            self.defects.append("bad Date header" if raw else "no Date header")
            received = self.raw_headers.get("received")
            if received:  # the last one is the first hop, closest to the sending time
                parsed = parse_date(unfold(received[-1]).rpartition(";")[2].strip())
        return parsed

    def walk(self) -> list[tuple[Message, str]]:
        """Leaf parts and their content types, in document order.

        Attached messages are not entered (their text is not this message's). Iterative
        with limits: flanker's enclosed-endless.eml nests thousands deep and
        Message.walk() is recursive.
        """
        parts: list[tuple[Message, str]] = []
        stack: list[tuple[Message, int]] = [(self.root, 0)]
        seen = 0
        while stack:
            part, depth = stack.pop()
            ctype = part.get_content_type()
            self.defects.extend(f"{type(d).__name__} in {ctype}" for d in part.defects)
            seen += 1
            if seen > MAX_PARTS:
                self.defects.append(f"more than {MAX_PARTS} MIME parts, the rest ignored")
                break
            if not ctype.startswith("multipart/"):
                parts.append((part, ctype))
                continue
            children = part.get_payload() if part.is_multipart() else _resplit(part, self.defects)
            if children is None:  # no boundary line at all: the body is the text
                parts.append((part, "text/plain"))
            elif depth >= MAX_DEPTH:
                self.defects.append(f"MIME nesting deeper than {MAX_DEPTH}, the rest ignored")
            else:
                stack.extend((p, depth + 1) for p in reversed(children) if isinstance(p, Message))
        return parts

    def part_bytes(self, part: Message) -> bytes:
        cte = str(part.get("content-transfer-encoding", "")).strip().lower()
        if cte not in _KNOWN_CTE:
            self.defects.append(f"unknown transfer encoding {cte[:40]}")
        payload = part.get_payload(decode=True)
        return payload if isinstance(payload, bytes) else b""

    def part_text(self, part: Message) -> str:
        charset = _params(part).get_content_charset()
        return _normalize(decode_bytes(self.part_bytes(part), charset, self.defects, "body"))

    def filename(self, part: Message) -> str | None:
        name = _params(part).get_filename()
        if not name:
            return None
        # RFC 2231 is the standard, but Outlook and Gmail put RFC 2047 words in quotes.
        name = _WS.sub(" ", decode_words(name)).replace("\x00", "").strip()
        return re.split(r"[\\/]", name)[-1].strip() or None

    def meetings(self, part: Message) -> list[Meeting]:
        method = _params(part).get_param("method")
        method = method if isinstance(method, str) else None
        try:
            return parse_calendar(self.part_bytes(part), method.strip().upper() if method else None)
        except CalendarError as exc:
            self.defects.append(f"unreadable calendar part: {exc}")
        except Exception as exc:  # a bug there must not lose the mail itself
            self.defects.append(f"calendar parser failed: {type(exc).__name__}: {exc}")
        return []


def _resplit(part: Message, defects: list[str]) -> list[Message] | None:
    """The parts of a multipart whose declared boundary matches no line, or None.

    Spammers and old mailers declare one boundary and use another; and compat32 strips
    the angle brackets from a boundary such as ``"<<001-3e1dcd5a-119e>>"`` (two rounds
    of email.utils.unquote). The first ``--token`` line is taken as the real boundary
    (RFC 2046 §5.1.1) and replaced by a plain one before parsing again.
    """
    body = part.get_payload(decode=True)
    match = _BOUNDARY_LINE.search(body) if isinstance(body, bytes) else None
    if match is None:
        return None
    token = match.group(1).removesuffix(b"--")
    fresh = b"syncd-" + hashlib.sha1(token).hexdigest().encode()
    line = re.compile(rb"^--" + re.escape(token) + rb"(--)?[ \t]*(?=\r?$)", re.MULTILINE)
    body = line.sub(lambda m: b"--" + fresh + (m.group(1) or b""), body)
    header = f'Content-Type: {part.get_content_type()}; boundary="{fresh.decode()}"\n\n'.encode()
    try:
        children = _PARSER.parsebytes(header + body).get_payload()
    except RecursionError:
        return None
    if not isinstance(children, list) or not children:
        return None
    defects.append(f"declared boundary not found, re-split on {token[:60].decode('ascii', 'replace')!r}")
    return children


def _params(part: Message) -> Message:
    """The part, or a copy of its MIME headers with raw 8-bit bytes decoded.

    compat32's get_param() turns 8-bit bytes into U+FFFD; Russian and Chinese mailers
    send raw UTF-8 or GB2312 file names.
    """
    raw = [(k, v) for k, v in part.raw_items() if k.lower() in ("content-type", "content-disposition")]
    if all(v.isascii() for _, v in raw):
        return part
    view = Message()
    for name, value in raw:
        view[name] = unfold(value)
    return view


def _synthetic_id(sender: str, date: str, subject: str, text: str) -> str:
    """A Message-ID for mail without one, equal for copies of it in any mailbox.

    Hashes what every copy shares (not Received or other per-mailbox headers), with
    white space normalized so that re-folding or CRLF/LF conversion cannot change it.
    """
    body = " ".join(text[: SYNTHETIC_BODY_CHARS * 4].split())[:SYNTHETIC_BODY_CHARS]
    fields = [" ".join(sender.split()), " ".join(date.split()), subject, body]
    digest = hashlib.sha256("\x1f".join(fields).encode("utf-8", "replace")).hexdigest()
    return f"syncd-{digest}@synthetic"


def _choose_text(reader: _Reader, plains: list[Message], htmls: list[Message]) -> tuple[str, bool]:
    """The first non-blank text/plain body, else the first non-blank HTML one as text.

    Blank ones are skipped: Outlook sends empty multipart/alternative shells next to the
    real body (MimeKit's empty-multipart.txt), some senders an empty text/plain
    alternative to the HTML.
    """
    for part in plains:
        text = reader.part_text(part)
        if text.strip():
            return text, False
    for part in htmls:
        text = html_to_text(reader.part_text(part)[:MAX_HTML_CHARS])
        if text.strip():
            return text, True
    return ("", False) if plains or htmls else _fallback_text(reader)


def _untitled(part: Message, ctype: str) -> str:
    """A name for a nameless attachment, as mail clients show it."""
    if ctype == "message/rfc822" and part.is_multipart():
        inner = part.get_payload(0)
        subject = _WS.sub(" ", decode_words(unfold(str(inner.get("subject", ""))))).strip()
        return f"{subject[:200] or 'message'}.eml"
    return "untitled" + (mimetypes.guess_extension(ctype) or ".bin")


def _fallback_text(reader: _Reader) -> tuple[str, bool]:
    """Text for a message without a usable body part.

    A lone text body that calls itself an attachment; else a multipart preamble that
    says more than "This is a multi-part message in MIME format" (old bounces put the
    error there, RFC 2046 §5.1.1 lets them).
    """
    root = reader.root
    if root.get_content_type() == "text/html":
        return html_to_text(reader.part_text(root)[:MAX_HTML_CHARS]), True
    if root.get_content_maintype() == "text":
        return reader.part_text(root), False
    preamble = root.preamble if isinstance(root.preamble, str) else ""
    preamble = _normalize(decode_bytes(preamble.encode("utf-8", "surrogateescape"), None))
    if re.search(r"(?i)mime|multi-?part", preamble) and len(preamble) < 300:
        return "", False
    return preamble.strip(), False


def _read(raw: bytes) -> ParsedMessage:
    data = _sniff(raw)
    try:
        root, too_deep = _PARSER.parsebytes(data), False
    except RecursionError:  # the stdlib parser recurses per nesting level: keep the header at least
        root, too_deep = _PARSER.parsebytes(data, headersonly=True), True
    if not root.keys():
        first = data.split(b"\n", 1)[0][:60].decode("utf-8", "replace").strip()
        raise ParseError(f"no header fields found: the first line is {first!r}")
    reader = _Reader(root)
    if too_deep:
        reader.defects.append("MIME structure nested too deeply to read, body ignored")
    plains: list[Message] = []
    htmls: list[Message] = []
    attachments: list[str] = []
    meetings: list[Meeting] = []
    for part, ctype in [] if too_deep else reader.walk():
        filename = reader.filename(part)
        if part.get_content_disposition() == "attachment" or filename:
            attachments.append(filename or _untitled(part, ctype))
        elif ctype == "text/plain":
            plains.append(part)
        elif ctype == "text/html":
            htmls.append(part)
        if ctype in _CALENDAR_TYPES or (filename or "").lower().endswith(".ics"):
            meetings.extend(m for m in reader.meetings(part) if m not in meetings)
    text, is_html = _choose_text(reader, plains, htmls)
    if len(text) * 4 > MAX_TEXT_BYTES:
        text = text.encode("utf-8", "replace")[:MAX_TEXT_BYTES].decode("utf-8", "ignore")

    date = reader.date()
    participants = reader.participants()
    sender = next((p for p in participants if p.role == "from"), None)
    subject = reader.text_header("subject") or ""
    synthetic = False
    message_id = cap_id(clean_id(reader.header("message-id") or ""))
    if not message_id:
        from_key = sender.email if sender else reader.text_header("from") or ""
        message_id = _synthetic_id(from_key, reader.header("date") or "", subject, text)
        synthetic = True
    in_reply_to = next(iter(id_list(reader.header("in-reply-to") or "")), None)
    references = tuple(id_list(" ".join(unfold(v) for v in reader.raw_headers.get("references", []))))
    flag = reader.text_header
    headers = Headers(
        list_id=flag("list-id"),
        list_unsubscribe=reader.header("list-unsubscribe") or None,  # URLs only (RFC 2369): no decoding
        precedence=flag("precedence"),
        auto_submitted=flag("auto-submitted"),
        sensitivity=flag("sensitivity"),
        x_auto_response_suppress=flag("x-auto-response-suppress"),
        auto_reply="x-autoreply" in reader.raw_headers or "x-autorespond" in reader.raw_headers,
        content_type=root.get_content_type(),
    )
    return ParsedMessage(
        message_id=message_id,
        synthetic_id=synthetic,
        subject=subject,
        date=date,
        sender=sender,
        participants=tuple(participants),
        in_reply_to=in_reply_to,
        references=references,
        thread_key=references[0] if references else in_reply_to or message_id,
        text=text,
        html=is_html,
        headers=headers,
        attachments=tuple(attachments),
        meetings=tuple(meetings),
        size=len(raw),
        defects=tuple(dict.fromkeys(_CONTROL_CHARS.sub(" ", d)[:300] for d in reader.defects)),
    )


def parse_message(raw: bytes) -> ParsedMessage:
    """Parse one RFC 822 message (RFC 5322 header, RFC 2045-2049 MIME body).

    Raises :class:`ParseError` (and nothing else) when the input is not a message:
    empty, binary, or without a single header field. Everything else, however broken,
    gives a ParsedMessage whose ``defects`` name what was wrong.
    """
    if not isinstance(raw, bytes | bytearray | memoryview):
        raise ParseError(f"expected bytes, got {type(raw).__name__}")
    try:
        return _read(bytes(raw))
    except ParseError:
        raise
    except RecursionError:
        raise ParseError("unreadable message: MIME structure nested too deeply") from None
    except Exception as exc:
        raise ParseError(f"unreadable message: {type(exc).__name__}: {exc}") from exc
