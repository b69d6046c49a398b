"""A pipeline file's text to plain values, the lines of their field paths, and the issues of
reading it (YAML through ``yamlsafe`` and ``yaml_values``, TOML through ``tomllib``, JSON
through ``json``).

The lines are given as a callable, since they are only read for an issue and most files have
none. A file in the common part of YAML (one-line values in block mappings and sequences) is
read by ``yaml_quick.quick_tree`` without composing it at all. Any other YAML file is composed;
without an alias it is a tree of nodes, which ``yaml_values.plain_tree`` reads in one walk
without paths or lines; if that walk meets anything irregular, or the file has an alias,
``yaml_values.NodeConverter`` reads it again, with every field's line and an issue for each
mistake. The lines of a file that ``quick_tree`` or ``plain_tree`` read are found, when a later
check reports an issue, by composing the text again: a file with a mistake pays one more
compose, a file without one keeps no nodes while its model is built.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from taskdaemon.pipeline.bounded import BoundedInputError, check_depth
from taskdaemon.pipeline.errors import ValidationIssue
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

__all__ = ["read_json", "read_toml", "read_yaml", "yaml_lines"]


def read_yaml(
    text: str, file: str
) -> tuple[Any, Callable[[], dict[str, int]], list[ValidationIssue]]:
    """The file's value, the lines of its field paths (a callable, see the module docstring)
    and the issues of reading it."""
    data = quick_tree(text)
    if data is not NOT_PLAIN:  # no nodes, no issue: its lines only if the model has one
        return data, lambda: yaml_lines(text, file), []
    try:
        node = compose_bounded(text)
    except YamlLimitError as exc:
        return None, dict, [ValidationIssue("", str(exc), file=file, line=exc.line)]
    except yaml.YAMLError as exc:
        problem, line = syntax_problem(text, exc)
        return None, dict, [ValidationIssue("", f"invalid yaml: {problem}", file=file, line=line)]
    if node is None:
        return None, dict, [ValidationIssue("", "the file is empty", file=file, line=1)]
    if is_tree(text):
        data = plain_tree(node)
        if data is not NOT_PLAIN:  # and no issue: its lines only if the model has one
            return data, lambda: yaml_lines(text, file), []
    converter = NodeConverter(file)
    try:
        data = converter.value(node, "", None)
    except RecursionError:
        issue = ValidationIssue("", "nested too deeply", file=file, line=1)
        return None, dict, [issue]
    lines = converter.lines
    return data, lambda: lines, converter.issues


def read_json(
    text: str, file: str
) -> tuple[Any, Callable[[], dict[str, int]], list[ValidationIssue]]:
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
                raise ValueError(f"duplicate key {key!r}")
            mapping[key] = value
        return mapping

    def not_json(name: str) -> Any:
        raise ValueError(f"{name} is not JSON")

    if not text.strip():
        return None, dict, [ValidationIssue("", "the file is empty", file=file, line=1)]
    try:
        data = json.loads(text, object_pairs_hook=unique, parse_constant=not_json)
        check_depth(data, MAX_YAML_DEPTH)
    except (RecursionError, BoundedInputError):
        issue = ValidationIssue("", f"nested deeper than {MAX_YAML_DEPTH} levels", file=file)
        return None, dict, [issue]
    except json.JSONDecodeError as exc:
        issue = ValidationIssue("", f"invalid json: {exc.msg.lower()}", file=file, line=exc.lineno)
        return None, dict, [issue]
    except ValueError as exc:  # a duplicate key, NaN, an integer over Python's digit limit
        return None, dict, [ValidationIssue("", f"invalid json: {exc}", file=file)]
    return data, lambda: _json_lines(text, file), []


def _json_lines(text: str, file: str) -> dict[str, int]:
    """The lines of a JSON file's field paths, read as YAML; none for a file YAML refuses."""
    try:
        return yaml_lines(text, file)
    except (yaml.YAMLError, YamlLimitError):
        return {}


def yaml_lines(text: str, file: str) -> dict[str, int]:
    """The line of every field path of ``text``, a file ``quick_tree`` or ``plain_tree`` read
    without issues.

    Composed again rather than kept: a reader asks only when the file has a mistake, and the
    nodes of a large file would otherwise live as long as its model is being built.
    """
    node = compose_bounded(text)
    assert node is not None  # it composed to a tree before
    converter = NodeConverter(file)
    converter.value(node, "", None)
    return converter.lines


def read_toml(text: str, file: str) -> tuple[Any, list[ValidationIssue]]:
    """The file's value and the issues of reading it (TOML has no lines)."""
    import tomllib  # noqa: PLC0415 - only TOML files need it (start-up time)

    try:
        data = tomllib.loads(text)
        check_depth(data, MAX_YAML_DEPTH)
        return data, []
    except (RecursionError, BoundedInputError):  # tomllib recurses, from about 330 levels
        return None, [ValidationIssue("", f"nested deeper than {MAX_YAML_DEPTH} levels", file=file)]
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        found = re.search(r"\(at line (\d+), column \d+\)$", message)
        line = int(found.group(1)) if found else None
        reason = message[: found.start()].rstrip() if found else message
        return None, [ValidationIssue("", f"invalid toml: {reason.lower()}", file=file, line=line)]
