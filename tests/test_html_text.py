"""html_to_text: the text of HTML mail bodies, on broken documents, in linear time."""

from __future__ import annotations

import time

import pytest

from connectors.html_text import html_to_text


def test_html_to_text_structure() -> None:
    html = (
        "<html><head><title>Newsletter</title><script>var a = '<p>no</p>';</script></head><body>"
        "<h1>Offer</h1><p>Dear&nbsp;customer &amp; friend,<br>line two</p>"
        "<ul><li>one</li><li>two <a href='https://x.example'>link text</a></li></ul>"
        "<table><tr><td>a</td><td>b</td></tr><tr><td>c</td></tr></table>"
        "<div>x</div><div><br></div><div>y</div><pre>  keep\n    indent</pre>"
        "<!--[if mso]>hidden<![endif]--><![if !supportLists]>-<![endif]> z<![bogus]>"
        "</body></html>"
    )
    assert html_to_text(html) == (
        "Offer\n\nDear customer & friend,\nline two\n\n- one\n- two link text\n\n"
        "a b\nc\n\nx\n\ny\n\n  keep\n    indent\n\n- z"
    )


def test_html_to_text_survives_broken_documents() -> None:
    assert html_to_text("<head><meta charset=utf-8><body>never closed head") == "never closed head"
    assert html_to_text("before <!-- never closed comment <p>after") == "before"
    assert html_to_text("a < b and c > d") == "a < b and c > d"
    assert html_to_text("x <b") == "x <b"
    assert html_to_text("") == ""


@pytest.mark.parametrize("unit", ["<!--", "</", "<!", "<?", "<![", "<a x='", "<", "<b>", "&", "<p>a</p>"])
def test_html_to_text_is_linear(unit: str) -> None:
    small, big = unit * (50_000 // len(unit)), unit * (400_000 // len(unit))
    start = time.perf_counter()
    html_to_text(small)
    middle = time.perf_counter()
    html_to_text(big)
    end = time.perf_counter()
    # 8x the input: linear is ~8x the time, quadratic ~64x; the floor absorbs timer noise.
    assert end - middle < 20 * max(middle - start, 0.01), unit
