"""``taskdaemon run``'s stand-in monitor answers a stage's ``TRACEPARENT`` before telemetry
has loaded (``cli/deferred.py``), and the records and output of that time land in their place."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import format_span_id, format_trace_id

from cli_support import pythonpath_with, taskdaemon, write
from pipeline_monitor_support import Telemetry
from taskdaemon.pipeline.cli.deferred import DeferredMonitor, span_context_foreseen
from taskdaemon.pipeline.cli.run_ids import PresetIdGenerator, preset_span_id, preset_trace_id
from taskdaemon.pipeline.engine import Engine
from taskdaemon.pipeline.events import EngineEvent, StageStarted
from taskdaemon.pipeline.loops import LoopRegistry, StageContext
from taskdaemon.pipeline.model import Manual, OnCompletion, Pipeline, Stage
from taskdaemon.pipeline.payloads import PayloadCapture
from taskdaemon.pipeline.tracking.store import SpanStore

#: A Python stage that logs, then a command stage that prints its ``TRACEPARENT``.
LOGS_THEN_PRINTS = """\
    name: early
    stages:
      - name: p
        handler: "early_stage:p"
        triggers: [{manual: {approval_required: false}}]
      - name: c
        command: "sh -c 'echo $TRACEPARENT; echo oops >&2'"
        triggers: [{on_completion: {stage: p}}]
"""
EARLY_STAGE = """\
    import logging

    def p(ctx):
        logging.getLogger("early").info("p says hi")
        return {}
"""


@pytest.fixture
def telemetry() -> Iterator[Telemetry]:
    """Spans in memory, from a tracer provider with ``run``'s preset id generator."""
    made = Telemetry(tracer_provider=TracerProvider(id_generator=PresetIdGenerator()))
    yield made
    made.shutdown()


class Resolver:
    """``p`` runs a Python handler; every other stage its real loop (a command)."""

    def __init__(self, handler: Any) -> None:
        self.handler = handler
        self.registry = LoopRegistry.default()

    def resolve(self, pipeline: Pipeline, stage: Stage) -> Any:
        return self.handler if stage.name == "p" else self.registry.resolve(pipeline, stage)


class Starts:
    """An engine observer keeping each ``StageStarted`` by stage."""

    def __init__(self) -> None:
        self.by_stage: dict[str, StageStarted] = {}

    def on_event(self, event: EngineEvent) -> None:
        if isinstance(event, StageStarted):
            self.by_stage[event.stage] = event


async def test_a_command_spawns_with_its_traceparent_before_the_monitor_exists(
    telemetry: Telemetry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The command prints its ``TRACEPARENT`` while no monitor exists yet (it is made only
    after the command has printed, so the stage cannot have waited for it); the monitor
    then agrees with that value for the running execution, and the stage span it records has
    that span id, the run id its trace id."""
    monkeypatch.delenv("OTEL_TRACES_SAMPLER", raising=False)
    monkeypatch.delenv("OTEL_SDK_DISABLED", raising=False)
    printed, go = tmp_path / "printed", tmp_path / "go"
    command = f"sh -c 'echo $TRACEPARENT > {printed}; until [ -e {go} ]; do sleep 0.01; done'"
    pipeline = Pipeline(
        "early",
        (
            Stage("p", "python", (Manual(),), handler="m:f"),
            Stage("c", "command", (OnCompletion("p"),), command=command),
        ),
    )
    deferred = DeferredMonitor(PayloadCapture())
    starts = Starts()
    asked: list[Mapping[str, str]] = []
    before: list[bool] = []  # whether the command had printed before the monitor was made

    def load_once_printed() -> None:
        # Bounded: a stage waiting for the monitor would never print, and the run never end.
        for _ in range(3000):
            if printed.exists() and printed.read_text():
                break
            time.sleep(0.01)
        before.append(printed.exists() and bool(printed.read_text()))
        monitor = telemetry.monitor(resource_sampling=False)
        deferred.started(monitor, preset_trace_id, preset_span_id)
        asked.append(monitor.stage_environment(starts.by_stage["c"]))
        go.touch()

    async def handler(ctx: StageContext) -> Mapping[str, Any]:
        return {}

    loader = threading.Thread(target=load_once_printed)
    loader.start()
    try:
        engine = Engine(resolver=Resolver(handler), observers=[deferred, starts])
        async with engine:
            result = await engine.run(pipeline, {})
    finally:
        go.touch()
        loader.join()
    (stage_span,) = telemetry.by_name("c")
    span_id = format_span_id(stage_span.context.span_id)
    expected = f"00-{result.run_id}-{span_id}-03"
    assert ([True], True, expected, [{"TRACEPARENT": expected}]) == (
        before,
        result.succeeded,
        printed.read_text().strip(),
        asked,
    )
    assert result.run_id == format_trace_id(stage_span.context.trace_id)


def test_the_answer_is_foreseen_unless_the_sdk_is_disabled() -> None:
    """A disabled SDK starts no span: the stand-in then waits for the monitor's answer. A
    sampler set changes nothing: the provider samples every span."""
    assert [True, True, True, False, True] == [
        span_context_foreseen(environ)
        for environ in (
            {},
            {"OTEL_TRACES_SAMPLER": " ", "OTEL_SDK_DISABLED": "false"},
            {"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.5"},
            {"OTEL_SDK_DISABLED": " True"},
            {"OTEL_SDK_DISABLED": "no"},
        )
    ]


@pytest.mark.slow
@pytest.mark.parametrize("sampler", ["", "always_off"])
def test_a_runs_traceparent_names_its_stored_stage_span(
    home: Path, tmp_path: Path, sampler: str
) -> None:
    """A real ``run`` without ``--serve``: the ``TRACEPARENT`` the command stage printed names
    its stage span as stored, in the run's trace, with or without a sampler set (the provider
    samples every span: ``cli/telemetry.py``)."""
    write(tmp_path / "early_stage.py", EARLY_STAGE)
    pipeline = write(tmp_path / "early.yaml", LOGS_THEN_PRINTS)
    ran = taskdaemon(
        home,
        "run",
        "-q",
        str(pipeline),
        PYTHONPATH=pythonpath_with(tmp_path),
        OTEL_TRACES_SAMPLER=sampler,
    )
    run_id = ran.stdout.strip()
    with SpanStore(home / "spans.db") as store:
        (stage,) = [span for span in store.get_trace(run_id) if span.name == "c"]
    shown = taskdaemon(home, "logs", run_id, "--stage", "c").stdout
    assert f"c.0.1 [stdout] 00-{run_id}-{stage.span_id}-03" in shown, (shown, ran.stderr)


@pytest.mark.slow
def test_records_and_output_from_before_the_writer_are_listed_in_time_order(
    home: Path, tmp_path: Path
) -> None:
    """A stage's record and a command's output, both made before the store's log writer
    existed, are listed by ``taskdaemon logs`` where they happened, with the command's
    streams; their rows are stored in time order."""
    write(tmp_path / "early_stage.py", EARLY_STAGE)
    pipeline = write(tmp_path / "early.yaml", LOGS_THEN_PRINTS)
    run_id = taskdaemon(
        home, "run", "-q", str(pipeline), PYTHONPATH=pythonpath_with(tmp_path)
    ).stdout.strip()
    shown = taskdaemon(home, "logs", run_id).stdout.splitlines()
    lines = [line.split(" ", 1)[1] for line in shown]
    assert [
        f"INFO    run {run_id} of early started",
        "INFO    stage p.0.1 started (attempt 1)",
        "INFO    p.0.1 p says hi",
        "INFO    stage p.0.1 finished: success",
        "INFO    stage c.0.1 started (attempt 1)",
        f"INFO    c.0.1 [stdout] 00-{run_id}-",
        "INFO    c.0.1 [stderr] oops",
        "INFO    stage c.0.1 finished: success",
        f"INFO    run {run_id} finished: success",
    ] == [line[: line.index(run_id) + 33] if "[stdout]" in line else line for line in lines]
    stamps = [line.split(" ", 1)[0] for line in shown]
    assert sorted(stamps) == stamps
