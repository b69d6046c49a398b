"""A sync handler runs off the loop's thread on every call, however quick its earlier calls were.

The promises an inline fast path (a handler that proved quick called on the loop's thread)
would break, each measured on such a tree (benchmarks/README.md, inline59's section): a sync
handler that calls ``asyncio.run()`` failed on its first call made on the loop's thread, and
Ctrl-C waited for a call that turned long instead of ending the run at once. The same
handler runs every stage of a long chain here, so a tree that learnt from a handler's earlier
calls would be caught.
"""

from __future__ import annotations

import asyncio
import signal
import threading
from pathlib import Path
from typing import Any

import pytest

from cli_support import ended_at_exit, in_background, line_with, pythonpath_with, write
from taskdaemon.pipeline.engine import Engine
from taskdaemon.pipeline.loops import StageContext, python_handler
from taskdaemon.pipeline.model import Manual, OnCompletion, Pipeline, Stage
from taskdaemon.pipeline.state import RunStatus

#: Stages in a chain: far more calls of one handler than any "proved quick" count would need.
CHAIN = 60


def _chain(name: str) -> Pipeline:
    return Pipeline(
        name=name,
        stages=tuple(
            Stage(
                name=f"s{i}",
                loop="python",
                triggers=(Manual(),) if i == 0 else (OnCompletion(stage=f"s{i - 1}"),),
            )
            for i in range(CHAIN)
        ),
    )


class OneHandler:
    """Resolves every stage to the same wrapped handler, as the ``python`` loop type's
    registry does for stages naming the same ``module:function``."""

    def __init__(self, handler: Any) -> None:
        self.handler = python_handler(handler)

    def resolve(self, pipeline: Pipeline, stage: Stage) -> Any:
        return self.handler


async def test_a_quick_sync_handler_that_runs_its_own_loop_works_on_every_call() -> None:
    """Each of the chain's calls runs ``asyncio.run()`` of its own and returns its answer, on a
    thread other than the loop's: on the loop's thread ``asyncio.run`` refuses to start."""
    threads: list[str] = []

    async def answer(stage: str) -> str:
        await asyncio.sleep(0)
        return stage

    def handler(ctx: StageContext) -> dict[str, str]:
        threads.append(threading.current_thread().name)
        return {"answer": asyncio.run(answer(ctx.stage))}

    async with Engine(resolver=OneHandler(handler)) as engine:
        result = await engine.run(_chain("own-loop"))
    assert RunStatus.SUCCESS == result.status, result.error
    assert [f"s{i}" for i in range(CHAIN)] == [
        result.outputs[f"s{i}"]["answer"] for i in range(CHAIN)
    ]
    loop_thread = threading.current_thread().name
    assert CHAIN == len(threads)
    assert loop_thread not in threads


_TURNS_LONG = """\
import time


def work(ctx):
    if ctx.stage == "s{long}":
        print("turned long", flush=True)
        time.sleep(600)
    return None
"""


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["int", "term"])
def test_a_signal_ends_a_run_at_once_when_a_quick_sync_handler_turns_long(
    home: Path, tmp_path: Path, signum: int
) -> None:
    """A chain of one sync handler, quick for most of the chain, then sleeping ten minutes:
    SIGINT or SIGTERM cancels the run and the process exits with 128 + the signal while the
    call still sleeps (its thread is left to end with the process), not ten minutes later."""
    write(tmp_path / "turns_long.py", _TURNS_LONG.format(long=CHAIN - 10))
    lines = ["name: turns-long", "stages:"]
    for i in range(CHAIN):
        lines += [f"  - name: s{i}", "    handler: turns_long:work", "    triggers:"]
        lines.append(
            "      - manual: {approval_required: false}"
            if i == 0
            else f"      - on_completion: {{stage: s{i - 1}}}"
        )
    pipeline = write(tmp_path / "turns-long.yaml", "\n".join(lines) + "\n")
    process = in_background(home, "run", "-q", str(pipeline), PYTHONPATH=pythonpath_with(tmp_path))
    with ended_at_exit(process):
        line_with(process.stdout, "turned long")
        process.send_signal(signum)
        # Far less than the call's sleep: a process that waits for the call times out here.
        process.wait(timeout=60)
    assert 128 + signum == process.returncode
