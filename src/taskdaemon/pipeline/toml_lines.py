"""The lines of a TOML pipeline file's field paths, which ``tomllib`` does not give.

``tomllib`` reads a file into plain values with no position, so an issue of a TOML file had no
line. :func:`toml_lines` reads the text again, line by line, only when the file has an issue
(``config_text.Lines``: the lines are asked for the issues' paths alone), and knows the field
paths the reader words issues with: a table header (``[retry]``), an array of tables'
headers numbered as items (the second ``[[stages]]`` is ``stages[1]``) and each ``key =``
(dotted keys too) under the header it follows; the file's root (``""``) is its first line
that is not blank or a comment, as a YAML file's is its first key's. A value written inline
is walked by ``toml_values`` when a wanted path is inside it: an array's item is on the line
it begins on, an inline table's key on its own, as YAML places a flow sequence's items, so
that an item on the third line of ``ignore_warnings = [`` is reported there, not at its key.
A line inside a multi-line string is given by :func:`toml_value_lines` (a CEL expression's
error on its second line is on the file's line of it).

The text is read by ``toml_scan``, which skips strings as TOML reads them, so a ``[``, ``=``
or ``#`` inside one is text, and a line inside a multi-line string or a multi-line array is
never read as a header or a key. One pass, linear in the text: a text of a million lines of
mistakes is read once.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

from taskdaemon.pipeline.config_issues import ancestors
from taskdaemon.pipeline.toml_scan import key_parts, toml_scan
from taskdaemon.pipeline.toml_values import string_place, value_lines

__all__ = ["toml_lines", "toml_places", "toml_value_lines"]


def toml_lines(text: str, wanted: Collection[str]) -> dict[str, int]:
    """The 1-based line of each of the ``wanted`` field paths that ``text`` (a TOML file that
    ``tomllib`` read) writes as a header, a key, or an item or key inside a value written
    inline (see the module docstring)."""
    return toml_places(text, wanted)[0]


def toml_value_lines(
    text: str,
    wanted: Collection[tuple[str, int, int]],
    strings: Mapping[str, tuple[int, int]] | None = None,
) -> dict[tuple[str, int, int], tuple[int, int]]:
    """The file's line and column of each wanted ``(path, line, column)``: a place (from 1) in
    the string value at ``path`` (``toml_values.string_place``); none for a path that is no
    string.
    ``strings``, from :func:`toml_places` asked for those paths, spares a walk of the text."""
    paths = {path for path, _, _ in wanted}
    if strings is None or not paths <= strings.keys():
        strings = toml_places(text, paths)[1]
    return {
        (path, line, column): string_place(text, *strings[path], line, column)
        for path, line, column in wanted
        if path in strings
    }


def toml_places(
    text: str, wanted: Collection[str]
) -> tuple[dict[str, int], dict[str, tuple[int, int]]]:
    """The lines of the ``wanted`` paths, and where each wanted string value begins (its
    index and line): one walk of the text, into the values that hold a wanted path."""
    found: dict[str, int] = {}
    strings: dict[str, tuple[int, int]] = {}
    holders = {above for path in wanted for above in ancestors(path)}  # values to walk into
    walked = 0  # where the last value walked ends: a key before it is inside it
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
            path = f"{table}.{path}" if table else path
            for prefix in _prefixes(path):
                if prefix in wanted:
                    found.setdefault(prefix, number)
            at = start + read[1] + 1
            if at >= walked and (path in holders or path in wanted):
                inside, walked = value_lines(text, at, number, path, wanted=wanted, found=found)
                strings.update(inside)
    return found, strings


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
