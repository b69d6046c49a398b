"""Bounded YAML: composing untrusted text with size, nesting and alias limits.

PyYAML composes an alias as a second reference to the anchored node, and ``<<`` merge keys
copy the merged mapping's pairs when values are constructed. Loading a "billion laughs" file
is therefore cheap, but every walk of the result (our node converter, redaction, JSON
encoding, the validator) visits each alias again: 633 bytes expanded to a billion nodes. So
the composed node graph is measured first, in time linear in the file, and refused when:

* the text is larger than :data:`MAX_YAML_BYTES`;
* collections nest deeper than :data:`MAX_YAML_DEPTH` (libyaml refuses past 1,000 on its own,
  and the pure-Python parser that words our syntax errors recurses, so we never hand it a
  file libyaml found too deep);
* aliases and merge keys make the expanded tree larger than the file's own nodes plus
  ``max(ALIAS_BUDGET, 4 × own nodes)``: a file may share settings through anchors as much as
  it likes, but sharing may at most multiply the work of reading it by five.

The counting is exact: a node's expanded size is memoised, so a merge of a merge of an alias
costs one look-up, and the refusal of a bomb takes microseconds.
"""

from __future__ import annotations

import functools
import re
from typing import Any, Final

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.reader import ReaderError

from taskdaemon.pipeline.bounded import BoundedInputError, check_depth

__all__ = [
    "ALIAS_BUDGET",
    "MAX_YAML_BYTES",
    "MAX_YAML_DEPTH",
    "YAML_BREAK",
    "YamlLimitError",
    "compose_bounded",
    "is_tree",
    "load_bounded",
    "parser_of",
    "syntax_problem",
]

#: The largest YAML text read, in characters (16 MiB; a 10,000-stage pipeline is about 2 MB).
MAX_YAML_BYTES: Final = 16 * 1024 * 1024
#: How deeply collections may nest (a pipeline needs 6 levels).
MAX_YAML_DEPTH: Final = 100
#: Nodes that aliases and merge keys may add beyond the file's own, at the least.
ALIAS_BUDGET: Final = 100_000

# The C parser composes nodes several times faster; the pure one is the fallback and also gives
# the (deterministic) text of syntax errors.
_CLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _ComposingLoader(_CLoader):  # type: ignore[misc,valid-type]
    """The loader that composes pipeline files: the safe schema, with the tag of a scalar
    remembered per loader (one file).

    Even the C composer calls back into Python for every node: ``resolve`` for its tag (it
    matches a scalar against the implicit resolvers' patterns), ``descend_resolver`` and
    ``ascend_resolver`` around it although the safe schema has no path resolvers. So each
    hook is a C callable, and a node costs no Python frame in them:

    * ``resolve`` is a pure function of its (kind, value, implicit) arguments with the class's
      fixed resolvers, and a pipeline repeats its keys and values (``name``, ``triggers``,
      ``python``...): a ``functools.lru_cache`` of it, whose hits are a C dict look-up, answers
      each triple after the first. The memo lives as long as the loader (one ``compose``),
      holds at most the file's distinct scalars, and is dropped by ``dispose`` (it refers to
      the loader: without that the loader would wait for the cyclic collector).
    * the two path-resolver hooks do nothing: ``{}.get`` takes their two arguments and
      ``tuple`` none (each returns a value the composer ignores).
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.resolve = functools.lru_cache(maxsize=None)(super().resolve)

    def dispose(self) -> None:
        self.__dict__.pop("resolve", None)
        super().dispose()

    if not _CLoader.yaml_path_resolvers:  # the safe schema has none: nothing to track
        descend_resolver: Any = {}.get
        ascend_resolver: Any = tuple


_Loader: type[yaml.SafeLoader] = _ComposingLoader


class YamlLimitError(ValueError):
    """The text is over a limit; ``str()`` is one lower-case line, ``line`` 1-based or None."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.line = line


def is_tree(text: str) -> bool:
    """True when ``text`` cannot hold an alias (it has no ``*``), so its composed nodes are a
    tree: no node is reached twice, and none is its own ancestor."""
    return "*" not in text


def compose_bounded(text: str, *, max_depth: int = MAX_YAML_DEPTH) -> Node | None:
    """The composed node of the single YAML document ``text`` (None if empty).

    Raises YamlLimitError over a limit (see the module docstring) and ``yaml.YAMLError`` on a
    syntax error (word it with :func:`syntax_problem`).

    The node graph is only measured when the text has an alias (a ``*``): without one it is a
    tree no larger than the text, and measuring it would add half to the time of composing a
    large file. The caller's own walk of such a tree must then stop at ``max_depth`` (the
    pipeline loader's ``NodeConverter`` does, :func:`load_bounded` checks the values).
    """
    if len(text) > MAX_YAML_BYTES:
        raise YamlLimitError(f"larger than {MAX_YAML_BYTES // (1024 * 1024)} MiB", 1)
    try:
        node = yaml.compose(text, Loader=_Loader)
    except RecursionError:  # only the pure-Python composer recurses
        raise YamlLimitError(f"nested deeper than {max_depth} levels", 1) from None
    if node is not None and not is_tree(text):
        _check(node, max_depth)
    return node


def parser_of(text: str) -> yaml.SafeLoader:
    """A loader of ``text`` whose ``get_event`` gives its parser's events (the C parser when
    PyYAML has it, as :func:`compose_bounded` uses); ``dispose`` it after."""
    return _CLoader(text)


def load_bounded(text: str, *, max_depth: int = MAX_YAML_DEPTH) -> Any:
    """The value of the YAML document ``text``, composed within the limits, then constructed
    (tags of the safe schema only). Raises YamlLimitError or ``yaml.YAMLError``."""
    node = compose_bounded(text, max_depth=max_depth)
    if node is None:
        return None
    loader = _Loader("")
    try:
        value = loader.construct_document(node)
    finally:
        loader.dispose()
    try:
        check_depth(value, max_depth)  # shared values are walked again: the budget bounds it
    except BoundedInputError as exc:
        raise YamlLimitError(str(exc), 1) from None
    return value


#: YAML's line breaks (the scanner counts ``\r\n`` as one).
YAML_BREAK: Final = re.compile("\r\n|[\r\n\x85\u2028\u2029]")


def syntax_problem(text: str, exc: yaml.YAMLError) -> tuple[str, int | None]:
    """A YAML syntax error as ``(problem, line)``: the pure parser's words, the same with or
    without libyaml, except for a nesting error (the pure parser would recurse on it), with the
    column, and in a pipeline author's words where the parser's name its tokens
    (``_misindented``, ``_unclosed``, ``_worded``)."""
    if _CLoader is not yaml.SafeLoader and "maximum nesting depth" not in str(exc):
        try:
            yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.YAMLError as pure:
            exc = pure
        except RecursionError:
            pass
    if isinstance(exc, yaml.MarkedYAMLError):
        unclosed = _unclosed(exc)
        if unclosed is not None:
            return unclosed
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = _misindented(exc) or _worded(exc)
        return problem.replace("\n", " "), line
    if (
        isinstance(exc, ReaderError)
        and isinstance(exc.position, int)
        and isinstance(exc.character, int)
    ):
        # A character YAML refuses (NUL, a control character), which the reader finds before
        # any mark: its line and column from its position in the text, as YAML counts lines.
        before = text[: exc.position]
        line = len(YAML_BREAK.findall(before)) + 1
        column = exc.position - max(before.rfind(end) for end in "\r\n\x85\u2028\u2029")
        problem = f"a character YAML does not allow (U+{exc.character:04X}) at column {column}"
        return problem, line
    return str(exc).splitlines()[0] if str(exc) else "syntax error", None


def _unclosed(exc: yaml.MarkedYAMLError) -> tuple[str, int] | None:
    """A quoted string never closed, on the line where it begins: the parser's ``found
    unexpected end of stream`` named the line after the file's last, where nothing is wrong."""
    begun = exc.context_mark
    if exc.context != "while scanning a quoted scalar" or begun is None:
        return None
    if exc.problem != "found unexpected end of stream":
        return None
    return f"the quoted string begun at column {begun.column + 1} is never closed", begun.line + 1


def _worded(exc: yaml.MarkedYAMLError) -> str:
    """The parser's problem with its column, and what to do for the mistakes a pipeline's
    author makes most: a tab that indents (YAML indents with spaces only) and a ``: `` inside a
    value that is not quoted (``command: echo: hi``), which the parser takes for a key, as it
    does a line indented into the value above it."""
    problem = exc.problem or exc.context or "syntax error"
    mark = exc.problem_mark
    if mark is None:
        return problem
    column = mark.column + 1
    if problem.startswith("found character '\\t'"):
        return f"a tab at column {column}: YAML indents with spaces, not tabs"
    if problem == "mapping values are not allowed here":
        return (
            f"a ':' at column {column} where a value goes on: quote a value that holds ': ', "
            "or check the line's indentation"
        )
    return f"{problem} at column {column}"


#: What the parser's tokens are to a reader of a pipeline file.
_FOUND = {
    "'?'": "a key",
    "'<block mapping start>'": "a key",
    "'-'": "a list item",
    "'<block sequence start>'": "a list item",
    "'<scalar>'": "a value",
}
_BLOCKS = {"while parsing a block collection": "list", "while parsing a block mapping": "mapping"}


def _misindented(exc: yaml.MarkedYAMLError) -> str | None:
    """A line indented to fit no block, in words: the parser's ``expected <block end>, but
    found '?'`` named its tokens, which a user of a pipeline file has never seen."""
    words, problem = "expected <block end>, but found ", exc.problem or ""
    block = _BLOCKS.get(exc.context or "")
    if not problem.startswith(words) or block is None or exc.problem_mark is None:
        return None
    found = problem.removeprefix(words)
    begun = exc.context_mark
    where = "" if begun is None else f" begun on line {begun.line + 1} at column {begun.column + 1}"
    return (
        f"{_FOUND.get(found, found)} at column {exc.problem_mark.column + 1} does not fit the "
        f"{block}{where}: check the line's indentation"
    )


def _children(node: Node) -> list[Node]:
    if isinstance(node, SequenceNode):
        return node.value  # type: ignore[no-any-return]
    if isinstance(node, MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def _check(root: Node, max_depth: int) -> None:
    """Measure the node graph without expanding it: own nodes, expanded size, depth.

    Nodes hash by identity. A scalar is one node of depth 0; a collection's size and depth
    are computed once all its children's are (an explicit post-order stack: no recursion).
    """
    size: dict[Node, int] = {}
    depth: dict[Node, int] = {}
    on_path: set[Node] = set()
    own = 0
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        if finished:
            on_path.discard(node)
            total, deepest = 1, 0
            for child in _children(node):
                # A child still on the path is a recursive alias: the converter reports it and
                # does not follow it, so it counts as one node.
                total += size.get(child, 1)
                child_depth = depth.get(child, 0)
                deepest = max(deepest, child_depth)
            size[node] = total
            depth[node] = deepest + 1
            if deepest >= max_depth:
                line = node.start_mark.line + 1
                raise YamlLimitError(f"nested deeper than {max_depth} levels", line)
            continue
        if node in size or node in on_path:
            continue
        own += 1
        if isinstance(node, ScalarNode):
            size[node] = 1
            depth[node] = 0
            continue
        on_path.add(node)
        stack.append((node, True))
        stack.extend(
            (child, False)
            for child in _children(node)
            if child not in size and child not in on_path
        )
    allowed = own + max(ALIAS_BUDGET, 4 * own)
    if size[root] > allowed:
        raise YamlLimitError(
            f"aliases and merge keys expand {own} nodes to {size[root]} "
            f"(the limit is {allowed}: is this an alias bomb?)",
            1,
        )
