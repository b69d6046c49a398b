"""How often a run asks asyncio for the running loop: ``asyncio.get_running_loop()`` is a
``getpid`` system call in CPython 3.11, so the engine's per-stage path should not ask it."""

from __future__ import annotations

import _asyncio
import itertools
import sys
from collections.abc import Sequence
from types import FrameType
from typing import Any

from pipeline_engine_support import Resolver, after, pipeline, stage
from taskdaemon.pipeline.engine import Engine
from taskdaemon.pipeline.events import EngineObserver
from taskdaemon.pipeline.loops import Handler
from taskdaemon.pipeline.state import RunStatus

_PROBES = (_asyncio.get_running_loop, _asyncio._get_running_loop)


async def probes_in_a_chain(
    length: int, handler: Handler, observers: Sequence[EngineObserver] = ()
) -> int:
    """How many times the loop thread's Python code called asyncio's running-loop probe while
    the engine, with ``observers``, ran a chain of ``length`` stages of ``handler`` (which must
    succeed)."""
    names = [f"s{i}" for i in range(length)]
    stages = [stage(names[0])] + [stage(n, *after(p)) for p, n in itertools.pairwise(names)]
    calls = 0

    def profile(frame: FrameType, event: str, arg: Any) -> None:
        nonlocal calls
        if event == "c_call" and any(arg is probe for probe in _PROBES):
            calls += 1

    resolver = Resolver(dict.fromkeys(names, handler))
    async with Engine(resolver=resolver, observers=list(observers)) as engine:
        sys.setprofile(profile)
        try:
            result = await engine.run(pipeline(*stages))
        finally:
            sys.setprofile(None)
    assert result.status is RunStatus.SUCCESS
    return calls
