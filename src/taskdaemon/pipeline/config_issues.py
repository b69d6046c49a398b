"""The issues found reading one pipeline file, and where each is in the file
(``config_reader.ConfigReader`` collects them; ``config`` places and filters them).

:class:`FileIssues` keeps each issue with its field path, the paths it covers (its own and
those above it: the validator's issue about a field already refused is not reported twice),
and, for a list the reader dropped items from, the file's index of each item kept, so that a
path of the model is numbered as in the file (:meth:`FileIssues.file_path`). An issue gets
its line only when placed (:meth:`FileIssues.placed`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from itertools import islice
from typing import Any

from taskdaemon.pipeline.ascii_number import ascii_digits
from taskdaemon.pipeline.config_text import Aliases, Lines, ValueLines
from taskdaemon.pipeline.errors import MAX_ISSUES, ValidationIssue
from taskdaemon.pipeline.quoting import quote
from taskdaemon.pipeline.record_fields import replace
from taskdaemon.pipeline.yamlsafe import MAX_YAML_DEPTH

__all__ = ["FileIssues", "ancestors", "line_of", "placed_path"]

_SEPARATOR = re.compile(r"[.\[]")  # where a field path's parts begin


def line_of(lines: Mapping[str, int], path: str) -> int | None:
    """The line of ``path`` in ``lines``, else of its nearest ancestor there, else None."""
    return lines.get(placed_path(lines, path))


def placed_path(lines: Mapping[str, int], path: str) -> str:
    """``path`` if ``lines`` has it, else its nearest ancestor there, else ``""``."""
    return path if path in lines else next((p for p in ancestors(path) if p in lines), "")


def ancestors(path: str) -> Iterator[str]:
    """The paths above ``path``, nearest first, then ``""``: its prefixes before a ``.`` or ``[``,
    only the ``MAX_YAML_DEPTH + 1`` nearest the root (no file nests deeper). A key of thousands of
    ``[`` was as many prefixes, each as long as the key: quadratic in time and memory."""
    cuts = [found.start() for found in islice(_SEPARATOR.finditer(path, 1), MAX_YAML_DEPTH + 1)]
    yield from (path[:cut] for cut in reversed(cuts))
    if path:
        yield ""


class FileIssues:
    """The issues of one file with the paths they cover. ``lines`` gives the line of each
    field path asked for; it is called once, by :meth:`placed`, for the paths
    of the issues found, since most files have none and their lines would cost a walk of the
    file (``config_text.yaml_lines``). An issue has no line until then. ``value_lines``, when
    given, places an issue with a ``value_at`` on the file's line and column of that place in
    its value (a TOML file's: ``toml_lines.toml_value_lines``; a YAML file's:
    ``config_text.YamlPlaces.value_lines``). ``aliases``, when given (a YAML file's,
    ``config_text.YamlPlaces.aliases``), places an issue whose path an alias gives its value on
    the alias's line and column, and says where its anchor writes it: the user sees the alias
    first, as it is what gives the field its value, and the anchor's line as the one to edit,
    since that value may serve other aliases too (as a compiler says a macro's use first, then
    where it was defined)."""

    def __init__(
        self,
        file: str,
        lines: Lines,
        value_lines: ValueLines | None = None,
        aliases: Aliases | None = None,
    ) -> None:
        self.file = file
        self._lines_of = lines
        self._value_lines = value_lines
        self._aliases = aliases
        self.issues: list[ValidationIssue] = []
        self._paths: set[str] = set()
        self._covered: set[str] = set()
        # The file's index of each item kept from a list the reader dropped items from, by the
        # list's path in the file (``file_path``).
        self._kept: dict[str, list[int]] = {}

    def issue(self, path: str, message: str) -> None:
        if len(self.issues) > MAX_ISSUES:  # enough to say so (``ConfigError``)
            return
        self.issues.append(ValidationIssue(path, message, file=self.file))
        self._paths.add(path)
        self._covered.add(path)
        self._covered.update(ancestors(path))

    def cover(self, path: str) -> None:
        """Count ``path`` as reported, with no issue of its own: another issue says it."""
        self._covered.add(path)

    def placed(
        self, issues: list[ValidationIssue], *, aliases: bool = True
    ) -> list[ValidationIssue]:
        """``issues`` each on the line of its path, or of the nearest ancestor of it the file
        has: the file's lines are read once, for these paths and their ancestors. Without
        ``aliases``, a path an alias gives its value stays on the line its anchor writes it
        on (a warning's: its suppression comment is written there, for every alias of it)."""
        wanted = {issue.path for issue in issues}
        for issue in issues:
            wanted.update(ancestors(issue.path))
        lines = self._lines_of(wanted)
        inside = {(issue.path, *issue.value_at) for issue in issues if issue.value_at}
        value = {} if not inside or self._value_lines is None else self._value_lines(inside)
        through = {} if self._aliases is None or not aliases else self._aliases()

        def place(issue: ValidationIssue) -> ValidationIssue:
            found = value.get((issue.path, *issue.value_at)) if issue.value_at else None
            if found is not None:
                return replace(issue, line=found[0], column=found[1])
            path = placed_path(lines, issue.path)
            alias = through.get(path)
            if alias is None:
                return replace(issue, line=lines.get(path))
            line, column, name, written = alias
            message = f"{issue.message} (via {quote('*' + name)}, defined at line {written})"
            return replace(issue, message=message, line=line, column=column)

        return [place(issue) for issue in issues]

    def file_path(self, path: str) -> str:
        """``path`` of the model (``stages[1].triggers[1]``) numbered as in the file: a list
        item the reader dropped for its issue is not in the model, so the validator's indices
        of later items are lower than the file's."""
        if not self._kept:
            return path
        result, rest = "", path
        while (opening := rest.find("[")) >= 0 and (closing := rest.find("]", opening)) >= 0:
            result += rest[:opening]
            number = rest[opening + 1 : closing]
            kept = self._kept.get(result, ())
            if ascii_digits(number) and int(number) < len(kept):
                number = str(kept[int(number)])
            result += f"[{number}]"
            rest = rest[closing + 1 :]
        return result + rest

    def _compacted(self, path: str, items: list[Any]) -> tuple[Any, ...]:
        """``items`` (one a list item of the file, in its order, None where it was refused)
        without the Nones; the kept items' file indices are kept for ``file_path`` when any
        was dropped."""
        kept = [item for item in items if item is not None]
        if len(kept) != len(items):
            self._kept[path] = [index for index, item in enumerate(items) if item is not None]
        return tuple(kept)

    def covers(self, path: str) -> bool:
        """True if an issue was already reported at, inside or around ``path``."""
        return path in self._covered or any(p in self._paths for p in ancestors(path))
