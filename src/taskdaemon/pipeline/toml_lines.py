"""The lines of a TOML pipeline file's field paths, which ``tomllib`` does not give.

``tomllib`` reads a file into plain values with no position, so an issue of a TOML file had no
line. :func:`toml_lines` reads the text again, line by line, only when the file has an issue
(``config_text.Lines``: the lines are asked for the issues' paths alone), and knows the field
paths the reader words issues with: a table header (``[retry]``), an array of tables'
headers numbered as items (the second ``[[stages]]`` is ``stages[1]``) and each ``key =``
(dotted keys too) under the header it follows; the file's root (``""``) is its first line
that is not blank or a comment, as a YAML file's is its first key's. A value written inline
(``triggers = [{manual = {}}]``, or one spread over lines in brackets) is the line of its key:
a path inside it takes that line, its nearest ancestor's (``config_issues.FileIssues.placed``).

The text is read by ``toml_scan``, which skips strings as TOML reads them, so a ``[``, ``=``
or ``#`` inside one is text, and a line inside a multi-line string or a multi-line array is
never read as a header or a key. One pass, linear in the text: a text of a million lines of
mistakes is read once.
"""

from __future__ import annotations

from collections.abc import Collection

from taskdaemon.pipeline.toml_scan import key_parts, toml_scan

__all__ = ["toml_lines"]


def toml_lines(text: str, wanted: Collection[str]) -> dict[str, int]:
    """The 1-based line of each of the ``wanted`` field paths that ``text`` (a TOML file that
    ``tomllib`` read) writes as a header or a key; a path of an inline value is not among them
    (see the module docstring)."""
    found: dict[str, int] = {}
    items: dict[str, int] = {}  # the number of items of each array of tables so far
    table = ""  # the path of the table the keys below belong to
    for number, start, end, top in toml_scan(text):
        if not top:
            continue
        line = text[start:end]
        stripped = line.lstrip()
        if "" in wanted and stripped[:1] not in ("", "#"):  # the root's line: its first
            found.setdefault("", number)
        if stripped.startswith("["):
            table = _header(stripped, items, found, number, wanted)
            continue
        read = key_parts(line, 0)
        if read is not None:
            path = ".".join(read[0])
            for prefix in _prefixes(f"{table}.{path}" if table else path):
                if prefix in wanted:
                    found.setdefault(prefix, number)
    return found


def _header(
    line: str, items: dict[str, int], found: dict[str, int], number: int, wanted: Collection[str]
) -> str:
    """The table path a header line (``[a.b]`` or ``[[a]]``) opens, counting an array of
    tables' items; its line recorded if wanted."""
    array = line.startswith("[[")
    read = key_parts(line, 2 if array else 1)
    if read is None:
        return ""
    parts = read[0]
    path = _resolved(parts[:-1], items)
    path = f"{path}.{parts[-1]}" if path else parts[-1]
    if array:
        if path in wanted:  # the array's line is its first item's
            found.setdefault(path, number)
        index = items.get(path, 0)
        items[path] = index + 1
        path = f"{path}[{index}]"
    for prefix in _prefixes(path):  # ``[loops.plan]`` is the line of ``loops`` too, if first
        if prefix in wanted:
            found.setdefault(prefix, number)
    return path


def _resolved(parts: list[str], items: dict[str, int]) -> str:
    """``a.b`` as the path of the tables it names: an array of tables' part is its last item."""
    path = ""
    for part in parts:
        path = f"{path}.{part}" if path else part
        if path in items:
            path = f"{path}[{items[path] - 1}]"
    return path


def _prefixes(path: str) -> list[str]:
    """``a.b.c``, ``a.b``: a dotted key's line is each table's it makes."""
    cuts = [index for index, char in enumerate(path) if char == "."]
    return [path] + [path[:cut] for cut in reversed(cuts)]
