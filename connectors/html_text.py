"""HTML mail bodies to plain text, for matching and question extraction.

Uses the stdlib tokenizer (:class:`html.parser.HTMLParser`) rather than regular
expressions: regexes over HTML either miss ``<script>`` bodies and comments or go
quadratic on unclosed constructs. The output keeps paragraph structure (block
elements become line breaks, list items get ``- ``) because the reply and signature
strippers downstream work line by line.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

# Content that is never meant to be read: code, styling, metadata, fallbacks.
_SKIP = frozenset({"script", "style", "title", "noscript", "template", "xml"})
# Elements separated from their neighbours by a blank line.
_PARAGRAPH = frozenset(
    {
        "p",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "blockquote",
        "pre",
        "table",
        "ul",
        "ol",
        "dl",
        "hr",
        "address",
        "figure",
        "form",
        "fieldset",
    }
)
# Elements that start on a new line.
_LINE = frozenset(
    {
        "div",
        "tr",
        "li",
        "dt",
        "dd",
        "section",
        "article",
        "header",
        "footer",
        "nav",
        "aside",
        "main",
        "center",
        "caption",
        "figcaption",
        "legend",
        "details",
        "summary",
        "option",
        "body",
    }
)
_CELLS = frozenset({"td", "th"})
_WS = re.compile(r"\s+")
_SECTION_CLOSE = re.compile(r"\]\s*>")
# How far a <![...]> section may reach for its "]>" before it counts as bogus text.
_SECTION_WINDOW = 4096
# Invisible characters that marketing mail pads "preheaders" with.
_INVISIBLE = re.compile("[\u200b\u00ad\u034f\ufeff]")


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self._skip = 0
        self._in_head = False
        self._pre = 0
        self._newlines = 0  # line breaks owed before the next text
        self._space = False  # a collapsed space owed before the next text
        self._line_start = True

    @property
    def _at_line_start(self) -> bool:
        return self._line_start or self._newlines > 0

    def _break(self, count: int) -> None:
        self._newlines = max(self._newlines, count)
        self._space = False

    def _flush_breaks(self) -> None:
        if self._newlines:
            if self.out:  # never start the text with blank lines
                self.out.append("\n" * self._newlines)
                self._line_start = True
            self._newlines = 0

    def _emit(self, data: str) -> None:
        if self._skip or self._in_head or not data:
            return
        if self._pre:
            self._flush_breaks()
            self.out.append(data)
            self._line_start = data.endswith("\n")
            self._space = False
            return
        text = _WS.sub(" ", data)
        if text == " ":
            self._space = not self._at_line_start
            return
        self._flush_breaks()
        if text[0] == " ":
            self._space = not self._at_line_start
            text = text[1:]
        if self._space:
            self.out.append(" ")
        self._space = text.endswith(" ")
        self.out.append(text.rstrip(" "))
        self._line_start = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP:
            self._skip += 1
        elif tag == "head":
            self._in_head = True
        elif tag == "body":
            # Broken mail often never closes <head>; <body> ends it (HTML5 §13.2.6.4.4).
            self._in_head = False
            self._break(1)
        elif tag == "br":
            self._newlines = min(self._newlines + 1, 2)
            self._space = False
            if self._newlines == 1 and self._line_start and self.out:
                # A <br> on an empty line is a blank line, not a no-op.
                self._newlines = 2
        elif tag in _PARAGRAPH:
            self._break(2)
            if tag == "pre":
                self._pre += 1
        elif tag in _LINE:
            self._break(1)
            if tag == "li":
                self._emit("- ")
        elif tag in _CELLS:
            self._space = not self._at_line_start

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP:
            self._skip = max(self._skip - 1, 0)
        elif tag == "head":
            self._in_head = False
        elif tag in _PARAGRAPH:
            self._break(2)
            if tag == "pre":
                self._pre = max(self._pre - 1, 0)
        elif tag in _LINE:
            self._break(1)
        elif tag in _CELLS:
            self._space = not self._at_line_start

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        # <script/> or <div/> must not open a region that is never closed.
        self.handle_starttag(tag, attrs)
        if tag != "br":
            self.handle_endtag(tag)

    def handle_data(self, data: str) -> None:
        self._emit(data)

    def parse_marked_section(self, i: int, report: int = 1) -> int:
        """Outlook's ``<![if !supportLists]>`` and friends, without the base class's failures.

        The base class raises AssertionError on unknown keywords and searches the
        whole rest of the document for ``]>``; a bounded search keeps it linear.
        """
        match = _SECTION_CLOSE.search(self.rawdata, i + 3, i + 3 + _SECTION_WINDOW)
        if match is not None:
            return match.end()
        end = self.rawdata.find(">", i + 3)
        return -1 if end < 0 else end + 1


def _defuse(html: str) -> str:
    """Remove the inputs on which CPython's HTMLParser goes quadratic.

    For every ``<`` that opens a construct whose terminator never comes, the parser
    rescans the rest of the document (fixed upstream only in later releases,
    gh-135462). Two cases cover it: text after the last ``>`` cannot contain a tag, so
    its ``<`` are escaped; and a comment opened after the last ``-->`` runs to the end
    of the document as in browsers (HTML5 §13.2.5.43), so it is cut off.
    """
    last_gt = html.rfind(">")
    if "<" in html[last_gt + 1 :]:
        html = html[: last_gt + 1] + html[last_gt + 1 :].replace("<", "&lt;")
    unclosed = html.find("<!--", html.rfind("-->") + 1)
    if unclosed >= 0:
        html = html[:unclosed]
    return html


def html_to_text(html: str) -> str:
    """Readable plain text of an HTML document, in time linear in its size.

    Drops script, style and head; block elements and ``<br>`` become line breaks,
    ``<li>`` gets ``- ``; runs of white space collapse to one space (except in
    ``<pre>``); entities are unescaped and link text is kept (URLs are not).
    """
    parser = _TextExtractor()
    try:
        parser.feed(_defuse(html))
        parser.close()
    except AssertionError:
        # Old HTMLParser versions assert on some malformed declarations; keep what was read.
        pass
    text = "".join(parser.out)
    text = _INVISIBLE.sub("", text).replace("\xa0", " ")
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    # Trailing blanks carry nothing and make equal paragraphs compare unequal. (Line by
    # line: a regex for "[ \t]+\n" backtracks quadratically over a long run of blanks.)
    text = "\n".join(line.rstrip(" \t") for line in text.split("\n"))
    text = re.sub(r"\n{3,}", "\n\n", text)
    return text.strip()
