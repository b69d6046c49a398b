"""Live DAG snapshots of a run in another process: ``watch_stored_run`` polls a span source.

``DagWatcher`` follows a run through the engine's events, so it only sees runs of its own
process. A server or terminal view in another process reads the spans instead: the embedded
store has a running run's spans within its writer's flush interval, and rewrites open spans as
they gain events (an approval a stage waits for shows as ``waiting``). Tempo and Jaeger have a
run's spans only once each ended, so a remote source shows finished stages as they finish.

Each poll runs the source's blocking ``get_run`` in a daemon thread of its own
(``_source_poll``: a poll a silent remote source never answers does not hold Ctrl-C up to
``TASKDAEMON_SOURCE_TIMEOUT``); a snapshot is yielded
only when the rebuilt run differs from the last one yielded. The stream ends after the snapshot
that shows the run no longer running (finished, or ``interrupted`` when its writer died).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Protocol

from taskdaemon.pipeline.errors import RunNotFoundError
from taskdaemon.pipeline.model import Pipeline
from taskdaemon.pipeline.records import RunRecord
from taskdaemon.pipeline.visualization._snapshot import DagSnapshot, dag_snapshot
from taskdaemon.pipeline.visualization._source_poll import source_call

__all__ = ["watch_stored_run"]


class _RunSource(Protocol):
    def get_run(self, run_id: str) -> RunRecord: ...


async def watch_stored_run(
    source: _RunSource,
    run_id: str,
    *,
    pipeline: Pipeline | None = None,
    interval: float = 0.5,
    appear_timeout: float = 30.0,
) -> AsyncIterator[DagSnapshot]:
    """Yield a snapshot of ``run_id`` as ``source`` (any span source: ``open_source(url)``)
    has it, then one after each change, until the run is no longer running.

    ``pipeline``: the definition to draw the run over (else the DAG comes from the spans
    alone). ``interval``: seconds between polls. A run the source does not have yet (it was
    just started, or the first batch is not written) is polled for until ``appear_timeout``
    seconds have passed, then RunNotFoundError is raised.
    """
    deadline = time.monotonic() + appear_timeout
    last: RunRecord | None = None
    while True:
        try:
            run = await source_call(source.get_run, run_id)  # Ctrl-C need not wait
        except RunNotFoundError:
            if last is not None or time.monotonic() > deadline:
                raise
        else:
            if run != last:
                last = run
                yield dag_snapshot(pipeline, run)
            if run.status != "running":
                return
        await asyncio.sleep(interval)
