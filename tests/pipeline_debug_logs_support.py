"""What the stage log tests share: the ids every captured log record carries, and the
handlers their pipelines run (a pipeline imports its handlers' module, and a test file is
imported by pytest alone)."""

from __future__ import annotations

from typing import Any

from taskdaemon.pipeline.loops import StageContext

#: The ids on every record of a stage's captured output, in the order the tests read them.
IDS = ("run_id", "pipeline", "stage", "instance", "attempt", "trace_id", "span_id")


def flaky(ctx: StageContext) -> dict[str, Any]:
    """Fails its first attempt."""
    if ctx.attempt == 1:
        raise RuntimeError("first attempt fails")
    return {"done": True}


def noop(ctx: StageContext) -> dict[str, Any]:
    """Does nothing."""
    return {}
