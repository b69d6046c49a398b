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
* ``unknown-status``: ``stages.S.status == 'succeeded'``, a value no status has: the
  comparison never holds, and the stage waiting on it ends skipped without a word.
* ``secret-literal``: a string literal in an input whose name reads as a secret (``api_key``),
  or a literal shaped like a credential (``ghp_…``, ``password=…``), in an input or in a
  command (a stage's, a declared loop type's): the file, and every run's recorded definition,
  holds it.

Pure: :func:`pipeline_warnings` reads the model and the expressions ``validate_pipeline``
compiled (each ``Expression`` holds the variables CEL says it reads and the paths ``cel_paths``
told once at compilation: nothing is tokenized or compiled again). The loader places them on
lines, with :func:`placed`, and drops the suppressed ones. A warning never quotes a literal it
judges as a secret.

Suppressed (docs/validation.md, "Suppressing a warning"): by a stage's or the pipeline's
``ignore_warnings: [CODE, ...]`` field, in every format, which :func:`pipeline_warnings` takes
(``ignored``), and in YAML and TOML by a ``# taskdaemon: ignore[CODE]`` comment, which
:func:`placed` reads. A code neither knows is an error (:func:`unknown_code`,
:func:`comment_issues`): a typo'd suppression would hide nothing, and say nothing of it.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Collection, Mapping
from typing import TYPE_CHECKING, Final

from taskdaemon.pipeline.cel_paths import Paths
from taskdaemon.pipeline.ellipsis import cut
from taskdaemon.pipeline.errors import MAX_ISSUES, SHOWN_PATH, ExpressionError, ValidationIssue
from taskdaemon.pipeline.expressions import Expression
from taskdaemon.pipeline.frozen import frozen
from taskdaemon.pipeline.ignore_comments import ignore_comments
from taskdaemon.pipeline.model import OnCondition, OnEvent, Pipeline, Stage
from taskdaemon.pipeline.quoting import quote
from taskdaemon.pipeline.value_methods import ValueMethods
from taskdaemon.pipeline.wording import close_match

if TYPE_CHECKING:
    from taskdaemon.pipeline.unused_ignores import Used

__all__ = [
    "WARNING_CODES",
    "ValidationWarning",
    "comment_issues",
    "pipeline_warnings",
    "placed",
    "unknown_code",
]

#: Every warning's code, with what it means (``validate --help`` and the docs list them).
WARNING_CODES: Final = {
    "unknown-output": "reads an output its stage does not declare",
    "unknown-stage-field": "reads a field a stage does not have",
    "own-status": "a condition reads its own stage's status",
    "constant-condition": "a condition that reads nothing and is never true",
    "secret-literal": "a secret written in the file",
    "unknown-status": "compares a stage's status with a value no status has",
    "unused-ignore": "an ignore_warnings code or ignore comment that suppresses nothing",
}
#: Warnings a pipeline file reports at most (a hostile file of 100,000 typos is one screen).
MAX_WARNINGS: Final = 100
_STAGE_FIELDS: Final = ("outputs", "status")
#: ``stages.S.status == 'X'`` (or ``!=``, or ``stages["S"]``), and the same written the other
#: way round: the stage and the literal compared.
_STAGE: Final = r"""stages(?:\.([A-Za-z_]\w*)|\[\s*(?:"([^"\n]*)"|'([^'\n]*)')\s*\])\.status"""
_LITERAL: Final = r"""(?:'([^'\\\n]*)'|"([^"\\\n]*)")"""
_STATUS_COMPARED: Final = (
    re.compile(rf"(?<![\w.]){_STAGE}\s*[!=]=\s*{_LITERAL}"),
    re.compile(rf"{_LITERAL}\s*[!=]=\s*{_STAGE}\b"),
)
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


def pipeline_warnings(
    pipeline: Pipeline,
    compiled: Mapping[str, Expression],
    ignored: Mapping[str, Collection[str]] | None = None,
    used: Used | None = None,
) -> list[ValidationWarning]:
    """The warnings of ``pipeline`` (valid: ``validate_pipeline`` found no issue and filled
    ``compiled``, its expressions by path), in stage order, at most :data:`MAX_WARNINGS`.

    ``ignored``: the codes ``ignore_warnings`` suppresses, by owner: ``""`` the pipeline's,
    ``stages[I]`` a stage's. Dropped before the count, so that suppressed warnings never
    crowd out the others. ``used`` (``unused_ignores``) learns which of them suppressed a
    warning, and whether every stage was looked at (not past the cap)."""
    found: list[ValidationWarning] = []
    stages = {stage.name: stage for stage in pipeline.stages}
    everywhere = frozenset(ignored.get("", ())) if ignored else frozenset()
    for name, loop in pipeline.loops.items():
        if loop.command is not None:
            of_loop = _command_secret(f"loops.{name}.command", loop.command)
            found += _kept(of_loop, {"": everywhere}, used)
    for index, stage in enumerate(pipeline.stages):
        owner = f"stages[{index}]"
        of_stage: list[ValidationWarning] = []
        for position, trigger in enumerate(stage.triggers):
            path = f"{owner}.triggers[{position}].{trigger.kind}"
            if type(trigger) is OnCondition:
                path += ".expression"
                of_stage += _condition(path, compiled.get(path), stage, stages)
                of_stage += _statuses(path, trigger.expression)
            elif type(trigger) is OnEvent and trigger.filter is not None:
                path += ".filter"
                of_stage += _reads(path, _paths(compiled.get(path)), stages)
                of_stage += _statuses(path, trigger.filter)
        for mapping in stage.inputs:
            path = f"{owner}.inputs.{mapping.name}.from"
            of_stage += _reads(path, _paths(compiled.get(path)), stages)
            of_stage += _statuses(path, mapping.source)
            of_stage += _secret(path, mapping.name, mapping.source)
        if stage.command is not None:
            of_stage += _command_secret(f"{owner}.command", stage.command)
        owners = {"": everywhere, owner: frozenset(ignored.get(owner, ()) if ignored else ())}
        found += _kept(of_stage, owners, used)
        if len(found) >= MAX_WARNINGS:
            break
    else:
        if used is not None:
            used.complete = True
    return found[:MAX_WARNINGS]


def _kept(
    warnings: list[ValidationWarning],
    owners: Mapping[str, frozenset[str]],
    used: Used | None,
) -> list[ValidationWarning]:
    """``warnings`` but those an ``ignore_warnings`` of ``owners`` (by owner, its codes)
    suppresses; each suppression that does is marked in ``used``."""
    kept = []
    for warning in warnings:
        suppressed = [owner for owner, codes in owners.items() if warning.code in codes]
        if used is not None:
            used.fields.update((owner, warning.code) for owner in suppressed)
        if not suppressed:
            kept.append(warning)
    return kept


def unknown_code(code: str) -> str | None:
    """Why ``code`` names no warning (with a "did you mean"), or None for a known code."""
    if code in WARNING_CODES:
        return None
    close = close_match(code, WARNING_CODES)
    hint = f"did you mean {close[0]!r}?" if close else "expected " + ", ".join(WARNING_CODES)
    return f"unknown warning code {quote(code, 80)} ({hint})"


def _paths(expression: Expression | None) -> Paths | None:
    return None if expression is None else expression.paths


def _condition(
    path: str, expression: Expression | None, stage: Stage, stages: Mapping[str, Stage]
) -> list[ValidationWarning]:
    if expression is None:  # not compiled: only a file with errors, which has no warnings
        return []
    paths = expression.paths
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
    if expression.variables:  # reads a variable: not constant
        return found
    try:
        value = None if expression.isolated else expression.evaluate({})
    except ExpressionError:
        value = None  # an error at every evaluation: never true either
    if value is not True:
        found.append(
            ValidationWarning(
                path,
                f"{quote(expression.source)} reads no variable and is never true: the stage "
                "never starts",
                "constant-condition",
            )
        )
    return found


def _reads(path: str, paths: Paths | None, stages: Mapping[str, Stage]) -> list[ValidationWarning]:
    """The keys ``paths`` (an expression's, ``cel_paths``: None, not told) reads of a stage
    that has no such field or output."""
    found = []
    for name, fields in ((paths or {}).get("stages") or {}).items():
        stage = stages.get(name)
        if stage is None or not fields:  # an unknown stage is ``validation``'s error
            continue
        for field_, keys in fields.items():
            if field_ not in _STAGE_FIELDS:
                close = close_match(field_, _STAGE_FIELDS)
                hint = f"did you mean {close[0]!r}?" if close else "a stage has status and outputs"
                message = (
                    f"reads stages.{name}.{cut(field_, 80)}, which a stage does not have ({hint})"
                )
                found.append(ValidationWarning(path, message, "unknown-stage-field"))
            elif field_ == "outputs" and keys and stage.outputs is not None:
                declared = [mapping.name for mapping in stage.outputs]
                provided = stage.provided_outputs  # ``instances`` of a fan-out
                for key in keys:
                    if key not in declared and key not in provided:
                        found.append(_unknown_output(path, name, key, declared, provided))
    return found


@functools.cache
def _known_statuses() -> tuple[str, ...]:
    """What ``stages.S.status`` can be while a condition reads it. The status machines
    (``state``) are imported only when a condition compares a status: ``dag FILE`` and a
    run's load of a file that does not pay for them (``pipeline_cli_startup_test``)."""
    from taskdaemon.pipeline.state import StageStatus  # noqa: PLC0415

    return tuple(str(status) for status in StageStatus)


def _statuses(path: str, source: str) -> list[ValidationWarning]:
    """``stages.S.status == 'X'`` where no status is ``X`` (``'succeeded'``, ``'done'``): the
    comparison never holds (``!=``: always), so a condition on it never fires, silently: the
    stage ends skipped. Told from the text, as ``validation``'s stage references are."""
    if "status" not in source:
        return []
    found = []
    for pattern, stage_groups, value_groups in (
        (_STATUS_COMPARED[0], (1, 2, 3), (4, 5)),
        (_STATUS_COMPARED[1], (3, 4, 5), (1, 2)),
    ):
        for match in pattern.finditer(source):
            value = next(match[group] for group in value_groups if match[group] is not None)
            statuses = _known_statuses()
            if value in statuses:
                continue
            name = next(match[group] for group in stage_groups if match[group] is not None)
            close = close_match(value, statuses)
            hint = f"did you mean {close[0]!r}?" if close else "a status is " + ", ".join(statuses)
            message = (
                f"compares the status of stage {quote(name)} with {quote(value, 80)}, which "
                f"no status is ({hint})"
            )
            found.append(ValidationWarning(path, message, "unknown-status"))
    return found


def _unknown_output(
    path: str, stage: str, key: str, declared: list[str], provided: tuple[str, ...]
) -> ValidationWarning:
    """``provided``: the outputs the engine gives the stage beyond ``declared`` (a fan-out's
    ``instances``), which a typo may be close to, and which the hint names as such."""
    close = close_match(key, [*declared, *provided])
    if close:
        hint = f"did you mean {close[0]!r}?"
    elif declared:
        hint = "it declares " + ", ".join(quote(name, 80) for name in declared[:10])
    else:
        hint = "it declares no output"
    if provided and not close:
        hint += "; as a fan-out it also has " + ", ".join(map(repr, provided))
    message = f"reads output {quote(key, 80)} of stage {quote(stage)}, which never has it ({hint})"
    return ValidationWarning(path, message, "unknown-output")


def _secret(path: str, name: str, source: str) -> list[ValidationWarning]:
    # Lazy: ``redaction`` compiles its patterns at the first use; a file without literals in
    # its inputs never needs them.
    from taskdaemon.pipeline.redaction import secret_spans  # noqa: PLC0415
    from taskdaemon.pipeline.secret_keys import key_matcher  # noqa: PLC0415

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


def _command_secret(path: str, command: str) -> list[ValidationWarning]:
    """A command holding a credential's shape (``Bearer ghp_…``, ``API_KEY=sk-…``): where a
    newcomer most often writes one, and where a run's recorded definition keeps it. A shape
    whose text has a ``$`` or a ``%`` is not one: its value is the shell's variable or a
    ``printf`` format (``"password": "$PASSWORD"``), which is the way to pass
    a secret this warning asks for."""
    from taskdaemon.pipeline.redaction import secret_spans  # noqa: PLC0415 - as ``_secret``

    spans = secret_spans(command)
    if not any("$" not in command[a:b] and "%" not in command[a:b] for a, b in spans):
        return []
    message = (
        "holds what looks like a credential, which the file and every run's recorded "
        "definition then hold (read it from the environment instead: a command gets "
        "taskdaemon's, so export it and write $NAME)"
    )
    return [ValidationWarning(path, message, "secret-literal")]


def placed(
    warnings: list[ValidationWarning],
    text: str,
    lines_of: Callable[[list[str]], list[int | None]],
    source: str,
    used: Used | None = None,
    *,
    fmt: str,
) -> list[ValidationWarning]:
    """``warnings`` with their file, line and column, without those a comment of a ``yaml``
    or ``toml`` file suppresses (each comment that does is marked in ``used``, by its line and
    the warning's code).

    ``lines_of`` gives the line of each path (or of its nearest ancestor the file has). A
    warning is suppressed by ``# taskdaemon: ignore[CODE]`` on its own line, or on its stage's
    first line (the whole stage); ``ignore`` without codes suppresses every code. The column is
    that of the path's last key on its line, else the line's first character."""
    stage_paths = [warning.path.partition(".")[0] for warning in warnings]
    lines = lines_of([warning.path for warning in warnings] + stage_paths)
    comments = _comments_on(text, {at for at in lines if at is not None}, fmt)
    # The lines as the format counts them: TOML's at "\n" only (a U+2028 in its string is text).
    texts = text.split("\n") if fmt == "toml" else text.splitlines()
    kept = []
    for position, warning in enumerate(warnings):
        line, stage_line = lines[position], lines[len(warnings) + position]
        by = [at for at in (line, stage_line) if _ignores(comments, at, warning.code)]
        if by:
            if used is not None:
                used.comments.update((at, warning.code) for at in by if at is not None)
            continue
        column = None if line is None else _column(texts[line - 1], warning.path)
        kept.append(
            ValidationWarning(warning.path, warning.message, warning.code, source, line, column)
        )
    return kept


def comment_issues(text: str, source: str, fmt: str) -> list[ValidationIssue]:
    """An issue for each code of a ``# taskdaemon: ignore[...]`` comment of ``text`` (YAML or
    TOML: JSON has no comments) that names no warning, on its comment's line."""
    issues: list[ValidationIssue] = []
    for comment in ignore_comments(text, fmt):
        for code in comment.codes or ():
            # One issue past those shown says there are more (``ConfigError``), and no code
            # after it is looked up: each look-up is a "did you mean".
            reason = unknown_code(code) if code else None
            if reason is not None:
                issues.append(
                    ValidationIssue("", f"ignore comment: {reason}", source, comment.line)
                )
                if len(issues) > MAX_ISSUES:
                    break
        if len(issues) > MAX_ISSUES:
            break
    return issues


def _comments_on(text: str, lines: set[int], fmt: str) -> dict[int, list[tuple[str, ...] | None]]:
    """The codes of each ignore comment of ``text``, a file of format ``fmt``, on one of
    ``lines`` (None: a bare ``ignore``), read up to the last of them."""
    found: dict[int, list[tuple[str, ...] | None]] = {}
    last = max(lines, default=0)
    for comment in ignore_comments(text, fmt) if lines else ():
        if comment.line > last:
            break
        if comment.line in lines:
            found.setdefault(comment.line, []).append(comment.codes)
    return found


def _ignores(
    comments: dict[int, list[tuple[str, ...] | None]], line: int | None, code: str
) -> bool:
    """True if a comment on ``line`` suppresses the warnings of ``code``."""
    listed = comments.get(line, ()) if line is not None else ()
    return any(codes is None or code in codes for codes in listed)


def _column(text: str, path: str) -> int:
    """The 1-based column of the last of ``path``'s keys found on its line (``from`` in
    ``from: ...``, else the input's own name), or of the line's first character that is not a
    blank or a list's ``-``."""
    for key in reversed(re.split(r"[.\[]", path)):
        at = text.find(key) if key and not key.endswith("]") else -1
        if at >= 0:
            return at + 1
    return len(text) - len(text.lstrip(" \t-")) + 1
