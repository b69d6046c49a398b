"""The lines of a TOML pipeline file's field paths, which ``tomllib`` does not give.

``tomllib`` reads a file into plain values with no position, so an issue of a TOML file had no
line. :func:`toml_lines` reads the text again, line by line, only when the file has an issue
(``config_text.Lines``: the lines are asked for the issues' paths alone), and knows the field
paths the reader words issues with: a table header (``[retry]``), an array of tables'
headers numbered as items (the second ``[[stages]]`` is ``stages[1]``) and each ``key =``
(dotted keys too) under the header it follows. A value written inline (``triggers =
[{manual = {}}]``, or one spread over lines in brackets) is the line of its key: a path inside
it takes that line, its nearest ancestor's (``config_issues.FileIssues.placed``).

Strings are skipped as TOML reads them (basic, literal and both multi-line forms), so a ``[``,
``=`` or ``#`` inside one is text, and a line inside a multi-line string or a multi-line array
is never read as a header or a key. One pass, linear in the text: a text of a million lines
of mistakes is read once.
"""

from __future__ import annotations

import re
from collections.abc import Collection

__all__ = ["toml_lines"]

# One part of a key: bare, or quoted ("..." with escapes, '...' raw), with the blanks around it.
_KEY_PART = re.compile(r"[ \t]*(?:([A-Za-z0-9_-]+)|\"((?:[^\"\\\n]|\\.)*)\"|'([^'\n]*)')[ \t]*")
_DELIMITERS = ('"""', "'''", '"', "'")


def toml_lines(text: str, wanted: Collection[str]) -> dict[str, int]:
    """The 1-based line of each of the ``wanted`` field paths that ``text`` (a TOML file that
    ``tomllib`` read) writes as a header or a key; a path of an inline value is not among them
    (see the module docstring)."""
    found: dict[str, int] = {}
    items: dict[str, int] = {}  # the number of items of each array of tables so far
    table = ""  # the path of the table the keys below belong to
    depth = 0  # open brackets of a value spread over lines
    closing: str | None = None  # the delimiter that ends the multi-line string we are in
    for number, line in enumerate(text.split("\n"), 1):  # tomllib's lines: at "\n" only
        start = 0
        if closing is not None:
            start = _string_end(line, 0, closing)
            if start < 0:
                continue
            closing = None
        elif depth == 0:
            stripped = line.lstrip()
            if stripped.startswith("["):
                table = _header(stripped, items, found, number, wanted)
                continue
            key = _key(line, table)
            if key is not None:
                path, start = key
                for prefix in _prefixes(path):
                    if prefix in wanted:
                        found.setdefault(prefix, number)
        depth, closing = _scan(line, start, depth)
    return found


def _header(
    line: str, items: dict[str, int], found: dict[str, int], number: int, wanted: Collection[str]
) -> str:
    """The table path a header line (``[a.b]`` or ``[[a]]``) opens, counting an array of
    tables' items; its line recorded if wanted."""
    array = line.startswith("[[")
    read = _parts(line, 2 if array else 1)
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


def _key(line: str, table: str) -> tuple[str, int] | None:
    """The path of a ``key = value`` line under ``table``, and where its value begins."""
    read = _parts(line, 0)
    if read is None:
        return None
    path = ".".join(read[0])
    return (f"{table}.{path}" if table else path), read[1] + 1


def _parts(line: str, at: int) -> tuple[list[str], int] | None:
    """The dotted key's parts from ``at`` up to ``=`` (or ``]``, a header), and where that
    ``=`` or ``]`` is; else None."""
    parts = []
    while True:
        part = _KEY_PART.match(line, at)
        if part is None:
            return None
        parts.append(next(group for group in part.groups() if group is not None))
        at = part.end()
        if line.startswith(".", at):
            at += 1
            continue
        return (parts, at) if line.startswith(("=", "]"), at) else None


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


def _scan(line: str, at: int, depth: int) -> tuple[int, str | None]:
    """The bracket depth after ``line`` from ``at``, and the multi-line string's delimiter if one
    is left open: strings are skipped, a ``#`` outside them ends the line."""
    length = len(line)
    while at < length:
        char = line[at]
        if char == "#":
            break
        if char in "[{":
            depth += 1
        elif char in "]}":
            depth = max(depth - 1, 0)
        elif char in "\"'":
            delimiter = next(d for d in _DELIMITERS if line.startswith(d, at))
            end = _string_end(line, at + len(delimiter), delimiter)
            if end < 0:
                return depth, (delimiter if len(delimiter) == 3 else None)
            at = end
            continue
        at += 1
    return depth, None


def _string_end(line: str, at: int, delimiter: str) -> int:
    """Where the string opened before ``at`` ends on ``line`` (past its delimiter), or -1."""
    while True:
        end = line.find(delimiter, at)
        if end < 0:
            return -1
        if delimiter.startswith('"') and _escaped(line, end):
            at = end + 1
            continue
        return end + len(delimiter)


def _escaped(line: str, at: int) -> bool:
    """True if the character at ``at`` follows an odd number of backslashes."""
    count = 0
    while at - count - 1 >= 0 and line[at - count - 1] == "\\":
        count += 1
    return count % 2 == 1
