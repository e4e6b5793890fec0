"""Parsing one raw item, whatever its kind: what the pipeline (and its parse workers) call.

Kept apart from the pipeline so that a parse worker process imports only the parsers.
"""

from __future__ import annotations

from connectors.base import RawItem
from connectors.ics_parse import CalendarError, parse_calendar_with_errors
from connectors.message import Meeting, ParsedMessage
from connectors.mime_parse import ParseError, parse_message

# What parsing made of an item: a message, the meetings of a calendar file (with the
# problems of the events it had to leave out), or why it could not be read.
Parsed = ParsedMessage | tuple[list[Meeting], list[str]] | str


def parse_item(item: RawItem) -> Parsed:
    if not item.data:
        return "empty or unreadable item"
    try:
        if item.kind == "ics":
            meetings, problems = parse_calendar_with_errors(item.data)
            if not meetings and problems:
                return "; ".join(problems)
            return meetings, problems
        return parse_message(item.data)
    except (ParseError, CalendarError) as exc:
        return str(exc)
