"""Header values of RFC 822 / MIME mail to Python values, as :mod:`connectors.mime_parse` reads them.

Charsets (declared, missing, unknown or wrong), RFC 2047 encoded words, address lists,
dates and Message-IDs. Nothing here raises on bad input: what cannot be read falls back
to something readable, and the callers that keep a defect list get a note in it.
"""

from __future__ import annotations

import codecs
import hashlib
import re
from datetime import UTC, datetime
from email.errors import HeaderParseError
from email.header import decode_header
from email.utils import getaddresses, parsedate_to_datetime
from functools import lru_cache

MAX_ID_CHARS = 900  # ids are unique keys in the database; longer ones are hashed

_FOLD = re.compile(r"\r?\n(?=[ \t])")
_ANGLE_ID = re.compile(r"<([^<>]*)>")
_ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([qQbB])\?([^?]*)\?=")
_BETWEEN_WORDS = re.compile(r"(?<=\?=)[ \t]+(?==\?)")
_ASCII = bytes(range(128))
# The local part excludes "@" so that there is one way to match (no backtracking blow-up).
_BARE_ADDRESS = re.compile(r"[^\s<>\"(),;:\[\]\\@]*@[^\s<>\"(),;:\[\]\\]*")
_ADDRESS_DELIMITERS = re.compile(r"[\s<>\"(),;:\[\]\\]+")
# Labels Python does not know, and codecs whose superset is what mail really uses
# (WHATWG Encoding §4.2: "latin1" and "gb2312" mail is cp1252 and gb18030 mail).
_CODEC_ALIASES = {"x-gbk": "gbk", "windows-874": "cp874", "iso-8859-8-i": "iso-8859-8", "x-sjis": "shift_jis"}
_CODEC_ALIASES |= {"x-mac-roman": "mac-roman", "iso8859-1": "cp1252", "gb2312": "gb18030", "gbk": "gb18030"}
_CODEC_ALIASES |= {"euc_kr": "cp949", "tis-620": "cp874", "big5": "big5hkscs"}
# Codecs that exist in Python but would mangle or misinterpret mail text.
_REFUSED_CODECS = {"unicode-escape", "raw-unicode-escape", "idna", "punycode", "undefined"}


@lru_cache(maxsize=512)
def _codec(label: str) -> str | None:
    name = label.strip().strip("\"'").lower().split("*", 1)[0]  # RFC 2231 §5: charset*lang
    try:
        codec = codecs.lookup(_CODEC_ALIASES.get(name, name)).name
        codec = _CODEC_ALIASES.get(codec, codec)
        b"".decode(codec)  # rejects bytes-to-bytes codecs such as base64 or zlib
    except (LookupError, ValueError, TypeError):
        return None
    return None if codec in _REFUSED_CODECS else codec


def decode_bytes(data: bytes, label: str | None, defects: list[str] | None = None, where: str = "") -> str:
    """Decode text whose declared charset may be missing, unknown or wrong; never raises.

    Order: the declared charset, UTF-8, UTF-8 with replacement when nearly all of it is
    UTF-8 (a name cut in the middle of a character), then the declared charset or
    cp1252 with replacement.
    """
    codec = _codec(label) if label else None
    if label and codec is None and defects is not None:
        defects.append(f"unknown charset {label[:40]} in {where}")
    if codec not in (None, "ascii", "utf-8"):
        try:
            return data.decode(codec)
        except UnicodeDecodeError:
            pass
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    if defects is not None and codec not in (None, "ascii"):
        defects.append(f"bytes invalid for charset {label[:40]} in {where}")
    text = data.decode("utf-8", "replace")
    if text.count("\ufffd") * 8 <= len(data.translate(None, _ASCII)):
        return text
    return data.decode(codec if codec not in (None, "ascii", "utf-8") else "cp1252", "replace")


def unfold(value: str) -> str:
    """RFC 5322 §2.2.3 unfolding; compat32 also leaves raw 8-bit bytes as surrogates."""
    if not value.isascii():
        value = decode_bytes(value.encode("utf-8", "surrogateescape"), None)
    return _FOLD.sub("", value).replace("\r", " ").replace("\n", " ").replace("\x00", "")


def _decode_word(match: re.Match[str]) -> str:
    charset, encoding, text = match.groups()
    try:
        if encoding in "bB":
            raw = codecs.decode(text + "=" * (-len(text) % 4), "base64")
        else:
            raw = codecs.decode(text.replace("_", " ").encode(), "quopri")
    except (ValueError, TypeError):
        return match.group(0)
    return decode_bytes(raw, charset)


def decode_words(value: str) -> str:
    """Decode RFC 2047 encoded words, tolerating the malformed ones seen in real mail.

    ``decode_header`` joins adjacent words of one charset before decoding (a UTF-8
    character split across two words, RFC 2047 §5 forbids it but mailers do it). When
    it gives up (bad base64) or the text holds characters beyond Latin-1 (which its
    round trip through raw-unicode-escape would mangle), each word is decoded on its own
    and a broken word stays as written.
    """
    if "=?" not in value:
        return value
    if value.isascii() or max(value) <= "\xff":
        try:
            parts = decode_header(value)
        except (HeaderParseError, ValueError, LookupError):
            parts = None
        if parts is not None:
            out: list[str] = []
            for chunk, charset in parts:
                if isinstance(chunk, str):
                    out.append(chunk)
                else:
                    out.append(chunk.decode("latin-1") if charset is None else decode_bytes(chunk, charset))
            return "".join(out)
    return _ENCODED_WORD.sub(_decode_word, _BETWEEN_WORDS.sub("", value))


def address_pairs(raw_values: list[str], header: str, defects: list[str]) -> list[tuple[str, str]]:
    """(display name, address) pairs of the values of one address header, names not yet decoded."""
    values = [unfold(v) for v in raw_values]
    bare = [a for a in (a.strip() for v in values for a in v.split(",")) if a]
    if all(_BARE_ADDRESS.fullmatch(a) for a in bare):
        # Plain "a@x, b@y" lists, most of real mail: 5x faster than getaddresses, which
        # also mangles UUCP-era "host!user@relay@domain" into "@domain".
        return [("", a) for a in bare]
    try:
        return getaddresses(values)
    except RecursionError:
        # getaddresses recurses once per ":" (RFC 5322 §3.4 group syntax): MimeKit's
        # stack-overflow.txt has a thousand of them. Keep the bare addresses.
        defects.append(f"{header} header too convoluted, names dropped")
        return [("", a) for v in values for a in _ADDRESS_DELIMITERS.split(v) if "@" in a]


def parse_date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value)
        if parsed.tzinfo is None:  # "-0000" and zone-less dates: RFC 5322 §3.3 says UTC
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.astimezone(UTC)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def clean_id(value: str) -> str:
    match = _ANGLE_ID.search(value)
    # RFC 5322 §3.6.4 forbids white space inside an id: what is there is folding damage.
    return "".join((match.group(1) if match else value).split())


def cap_id(msg_id: str) -> str:
    if len(msg_id) <= MAX_ID_CHARS:
        return msg_id
    return f"syncd-{hashlib.sha256(msg_id.encode('utf-8', 'surrogatepass')).hexdigest()}@long-id"


def id_list(value: str) -> list[str]:
    ids = [clean_id(m) for m in _ANGLE_ID.findall(value)]
    if not ids:  # some mailers drop the brackets (RFC 5322 §4.5.4 obsolete forms)
        ids = [t.strip("<>") for t in value.replace(",", " ").split() if "@" in t]
    return list(dict.fromkeys(cap_id(i) for i in ids if i))
