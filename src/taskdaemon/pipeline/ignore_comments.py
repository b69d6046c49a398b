"""The ``# taskdaemon: ignore[CODE]`` comments of a pipeline file: in its comments only.

A match of the directive's text also finds it in a string (``run: "echo # taskdaemon:
ignore[x] && ..."``, a ``|`` block holding such a line), which then hid a warning or was
reported as an unused suppression, though the file has no such comment. So the directive is
looked for where the format has its comments:

* YAML: between the scanner's tokens. A scalar of every form (plain, quoted, a literal or
  folded block, one in a flow collection, one over several lines) is a single token whose span
  holds its text, and every indicator is a token, so what lies between two tokens is blanks,
  line breaks and comments; and on a block scalar's header line (``run: |  # ...``), which its
  token holds with its indicators, where nothing but a comment can hold a ``#``. The line and
  column are the scanner's (its line breaks, so a comment's line is the one its warnings are
  placed on).
* TOML: in the comments ``toml_scan`` finds, outside its strings (basic, literal, and the
  multi-line forms of both); TOML has no unquoted text that may hold a ``#``. Its lines are
  ``tomllib``'s, split at ``\n`` only.

The cost is bounded by the text's (``yamlsafe.MAX_YAML_BYTES``, of a file that loaded): a
file without the word ``taskdaemon:`` is not scanned, the scan stops at the last occurrence of
it, and a gap between tokens is searched only when it holds the word. The comments are given
one at a time, so a caller that stops at its cap (``MAX_WARNINGS``, ``MAX_ISSUES``) stops the
scan there, and a file of a million comments holds none of them at once.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Final, NamedTuple

from taskdaemon.pipeline.toml_scan import toml_comments
from taskdaemon.pipeline.yaml_import import yaml
from taskdaemon.pipeline.yamlsafe import YAML_BREAK, parser_of

__all__ = ["IGNORE_COMMENT", "IgnoreComment", "ignore_comments"]

#: ``# taskdaemon: ignore[code, ...]`` (or ``ignore`` alone: every code), in a comment.
#: Any text in the brackets, so that a code of another form (``ignore[W123]``) is an unknown
#: code (``validation_warnings.comment_issues``), not a bare ``ignore`` that suppresses every
#: code; and the word ends the directive or meets a closed list, so that a list not closed
#: (``ignore[own-status``) or a word that goes on (``ignored``) is no directive at all (ruff
#: likewise ignores a noqa comment it cannot read), never a bare ``ignore``. Any text but a
#: bracket: a list holding a ``[`` is no directive either, as one not closed, so that the
#: search for a list's end stops at the next directive's ``[``: before, each directive of a line
#: without a ``]`` searched the rest of the line, and a line of ``# taskdaemon: ignore[``
#: repeated took time with the square of its length.
IGNORE_COMMENT: Final = re.compile(r"#[ \t]*taskdaemon:[ \t]*ignore(?:\[([^\[\]\n]*)\])?(?=\s|#|$)")
_WORD: Final = "taskdaemon:"
#: The styles of a block scalar, whose token holds its header line's comment.
_BLOCK: Final = ("|", ">")


class IgnoreComment(NamedTuple):
    """One directive: its 1-based ``line`` and ``column`` (of its ``#``), and the ``codes`` it
    lists as written (stripped; an empty one kept), or None for a bare ``ignore``."""

    line: int
    column: int
    codes: tuple[str, ...] | None


def ignore_comments(text: str, fmt: str) -> Iterator[IgnoreComment]:
    """The directives in the comments of ``text``, a ``yaml`` or ``toml`` file that loaded, in
    the file's order (none in any other format: JSON has no comments)."""
    if _WORD not in text:
        return iter(())
    if fmt == "yaml":
        return _yaml(text)
    if fmt == "toml":
        return _toml(text)
    return iter(())


def _codes(found: re.Match[str]) -> tuple[str, ...] | None:
    listed = found.group(1)
    return None if listed is None else tuple(code.strip() for code in listed.split(","))


def _yaml(text: str) -> Iterator[IgnoreComment]:
    last = text.rindex(_WORD)
    loader = parser_of(text)
    try:
        get = loader.get_token
        # Where the previous token ends: its index, line and column.
        end, line, column = 0, 0, 0
        while end <= last:
            try:
                token = get()  # type: ignore[no-untyped-call]
            except yaml.YAMLError:  # not a file that loaded: nothing more is known
                return
            if token is None:  # past the stream's end
                return
            start = token.start_mark.index
            if start > end and text.find(_WORD, end, start) >= 0:
                yield from _in_gap(text, end, start, line, column)
            if getattr(token, "style", None) in _BLOCK:  # a comment may end its header line
                mark = token.start_mark
                header = YAML_BREAK.search(text, start, token.end_mark.index)
                stop = token.end_mark.index if header is None else header.start()
                if text.find(_WORD, start, stop) >= 0:
                    yield from _in_gap(text, start, stop, mark.line, mark.column)
            if token.end_mark.index > end:
                mark = token.end_mark
                end, line, column = mark.index, mark.line, mark.column
    finally:
        loader.dispose()


def _in_gap(text: str, start: int, stop: int, line: int, column: int) -> Iterator[IgnoreComment]:
    """The directives between ``start`` and ``stop``, blanks and comments that begin at the
    0-based ``line`` and ``column``."""
    at = start
    for found in IGNORE_COMMENT.finditer(text, start, stop):
        for newline in YAML_BREAK.finditer(text, at, found.start()):
            line, column, at = line + 1, 0, newline.end()
        column += found.start() - at
        at = found.start()
        yield IgnoreComment(line + 1, column + 1, _codes(found))


def _toml(text: str) -> Iterator[IgnoreComment]:
    last = text.rindex(_WORD)
    for comment in toml_comments(text):
        if comment.start > last:
            return
        found = IGNORE_COMMENT.search(text, comment.start, comment.end)
        if found is not None:
            column = comment.column + found.start() - comment.start
            yield IgnoreComment(comment.line, column, _codes(found))
