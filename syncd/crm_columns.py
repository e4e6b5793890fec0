"""Column aliases and value parsers for CRM CSV imports.

The alias table maps the header names of our own format and of HubSpot and Salesforce
exports (UI labels as well as API names) to one canonical field per kind. Headers are
compared after dropping case and every non-alphanumeric character, so "Close Date",
"close_date", "CloseDate" and "CLOSEDATE" are the same column.

Value parsers raise :class:`ValueProblem`, whose message quotes the value and says what
was expected; :mod:`syncd.crm_import` adds the file, line and column.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Literal
from urllib.parse import urlsplit

Kind = Literal["companies", "contacts", "opportunities"]
Status = Literal["open", "won", "lost"]


class ValueProblem(ValueError):
    """A cell value that cannot be used; the message says why and what is expected."""


@dataclass(frozen=True, slots=True)
class Field:
    name: str
    aliases: tuple[str, ...]  # in priority order: the first non-empty matching column wins
    required: bool = False
    combine: bool = False  # list fields: items from every matching column are merged
    max_length: int | None = None


FIELDS: dict[Kind, tuple[Field, ...]] = {
    "companies": (
        Field("name", ("name", "company name", "account name", "company"), required=True, max_length=300),
        Field(
            "domains",
            ("domains", "domain", "company domain name", "website url", "website"),
            combine=True,
        ),
        Field("industry", ("industry",), max_length=200),
    ),
    "contacts": (
        Field("email", ("email", "email address", "e-mail"), required=True),
        Field("first_name", ("first name",), max_length=200),
        Field("last_name", ("last name",), max_length=200),
        Field("company", ("company", "company name", "associated company", "account name"), max_length=300),
        Field("other_emails", ("other emails", "additional email addresses"), combine=True),
    ),
    "opportunities": (
        Field("name", ("name", "deal name", "opportunity name"), required=True, max_length=300),
        Field("company", ("company", "associated company", "account name"), max_length=300),
        Field("contacts", ("contacts", "associated contact", "associated contacts"), combine=True),
        Field("stage", ("stage", "deal stage", "stage name"), max_length=100),
        Field("status", ("status",)),
        Field("won", ("won", "is won")),
        Field("closed", ("closed", "is closed")),
        Field("amount", ("amount",)),
        Field("close_date", ("close date",)),
        Field("owner", ("owner", "owner email", "deal owner email", "opportunity owner email")),
        # HubSpot and Salesforce reports give the owner's name here; only an email is kept.
        Field("owner_name", ("deal owner", "opportunity owner")),
        Field("created_at", ("created at", "create date", "created date")),
        Field("pipeline", ("pipeline",)),  # not stored: it only helps recognise a deals export
        # What the deal sells, and words that identify it: the matcher looks for them in mail.
        Field("product", ("product", "products", "product name"), max_length=300),
        Field("keywords", ("keywords", "deal keywords"), max_length=2000),
    ),
}

# Which kind wins when a header could be several: ties go to the earlier kind.
# A contacts export without its email column must still be read as contacts (and fail on
# the missing column), not as companies through its "Company Name" column.
_KIND_ORDER: tuple[Kind, ...] = ("contacts", "companies", "opportunities")
# The column that names a record counts more: "Company Name" in a contacts export must
# not outweigh "Email", nor "Account Name" in an opportunities export "Opportunity Name".
_IDENTITY_WEIGHT = 3

STAGE_STATUS: dict[str, Status] = {"closedwon": "won", "closedlost": "lost"}
_STATUS: dict[str, Status] = {"open": "open", "won": "won", "lost": "lost", **STAGE_STATUS}
_TRUE = frozenset({"1", "true", "yes", "y", "t", "x"})
_FALSE = frozenset({"0", "false", "no", "n", "f", ""})


def header_key(header: str) -> str:
    return re.sub(r"[\W_]+", "", header.removeprefix("\ufeff").casefold())


def resolve_header(header: Sequence[str]) -> tuple[Kind, dict[str, list[int]]] | None:
    """Detect the kind from a header row; returns it with field name -> column indexes."""
    keys = [header_key(h) for h in header]
    best: tuple[int, Kind, dict[str, list[int]]] | None = None
    for kind in _KIND_ORDER:
        columns: dict[str, list[int]] = {}
        score = 0
        for i, field in enumerate(FIELDS[kind]):
            aliases = [header_key(a) for a in field.aliases]
            found = sorted((aliases.index(k), j) for j, k in enumerate(keys) if k in aliases)
            if found:
                columns[field.name] = [j for _, j in found]
                score += _IDENTITY_WEIGHT if i == 0 else 1
        if score and (best is None or score > best[0]):
            best = (score, kind, columns)
    return (best[1], best[2]) if best else None


def field(kind: Kind, name: str) -> Field:
    return next(f for f in FIELDS[kind] if f.name == name)


# --- value parsers ---------------------------------------------------------------------


def clean_text(value: str, max_length: int | None = None) -> str | None:
    """Collapse whitespace (a name typed with a double space is the same name)."""
    text = " ".join(value.split())
    if max_length is not None and len(text) > max_length:
        raise ValueProblem(f'"{text[:40]}..." is longer than {max_length} characters')
    return text or None


def split_list(value: str) -> list[str]:
    return [item.strip() for item in value.split(";") if item.strip()]


_EMAIL_IN_NAME = re.compile(r"^[^<(]*[<(]\s*([^<>()\s]+@[^<>()\s]+)\s*[>)]\s*$")


def parse_email(value: str) -> str:
    email = value.strip().removeprefix("mailto:").lower()
    local, at, domain = email.partition("@")
    ok = (
        at
        and local
        and "@" not in domain
        and "." in domain.strip(".")
        and not domain.startswith(".")
        and not domain.endswith(".")
        and ".." not in domain
        and not re.search(r"[\s,;<>()\[\]\"]", email)
        and len(email) <= 320
    )
    if not ok:
        raise ValueProblem(f'"{value.strip()}" is not a valid email address (expected name@example.com)')
    return email


def parse_contact_ref(value: str) -> tuple[str, str | None]:
    """``email``, ``email:role`` or HubSpot's ``Full Name (email)`` -> (email, role)."""
    if named := _EMAIL_IN_NAME.match(value):
        return parse_email(named.group(1)), None
    email, _, role = value.partition(":")
    return parse_email(email), clean_text(role, 100)


def parse_domain(value: str) -> str:
    raw = value.strip()
    try:
        # urlsplit only finds the host after "//"; bare "acme.com/about" is common in exports.
        host = (urlsplit(raw if "//" in raw else f"//{raw}").hostname or "").rstrip(".")
        host = host.removeprefix("www.")
        host = host if host.isascii() else host.encode("idna").decode("ascii")
    except (ValueError, UnicodeError):
        host = ""
    labels = host.split(".")
    if len(labels) < 2 or not all(re.fullmatch(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?", p) for p in labels):
        raise ValueProblem(f'"{raw}" is not a domain or website URL (expected e.g. acme.com)')
    return host


# At most two decimals: "12.500" is twelve thousand five hundred in half of Europe.
_AMOUNT = re.compile(r"-?(\d{1,3}(,\d{3})+|\d+)(\.\d{1,2})?")
_CURRENCY = re.compile(r"^[-\s]*(?:[$€£¥]|USD|EUR|GBP|CAD|AUD|CHF)\s*|\s*(?:[$€£¥]|USD|EUR|GBP|CAD|AUD|CHF)$")
_MAX_AMOUNT = Decimal("1e14")  # Numeric(16, 2)


def parse_amount(value: str) -> Decimal | None:
    text = value.strip()
    if not text:
        return None
    negative = text.startswith("-")
    number = _CURRENCY.sub("", text).strip()
    if _AMOUNT.fullmatch(number) is None:
        raise ValueProblem(
            f'"{text}" is not an amount (expected digits with up to two decimals after ".", '
            'optionally "," between thousands, e.g. 12500, 12,500.00 or $12,500)'
        )
    try:
        amount = Decimal(number.replace(",", "")).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    except InvalidOperation as exc:  # pragma: no cover - the regex admits only decimals
        raise ValueProblem(f'"{text}" is not an amount') from exc
    if abs(amount) >= _MAX_AMOUNT:
        raise ValueProblem(f'"{text}" is too large an amount')
    return -abs(amount) if negative else amount


_YEAR_FIRST = re.compile(r"(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})(?=$|[ T])")
_LOCAL_DATE = re.compile(r"\d{1,2}[/.-]\d{1,2}[/.-]\d{2,4}(\s.*)?")
_ISO_HINT = "expected YYYY-MM-DD"


def _datetime(value: str) -> datetime:
    text = value.strip()
    # Year first is unambiguous even with slashes or without zero padding (2024/3/5).
    padded = _YEAR_FIRST.sub(lambda m: f"{m[1]}-{int(m[2]):02d}-{int(m[3]):02d}", text, count=1)
    try:
        return datetime.fromisoformat(padded)
    except ValueError:
        pass
    if _LOCAL_DATE.fullmatch(text):
        raise ValueProblem(
            f'"{text}" is not an ISO 8601 date ({_ISO_HINT}): day and month order is ambiguous, '
            "export dates in ISO 8601 format"
        )
    raise ValueProblem(f'"{text}" is not an ISO 8601 date ({_ISO_HINT})')


def parse_date(value: str) -> date | None:
    text = value.strip()
    if not text:
        return None
    return _datetime(text).date()


def parse_datetime(value: str) -> datetime | None:
    """Naive values (HubSpot's "2024-03-05 14:22") are taken as UTC: exports carry no zone."""
    text = value.strip()
    if not text:
        return None
    moment = _datetime(text)
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def parse_bool(value: str) -> bool | None:
    text = value.strip().casefold()
    if not text:
        return None
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueProblem(f'"{value.strip()}" is not a yes/no value (expected true/false, 1/0 or yes/no)')


def parse_status(value: str) -> Status | None:
    text = value.strip()
    if not text:
        return None
    if (status := _STATUS.get(header_key(text))) is not None:
        return status
    raise ValueProblem(f'"{text}" is not a status (expected open, won or lost)')


def derive_status(status: Status | None, stage: str | None, won: bool | None, closed: bool | None) -> Status:
    """Explicit status, else Salesforce's Won/Closed flags, else the stage's name."""
    if status is not None:
        return status
    if won:
        return "won"
    from_stage = STAGE_STATUS.get(header_key(stage or ""))
    if closed:
        # Closed and not won is lost, unless only the stage can tell (no Won column).
        return "lost" if won is False else (from_stage or "lost")
    if closed is False:
        return "open"
    return from_stage or "open"
