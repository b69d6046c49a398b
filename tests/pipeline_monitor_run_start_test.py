"""A run starts at one moment everywhere: the engine's ``started_at``, ``RunStarted.at``, the
run span's start, and so ``/api/runs``, ``/api/runs/{id}``, ``runs show`` and every duration.

The engine reads its clock once, before the run is named, and hands that moment to
``allocate_run_id`` (``at=``); the monitor starts the run span there. A hook of the first form
of the protocol, ``allocate_run_id(pipeline, request)``, is still called with two arguments.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from pathlib import Path
from typing import Any

import pytest

from pipeline_monitor_support import Telemetry
from taskdaemon.pipeline.config import parse_pipeline
from taskdaemon.pipeline.engine import Engine
from taskdaemon.pipeline.events import EngineEvent, RunStarted
from taskdaemon.pipeline.monitor._spans import ns
from taskdaemon.pipeline.tracking.spans import epoch_seconds

ONE_STAGE = """\
name: one
stages:
  - {name: a, command: "true", triggers: [{manual: {approval_required: false}}]}
"""
#: A token for the served API (16+ characters), given to ``serve`` in its environment.
TOKEN = "run-start-test-token-0123456789"


class Starts:
    """An observer keeping every ``RunStarted``."""

    def __init__(self) -> None:
        self.seen: list[RunStarted] = []

    def on_event(self, event: EngineEvent) -> None:
        """Keep the run starts."""
        if isinstance(event, RunStarted):
            self.seen.append(event)


async def test_the_run_span_starts_when_the_engine_says_the_run_started() -> None:
    """With a clock that moves on every read, shared by engine and monitor, the run span's
    start, ``RunStarted.at`` and the result's ``started_at`` are one value: the monitor no
    longer reads a clock of its own before the engine reads its own."""
    ticks = itertools.count(1_796_327_191_000, 7)
    clock = lambda: next(ticks) / 1000.0  # noqa: E731 (one read, one tick of 7 ms)
    telemetry = Telemetry()
    starts = Starts()
    try:
        monitor = telemetry.monitor(clock=clock)
        engine = Engine(observers=[monitor, starts], clock=clock)
        result = await engine.run(parse_pipeline(ONE_STAGE))
        monitor.flush()
        (run_span,) = telemetry.by_name("RUN one")
    finally:
        telemetry.shutdown()
    expected = (ns(result.started_at), result.started_at)
    assert expected == (run_span.start_time, starts.seen[0].at)


async def test_an_allocate_hook_of_either_form_names_the_run_and_only_the_new_gets_at() -> None:
    """A hook ``(pipeline, request)`` is called as it was; one that takes ``at`` (by name or
    through ``**kwargs``) gets the run's start, the value its ``RunStarted.at`` carries."""
    calls: list[tuple[str, Any]] = []

    class OldForm(Starts):
        def allocate_run_id(self, pipeline: Any, request: Any) -> str | None:
            calls.append(("old", None))
            return None

    class ByName(Starts):
        def allocate_run_id(self, pipeline: Any, request: Any, *, at: float = 0.0) -> None:
            calls.append(("by name", at))

    class ByKeywords(Starts):
        def allocate_run_id(self, pipeline: Any, request: Any, **options: Any) -> str:
            calls.append(("**kwargs", options["at"]))
            return "ab" * 16

    observers = [OldForm(), ByName(), ByKeywords()]
    engine = Engine(observers=observers, clock=lambda: 1_796_327_191.0181127)
    result = await engine.run(parse_pipeline(ONE_STAGE))
    at = observers[0].seen[0].at
    expected = [("old", None), ("by name", at), ("**kwargs", at)]
    assert (expected, "ab" * 16, 1_796_327_191.0181127) == (calls, result.run_id, at)


@pytest.mark.parametrize(
    "seconds",
    # The first is read back one ulp off as ns / 1e9; the others are edges of the fraction.
    [1_796_327_191.0181267, 1_796_327_191.0, 1_796_327_191.9999998, 0.5, 1.25e-7],
)
def test_stored_nanoseconds_read_back_as_the_engines_float_exactly(seconds: float) -> None:
    """``epoch_seconds`` is the exact inverse of the monitor's ``ns`` for epoch floats."""
    assert seconds == epoch_seconds(ns(seconds))


async def test_a_stage_attempt_is_read_back_at_the_engines_times_exactly() -> None:
    """A stage whose start and end are floats that ``ns / 1e9`` misses by one ulp is read back
    at exactly those floats, by both ways the store reads an attempt: rebuilt from its stored
    span (``runs show``, the report's rebuild) and kept by the writer (``attempt_from_sdk``)."""
    from taskdaemon.pipeline.tracking._kept_runs import attempt_from_sdk
    from taskdaemon.pipeline.tracking.reconstruct import reconstruct_run
    from taskdaemon.pipeline.tracking.spans import span_record_from_sdk

    moment = 1_796_327_191.0181267  # ns(moment) / 1e9 != moment (the test below)
    telemetry = Telemetry()
    try:
        monitor = telemetry.monitor(clock=lambda: moment)
        await Engine(observers=[monitor], clock=lambda: moment).run(parse_pipeline(ONE_STAGE))
        monitor.flush()
        (span,) = telemetry.by_name("a")
        records = [span_record_from_sdk(s) for s in telemetry.spans()]
    finally:
        telemetry.shutdown()
    (stage,) = reconstruct_run(records).stages
    (rebuilt,) = stage.attempts
    kept = attempt_from_sdk(
        span.attributes or {},
        "a",
        "0" * 16,
        "success",
        span.start_time or 0,
        span.end_time or 0,
        span.events,
        span.links,
    )
    assert (moment,) * 4 == (rebuilt.start, rebuilt.end, kept[4], kept[5])


def test_nanoseconds_over_1e9_miss_the_float_that_made_them() -> None:
    """Why ``epoch_seconds`` exists: the plain division misses the first value above (this
    pins that the parametrized case is one that tells the two apart)."""
    assert ns(1_796_327_191.0181267) / 1e9 != 1_796_327_191.0181267


@pytest.mark.slow
async def test_a_served_run_has_one_start_and_duration_in_every_view(home: Path) -> None:
    """A real ``taskdaemon serve`` runs a pipeline once: its start, end and duration in
    ``GET /api/runs``, ``GET /api/runs/{id}``, ``runs show --json`` and the stored run span
    are the same, exactly (``/api/runs/{id}`` gives the duration to the µs, by design), and so
    are its stage's start and end in ``/api/runs`` and ``runs show --json``."""
    import httpx

    from cli_support import TASKDAEMON, environment, free_port, taskdaemon, write
    from prometheus_support import stop, until
    from taskdaemon.pipeline.tracking.store import RetentionPolicy, SpanStore

    pipeline = write(home / "one.yaml", ONE_STAGE)
    port = free_port()
    daemon = await asyncio.create_subprocess_exec(
        *(TASKDAEMON, "serve", "--port", str(port), "--pipeline", str(pipeline)),
        *("--max-runs", "1"),
        env=environment(home, TASKDAEMON_API_TOKEN=TOKEN),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    headers = {"Authorization": f"Bearer {TOKEN}"}
    try:
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=10
        ) as client:

            async def ended_run() -> dict[str, Any] | None:
                runs = (await client.get("/api/runs?finished=true")).json()["runs"]
                return runs[0] if runs and runs[0]["end"] is not None else None

            listed = await until(ended_run, limit=60, what="the served run's end")
            run_id = listed["run_id"]

            def shown() -> dict[str, Any] | None:
                answer = taskdaemon(home, "runs", "show", run_id, "--json")
                data = json.loads(answer.stdout) if answer.returncode == 0 else None
                return data if data is not None and data["end"] is not None else None

            async def stored() -> dict[str, Any] | None:
                return await asyncio.to_thread(shown)

            show = await until(stored, limit=60, what="the run's end in the store")
            detail = (await client.get(f"/api/runs/{run_id}")).json()
    finally:
        await stop(daemon)
    store = SpanStore(home / "spans.db", retention=RetentionPolicy())
    try:
        root = next(s for s in store.get_trace(run_id) if s.parent_span_id is None)
    finally:
        store.close()
    starts = [listed["start"], detail["start"], show["start"]]
    ends = [listed["end"], detail["end"], show["end"]]
    duration = listed["end"] - listed["start"]
    (stage,) = listed["stages"]
    (attempt,) = show["stages"][0]["attempts"]
    expected = (
        [listed["start"]] * 3,
        [listed["end"]] * 3,
        (ns(listed["start"]), ns(listed["end"])),
        (duration, round(duration, 6)),
        (stage["start"], stage["end"]),
    )
    actual = (
        starts,
        ends,
        (root.start_ns, root.end_ns),
        (show["duration"], detail["duration"]),
        (attempt["start"], attempt["end"]),
    )
    assert expected == actual
