"""Breakpoints made from a request and matched against a run's moments.

A request's ``on`` and ``when`` are checked and compiled once, when the breakpoint is made
(:func:`new_breakpoint`); then :func:`first_match` finds the breakpoint a stage meets: one of
its kind, for that stage (or every stage), of the run's pipeline or of the run itself
(:func:`applies`), whose condition holds (:func:`holds`: an evaluation error, or a value that
is not a bool, counts as false and is kept on the breakpoint). The session that pauses on a
match is ``engine/_debug.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Final

from taskdaemon.pipeline.engine._debug_records import FAILURE, START, Breakpoint
from taskdaemon.pipeline.errors import DebugRequestError, ExpressionError
from taskdaemon.pipeline.expressions import BREAKPOINT_VARIABLES, compile_expression
from taskdaemon.pipeline.quoting import quote, quote_value

if TYPE_CHECKING:
    from taskdaemon.pipeline.engine._run_base import RunBase

__all__ = ["MAX_BREAKPOINTS", "applies", "first_match", "holds", "new_breakpoint"]

#: The most breakpoints a session keeps. A person sets a handful, and pausing at every stage is
#: step mode; each stage a run gates is matched against all of them, and each one a session
#: sets goes over those it has (``DebugSession._rearm``), so the time to set them grew with the
#: square of their count, and ``TASKDAEMON_BREAKPOINTS='b;b;…'`` holds tens of thousands. One
#: more is refused in one line (delete one first), from every place that sets one.
MAX_BREAKPOINTS: Final = 256


def new_breakpoint(  # noqa: PLR0917 - the fields of a breakpoint, in its order
    ident: int,
    stage: str | None,
    when: str | None,
    on: str,
    pipeline: str | None,
    run_id: str | None,
) -> Breakpoint:
    """Breakpoint ``ident`` with its condition compiled; DebugRequestError for a bad ``on`` or
    ``when``."""
    if on not in (START, FAILURE) and not (on.startswith("event:") and len(on) > 6):
        raise DebugRequestError(
            f"breakpoint 'on' must be start, failure or event:TYPE, not {quote(on)}"
        )
    expression = None
    if when:
        try:
            expression = compile_expression(when, BREAKPOINT_VARIABLES)
        except ExpressionError as exc:
            message = f"breakpoint condition {quote(when)}: {exc}"
            raise DebugRequestError(message) from None
    bp = Breakpoint(ident, stage, on, when or None, pipeline, run_id)
    bp._expression = expression
    return bp


def applies(bp: Breakpoint, run: RunBase) -> bool:
    """Whether ``bp`` can apply to ``run``: the run's own (by id prefix), else its pipeline's
    or every pipeline's."""
    if bp.run_id is not None:
        return run.run_id.startswith(bp.run_id)
    return bp.pipeline is None or bp.pipeline == run.name


def holds(bp: Breakpoint, context: Mapping[str, Any]) -> bool:
    """Whether ``bp``'s condition holds over ``context`` (always, without one)."""
    expression = bp._expression
    if expression is None:
        return True
    try:
        value = expression.evaluate({k: context[k] for k in expression.variables})
    except ExpressionError as exc:
        bp.last_error = str(exc)
        return False
    if not isinstance(value, bool):
        bp.last_error = f"{quote(bp.when or '')} gave {quote_value(value)}, not a bool"
        return False
    return value


def first_match(
    breakpoints: Iterable[Breakpoint],
    run: RunBase,
    stage: str,
    kind: str,
    context: Callable[[], Mapping[str, Any]],
) -> Breakpoint | None:
    """The first breakpoint of ``kind`` for ``stage`` that holds, its hit counted; the
    condition's context is built only for a candidate (most stages have none: the no-hit path
    stays cheap)."""
    for bp in breakpoints:
        if bp.on != kind or (bp.stage is not None and bp.stage != stage):
            continue
        if applies(bp, run) and holds(bp, context()):
            bp.hits += 1
            return bp
    return None
