"""The run's own loop (``engine/_run_base.py``): kept when the run is made, not asked for again.

asyncio's probe for the running loop is a ``getpid`` system call in CPython 3.11; the engine
asked it twice a stage (making the stage's task, and in its attempt)."""

from __future__ import annotations

import pytest

from loop_probe_support import probes_in_a_chain
from pipeline_engine_support import noop

pytestmark = pytest.mark.timeout(10)


async def test_a_stage_does_not_ask_asyncio_for_the_running_loop() -> None:
    """A chain of 21 async stages probes for the loop as often as a chain of 1: per run, not
    per stage (the run's ``loop``, read once when the run is made)."""
    assert await probes_in_a_chain(21, noop) == await probes_in_a_chain(1, noop)
