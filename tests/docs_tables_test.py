"""Every Markdown table of the repository renders as the table its source reads as.

GitHub's Markdown (GFM) is strict about tables, and a table that breaks shows no error: its
rows turn into a paragraph of pipes. The checker reads every ``*.md`` file git knows, outside
fenced blocks, and reports, one line each:

* a row (a line that starts and ends with ``|``, indented by less than the four spaces of a
  code block) after a line that is no row, not followed by a
  delimiter row (``|---|---|``): a blank line inside a table ends it there, and the rows after
  it are text (docs/validation.md's ``unused-ignore`` row was);
* a row whose cell count is not its header's: GFM splits cells at every ``|`` not escaped as
  ``\\|``, inside a code span too, so ``(X|)`` in backticks is two cells, and a row with more
  cells than its header loses the last ones (benchmarks/README.md lost a row's figure so).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from docs_support import repository_files

ROOT = Path(__file__).resolve().parent.parent

_DELIMITER = re.compile(r"^\|?\s*:?-+:?\s*(?:\|\s*:?-+:?\s*)*\|?\s*$")
_CELL_EDGE = re.compile(r"(?<!\\)\|")
_FENCE = re.compile(r"^\s*(```|~~~)")


def _is_row(line: str) -> bool:
    # Four spaces of indentation make an indented code block (old README rows quoted as they
    # were): not a table. A table in a list item is indented by two.
    stripped = line.strip()
    return (
        not line.startswith("    ")
        and len(stripped) > 1
        and stripped.startswith("|")
        and stripped.endswith("|")
    )


def _cells(row: str) -> int:
    return len(_CELL_EDGE.findall(row.strip())) - 1


def table_problems(name: str, text: str) -> Iterator[str]:
    """One line for each broken table row of the Markdown ``text`` of file ``name``."""
    lines = text.split("\n")
    fence: str | None = None
    header = 0
    for number, line in enumerate(lines, start=1):
        opening = _FENCE.match(line)
        if opening and (fence is None or opening.group(1) == fence):
            fence = None if fence else opening.group(1)
            header = 0
            continue
        if fence is not None or not _is_row(line):
            header = 0
            continue
        if not header:
            following = lines[number] if number < len(lines) else ""
            if not _DELIMITER.match(following.strip()):
                yield f"{name}:{number}: a table row with no header above it: {line[:60]}"
                continue
            header = _cells(line)
        elif not _DELIMITER.match(line.strip()) and _cells(line) != header:
            yield f"{name}:{number}: {_cells(line)} cells in a table of {header}: {line[:60]}"


def test_every_table_renders_whole() -> None:
    """No table of the repository's Markdown is cut by a blank line or splits a cell."""
    found = [
        problem
        for name in repository_files(ROOT, "*.md")
        for problem in table_problems(name, (ROOT / name).read_text(encoding="utf-8"))
    ]
    assert [] == found


def test_checker_tells_broken_tables_from_whole_ones() -> None:
    """A blank line inside a table, and a pipe in a code span, are reported; escaped pipes, a
    table in a fenced block and prose that starts with a pipe are not."""
    text = "\n".join(
        [
            "| a | b |",
            "|---|---|",
            "| `x\\|y` | 1 |",
            "| `(X|)` | 2 |",
            "",
            "| c | 3 |",
            "",
            "```",
            "| not | a | table |",
            "```",
            "| tar -x -C BASE`): prose",
            "",
            "    | an old row | quoted as code |",
            "  | a | b |",
            "  |---|---|",
            "  | in a list item | 1 |",
        ]
    )
    assert [
        "f.md:4: 3 cells in a table of 2: | `(X|)` | 2 |",
        "f.md:6: a table row with no header above it: | c | 3 |",
    ] == list(table_problems("f.md", text))
