"""Breakpoints from the command line: ``--break STAGE[:CEL]``, ``--break-on-failure`` and
``TASKDAEMON_BREAKPOINTS``, shared by ``taskdaemon run``, ``taskdaemon debug`` and ``taskdaemon
serve --pipeline`` (apart from the command modules, so that none imports another)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

from taskdaemon.pipeline.errors import PipelineError
from taskdaemon.pipeline.quoting import quote
from taskdaemon.pipeline.terminal_text import shown

if TYPE_CHECKING:
    from taskdaemon.pipeline.engine import Breakpoint, DebugSession
    from taskdaemon.pipeline.model import Pipeline

__all__ = ["add_break_options", "apply_breakpoints", "checked_breakpoints", "parse_breakpoint"]


def add_break_options(parser: argparse.ArgumentParser) -> None:
    """``--break`` and ``--break-on-failure`` (``debug`` and ``run`` share them)."""
    parser.add_argument(
        "--break",
        dest="breaks",
        action="append",
        default=[],
        metavar="STAGE[:CEL]",
        help="pause before STAGE starts (when the CEL condition holds); repeatable",
    )
    parser.add_argument(
        "--break-on-failure",
        action="store_true",
        help="pause a stage after it fails, before the error strategy acts",
    )


def parse_breakpoint(
    spec: str, stages: Sequence[str], origin: str = "--break"
) -> tuple[str, str | None]:
    """``STAGE[:CEL]`` -> (stage, condition); ValueError with a one-line reason."""
    stage, sep, when = spec.partition(":")
    stage = stage.strip()
    quoted = quote(spec)  # an environment variable may hold megabytes
    if not stage:  # "no stage ''" read as if a stage called '' had been looked for
        raise ValueError(f"{origin} {quoted}: a stage name is needed (stages: {', '.join(stages)})")
    if stage not in stages:
        raise ValueError(
            f"{origin} {quoted}: no stage {quote(stage)} (stages: {', '.join(stages)})"
        )
    when = when.strip()
    if sep and not when:
        raise ValueError(f"{origin} {quoted}: empty condition after ':'")
    return stage, when or None


def apply_breakpoints(
    session: DebugSession, pipeline: Pipeline, args: argparse.Namespace, env: str
) -> int:
    """Set the breakpoints of ``--break``, ``--break-on-failure`` and ``env``
    (``TASKDAEMON_BREAKPOINTS``) on ``session`` for ``pipeline``; returns how many.
    ValueError (one line) for a bad one."""
    specs = [("TASKDAEMON_BREAKPOINTS", s.strip()) for s in env.split(";") if s.strip()]
    specs += [("--break", s) for s in getattr(args, "breaks", [])]
    from taskdaemon.pipeline.engine._debug_match import MAX_BREAKPOINTS  # noqa: PLC0415

    wanted = len(specs) + bool(getattr(args, "break_on_failure", False))
    if wanted > MAX_BREAKPOINTS:  # said before a condition is compiled
        raise ValueError(
            f"{wanted} breakpoints (--break, --break-on-failure and TASKDAEMON_BREAKPOINTS): "
            f"at most {MAX_BREAKPOINTS}"
        )
    stages = list(pipeline.stage_map)
    count = 0
    for origin, spec in specs:
        stage, when = parse_breakpoint(spec, stages, origin)
        try:
            if when is not None:  # the check the prompt's ``break`` makes too
                from taskdaemon.pipeline.debug_ops import check_condition  # noqa: PLC0415

                check_condition(pipeline, stage, when, "start")
            session.set_breakpoint(stage, when, pipeline=pipeline.name)
        except PipelineError as exc:
            # The CEL parser's message quotes the condition raw: an escape sequence in it
            # (TASKDAEMON_BREAKPOINTS may come from anywhere) would drive the terminal.
            raise ValueError(shown(f"{origin} {quote(spec)}: {exc}")) from None
        count += 1
    if getattr(args, "break_on_failure", False):
        session.set_breakpoint(None, on="failure", pipeline=pipeline.name)
        count += 1
    return count


def checked_breakpoints(pipeline: Pipeline, args: argparse.Namespace, env: str) -> list[Breakpoint]:
    """The breakpoints :func:`apply_breakpoints` would set, checked (ValueError, one line) on a
    session of no engine: ``serve`` refuses a bad one before it serves anything, and sets them
    on its engine's session once that engine is made."""
    from taskdaemon.pipeline.engine import DebugSession  # noqa: PLC0415

    probe = DebugSession(cast("Any", None))  # setting a breakpoint never reaches the engine
    apply_breakpoints(probe, pipeline, args, env)
    return probe.breakpoints()
