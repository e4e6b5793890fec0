"""Import companies, contacts or opportunities from a CSV file: ours, HubSpot's or Salesforce's.

A file is handled in two phases. Every row is parsed and validated first, streaming the file
and keeping only the parsed rows (:mod:`syncd.crm_csv`); then everything is written in one
transaction (:mod:`syncd.crm_write`), so an error on the last row leaves the store as it was.
Re-importing a file changes nothing, and an edited row updates its record: companies are
matched by name, else by domain; contacts by any of their emails; opportunities by name and
company.

A column missing from the file leaves that attribute of existing records alone; a column
present with an empty cell clears it: the export is the source of truth for what it holds.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from store.db import transaction
from syncd.crm_columns import Kind
from syncd.crm_csv import CrmImportError, read_file
from syncd.crm_write import ImportReport, write_companies, write_contacts, write_opportunities

__all__ = ["CrmImportError", "ImportReport", "import_csv"]

_WRITERS: dict[Kind, Callable[[Session, Any, frozenset[str], ImportReport], None]] = {
    "companies": write_companies,
    "contacts": write_contacts,
    "opportunities": write_opportunities,
}


def import_csv(factory: sessionmaker[Session], path: Path) -> ImportReport:
    """Import one CSV file in one transaction.

    Raises :class:`CrmImportError` (naming the file, line and column) and writes nothing if
    any row is invalid.
    """
    path = Path(path)
    parsed = read_file(path)
    report = ImportReport(kind=parsed.kind, path=path, rows=len(parsed.rows))
    with transaction(factory) as session:
        _WRITERS[parsed.kind](session, parsed.rows, parsed.present, report)
    return report
