"""Composed YAML nodes → plain values, with the 1-based line of every field path.

The pipeline loader reads a file through :class:`NodeConverter` rather than PyYAML's
constructor, to know where each field was written and to report duplicate keys, recursive
aliases and bad merges as issues. The converter walks aliases and ``<<`` merges once per
reference, so it must only be given a node graph that ``yamlsafe.compose_bounded`` accepted:
its work is then bounded by the expanded size that function measured. It stops (with an issue)
at collections nested deeper than ``max_depth``, which ``compose_bounded`` leaves to it when
the file has no alias.

Most files have no alias and no mistake: :func:`plain_tree` reads such a tree in one walk with
no field paths, no lines and no issue bookkeeping (a Python call per collection and per list
item, none per string value of a mapping), and gives up at the first thing that would be an
issue; the caller then reads the file again with :class:`NodeConverter`, which words it. Lines
are only needed for an issue, so a caller of :func:`plain_tree` finds them (with the
converter) only when one is reported.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from taskdaemon.pipeline.errors import MAX_ISSUES, ValidationIssue
from taskdaemon.pipeline.quoting import quote
from taskdaemon.pipeline.yamlsafe import MAX_YAML_DEPTH

__all__ = ["NOT_PLAIN", "REFUSED", "NodeConverter", "kind_of", "plain_tree", "refusal"]

_STR = "tag:yaml.org,2002:str"
_MERGE = "tag:yaml.org,2002:merge"

#: What :func:`plain_tree` returns when the tree has something only the converter words.
NOT_PLAIN: Any = object()

#: What PyYAML's safe constructor raises, unworded, for an explicitly tagged scalar that is not
#: of its tag at all: ``!!int`` or ``!!float`` of nothing or of ``-`` (IndexError), ``!!bool x``
#: (KeyError), ``!!timestamp x`` (AttributeError). Uncaught, each was a traceback.
_UNWORDED = (IndexError, KeyError, AttributeError)
#: What it raises for a scalar it refuses: its own errors, the Python ones of the conversion
#: (``!!int x``, ``2020-02-30``, an int of over 4,300 digits), and the unworded ones.
REFUSED = (yaml.YAMLError, ValueError, OverflowError, *_UNWORDED)


def refusal(exc: BaseException, tag: str, text: str) -> str:
    """The issue's message for the scalar ``text`` tagged ``tag`` that the constructor refused
    with ``exc`` (one of :data:`REFUSED`)."""
    name = tag.rpartition(":")[2]
    if isinstance(exc, _UNWORDED):
        return f"invalid {name} value: {quote(text)}"
    return f"invalid {name} value: {getattr(exc, 'problem', None) or exc}"


class _NotPlainError(Exception):
    """Raised inside :func:`plain_tree` at the first irregular node."""


def plain_tree(node: Node, max_depth: int = MAX_YAML_DEPTH) -> Any:
    """The plain value of the alias-free node tree ``node``, or :data:`NOT_PLAIN` when reading
    it with :class:`NodeConverter` would report an issue (or might: the test is cautious).

    Irregular: a key that is not a plain string (a ``<<`` merge, a number), a duplicate key, a
    scalar the safe constructor refuses, collections nested ``max_depth`` deep. The value is
    then the converter's, equal in every other case. Only for a tree: an alias could make a
    node its own ancestor, which this walk would follow to ``max_depth`` each time.
    """
    constructor = yaml.constructor.SafeConstructor()
    try:
        return _plain(node, 0, max_depth, constructor.construct_object)
    except (_NotPlainError, *REFUSED):
        return NOT_PLAIN


def _plain(node: Node, depth: int, max_depth: int, construct: Any) -> Any:
    kind = type(node)
    if kind is ScalarNode:
        return node.value if node.tag == _STR else construct(node)
    if depth >= max_depth:  # as the converter counts: collections above this one
        raise _NotPlainError
    depth += 1
    if kind is MappingNode:
        result: dict[str, Any] = {}
        pairs = node.value
        for key_node, value_node in pairs:
            if key_node.tag != _STR or type(key_node) is not ScalarNode:
                raise _NotPlainError  # a merge, a key of another type
            if value_node.tag == _STR and type(value_node) is ScalarNode:
                result[key_node.value] = value_node.value
            else:
                result[key_node.value] = _plain(value_node, depth, max_depth, construct)
        if len(result) != len(pairs):
            raise _NotPlainError  # a duplicate key (the dict kept one)
        return result
    if kind is SequenceNode:
        return [_plain(item, depth, max_depth, construct) for item in node.value]
    raise _NotPlainError  # pragma: no cover - the composer makes no other node


class NodeConverter:
    """Composed YAML nodes → plain values, recording the line of every field path."""

    def __init__(self, file: str, max_depth: int = MAX_YAML_DEPTH) -> None:
        self.file = file
        self.max_depth = max_depth
        self.lines: dict[str, int] = {}
        self.issues: list[ValidationIssue] = []
        self.constructor = yaml.constructor.SafeConstructor()
        self.active: set[int] = set()

    def issue(self, path: str, message: str, node: Node) -> None:
        if len(self.issues) <= MAX_ISSUES:  # past it, ``ConfigError`` says more were found
            line = node.start_mark.line + 1
            self.issues.append(ValidationIssue(path, message, file=self.file, line=line))

    def value(self, node: Node, path: str, key_line: int | None) -> Any:
        # A field's line is its key's line: where a reader looks for ``timeout:``.
        self.lines[path] = key_line if key_line is not None else node.start_mark.line + 1
        if isinstance(node, ScalarNode):
            if node.tag == _STR:  # most values: no call
                return node.value
            return self.scalar(node, path)
        if id(node) in self.active:
            self.issue(path, "recursive alias", node)
            return None
        if len(self.active) >= self.max_depth:  # ``active`` holds the path: its depth
            # On the file, not the path: a path a hundred levels deep is no help to read.
            self.issue("", f"nested deeper than {self.max_depth} levels", node)
            return None
        self.active.add(id(node))
        try:
            if isinstance(node, SequenceNode):
                return [self.value(item, f"{path}[{i}]", None) for i, item in enumerate(node.value)]
            if isinstance(node, MappingNode):
                return self.mapping(node, path)
        finally:
            self.active.discard(id(node))
        raise AssertionError(f"unexpected node {node!r}")  # pragma: no cover

    def scalar(self, node: ScalarNode, path: str) -> Any:
        if node.tag == _STR:
            return node.value
        try:
            return self.constructor.construct_object(node)
        except REFUSED as exc:
            self.issue(path, refusal(exc, node.tag, node.value), node)
            return None

    def mapping(self, node: MappingNode, path: str) -> dict[str, Any]:
        pairs, merged = self.pairs(node, path)
        result: dict[str, Any] = {}
        lines = self.lines
        # The keys of the mapping's own (not merged) pairs: without a merge, the result's keys.
        own: Any = result if not merged else set()
        for position, (key_node, value_node) in enumerate(pairs):
            if key_node.tag == _STR and isinstance(key_node, ScalarNode):  # most keys: no call
                key = key_node.value
            elif isinstance(key_node, ScalarNode):
                key = self.scalar(key_node, path)
                if not isinstance(key, str):
                    self.issue(path, f"keys must be strings, got {kind_of(key)}", key_node)
                    continue
            else:  # a collection as a key (``? [a]``), which is never converted
                kind = "list" if isinstance(key_node, SequenceNode) else "mapping"
                self.issue(path, f"keys must be strings, got {kind}", key_node)
                continue
            field_path = f"{path}.{key}" if path else key
            # Merged keys may be overridden (by later merges and by the mapping's own keys);
            # only the mapping's own keys must be unique.
            if position >= merged:
                if key in own:
                    self.issue(field_path, "duplicate key", key_node)
                    continue
                if merged:
                    own.add(key)
            if value_node.tag == _STR and type(value_node) is ScalarNode:  # most values
                lines[field_path] = key_node.start_mark.line + 1  # as ``value`` notes it
                result[key] = value_node.value
            else:
                result[key] = self.value(value_node, field_path, key_node.start_mark.line + 1)
        return result

    def pairs(self, node: MappingNode, path: str) -> tuple[list[tuple[Node, Node]], int]:
        """The pairs of ``node`` with ``<<`` merge keys expanded (merged pairs first, in
        last-wins order), and how many of them were merged. Unlike PyYAML's
        ``flatten_mapping`` this leaves the nodes alone: an anchored mapping may be walked
        again through an alias."""
        pairs: list[tuple[Node, Node]] = node.value
        if not any(key_node.tag == _MERGE for key_node, _ in pairs):
            return pairs, 0  # most mappings: nothing to expand, nothing to copy
        merged: list[tuple[Node, Node]] = []
        own: list[tuple[Node, Node]] = []
        for key_node, value_node in pairs:
            if key_node.tag != _MERGE:
                own.append((key_node, value_node))
                continue
            sources = value_node.value if isinstance(value_node, SequenceNode) else [value_node]
            # The first mapping listed wins: with last-wins assignment it must come last.
            for source in reversed(sources):
                if isinstance(source, MappingNode):
                    merged.extend(self.pairs(source, path)[0])
                else:
                    self.issue(path, "<< merges mappings only", source)
        return merged + own, len(merged)


def kind_of(value: object) -> str:
    """The YAML word for the type of a loaded value, for messages (``mapping``, ``list``…)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "mapping"
    if isinstance(value, date):
        return "date"
    return type(value).__name__
