"""The control socket's ``debug`` op (``taskdaemon debug attach`` and ``debug
continue|step|skip``) for a run this process serves: each ``taskdaemon run``'s, and each run
``serve`` schedules, so the prompt reaches both alike.

One :class:`~taskdaemon.pipeline.debug_ops.DebugOps` per run, made at the first request: debug
mode goes on when someone first attaches, and the prompts attached to the run (and the
breakpoints each set, which its ``detach`` deletes) are known from one request to the next.
A run nobody debugs never imports it (start-up time).

:func:`end_breakpoints` deletes a run's breakpoints once it ended, for ``serve``, whose engine
outlives its runs: a ``taskdaemon run``'s end with its process.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from taskdaemon.pipeline.debug_ops import DebugOps
    from taskdaemon.pipeline.engine import Engine

__all__ = ["DebugOp", "debug_op", "end_breakpoints"]

DebugOp = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


def debug_op(engine: Engine, run_id: str, observers: Sequence[Any], registry: Any) -> DebugOp:
    """The ``debug`` op for run ``run_id`` of ``engine`` (``ControlServer``'s ``extra_ops``);
    its ``dump`` writes through ``observers`` (the monitor) with the metrics of the Prometheus
    ``registry`` (``cli/_dump_hook.py``), and its answers are redacted with the settings'
    ``TASKDAEMON_REDACT_PATTERNS``."""
    ops: list[DebugOps] = []

    async def debug(request: dict[str, Any]) -> dict[str, Any]:
        if not ops:
            from taskdaemon.pipeline.cli._dump_hook import dump_writer  # noqa: PLC0415
            from taskdaemon.pipeline.debug_ops import DebugOps  # noqa: PLC0415
            from taskdaemon.pipeline.settings import load_settings  # noqa: PLC0415

            ops.append(
                DebugOps(
                    engine,
                    run_id,
                    dump=dump_writer(engine, observers, registry),
                    redact_patterns=load_settings().redact_patterns,
                )
            )
        return await ops[0](request)

    return debug


def end_breakpoints(engine: Engine, run_id: str) -> int:
    """Delete the breakpoints that belong to run ``run_id`` (set from a prompt or the HTTP
    routes), once it ended; returns how many. Left in the engine's debug session, they were
    listed for a run that can no longer pause, and kept their stages' gates armed in every later
    run of a ``serve`` (``DebugSession.may_pause``). Debug mode is not turned on for it."""
    session = engine._debugger
    if session is None:
        return 0
    session.attended.pop(run_id, None)
    ended = [bp.id for bp in session.breakpoints() if bp.run_id == run_id]
    for number in ended:
        session.delete_breakpoint(number)
    return len(ended)
