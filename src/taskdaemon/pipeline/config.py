"""Loading pipeline files (YAML, TOML) into the model: docs/architecture.md, "Pipeline file format".

``load_pipeline(path)`` and ``parse_pipeline(text)`` return a validated ``Pipeline`` or raise one
``ConfigError`` that carries **every** issue of the file, each with the file, the 1-based line
(YAML's from PyYAML's parser, TOML's from ``toml_lines``), the field path in the canonical form
(``stages[2].triggers[0].on_event.type``) and a short lower-case reason. ``str(error)`` is one
line per issue, ``FILE:LINE: PATH: REASON``, ready for a CLI to print without a traceback.

Decisions where the canonical form is silent:

* Durations are a number of seconds (int or float) or a string of one or more ``<number><unit>``
  parts with units ``ms``, ``s``, ``m``, ``h`` (``500ms``, ``1h30m``); a bare numeric string is
  seconds too. Zero, negative and infinite durations are rejected by ``validate_pipeline``.
* Types are strict: ``true`` is not an integer, ``1`` is not a boolean, ``"3"`` is not an integer.
* ``null`` for an optional field means "not set" (``timeout: ~`` = no stage timeout); for a
  required field it is an error. ``manual:`` with no body is ``manual: {}``.
* ``loop`` may be left out when a stage has exactly one of ``handler`` (loop ``python``) or
  ``command`` (loop ``command``).
* Duplicate keys in a YAML mapping are errors (YAML loaders silently keep the last one).
  Anchors, aliases and ``<<`` merge keys work, within the limits of ``yamlsafe``.
* ``.json`` files are read with ``json``, by JSON's rules (``1e3`` is a number, where YAML 1.1
  reads a string); the lines of their fields come from reading them as YAML
  (``config_text.read_json``).
* Issues that would only repeat an earlier one are dropped: once a field fails to load, the
  model checks of ``validate_pipeline`` about that field (or the whole that contains it, such as
  "no entry stage" after a broken trigger) are not reported.

Loading is linear in the file's size: the C YAML parser composes the nodes when available, the
size, nesting depth and alias expansion of the file are bounded first (``yamlsafe``: a
"billion laughs" file is refused in microseconds, with one line), and entry points
(``taskdaemon.loops``) are only looked up when a stage names a loop type that is neither built
in nor declared under ``loops:``.
"""

from __future__ import annotations

import contextlib
import gc
import os
from collections.abc import Collection, Iterator
from functools import partial
from pathlib import Path
from typing import Final, Literal

from taskdaemon.pipeline.config_issues import ancestors, line_of
from taskdaemon.pipeline.config_reader import ConfigReader
from taskdaemon.pipeline.config_text import (
    Aliases,
    Lines,
    ValueLines,
    read_json,
    read_toml,
    read_yaml,
)
from taskdaemon.pipeline.errors import ConfigError, ValidationIssue
from taskdaemon.pipeline.expressions import Expression
from taskdaemon.pipeline.hint_syntax import syntax_of
from taskdaemon.pipeline.model import (
    BUILTIN_LOOPS,
    Pipeline,
)
from taskdaemon.pipeline.quoting import quote
from taskdaemon.pipeline.record_fields import replace
from taskdaemon.pipeline.validation import validate_pipeline
from taskdaemon.pipeline.validation_warnings import (
    MAX_WARNINGS,
    ValidationWarning,
    comment_issues,
    pipeline_warnings,
    placed,
)
from taskdaemon.pipeline.yamlsafe import MAX_YAML_BYTES

__all__ = [
    "LOOP_ENTRY_POINT_GROUP",
    "field_lines",
    "load_pipeline",
    "parse_pipeline",
    "registered_loop_types",
]

#: A byte order mark, which some editors write at the start of a UTF-8 file: skipped in every
#: format, as YAML skips it and as JSON's RFC 8259 lets a parser do. ``tomllib`` and ``json``
#: refused it (``invalid statement at column 1``), at a character no editor shows.
BOM: Final = "\ufeff"

#: The entry point group through which packages register loop types (name = loop type).
LOOP_ENTRY_POINT_GROUP: Final = "taskdaemon.loops"

_SUFFIXES: Final[dict[str, Literal["yaml", "json", "toml"]]] = {
    ".yaml": "yaml",
    ".yml": "yaml",
    ".json": "json",
    ".toml": "toml",
}


def registered_loop_types() -> frozenset[str]:
    """The loop type names registered through the ``taskdaemon.loops`` entry point group."""
    from importlib.metadata import entry_points  # noqa: PLC0415 - slow; rarely needed

    return frozenset(ep.name for ep in entry_points(group=LOOP_ENTRY_POINT_GROUP))


def load_pipeline(
    path: str | os.PathLike[str],
    *,
    registered_loops: Collection[str] | None = None,
    warnings: list[ValidationWarning] | None = None,
) -> Pipeline:
    """Load and validate the pipeline file at ``path`` (``.yaml``/``.yml``/``.json``/``.toml``).

    ``registered_loops`` replaces the entry point look-up when given; ``warnings``, when given,
    receives the warnings of a valid file (``validation_warnings``). Raises ``ConfigError``
    with every issue found, including an unreadable file and a syntax error (with its line).
    The issue's file is ``path`` as given.
    """
    file = os.fspath(path)
    suffix = Path(file).suffix.lower()
    fmt = _SUFFIXES.get(suffix)
    if os.path.isdir(file):  # ``validate examples``: its suffix said nothing of what it is
        files = os.path.join(file, f"*{suffix if fmt is not None else '.yaml'}")
        reason = f"a directory, not a pipeline file (give its files: {files})"
        raise ConfigError([ValidationIssue("", reason, file=file)])
    if fmt is None:
        shown = quote(suffix) if suffix else "(none)"
        reason = f"unknown file type {shown} (expected .yaml, .yml, .json or .toml)"
        raise ConfigError([ValidationIssue("", reason, file=file)])
    try:
        with open(file, "rb") as stream:  # never more than the limit: it may be a huge file
            data = stream.read(MAX_YAML_BYTES + 1)
        text = data.decode("utf-8")
        del data  # the bytes would live as long as the load: a file's size more at its peak
    except OSError as exc:
        reason = f"cannot read the file: {(exc.strerror or str(exc)).lower()}"
        raise ConfigError([ValidationIssue("", reason, file=file)]) from None
    except UnicodeDecodeError as exc:  # on its line, as every format counts a "\n"
        reason = f"not utf-8 text (byte {exc.start}: save the file as UTF-8)"
        line = exc.object.count(b"\n", 0, exc.start) + 1
        raise ConfigError([ValidationIssue("", reason, file=file, line=line)]) from None
    return parse_pipeline(
        text,
        fmt=fmt,
        source=file,
        registered_loops=registered_loops,
        warnings=warnings,
    )


def field_lines(file: str, paths: Collection[str]) -> dict[str, int]:
    """The line of each of ``paths`` (or of its nearest ancestor) in the pipeline file at
    ``file``, read again: for a problem found after the file loaded, such as a handler that does
    not resolve (``cli/validate.resolve_issues``), which would otherwise name no line. Only a
    file with such a problem pays the second read; none for a file that can no longer be read
    (the lines are then left out, as a pipeline built in code has none)."""
    fmt = _SUFFIXES.get(Path(file).suffix.lower())
    try:
        with open(file, "rb") as stream:
            text = stream.read(MAX_YAML_BYTES + 1).decode("utf-8")
    except (OSError, UnicodeDecodeError):
        return {}
    if len(text) > MAX_YAML_BYTES:  # grown since it loaded: its loader would refuse it now
        return {}
    text = text.removeprefix(BOM)  # as parse_pipeline read it
    lines: Lines
    if fmt == "toml":
        lines = partial(_toml_lines, text)
    elif fmt == "yaml":
        _, lines, _, _ = read_yaml(text, file)
    elif fmt == "json":
        _, lines, _ = read_json(text, file)
    else:
        return {}
    found = lines({path for wanted in paths for path in (wanted, *ancestors(wanted))})
    return {path: line for path in paths if (line := line_of(found, path)) is not None}


def parse_pipeline(
    text: str,
    *,
    fmt: Literal["yaml", "json", "toml"] = "yaml",
    source: str = "<string>",
    registered_loops: Collection[str] | None = None,
    warnings: list[ValidationWarning] | None = None,
) -> Pipeline:
    """Parse and validate a pipeline from ``text``; ``source`` names it in issues, and
    ``warnings`` (when given) receives its warnings.

    Raises ``ConfigError`` with every issue found (see the module docstring).
    """
    if len(text) > MAX_YAML_BYTES:
        reason = f"larger than {MAX_YAML_BYTES // (1024 * 1024)} MiB"
        raise ConfigError([ValidationIssue("", reason, file=source, line=1)])
    text = text.removeprefix(BOM)
    # The expressions validation compiled, by path, which the warnings read: only when asked.
    compiled: dict[str, Expression] | None = None if warnings is None else {}
    with _gc_paused():
        pipeline, reader = _parse(text, fmt, source, registered_loops, compiled)
    if compiled is not None and warnings is not None:
        warnings += _warnings(pipeline, text, reader, source, compiled, fmt=fmt)
    return pipeline


def _toml_lines(text: str, wanted: Collection[str]) -> dict[str, int]:
    # Only a TOML file with an issue needs it (start-up time).
    from taskdaemon.pipeline.toml_lines import toml_lines  # noqa: PLC0415 - see above

    return toml_lines(text, wanted)


class _TomlPlaces:
    """A TOML file's answers to ``FileIssues.placed``, one walk of the file for both of its
    questions: the string values met by the walk for the issues' lines are where the places
    inside them are then looked for (``toml_lines`` imported only then, as above)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.strings: dict[str, tuple[int, int]] = {}

    def lines(self, wanted: Collection[str]) -> dict[str, int]:
        from taskdaemon.pipeline.toml_lines import toml_places  # noqa: PLC0415 - as above

        found, self.strings = toml_places(self.text, wanted)
        return found

    def value_lines(
        self, wanted: Collection[tuple[str, int, int]]
    ) -> dict[tuple[str, int, int], tuple[int, int]]:
        from taskdaemon.pipeline.toml_lines import toml_value_lines  # noqa: PLC0415 - as above

        return toml_value_lines(self.text, wanted, self.strings)


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a file is read.

    Composing a large file allocates millions of small containers; each one counts toward the
    collector's thresholds, and its full collections walk every live object, which made loading
    grow quadratically (10,000 stages: 1.5 s instead of 0.4 s). The nodes form no cycles (an
    alias is a shared reference, not a cycle), so nothing is lost; the previous state is
    restored on the way out, and the next collection picks up any garbage of other threads.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _parse(
    text: str,
    fmt: str,
    source: str,
    registered_loops: Collection[str] | None,
    compiled: dict[str, Expression] | None,
) -> tuple[Pipeline, ConfigReader]:
    lines: Lines
    value_lines: ValueLines | None = None
    aliases: Aliases | None = None
    if fmt == "yaml":
        data, lines, yaml_places, issues = read_yaml(text, source)
        if yaml_places is not None:
            value_lines, aliases = yaml_places.value_lines, yaml_places.aliases
    elif fmt == "json":
        data, lines, issues = read_json(text, source)
    elif fmt == "toml":
        data, issues = read_toml(text, source)
        places = _TomlPlaces(text)
        lines, value_lines = places.lines, places.value_lines
    else:
        raise ValueError(f"unknown pipeline format {fmt!r} (expected 'yaml', 'json' or 'toml')")
    if issues:
        raise ConfigError(issues)
    syntax = syntax_of(fmt)
    reader = ConfigReader(source, lines, syntax, value_lines, aliases)
    pipeline = reader.pipeline(data)
    del data  # the plain values are all read: the validator's peak need not hold them too
    if reader.fatal:
        raise ConfigError(reader.placed(reader.issues))
    declared = BUILTIN_LOOPS | set(pipeline.loops)
    if registered_loops is None:
        # Entry point discovery scans every installed distribution: only pay for it when needed.
        unknown = any(stage.loop not in declared for stage in pipeline.stages)
        registered_loops = registered_loop_types() if unknown else ()
    found = validate_pipeline(
        pipeline, registered_loops=registered_loops, compiled=compiled, syntax=syntax
    )
    issues = list(reader.issues)
    for issue in found:
        path = reader.file_path(issue.path)
        if not reader.covers(path):
            issues.append(replace(issue, path=path, file=source))
    if issues:
        issues = reader.placed(issues)
    issues += comment_issues(text, source, fmt)  # on their lines already
    if issues:
        # Stable: issues on one line keep the order they were found in.
        issues.sort(key=lambda issue: issue.line or 0)
        raise ConfigError(issues)
    return pipeline, reader


def _warnings(
    pipeline: Pipeline,
    text: str,
    reader: ConfigReader,
    source: str,
    compiled: dict[str, Expression],
    *,
    fmt: str,
) -> list[ValidationWarning]:
    """The warnings of a valid ``pipeline`` on the lines of ``text``, without those its
    ``ignore_warnings`` fields or its comments suppress (a JSON file has none: only the
    fields suppress there), then those suppressions that suppressed nothing
    (``unused_ignores``)."""
    used = None
    if reader.ignored or (fmt != "json" and "taskdaemon:" in text):
        # Only a file that suppresses a warning imports the check (start-up time).
        from taskdaemon.pipeline.unused_ignores import Used  # noqa: PLC0415

        used = Used()
    found = pipeline_warnings(pipeline, compiled, reader.ignored, used)
    if not found and used is None:
        return []

    def lines_of(paths: list[str]) -> list[int | None]:
        # A valid file had no list item dropped: the model's paths are the file's.
        issues = [ValidationIssue(path, "") for path in paths]
        return [issue.line for issue in reader.placed(issues, aliases=False)]

    kept = placed(found, text, lines_of, source, used, fmt=fmt)
    if used is not None:
        from taskdaemon.pipeline.unused_ignores import unused_ignores  # noqa: PLC0415

        kept += unused_ignores(
            used, reader.ignored, text=text, fmt=fmt, lines_of=lines_of, source=source
        )
    return kept[:MAX_WARNINGS]
