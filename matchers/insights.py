"""The plug point for insight extraction (customer questions and objections).

The pipeline calls an :class:`Extractor` on every newly logged email; the real extractor
(spaCy-based) plugs in here. Until then :class:`NoExtractor` extracts nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from connectors.message import ParsedMessage


@dataclass(frozen=True)
class InsightDraft:
    kind: str  # question, objection
    category: str | None
    text: str
    position: int
    author_email: str | None


class Extractor(Protocol):
    def extract(self, msg: ParsedMessage, from_customer: bool) -> list[InsightDraft]: ...


class NoExtractor:
    def extract(self, msg: ParsedMessage, from_customer: bool) -> list[InsightDraft]:
        return []
