"""Every exception taskdaemon raises on purpose, in one place, and the error wording that
several front ends share."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Final

from taskdaemon.pipeline.ellipsis import cut
from taskdaemon.pipeline.frozen import frozen
from taskdaemon.pipeline.quoting import quote
from taskdaemon.pipeline.value_methods import ValueMethods
from taskdaemon.pipeline.wording import close_match, quote_meant

__all__ = [
    "ERROR_MAX_CHARS",
    "REDACTION_REACH",
    "SHOWN_PATH",
    "STACKTRACE_MAX_CHARS",
    "ApprovalError",
    "ConfigError",
    "DebugRequestError",
    "ExpressionError",
    "HandlerImportError",
    "InvalidTransitionError",
    "LoopTypeError",
    "PipelineError",
    "RunNotFoundError",
    "SettingsError",
    "SpanSourceError",
    "SpanSourceURLError",
    "SpanStoreError",
    "StageFailedError",
    "StageNotFoundError",
    "StageTimeoutError",
    "TaskdaemonError",
    "ValidationIssue",
    "bounded_text",
    "exception_text",
    "no_such_stage",
    "redacted_bounded_text",
    "stage_meant",
    "stages_named",
]

#: Stage names an unknown-stage error lists (one line, whatever the run's size).
NAMED_STAGES = 20
#: Stages an unknown stage's "did you mean" is looked for among: a stored run may have 100,000
#: stages of 128 characters alike; past the bound, no hint. ``wording.close_match`` bounds the
#: name's length and the comparisons' work itself (one comparison can cost many times the
#: product of the two lengths); this bound spares even sorting that many candidates.
CLOSE_STAGES: Final = 1000
#: Characters of an issue's field path shown: a path holds the file's keys as written, and an
#: unknown key of 80,000 characters was an 80 KB line (a real path is far shorter).
SHOWN_PATH: Final = 300


class TaskdaemonError(Exception):
    """Base class of every error taskdaemon raises on purpose."""


@frozen
class ValidationIssue(ValueMethods):
    """One problem in a pipeline definition: where it is and why it is wrong.

    ``path`` is the field path in the canonical form (``stages[2].triggers[0].on_event.type``);
    ``line`` is the 1-based line in the file when the loader knows it. ``value_at`` is the
    1-based line and column inside the field's value where the problem is (a CEL expression's
    syntax error): a TOML or YAML file's loader places the issue on the file's line of it
    (``toml_lines.toml_value_lines``, ``yaml_places.yaml_value_lines``), which a value spread
    over lines moves; JSON on the field's. ``column`` is the 1-based column in the file where
    the loader knows exactly where the problem is (that place inside a value, or the alias that
    gives the field its value), printed as compilers print it, ``FILE:LINE:COLUMN:``, which
    editors open at; else None, and ``FILE:LINE:`` is printed (docs/validation.md).
    """

    path: str
    message: str
    file: str | None = None
    line: int | None = None
    value_at: tuple[int, int] | None = None
    column: int | None = None

    def __str__(self) -> str:
        where = self.file or "<pipeline>"
        if self.line is not None:
            where = f"{where}:{self.line}"
            if self.column is not None:
                where = f"{where}:{self.column}"
        if not self.path:
            return f"{where}: {self.message}"
        return f"{where}: {cut(self.path, SHOWN_PATH)}: {self.message}"


#: Issues one pipeline file reports at most. The readers stop collecting one past it, and
#: ``ConfigError`` says more were not shown: a hostile 16 MiB file of one-character stages
#: (``stages: [a,a,...]``) would otherwise hold millions of issues and their lines in memory,
#: and no reader of its output needs more than the first thousand.
MAX_ISSUES: Final = 1000


class ConfigError(TaskdaemonError):
    """Raised when a pipeline file or definition is invalid; carries every issue found, or the
    first ``MAX_ISSUES`` of them and one that says more were not shown."""

    def __init__(self, issues: list[ValidationIssue] | tuple[ValidationIssue, ...]) -> None:
        if len(issues) > MAX_ISSUES:
            more = ValidationIssue(
                "", f"more issues not shown (at most {MAX_ISSUES} are)", file=issues[0].file
            )
            issues = (*issues[:MAX_ISSUES], more)
        self.issues = tuple(issues)
        super().__init__("\n".join(str(issue) for issue in self.issues))


class PipelineError(TaskdaemonError):
    """Raised when the engine is asked for what a run cannot do (unknown stage, closed run)."""


class RunNotFoundError(PipelineError):
    """Raised when a run id names no run known to the engine or the span source."""


class StageNotFoundError(PipelineError):
    """Raised when a command names a stage its run's pipeline does not have (HTTP 404)."""


class DebugRequestError(PipelineError):
    """Raised when a debugger request is malformed: an unknown action, a field missing or of
    the wrong type, an input the stage does not have, a breakpoint ``on`` or ``when`` that is
    not one (HTTP 400; the control socket answers it as any refusal)."""


class ApprovalError(PipelineError):
    """Raised when an approval names a stage that is not waiting for one."""


class InvalidTransitionError(PipelineError):
    """Raised when a run or stage is asked to move to a state its state machine forbids."""


class SpanSourceError(TaskdaemonError):
    """Raised when a span source cannot answer: backend unreachable, HTTP error, malformed body,
    unreadable file, or an unknown source URL."""


class SpanStoreError(SpanSourceError):
    """An embedded span store that cannot be opened or used as one (no database, a foreign or
    newer schema, a file this user cannot write or read safely). Its message starts with the
    file's path and says it is about a span store, so a caller shows it as it is, with no
    prefix naming the source again (the web page's 502s)."""


class SpanSourceURLError(SpanSourceError):
    """A span source URL that names no source: an unknown scheme, no host, a bad port, no
    path. The command line's mistake (exit 2), where a source that cannot answer is exit 1."""


class ExpressionError(TaskdaemonError):
    """Raised when a CEL expression does not compile or cannot be evaluated. ``said``: a
    parser's error in plain words (``cel_syntax``), kept so that nobody compiles the expression
    again to say it (the binding's text of a long broken line is long to make)."""

    said: str | None = None


class LoopTypeError(TaskdaemonError):
    """Raised when a loop type cannot be resolved to a handler (bad module:function, no command)."""


class HandlerImportError(LoopTypeError):
    """A Python handler's module failed to import. Every stage whose handler lives in that
    module fails alike, so front ends report it once per module: ``module`` (``pkg.mod``),
    ``cause`` (``ModuleNotFoundError: No module named 'pkg'``) and ``missing``, the name a
    ``ModuleNotFoundError`` could not find (None for any other failure)."""

    def __init__(self, message: str, *, module: str, cause: str, missing: str | None) -> None:
        super().__init__(message)
        self.module = module
        self.cause = cause
        self.missing = missing


class SettingsError(TaskdaemonError):
    """Raised when a ``TASKDAEMON_*`` or ``OTEL_*`` setting is invalid; names each variable, why."""

    def __init__(self, problems: list[tuple[str, str]] | tuple[tuple[str, str], ...]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(f"{name}: {reason}" for name, reason in self.problems))


class StageFailedError(TaskdaemonError):
    """Raised by the built-in loop types when a stage's work failed (non-zero exit, bad output)."""


class StageTimeoutError(TaskdaemonError):
    """Raised by a handler whose own deadline passed: the engine ends its attempt ``timeout``,
    as when the stage's ``timeout`` expires (a replay's stand-in for a recorded timeout)."""


def no_such_stage(stage: str, stages: Sequence[str]) -> str:
    """``has no stage 'x' (its stages: a, b and 3 more)``: what ``taskdaemon logs --stage`` and
    the web page's log routes say of a stage the run does not have, after naming the run; at
    most :data:`NAMED_STAGES` names, so a typo is one line however large the run; then
    :func:`stage_meant`."""
    named = stages_named(stages)
    return f"has no stage {quote(stage)} (its stages: {named}){stage_meant(stage, stages)}"


def stages_named(stages: Sequence[str]) -> str:
    """``a, b and 3 more``: at most :data:`NAMED_STAGES` of ``stages``, then a count."""
    named = ", ".join(stages[:NAMED_STAGES])
    if len(stages) > NAMED_STAGES:
        named += f" and {len(stages) - NAMED_STAGES} more"
    return named


def stage_meant(stage: str, stages: Sequence[str]) -> str:
    """``; did you mean 'implementation'?`` for a wrong ``stage`` close to one of ``stages``,
    else nothing: the rule of a definition's wrong stage names (``wording.close_match``) for
    a stage named on the command line or in a URL (``logs --stage``, ``replay --from``),
    looked up among at most :data:`CLOSE_STAGES`."""
    if len(stages) > CLOSE_STAGES:
        return ""
    close = close_match(stage, stages)
    return f"; did you mean {quote_meant(close[0])}?" if close else ""


#: Characters of a failed attempt's error message that are kept (``bounded_text``): a handler's
#: message reaches the run's result, every span, log record, view and report of it, and the
#: skip reason of each stage its failure stopped, so a 10 MB one would be stored many times.
ERROR_MAX_CHARS: Final = 8192

#: The same bound for a recorded stack trace, which repeats the message.
STACKTRACE_MAX_CHARS: Final = 65536


def exception_text(error: object) -> str:
    """``str(error)``, or ``<Type: str() failed>`` when its ``__str__`` raises (a handler's
    exception, or a value it returned, is anyone's code: failing to describe it must not fail
    the engine, nor a payload's capture)."""
    try:
        return str(error)
    except Exception:
        return f"<{type(error).__qualname__}: str() failed>"


def bounded_text(text: str, limit: int = ERROR_MAX_CHARS) -> str:
    """``text``, or when longer than ``limit`` its first and last ``limit // 2`` characters
    around ``…[N characters cut]…``. Cut after redaction, never before: a cut must not leave a
    part of a secret that redaction would no longer recognise."""
    if len(text) <= limit:
        return text
    half = limit // 2
    return f"{text[:half]}…[{len(text) - 2 * half} characters cut]…{text[len(text) - half :]}"


#: How far past a kept end of a long text :func:`redacted_bounded_text` still redacts: longer
#: than any secret the shapes of ``redaction`` find (an 8192-bit RSA key's PEM is about 6,500
#: characters), so that a secret that reaches into a kept end lies whole in what is redacted.
REDACTION_REACH: Final = 65536


def redacted_bounded_text(
    text: str, redact: Callable[[str], str], limit: int = ERROR_MAX_CHARS
) -> str:
    """``bounded_text(redact(text), limit)``, but for a long ``text`` only its two ends are
    redacted: each kept end with :data:`REDACTION_REACH` more characters beyond it, so a secret
    cut there is still redacted whole, and the cut counts the characters of ``text``. A handler's
    exception whose ``__str__`` returns 50 MB was redacted whole, in copies as large, at each of
    the three places that described it."""
    half = limit // 2
    window = half + REDACTION_REACH
    if len(text) <= 2 * window:
        return bounded_text(redact(text), limit)
    head = redact(text[:window])[:half]
    tail = redact(text[len(text) - window :])
    return f"{head}…[{len(text) - 2 * half} characters cut]…{tail[max(len(tail) - half, 0) :]}"
