"""``report``'s files of a run read from a span file someone else wrote, whose names hold markup.

A span source is anyone's text (``reliability_terminal_escapes_test``): a pipeline or stage name
there may hold a control character, HTML, or Markdown's links and table bars. ``report -f
html`` and ``-f markdown`` are run on such a file in a real subprocess, and each file is read as
its reader would read it.
"""

from __future__ import annotations

import html
import re
from pathlib import Path

import pytest
from markdown_it import MarkdownIt

from cli_support import taskdaemon
from reliability_support import renamed_span_file

pytestmark = pytest.mark.slow


def _report(home: Path, source: str, form: str) -> str:
    """``report -f FORM`` of the source's runs since 1900, written with ``-o``, as text."""
    out = home / f"report.{form}"
    done = taskdaemon(
        home, "report", "-f", form, "--since", "1900-01-01", "--source", source, "-o", str(out)
    )
    assert 0 == done.returncode, done.stderr
    return out.read_text(encoding="utf-8")


def test_a_pipeline_named_with_a_control_character_keeps_its_html_tables(
    home: Path, tmp_path: Path
) -> None:
    """The HTML page of a pipeline whose name ends in ESC holds its stage table and its
    critical path's, the names escaped. Before, the page looked its tables up by the name its
    Markdown heading held, escaped, found none, and left both out."""
    source, _ = renamed_span_file(tmp_path, "\x1b]0;t\x07")
    page = _report(home, source, "html")
    assert (2, 2, False) == (
        page.count("<table>"),
        page.count("<td>first\\x1b]0;t\\x07</td>"),
        "\x1b" in page,
    ), page


#: HTML, a link, an entity naming U+202E, and a backslash before a table bar.
MARKUP = "<img src=x onerror=alert(1)>[fix](https://evil.example)&#x202e;\\|"


def test_names_holding_markup_are_text_in_the_markdown_and_the_html_report(
    home: Path, tmp_path: Path
) -> None:
    """The Markdown report, rendered by a CommonMark renderer with tables (markdown-it, which
    passes raw HTML as CommonMark says), shows each name as written, in its own cell (rows of
    twelve and of three: the stages' table, the critical path's): no image, no link, no
    U+202E. Before, the name was raw HTML, a link and an
    entity there, and its backslash escaped the bar that followed it, which then split the
    cell. The HTML report shows the same names as written."""
    source, _ = renamed_span_file(tmp_path, MARKUP)
    rendered = MarkdownIt("commonmark").enable("table").render(_report(home, source, "markdown"))
    shown = html.escape(MARKUP, quote=False)
    rows = [row for row in rendered.split("<tr>") if row.startswith("\n<td>first")]
    assert ([], [], False, [12, 3]) == (
        re.findall(r"<img|<a ", rendered),
        [row for row in rows if f"<td>first{shown}</td>" not in row],
        "\u202e" in rendered,
        [row.count("<td>") for row in rows],
    ), rendered
    page = _report(home, source, "html")
    assert page.count(f"<td>first{shown}</td>") == 2, page
