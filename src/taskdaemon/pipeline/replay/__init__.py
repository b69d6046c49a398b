"""Replay rebuilt from stored spans: re-execute a recorded run, resume it from a stage, check
it for divergence, or step through it (docs/architecture.md, "Span schema versions").

Python API::

    from taskdaemon.pipeline.replay import replay

    outcome = replay(run_id, source="tempo+http://localhost:3200", from_stage="deploy",
                     verify=True)
    outcome.result      # the new run's RunResult (a new trace, linked to the original)
    outcome.report      # the DivergenceReport (None without verify)

Sources: every span source (``sqlite://``, ``tempo+http://``, ``jaeger+http://``,
``otlp-json://``, and a debug dump's ``dump://``).

Modules:

* ``record``: what a recorded run's spans say, in the form replay needs.
* ``plan``: what a replay runs again, what it feeds from the record, and what is missing.
* ``plan_values``: the values a replay hands its new run (the definition, the request, a
  fed stage's outputs and events), from the record or supplied, and each one missing.
* ``reuse``: which of a replay's reuse candidates is reused, decided as each instance starts.
* ``run``: executes a plan as a new run (a new trace) linked to the original.
* ``verify``: ``--verify``, the re-executed stages compared with the recorded ones.
* ``timeline``: the recorded run's state at any instant (time travel, nothing executed).
* ``walk``: a cursor over a recorded run's events, for ``replay RUN --step``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from typing import Any

from taskdaemon.pipeline.model import Pipeline
from taskdaemon.pipeline.replay.plan import ReplayError, ReplayPlan, build_plan
from taskdaemon.pipeline.replay.record import RecordedRun, read_recorded_run
from taskdaemon.pipeline.replay.run import ReplayOutcome
from taskdaemon.pipeline.replay.verify import DivergenceReport

__all__ = [
    "DivergenceReport",
    "RecordedRun",
    "ReplayError",
    "ReplayOutcome",
    "ReplayPlan",
    "build_plan",
    "load_recorded_run",
    "read_recorded_run",
    "replay",
    "replay_async",
]


def load_recorded_run(run_id: str, source: str | None = None) -> RecordedRun:
    """The recorded run ``run_id`` from the span source ``source`` (URL; default the
    configured one). ``RunNotFoundError`` / ``SpanSourceError`` from the source."""
    from taskdaemon.pipeline.tracking.sources import open_source  # noqa: PLC0415 - lazy

    opened = open_source(source)
    try:
        spans = opened.get_trace(run_id)
    finally:
        opened.close()
    try:
        return read_recorded_run(spans)
    except ValueError as error:
        raise ReplayError(f"run {run_id}: {error}") from None


async def replay_async(
    run_id: str,
    *,
    source: str | None = None,
    from_stage: str | None = None,
    verify: bool = False,
    pipeline: Pipeline | None = None,
    use_file: bool = False,
    inputs: Mapping[str, Any] | None = None,
    stage_outputs: Mapping[str, Any] | None = None,
    resolver: Any = None,
    monitor: Any = None,
    observers: Iterable[Any] = (),
    recorded: RecordedRun | None = None,
    workspace: str | None = None,
    rerun_all: bool = False,
) -> ReplayOutcome:
    """Replay ``run_id`` (see ``replay``) inside a running event loop."""
    from taskdaemon.pipeline.loops import LoopRegistry  # noqa: PLC0415 - lazy
    from taskdaemon.pipeline.monitor import PipelineMonitor  # noqa: PLC0415 - lazy
    from taskdaemon.pipeline.replay.run import (  # noqa: PLC0415 - lazy
        execute_plan,
        recorded_workspace,
    )

    if recorded is None:
        recorded = load_recorded_run(run_id, source)
    plan = build_plan(
        recorded,
        pipeline_file=pipeline,
        use_file=use_file,
        from_stage=from_stage,
        inputs=inputs,
        stage_outputs=stage_outputs,
        rerun_all=rerun_all,
    )
    return await execute_plan(
        plan,
        resolver=resolver if resolver is not None else LoopRegistry.default(),
        monitor=monitor if monitor is not None else PipelineMonitor(),
        observers=observers,
        verify=verify,
        workspace=workspace,
        seed_workspace=None if workspace is None else recorded_workspace(workspace, plan),
    )


def replay(
    run_id: str,
    *,
    source: str | None = None,
    from_stage: str | None = None,
    verify: bool = False,
    **options: Any,
) -> ReplayOutcome:
    """Replay the recorded run ``run_id`` as a new run and return its outcome.

    ``source``: span source URL (default ``TASKDAEMON_SPAN_SOURCE``); ``from_stage``: feed
    everything upstream from the record and run that stage and what follows; ``verify``:
    compare re-executed stages with the record (``outcome.report``). Options: ``pipeline``
    (a definition to use when it is the recorded one, or with ``use_file=True``), ``inputs``
    (request fields to supply), ``stage_outputs`` (stage → outputs to feed), ``resolver``,
    ``monitor`` (default: a ``PipelineMonitor`` on the global providers), ``observers``,
    ``workspace`` (the folder the replay's workspace is made in, as ``Engine(workspace=...)``;
    with ``from_stage``, the recorded run's folder there, when there, is copied into it first),
    ``rerun_all`` (with ``from_stage``, run again every instance of a stage some instances of
    did not succeed in, not only those: ``plan.py``).
    ``ReplayError`` names every value the replay needs that the spans lack.
    """
    return asyncio.run(
        replay_async(run_id, source=source, from_stage=from_stage, verify=verify, **options)
    )
