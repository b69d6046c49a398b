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

It also keeps docs/mutation.md's table "Where each module stands" (the current state, one row
per module) in step with its history, the "Scores" table each session adds its rows to. Before,
the current state was one paragraph each session added a sentence to, and a reader had to read
the whole history to learn a module's last score. It reports, one line each:

* a module of the history with no row in the current state (a score recorded, the state not
  updated), or one listed twice there;
* a row naming a file that is not under ``src/taskdaemon/`` (a module moved or renamed);
* a row whose score holds none of the figures in bold (``**93.1%**``) of the module's last
  row in the history (a module scored again, its row in the current state left as it was).
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
MUTATION_DOC = ROOT / "docs" / "mutation.md"
_MODULE = re.compile(r"`([^`]+\.py)`")
_BOLD = re.compile(r"\*\*(\d+(?:\.\d+)?%)\*\*")
_FIGURE = re.compile(r"\d+(?:\.\d+)?%")


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


def _rows(text: str, heading: str) -> Iterator[list[str]]:
    """The cells of each row of the first table under the ``## heading`` of ``text``."""
    section = text.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]
    for line in section.split("\n"):
        if line.startswith("| `"):
            yield [cell.strip() for cell in _CELL_EDGE.split(line)[1:-1]]


def mutation_table_problems(text: str, sources: Path) -> Iterator[str]:
    """One line for each row of the current state (``text``'s "Where each module stands")
    out of step with the history ("Scores") or with the files under ``sources``."""
    last: dict[str, list[str]] = {}  # each module's bold figures in its last history row
    for cells in _rows(text, "Scores"):
        found = _MODULE.match(cells[0])
        if found:
            last[found.group(1)] = _BOLD.findall(cells[3])
    stands: dict[str, str] = {}
    for cells in _rows(text, "Where each module stands"):
        found = _MODULE.match(cells[0])
        if found is None:
            yield f"a row without a module: {cells[0]}"
            continue
        module = found.group(1)
        if module in stands:
            yield f"{module}: two rows"
        stands[module] = cells[1]
        if not (sources / module).is_file():
            yield f"{module}: no such file under {sources.name}/"
        figures = last.get(module)
        if figures and not set(figures) & set(_FIGURE.findall(cells[1])):
            yield f"{module}: {cells[1]!r} holds none of its last score's {figures}"
    for module in sorted(last.keys() - stands.keys()):
        yield f"{module}: scored in the history, no row in the current state"


def test_the_current_state_follows_the_history() -> None:
    """Every module scored has one row, naming a file that exists, with its last score."""
    text = MUTATION_DOC.read_text(encoding="utf-8")
    assert len(list(_rows(text, "Where each module stands"))) > 100
    assert [] == list(mutation_table_problems(text, ROOT / "src" / "taskdaemon"))


def test_the_checker_finds_a_row_out_of_step(tmp_path: Path) -> None:
    """A module scored again with its old score left standing, one scored with no row, one
    listed twice, and one whose file is gone are each said; a row in step is not."""
    for name in ("a.py", "b.py", "c.py"):
        (tmp_path / name).write_text("")
    text = "\n".join(
        [
            "# Mutation testing",
            "## Where each module stands",
            "| module | last score | session |",
            "|---|---|---|",
            "| `a.py` | 90.0% | s1 |",
            "| `b.py` | 80.0% whole; 99.0% in part | s2 |",
            "| `b.py` | 80.0% | s2 |",
            "| `gone.py` | 50.0% | s1 |",
            "## Scores",
            "| module | mutants | before | after | command |",
            "|---|---|---|---|---|",
            "| `a.py` | 10 | 10.0% | **90.0%** (9) | x |",
            "| `a.py` (again) | 10 | 90.0% | **95.0%** (9) | x |",
            "| `b.py`, a part | 5 | 0.0% | **99.0%** | x |",
            "| `c.py` | 5 | 0.0% | **60.0%** | x |",
            "## Surviving mutants",
        ]
    )
    assert [
        "a.py: '90.0%' holds none of its last score's ['95.0%']",
        "b.py: two rows",
        "b.py: '80.0%' holds none of its last score's ['99.0%']",
        f"gone.py: no such file under {tmp_path.name}/",
        "c.py: scored in the history, no row in the current state",
    ] == list(mutation_table_problems(text, tmp_path))
