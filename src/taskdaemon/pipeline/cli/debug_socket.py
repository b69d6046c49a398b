"""The control socket's ``debug`` op (``taskdaemon debug attach`` and ``debug
continue|step|skip``) for a run this process serves: each ``taskdaemon run``'s, and each run
``serve`` schedules, so the prompt reaches both alike.

One :class:`~taskdaemon.pipeline.debug_ops.DebugOps` per run, made at the first request: debug
mode goes on when someone first attaches, and the prompts attached to the run (and the
breakpoints each set, which its ``detach`` deletes) are known from one request to the next.
A run nobody debugs never imports it (start-up time).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from taskdaemon.pipeline.debug_ops import DebugOps
    from taskdaemon.pipeline.engine import Engine

__all__ = ["DebugOp", "debug_op"]

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
