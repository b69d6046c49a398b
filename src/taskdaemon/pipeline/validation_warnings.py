"""Warnings of a valid pipeline: what is legitimate, or racy, but most often a mistake.

``validation`` refuses what cannot run as written (exit 2). What this module finds can run, and
is sometimes meant, so an error would stop a user who meant it (docs/validation.md):

* ``unknown-output``: an expression reads ``stages.S.outputs.K`` where ``S`` declares its
  ``outputs:`` and none is ``K``. A condition on it alone never fires, and CEL's ``&&`` and ``||``
  absorb the missing key's error when the other side decides (``stages.b.outputs.cuont > 1 &&
  false`` is false, with no error at all), so a typo can go unseen. A stage without
  ``outputs:`` returns whatever its handler returns: not judged.
* ``unknown-stage-field``: ``stages.S.F`` for a field a stage does not have (``status`` and
  ``outputs`` are all it has).
* ``own-status``: an ``on_condition`` that reads its own stage's status: the stage has not
  started while its condition waits, so only the waiting statuses are seen (not always false).
* ``constant-condition``: an ``on_condition`` that reads no variable and is not ``true``
  (``1 > 2``): the stage never starts (a legitimate way to switch a stage off for a while).
* ``secret-literal``: a string literal in an input whose name reads as a secret (``api_key``),
  or a literal shaped like a credential (``ghp_…``, ``password=…``): the file, and every run's
  recorded definition, holds it.

Pure: :func:`pipeline_warnings` reads only the model (the loader places them on lines, with
:func:`placed`, and drops the suppressed ones). A warning never quotes a literal it judges as a
secret.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Final

from taskdaemon.pipeline.cel_paths import Trie, read_paths
from taskdaemon.pipeline.ellipsis import cut, quote
from taskdaemon.pipeline.errors import SHOWN_PATH, ExpressionError
from taskdaemon.pipeline.expressions import compile_expression
from taskdaemon.pipeline.frozen import frozen
from taskdaemon.pipeline.model import OnCondition, OnEvent, Pipeline, Stage
from taskdaemon.pipeline.value_methods import ValueMethods
from taskdaemon.pipeline.wording import close_match

__all__ = ["WARNING_CODES", "ValidationWarning", "pipeline_warnings", "placed"]

#: Every warning's code, with what it means (``validate --help`` and the docs list them).
WARNING_CODES: Final = {
    "unknown-output": "reads an output its stage does not declare",
    "unknown-stage-field": "reads a field a stage does not have",
    "own-status": "a condition reads its own stage's status",
    "constant-condition": "a condition that reads nothing and is never true",
    "secret-literal": "a secret written in the file",
}
#: Warnings a pipeline file reports at most (a hostile file of 100,000 typos is one screen).
MAX_WARNINGS: Final = 100
_STAGE_FIELDS: Final = ("outputs", "status")
#: ``# taskdaemon: ignore[code, ...]`` (or ``ignore`` alone: every code), in a comment. The
#: word ends the comment's directive or meets a closed list: a list that is not closed, or a
#: code spelled otherwise (``Own-Status``, ``own_status``) left ``ignore`` alone to match, and a
#: typo in a code suppressed every code (ruff likewise ignores a noqa comment it cannot read).
_IGNORE: Final = re.compile(r"#\s*taskdaemon:\s*ignore(?:\[([^\]]*)\])?(?=\s|#|$)")
_STRING_LITERAL: Final = re.compile(r"""'([^'\\\n]*)'|"([^"\\\n]*)\"""")


@frozen
class ValidationWarning(ValueMethods):
    """One warning: where (``path`` as ``ValidationIssue``'s, ``line`` and ``column`` 1-based
    when the loader knows them), why, and its ``code``."""

    path: str
    message: str
    code: str
    file: str | None = None
    line: int | None = None
    column: int | None = None

    def __str__(self) -> str:
        where = self.file or "<pipeline>"
        if self.line is not None:
            where += f":{self.line}" + (f":{self.column}" if self.column is not None else "")
        return f"{where}: warning: {cut(self.path, SHOWN_PATH)}: {self.message} [{self.code}]"


def pipeline_warnings(pipeline: Pipeline) -> list[ValidationWarning]:
    """The warnings of ``pipeline`` (valid: ``validate_pipeline`` found no issue), in stage
    order, at most :data:`MAX_WARNINGS`."""
    found: list[ValidationWarning] = []
    stages = {stage.name: stage for stage in pipeline.stages}
    for index, stage in enumerate(pipeline.stages):
        owner = f"stages[{index}]"
        for position, trigger in enumerate(stage.triggers):
            path = f"{owner}.triggers[{position}].{trigger.kind}"
            if type(trigger) is OnCondition:
                found += _condition(f"{path}.expression", trigger.expression, stage, stages)
            elif type(trigger) is OnEvent and trigger.filter is not None:
                filter_ = trigger.filter
                found += _reads(f"{path}.filter", read_paths(filter_, ("stages",)), stages)
        for mapping in stage.inputs:
            path = f"{owner}.inputs.{mapping.name}.from"
            found += _reads(path, read_paths(mapping.source, ("stages",)), stages)
            found += _secret(path, mapping.name, mapping.source)
        if len(found) >= MAX_WARNINGS:
            break
    return found[:MAX_WARNINGS]


def _condition(
    path: str, source: str, stage: Stage, stages: Mapping[str, Stage]
) -> list[ValidationWarning]:
    paths = read_paths(source, ("request", "stages"))
    found = _reads(path, paths, stages)
    own = (paths or {}).get("stages") or {}
    if stage.name in own and "status" in (own[stage.name] or {}):
        found.append(
            ValidationWarning(
                path,
                "reads the stage's own status: it has not started while its condition waits, "
                "so the condition sees only that (wait for another stage's status)",
                "own-status",
            )
        )
    if paths != {}:  # reads a variable, or cannot be told: not constant
        return found
    try:  # compiled again only here: a condition that reads nothing is rare, and short
        expression = compile_expression(source, frozenset({"request", "stages"}))
        value = None if expression.isolated else expression.evaluate({})
    except ExpressionError:
        value = None  # an error at every evaluation: never true either
    if value is not True:
        found.append(
            ValidationWarning(
                path,
                f"{quote(source)} reads no variable and is never true: the stage never starts",
                "constant-condition",
            )
        )
    return found


def _reads(
    path: str, paths: Mapping[str, Trie | None] | None, stages: Mapping[str, Stage]
) -> list[ValidationWarning]:
    """The keys ``paths`` (``cel_paths.read_paths``: None, not told) reads of a stage that has
    no such field or output."""
    found = []
    for name, fields in ((paths or {}).get("stages") or {}).items():
        stage = stages.get(name)
        if stage is None or not fields:  # an unknown stage is ``validation``'s error
            continue
        for field_, keys in fields.items():
            if field_ not in _STAGE_FIELDS:
                close = close_match(field_, _STAGE_FIELDS) if len(field_) <= 128 else []
                hint = f"did you mean {close[0]!r}?" if close else "a stage has status and outputs"
                message = (
                    f"reads stages.{name}.{cut(field_, 80)}, which a stage does not have ({hint})"
                )
                found.append(ValidationWarning(path, message, "unknown-stage-field"))
            elif field_ == "outputs" and keys and stage.outputs is not None:
                declared = [mapping.name for mapping in stage.outputs]
                for key in keys:
                    if key not in declared:
                        found.append(_unknown_output(path, name, key, declared))
    return found


def _unknown_output(path: str, stage: str, key: str, declared: list[str]) -> ValidationWarning:
    close = close_match(key, declared) if len(key) <= 128 else []
    if close:
        hint = f"did you mean {close[0]!r}?"
    elif declared:
        hint = "it declares " + ", ".join(quote(name, 80) for name in declared[:10])
    else:
        hint = "it declares no output"
    message = f"reads output {quote(key, 80)} of stage {quote(stage)}, which never has it ({hint})"
    return ValidationWarning(path, message, "unknown-output")


def _secret(path: str, name: str, source: str) -> list[ValidationWarning]:
    # Lazy: ``redaction`` compiles its patterns at the first use; a file without literals in
    # its inputs never needs them.
    from taskdaemon.pipeline.redaction import key_matcher, secret_spans  # noqa: PLC0415

    for match in _STRING_LITERAL.finditer(source):
        literal = match.group(1) if match.group(1) is not None else match.group(2)
        if (literal and key_matcher()(name)) or secret_spans(literal):
            message = (
                "a string literal that looks like a credential, which the file and every run's "
                "recorded definition then hold (pass it at run time with --input NAME=VALUE "
                "and read request.NAME)"
            )
            return [ValidationWarning(path, message, "secret-literal")]
    return []


def placed(
    warnings: list[ValidationWarning],
    text: str,
    lines_of: Callable[[list[str]], list[int | None]],
    source: str,
) -> list[ValidationWarning]:
    """``warnings`` with their file, line and column, without those a comment suppresses.

    ``lines_of`` gives the line of each path (or of its nearest ancestor the file has). A
    warning is suppressed by ``# taskdaemon: ignore[CODE]`` on its own line, or on its stage's
    first line (the whole stage); ``ignore`` without codes suppresses every code. The column is
    that of the path's last key on its line, else the line's first character."""
    stage_paths = [warning.path.partition(".")[0] for warning in warnings]
    lines = lines_of([warning.path for warning in warnings] + stage_paths)
    texts = text.splitlines()
    kept = []
    for position, warning in enumerate(warnings):
        line, stage_line = lines[position], lines[len(warnings) + position]
        if _ignores(texts, line, warning.code) or _ignores(texts, stage_line, warning.code):
            continue
        column = None if line is None else _column(texts[line - 1], warning.path)
        kept.append(
            ValidationWarning(warning.path, warning.message, warning.code, source, line, column)
        )
    return kept


def _suppressed(text: str, code: str) -> bool:
    """True if the comment on the line ``text`` suppresses the warnings of ``code``."""
    found = _IGNORE.search(text)
    if found is None:
        return False
    codes = found.group(1)
    return codes is None or code in {part.strip() for part in codes.split(",")}


def _ignores(texts: list[str], line: int | None, code: str) -> bool:
    return line is not None and 0 < line <= len(texts) and _suppressed(texts[line - 1], code)


def _column(text: str, path: str) -> int:
    """The 1-based column of the last of ``path``'s keys found on its line (``from`` in
    ``from: ...``, else the input's own name), or of the line's first character that is not a
    blank or a list's ``-``."""
    for key in reversed(re.split(r"[.\[]", path)):
        at = text.find(key) if key and not key.endswith("]") else -1
        if at >= 0:
            return at + 1
    return len(text) - len(text.lstrip(" \t-")) + 1
