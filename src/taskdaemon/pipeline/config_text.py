"""A pipeline file's text to plain values, the lines of their field paths, and the issues of
reading it (YAML through ``yamlsafe`` and ``yaml_values``, TOML through ``tomllib``, JSON
through ``json``).

The lines are given as a callable (:data:`Lines`) of the paths whose lines are wanted, since
they are only read for the paths of issues, and most files have none. A file in the common
part of YAML (one-line values in block mappings and sequences) is read by
``yaml_quick.quick_tree`` without composing it at all. A file with an alias (of a collection,
or a ``<<`` merge key) is read from the parser's events by ``yaml_graph.graph_tree``, also
without nodes, unless the converter would word an issue. Any other YAML file is composed;
without an alias it is a tree of nodes, which ``yaml_values.plain_tree`` reads in one walk
without paths or lines; if that walk meets anything irregular, or the file has an alias,
``yaml_values.NodeConverter`` reads it again, with every field's line and an issue for each
mistake. The lines of a file that ``quick_tree``, ``graph_tree`` or ``plain_tree`` read are
found, when a later check reports issues, by reading the text's events again
(``yaml_lines.tree_lines``, ``yaml_lines.graph_lines``), keeping the lines of the issues' paths
only: a file with mistakes pays one more parse, a file without one keeps no nodes while its
model is built, and neither keeps a line for every path.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping
from typing import Any, TypeAlias

from taskdaemon.pipeline.bounded import BoundedInputError, check_depth, check_text
from taskdaemon.pipeline.errors import ValidationIssue
from taskdaemon.pipeline.quoting import quote
from taskdaemon.pipeline.yaml_import import yaml
from taskdaemon.pipeline.yaml_quick import quick_tree
from taskdaemon.pipeline.yaml_values import NOT_PLAIN, NodeConverter, plain_tree
from taskdaemon.pipeline.yamlsafe import (
    MAX_YAML_DEPTH,
    YamlLimitError,
    compose_bounded,
    is_tree,
    syntax_problem,
)

__all__ = [
    "Aliases",
    "Lines",
    "Through",
    "ValueLines",
    "YamlPlaces",
    "no_lines",
    "read_json",
    "read_toml",
    "read_yaml",
    "yaml_lines",
]

#: The lines of a file's field paths: given the paths wanted (each with the paths around it),
#: the line of each that the file has.
Lines: TypeAlias = Callable[[Collection[str]], Mapping[str, int]]
#: The file's lines of places inside fields' values: given ``(path, line, column)`` triples (a
#: place in its value, from 1), the file's line of each that the file has (a TOML string's:
#: ``toml_lines.toml_value_lines``; a YAML scalar's: ``YamlPlaces.value_lines``).
ValueLines: TypeAlias = Callable[
    [Collection[tuple[str, int, int]]], Mapping[tuple[str, int, int], tuple[int, int]]
]
#: The alias (``*name``, or a ``<<: *name`` merge) that gives a YAML field path its value: the
#: alias's line and column, its anchor's name, and the path's line where the anchor writes it
#: (``yaml_lines``). Such a path is on the alias's line (``FileIssues.placed``).
Through: TypeAlias = tuple[int, int, str, int]
#: The alias of each path a file's :data:`Lines` read that an alias gives its value, asked for
#: after them (``YamlPlaces.aliases``).
Aliases: TypeAlias = Callable[[], Mapping[str, Through]]


def no_lines(wanted: Collection[str]) -> Mapping[str, int]:
    """No line for any path: a file that was not read."""
    return {}


def read_yaml(text: str, file: str) -> tuple[Any, Lines, YamlPlaces | None, list[ValidationIssue]]:
    """The file's value, the lines of its field paths (a callable, see the module docstring),
    the places inside their values and the aliases that give them (a file read without nodes
    only; the others' issues stay on their fields' lines) and the issues of reading it."""
    data = quick_tree(text)
    if data is not NOT_PLAIN:  # no nodes, no issue: its lines only if the model has one
        places = YamlPlaces(text)
        return data, places.lines, places, []
    try:
        if not is_tree(text):  # an alias: read from the events, unless the converter words it
            read = _graph_read(text, file)
            if read is not None and read[1]:
                return None, no_lines, None, read[1]
            if read is not None:
                places = YamlPlaces(text, graph=True)
                return read[0], places.lines, places, []
        node = compose_bounded(text)
    except YamlLimitError as exc:
        return None, no_lines, None, [ValidationIssue("", str(exc), file=file, line=exc.line)]
    except yaml.YAMLError as exc:
        problem, line = syntax_problem(text, exc)
        issue = ValidationIssue("", f"invalid yaml: {problem}", file=file, line=line)
        return None, no_lines, None, [issue]
    if node is None:
        issue = ValidationIssue("", "the file is empty", file=file, line=1)
        return None, no_lines, None, [issue]
    if is_tree(text):
        data = plain_tree(node)
        if data is not NOT_PLAIN:  # and no issue: its lines only if the model has one
            places = YamlPlaces(text)
            return data, places.lines, places, []
    converter = NodeConverter(file)
    try:
        data = converter.value(node, "", None)
    except RecursionError:
        issue = ValidationIssue("", "nested too deeply", file=file, line=1)
        return None, no_lines, None, [issue]
    lines = converter.lines
    return data, lambda wanted: lines, None, converter.issues


class YamlPlaces:
    """A YAML file's answers to ``FileIssues.placed`` (one read without nodes, as a tree or,
    with ``graph``, as ``yaml_graph`` reads aliases and merge keys), one read of its events for
    both of its questions. The lines of the issues' paths are read with their scalars' events
    (``yaml_lines``), where the places inside the values are then looked for
    (``yaml_places``); each module imported only then, by a file with an issue (start-up
    time)."""

    def __init__(self, text: str, *, graph: bool = False) -> None:
        self.text = text
        self.graph = graph
        self.scalars: dict[str, Any] = {}
        self.through: dict[str, Through] = {}

    def lines(self, wanted: Collection[str]) -> dict[str, int]:
        from taskdaemon.pipeline import yaml_lines  # noqa: PLC0415 - see the docstring

        self.scalars, self.through = {}, {}
        read = yaml_lines.graph_lines if self.graph else yaml_lines.tree_lines
        return read(self.text, wanted, scalars=self.scalars, through=self.through)

    def aliases(self) -> dict[str, Through]:
        """The alias of each path :meth:`lines` read that an alias gives its value."""
        return self.through

    def value_lines(
        self, wanted: Collection[tuple[str, int, int]]
    ) -> dict[tuple[str, int, int], tuple[int, int]]:
        """The file's line and column of each wanted place in a value whose path
        :meth:`lines` read."""
        from taskdaemon.pipeline.yaml_places import yaml_value_lines  # noqa: PLC0415 - as above

        return yaml_value_lines(self.text, wanted, self.scalars)


def _graph_read(text: str, file: str) -> tuple[Any, list[ValidationIssue]] | None:
    # Only a file with an alias needs it (start-up time).
    from taskdaemon.pipeline.yaml_graph import graph_read  # noqa: PLC0415 - see above

    return graph_read(text, file)


def read_json(text: str, file: str) -> tuple[Any, Lines, list[ValidationIssue]]:
    """A JSON file's value, the lines of its field paths and the issues of reading it.

    Read by ``json``, with JSON's rules: ``1e3`` and ``2.5e0`` are numbers (YAML 1.1, which
    PyYAML follows, reads them as strings), a syntax error is JSON's, and ``NaN`` and
    ``Infinity`` (which Python's ``json`` accepts) are not JSON. A duplicate key is an issue, and
    nesting has the YAML files' depth limit. The lines, asked for only when the model has an
    issue, come from reading the text as YAML (JSON is YAML, and the paths are the same); a
    file YAML refuses (a raw DEL in a string) has none.
    """
    import json  # noqa: PLC0415 - only JSON files need it (start-up time)

    def unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        mapping: dict[str, Any] = {}
        for key, value in pairs:
            if key in mapping:
                raise ValueError(f"duplicate key {quote(key)}")
            mapping[key] = value
        return mapping

    def not_json(name: str) -> Any:
        raise ValueError(f"{name} is not JSON")

    if not text.strip():
        return None, no_lines, [ValidationIssue("", "the file is empty", file=file, line=1)]
    try:
        data = json.loads(text, object_pairs_hook=unique, parse_constant=not_json)
        check_depth(data, MAX_YAML_DEPTH)
    except (RecursionError, BoundedInputError):
        issue = ValidationIssue("", f"nested deeper than {MAX_YAML_DEPTH} levels", file=file)
        return None, no_lines, [issue]
    except json.JSONDecodeError as exc:
        # Its message may end in "at" ("Invalid control character at"), which "at column" says.
        reason = f"invalid json: {exc.msg.lower().removesuffix(' at')} at column {exc.colno}"
        reason += _json_hint(text, exc.pos)
        issue = ValidationIssue("", reason, file=file, line=exc.lineno)
        return None, no_lines, [issue]
    except ValueError as exc:  # a duplicate key, NaN, an integer over Python's digit limit
        issue = ValidationIssue("", f"invalid json: {exc}", file=file)
        if str(exc).startswith("duplicate key"):
            issue = _json_duplicate(text, file) or issue
        return None, no_lines, [issue]
    try:
        check_text(text, data)  # an escaped lone surrogate: no command could print the value
    except BoundedInputError as exc:
        return None, no_lines, [ValidationIssue("", f"invalid json: {exc}", file=file)]
    return data, lambda wanted: _json_lines(text, wanted), []


#: What a line break where a string goes on says: the usual cause is its closing quote left out.
_OPEN_STRING = " (a string is not closed on its line)"


def _json_hint(text: str, at: int) -> str:
    """What a JSON syntax error at ``at`` most often is, for what other formats allow: a
    string not closed on its line, a comment, a comma after a list's or an object's last item."""
    if text.startswith("\n", at):
        return _OPEN_STRING
    if text.startswith(("//", "/*", "#"), at):
        return " (JSON has no comments)"
    if text[:at].rstrip().endswith(",") and text.startswith(("]", "}"), at):
        return " (JSON has no comma after the last item)"
    return ""


def _json_duplicate(text: str, file: str) -> ValidationIssue | None:
    """A JSON file's duplicate key as a YAML file's is (``stages[0].command: duplicate key`` on
    the key's line): ``json`` says which key, but not where. Read as YAML, only when a key is
    given twice; None when YAML reads the text otherwise (a raw DEL in a string)."""
    try:
        _, _, _, issues = read_yaml(text, "")
    except (yaml.YAMLError, ValueError):
        return None
    found = next((issue for issue in issues if issue.message == "duplicate key"), None)
    return None if found is None else ValidationIssue(found.path, found.message, file, found.line)


def _json_lines(text: str, wanted: Collection[str]) -> dict[str, int]:
    """The lines of a JSON file's ``wanted`` field paths, read as YAML; none for a file YAML
    refuses."""
    try:
        return yaml_lines(text, wanted)
    except (yaml.YAMLError, ValueError):
        return {}


def yaml_lines(text: str, wanted: Collection[str]) -> dict[str, int]:
    """The line of each ``wanted`` field path of ``text`` (a file ``quick_tree`` or
    ``plain_tree`` read without issues) that it has.

    Read again rather than kept: a reader asks only when the file has a mistake, and only for
    its mistakes' paths (``yaml_lines.tree_lines``, from the parser's events, without nodes).
    """
    # Only a file with issues needs it (start-up time).
    from taskdaemon.pipeline.yaml_lines import tree_lines  # noqa: PLC0415 - see above

    return tree_lines(text, wanted)


#: More dotted key parts in a row than a value may nest (``a.b.c...`` in a key, a table header
#: or an inline table; bare or quoted): found before tomllib reads the text, which keeps every
#: prefix of a dotted key (20,000 parts in 40 KB took 1.6 GB), and whose value would be refused
#: as too deep anyway. A string holding as many dotted words is refused alike. Searched in the
#: text with the blanks around its dots taken out, and a run starts only where no part or dot
#: comes before it: each run is scanned once from its start, not again from each of its parts.
_DOTTED_RUN = re.compile(
    r"(?<![A-Za-z0-9_.\"'-])(?:(?:[A-Za-z0-9_-]++|\"[^\"\n]*+\"|'[^'\n]*+')\.)"
    rf"{{{MAX_YAML_DEPTH},}}+"
)
_BLANKS_AROUND_DOTS = re.compile(r"[ \t]*+\.[ \t]*+")


def read_toml(text: str, file: str) -> tuple[Any, list[ValidationIssue]]:
    """The file's value and the issues of reading it (its lines: ``toml_lines``)."""
    import tomllib  # noqa: PLC0415 - only TOML files need it (start-up time)

    too_deep = [ValidationIssue("", f"nested deeper than {MAX_YAML_DEPTH} levels", file=file)]
    if "." in text and _DOTTED_RUN.search(_BLANKS_AROUND_DOTS.sub(".", text)) is not None:
        return None, too_deep
    try:
        data = tomllib.loads(text)
        check_depth(data, MAX_YAML_DEPTH)
        if not data:  # blank, or comments alone: as a YAML or JSON file, not two missing keys
            return None, [ValidationIssue("", "the file is empty", file=file, line=1)]
        return data, []
    except (RecursionError, BoundedInputError):  # tomllib recurses, from about 330 levels
        return None, too_deep
    except tomllib.TOMLDecodeError as exc:
        return None, [_toml_issue(str(exc), text, file)]
    except ValueError as exc:  # an integer of more digits than Python converts
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return None, [ValidationIssue("", f"invalid toml: {reason.lower()}", file=file)]


_TOML_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_.:-]*")
_TOML_KEY = re.compile(r"[ \t]*([A-Za-z0-9_-]+)[ \t]*=")


def _toml_hint(reason: str, line: str, column: int) -> str:
    """What to write for a YAML habit ``tomllib`` refuses: a bare word as a value (``name =
    demo``), ``key: value`` in an inline table, a key given twice in one table; and what a line
    break inside a one-line string is."""
    at = line[column - 1 :] if 0 < column <= len(line) else ""
    word = _TOML_WORD.match(at) if reason.startswith("invalid value") else None
    if word is not None and word.group() not in ("true", "false", "inf", "nan"):
        return f" (a string is quoted in TOML: write {quote(word.group())})"
    if reason.startswith("expected '=' after a key") and at.startswith(":"):
        return " (TOML writes key = value, in an inline table too)"
    if reason.startswith("cannot overwrite a value") and (key := _TOML_KEY.match(line)):
        return f" ({quote(key.group(1))} is given twice: a key is written once in its table)"
    if reason.startswith("illegal character '\\n'"):
        return _OPEN_STRING
    return ""


def _toml_issue(message: str, text: str, file: str) -> ValidationIssue:
    """``tomllib``'s ``reason (at line L, column C)`` as YAML's and JSON's issues read: the line
    as the issue's, the column in the reason. Its ``(at end of document)`` is the file's last
    line, which had no line at all: the usual slip there is a value or bracket left out."""
    found = re.search(r"\(at line (\d+), column (\d+)\)$", message)
    if found:
        line, column = int(found.group(1)), int(found.group(2))
        reason = f"{message[: found.start()].rstrip().lower()} at column {column}"
        reason += _toml_hint(reason, text.split("\n")[line - 1] if line else "", column)
        return ValidationIssue("", f"invalid toml: {reason}", file=file, line=line)
    end = message.endswith("(at end of document)")
    reason = message.removesuffix("(at end of document)").rstrip().lower()
    if not end:
        return ValidationIssue("", f"invalid toml: {reason}", file=file)
    last = text.rstrip("\r\n").rsplit("\n", 1)[-1]
    where = f"at the end of the file (column {len(last) + 1})"
    line = text.rstrip("\r\n").count("\n") + 1
    return ValidationIssue("", f"invalid toml: {reason} {where}", file=file, line=line)
