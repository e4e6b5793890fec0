"""Reading a CRM CSV export: stream the records, validate every row, keep the parsed rows.

Nothing here touches the database; :mod:`syncd.crm_write` stores what this returns.
"""

from __future__ import annotations

import codecs
import csv
import re
from collections.abc import Callable, Generator, Iterator
from contextlib import closing
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import TypeVar

from syncd.crm_columns import (
    FIELDS,
    Kind,
    Status,
    ValueProblem,
    clean_text,
    derive_status,
    parse_amount,
    parse_bool,
    parse_contact_ref,
    parse_date,
    parse_datetime,
    parse_domain,
    parse_email,
    parse_status,
    resolve_header,
    split_list,
)

T = TypeVar("T")


class CrmImportError(Exception):
    """An import refused; the message names the file and, when it can, the line and column."""

    def __init__(self, path: Path, problem: str, line: int | None = None, column: str | None = None):
        self.path, self.problem, self.line, self.column = path, problem, line, column
        where = str(path) + (f", line {line}" if line else "") + (f', column "{column}"' if column else "")
        super().__init__(f"{where}: {problem}")


# --- parsed rows -------------------------------------------------------------------------


@dataclass(slots=True)
class CompanyRow:
    name: str
    domains: list[str]
    industry: str | None


@dataclass(slots=True)
class ContactRow:
    email: str
    other_emails: list[str]
    first_name: str | None
    last_name: str | None
    company: str | None


@dataclass(frozen=True, slots=True)
class ContactRef:
    email: str
    role: str | None
    line: int  # where the reference is, to report an unknown contact
    column: str


@dataclass(slots=True)
class OpportunityRow:
    name: str
    company: str | None
    contacts: list[ContactRef]
    stage: str | None
    status: Status
    amount: Decimal | None
    close_date: date | None
    owner_email: str | None
    created_at: datetime | None
    product: str | None = None
    keywords: str | None = None  # ;-separated


Row = CompanyRow | ContactRow | OpportunityRow


def name_key(name: str) -> str:
    return name.casefold()


# --- reading -----------------------------------------------------------------------------

_BREAK = re.compile(r"\r\n|\r|\n")


def _encoding(path: Path) -> str:
    """UTF-8 (with or without BOM) if the whole file decodes as such, else Windows-1252."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    with path.open("rb") as f:
        try:
            while chunk := f.read(1 << 20):
                decoder.decode(chunk)
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return "cp1252"
    return "utf-8-sig"


def _records(path: Path) -> Generator[tuple[int, list[str]]]:
    """Non-blank records with the line each starts on, as an editor numbers lines."""
    with path.open(encoding=_encoding(path), newline="") as f:
        reader = csv.reader(f, strict=True)
        while True:
            start = reader.line_num + 1
            try:
                cells = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                raise CrmImportError(path, f"malformed CSV ({exc})", line=start) from None
            except UnicodeDecodeError:
                raise CrmImportError(path, "is neither UTF-8 nor Windows-1252 text", line=start) from None
            if any(c.strip() for c in cells):
                yield start, cells


class _Record:
    """One CSV record, read by canonical field name, raising errors that point at a cell."""

    def __init__(self, reader: _Reader, line: int, cells: list[str]):
        self.reader, self.line, self.cells = reader, line, cells

    def line_of(self, index: int) -> int:
        # A quoted cell may span lines: point at the line the cell starts on.
        return self.line + sum(len(_BREAK.findall(c)) for c in self.cells[:index])

    def column(self, index: int) -> str:
        header = self.reader.header
        return header[index] if index < len(header) else f"#{index + 1}"

    def error(self, index: int, problem: str) -> CrmImportError:
        return CrmImportError(self.reader.path, problem, line=self.line_of(index), column=self.column(index))

    def _cells(self, name: str) -> Iterator[tuple[int, str]]:
        for i in self.reader.columns.get(name, ()):
            if i < len(self.cells) and self.cells[i].strip():
                yield i, self.cells[i]

    def index(self, name: str) -> int:
        """The cell a field's value comes from (its first column when all are empty)."""
        return next((i for i, _ in self._cells(name)), self.reader.columns[name][0])

    def one(self, name: str, parse: Callable[[str], T | None]) -> T | None:
        for i, raw in self._cells(name):
            try:
                return parse(raw)
            except ValueProblem as exc:
                raise self.error(i, str(exc)) from None
        return None

    def text(self, name: str) -> str | None:
        limit = self.reader.limits[name]
        return self.one(name, lambda v: clean_text(v, limit))

    def required_text(self, name: str, what: str) -> str:
        value = self.text(name)
        if value is None:
            raise self.error(self.index(name), f"is empty: every {what} needs one")
        return value

    def items(self, name: str, parse: Callable[[str], T]) -> list[tuple[T, int]]:
        """Items of a ``;``-separated list column, each with the index of its cell."""
        found: list[tuple[T, int]] = []
        for i, raw in self._cells(name):
            for item in split_list(raw):
                try:
                    found.append((parse(item), i))
                except ValueProblem as exc:
                    raise self.error(i, str(exc)) from None
        return found


class _Reader:
    """Turns records into rows of one kind, refusing a key (name, email, domain) seen twice."""

    def __init__(self, path: Path, kind: Kind, header: list[str], columns: dict[str, list[int]]):
        self.path, self.kind, self.columns = path, kind, columns
        self.header = [h.removeprefix("\ufeff").strip() for h in header]
        self.limits = {f.name: f.max_length for f in FIELDS[kind]}
        self.seen: dict[object, int] = {}
        self._parsers: dict[Kind, Callable[[_Record], Row]] = {
            "companies": self._companies,
            "contacts": self._contacts,
            "opportunities": self._opportunities,
        }

    def _claim(self, rec: _Record, index: int, key: object, problem: str) -> None:
        if (first := self.seen.setdefault(key, rec.line)) != rec.line:
            raise rec.error(index, f"{problem} is already on line {first}")

    def row(self, line: int, cells: list[str]) -> Row:
        rec = _Record(self, line, cells)
        extra = next((i for i in range(len(self.header), len(cells)) if cells[i].strip()), None)
        if extra is not None:
            raise rec.error(extra, f"has {len(cells)} fields but the header has {len(self.header)}")
        return self._parsers[self.kind](rec)

    def _companies(self, rec: _Record) -> CompanyRow:
        name = rec.required_text("name", "company")
        self._claim(rec, rec.index("name"), ("company", name_key(name)), f'company "{name}"')
        domains: dict[str, None] = {}
        for domain, i in rec.items("domains", parse_domain):
            if domain not in domains:
                self._claim(rec, i, ("domain", domain), f'domain "{domain}"')
                domains[domain] = None
        return CompanyRow(name, list(domains), rec.text("industry"))

    def _contacts(self, rec: _Record) -> ContactRow:
        email = rec.one("email", parse_email)
        if email is None:
            raise rec.error(rec.index("email"), "is empty: every contact needs an email")
        emails = {email: rec.index("email")}
        for other, i in rec.items("other_emails", parse_email):
            emails.setdefault(other, i)
        for address, i in emails.items():
            self._claim(rec, i, address, f'email "{address}"')
        return ContactRow(
            email=email,
            other_emails=list(emails)[1:],
            first_name=rec.text("first_name"),
            last_name=rec.text("last_name"),
            company=rec.text("company"),
        )

    def _opportunities(self, rec: _Record) -> OpportunityRow:
        name = rec.required_text("name", "opportunity")
        company = rec.text("company")
        key = (name_key(name), name_key(company or ""))
        self._claim(rec, rec.index("name"), key, f'opportunity "{name}" of "{company or "no company"}"')
        refs = [
            ContactRef(email, role, rec.line_of(i), rec.column(i))
            for (email, role), i in rec.items("contacts", parse_contact_ref)
        ]
        stage = rec.text("stage")
        owner = rec.one("owner", parse_email) or rec.one("owner_name", _email_or_none)
        return OpportunityRow(
            name=name,
            company=company,
            contacts=refs,
            stage=stage,
            status=derive_status(
                rec.one("status", parse_status),
                stage,
                rec.one("won", parse_bool),
                rec.one("closed", parse_bool),
            ),
            amount=rec.one("amount", parse_amount),
            close_date=rec.one("close_date", parse_date),
            owner_email=owner,
            created_at=rec.one("created_at", parse_datetime),
            product=rec.text("product"),
            keywords=rec.text("keywords"),
        )


def _email_or_none(value: str) -> str | None:
    """Exports give the owner's name ("Jane Smith"); keep it only when it is an email."""
    try:
        return parse_contact_ref(value)[0]
    except ValueProblem:
        return None


@dataclass(slots=True)
class ParsedFile:
    kind: Kind
    present: frozenset[str]  # canonical fields that have a column in the file
    rows: list[Row]


def read_file(path: Path) -> ParsedFile:
    """Parse and validate every row; raises :class:`CrmImportError` at the first bad one."""
    with closing(_records(path)) as records:
        return _parse(path, records)


def _parse(path: Path, records: Iterator[tuple[int, list[str]]]) -> ParsedFile:
    first = next(records, None)
    if first is None:
        raise CrmImportError(path, "is empty (expected a header row, then one row per record)")
    line, header = first
    resolved = resolve_header(header)
    if resolved is None:
        raise CrmImportError(
            path,
            "the header names no known column (expected e.g. name,domains,industry for companies; "
            "email,first_name,last_name,company,other_emails for contacts; "
            "name,company,contacts,stage,status,amount,close_date,owner,created_at for opportunities)",
            line=line,
        )
    kind, columns = resolved
    for f in FIELDS[kind]:
        if f.required and f.name not in columns:
            accepted = ", ".join(f'"{a}"' for a in f.aliases)
            raise CrmImportError(
                path, f'missing required column "{f.name}" for {kind} (accepted names: {accepted})', line=line
            )
    reader = _Reader(path, kind, header, columns)
    rows = [reader.row(n, cells) for n, cells in records]
    return ParsedFile(kind, frozenset(columns), rows)
