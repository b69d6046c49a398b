"""``taskdaemon replay RUN --break STAGE[:CEL] / --break-on-failure``: the replay under the
debugger's prompt, in this terminal, as ``debug FILE`` runs a file.

A user replaying a failure wants to stop where it failed and look: at the stage before it
starts (its inputs, as the record's fed stages hand them on), or after it fails, before the
error strategy acts. The breakpoints are ``debug``'s (``cli/breakpoints.py``: the same
``STAGE[:CEL]`` syntax, and ``TASKDAEMON_BREAKPOINTS``), and so is everything else:
``debug.prompt_over`` drives the prompt (history, completion, ``help``, one command a line
on a pipe, the end of the input resuming the run, ``quit`` cancelling it; Ctrl-C, SIGTERM and
SIGHUP cancelling it, exit 130, 143, 129), and the run is served on its control socket, so
``debug attach RUN`` from another terminal drives the same replay. What the replay runs,
feeds and reuses is the plan's (``replay/plan.py``): a fed stage or a reused instance never
runs, so it never pauses, not even in step mode (``DebugSession.never_held``: there is no
work of it to look at, its span is ``replayed``), and ``where`` shows it ``replayed`` or
``reused``, from the original run (``DebugSession.replay``), not ``success`` as if it ran; a
stage run again pauses as in any run. The replay's own run (``replay.execute_replay``) runs
on this module's thread (``debug.RunThread``), the prompt on the main one.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from taskdaemon.pipeline.cli.breakpoints import apply_breakpoints
from taskdaemon.pipeline.cli.debug import RunThread, debug_server, prompt_over
from taskdaemon.pipeline.errors import PipelineError

__all__ = ["replay_at_prompt"]


def replay_at_prompt(
    args: argparse.Namespace, plan: Any, env: str, execute: Callable[..., Awaitable[int]]
) -> int:
    """Run the checked ``plan`` under the prompt, with the breakpoints of ``args`` and ``env``
    (``TASKDAEMON_BREAKPOINTS``); the replay's exit code. ``execute``: ``replay``'s
    ``execute_replay``, given here (this module is that one's, not the other way round)."""
    return prompt_over("replay", lambda: _ReplayThread(args, plan, env, execute))


class _ReplayThread(RunThread):
    """The replay's event loop, running its one run and serving its control socket until the
    prompt is done with it (``RunThread``'s contract)."""

    def __init__(
        self,
        args: argparse.Namespace,
        plan: Any,
        env: str,
        execute: Callable[..., Awaitable[int]],
    ) -> None:
        super().__init__(args, plan.pipeline, plan.request, None, Path(), env)
        self._plan = plan
        self._execute = execute
        self._server: Any = None
        self._serving: asyncio.Future[None] | None = None

    async def _main(self) -> None:
        self.code = await self._execute(self._args, self._plan, debugged=self)

    def hooks(self, monitoring: Any) -> dict[str, Any]:
        """``execute_plan``'s ``prepare``, ``started`` and ``ended`` for this run."""

        def prepare(engine: Any, hook: Any) -> None:
            session = engine.with_debug(True)
            session.never_held = hook.never_held
            session.replay = hook  # ``where`` shows fed and reused executions as such
            apply_breakpoints(session, self._plan.pipeline, self._args, self._env)

        def started(engine: Any, handle: Any) -> None:
            from taskdaemon.pipeline.cli._dump_hook import (  # noqa: PLC0415
                dump_signal_handler,
                dump_writer,
            )

            writer = dump_writer(engine, monitoring.observers, definition=self._plan.pipeline)
            self._loop, self._handle = asyncio.get_running_loop(), handle
            self._dump = dump_signal_handler(engine, writer)
            self._serving = asyncio.ensure_future(self._serve(engine, handle, writer))

        return {"prepare": prepare, "started": started, "ended": self._ended}

    async def _serve(self, engine: Any, handle: Any, writer: Any) -> None:
        """Serve the run's control socket with the debug ops, then let the prompt start."""
        try:
            self._server = await debug_server(engine, handle, writer)
        except (OSError, PipelineError) as error:  # no prompt can reach the run: it stops
            self.error = f"no control socket for run {handle.run_id}: {error}"
            handle.cancel(self.error)
        else:
            self.run_id = handle.run_id
        finally:
            self._ready.set()

    async def _ended(self, result: Any) -> None:
        """The run ended: stored as ended, then kept served until the prompt is done with it
        (``finish``), as ``debug FILE``'s run is."""
        from taskdaemon.pipeline.cli.ended_runs import store_run_end  # noqa: PLC0415

        await store_run_end(result.run_id)
        if self._serving is not None:
            await self._serving
        if self._server is None:
            return
        try:
            await asyncio.get_running_loop().run_in_executor(None, self._finished.wait)
        finally:
            with contextlib.suppress(OSError):
                await self._server.aclose()
