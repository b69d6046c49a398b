"""Auto-instrumentation: engines get one monitor, in process and under opentelemetry-instrument."""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
import threading
import tomllib
from collections.abc import Iterator, Mapping
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from taskdaemon.pipeline import engine as engine_module
from taskdaemon.pipeline.config import parse_pipeline
from taskdaemon.pipeline.engine import Engine
from taskdaemon.pipeline.instrumentation import PipelineInstrumentor
from taskdaemon.pipeline.loops import StageContext
from taskdaemon.pipeline.model import Pipeline, Stage
from taskdaemon.pipeline.monitor import PipelineMonitor

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent

PIPELINE = """
name: tiny
loops: {work: {handler: "unused:unused"}}
stages:
  - name: first
    loop: work
    triggers: [{manual: {approval_required: false}}]
  - name: second
    loop: work
    triggers: [{on_completion: {stage: first}}]
"""


class Resolver:
    """Every stage returns its name at once."""

    def resolve(self, pipeline: Pipeline, stage: Stage) -> Any:
        async def handler(ctx: StageContext) -> Mapping[str, Any]:
            return {"stage": stage.name}

        return handler


class Providers:
    """Fresh SDK providers with in-memory span exporter and metric reader."""

    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])

    def span_names(self) -> list[str]:
        return sorted(span.name for span in self.exporter.get_finished_spans())


@pytest.fixture
def providers() -> Iterator[Providers]:
    """Providers handed to the instrumentor, which is undone after the test."""
    fresh = Providers()
    yield fresh
    PipelineInstrumentor().uninstrument()
    fresh.meter_provider.shutdown()


async def _run(engine: Engine) -> None:
    async with engine:
        await engine.run(parse_pipeline(PIPELINE), {})


async def test_an_instrumented_engine_is_traced(providers: Providers) -> None:
    """An engine built with no observer at all produces the run and stage spans."""
    PipelineInstrumentor().instrument(
        tracer_provider=providers.tracer_provider, meter_provider=providers.meter_provider
    )
    await _run(Engine(resolver=Resolver()))
    assert ["RUN tiny", "first", "second"] == providers.span_names()


async def test_uninstrument_stops_the_shared_monitors_worker(providers: Providers) -> None:
    """uninstrument closes the monitor it made: no monitor worker thread outlives it."""
    before = set(threading.enumerate())
    PipelineInstrumentor().instrument(
        tracer_provider=providers.tracer_provider, meter_provider=providers.meter_provider
    )
    await _run(Engine(resolver=Resolver()))
    PipelineInstrumentor().uninstrument()
    left = [t.name for t in set(threading.enumerate()) - before if t.is_alive()]
    assert (["RUN tiny", "first", "second"], []) == (providers.span_names(), left)


async def test_uninstrument_restores_the_engine(providers: Providers) -> None:
    """After uninstrument, Engine's methods are plain functions and new engines are not traced."""
    PipelineInstrumentor().instrument(
        tracer_provider=providers.tracer_provider, meter_provider=providers.meter_provider
    )
    PipelineInstrumentor().uninstrument()
    PipelineInstrumentor().uninstrument()
    await _run(Engine(resolver=Resolver()))
    kinds = (
        type(engine_module.Engine.__dict__["__init__"]).__name__,
        type(engine_module.Engine.__dict__["add_observer"]).__name__,
    )
    assert (("function", "function"), []) == (kinds, providers.span_names())


async def test_an_engine_with_its_own_monitor_is_not_traced_twice(providers: Providers) -> None:
    """When the owner attaches a PipelineMonitor, the instrumentor adds none: one trace."""
    PipelineInstrumentor().instrument(
        tracer_provider=providers.tracer_provider, meter_provider=providers.meter_provider
    )
    own = Providers()
    monitor = PipelineMonitor(
        tracer_provider=own.tracer_provider, meter_provider=own.meter_provider
    )
    await _run(Engine(resolver=Resolver(), observers=iter([monitor])))
    monitor.close()
    own.meter_provider.shutdown()
    assert ([], ["RUN tiny", "first", "second"]) == (providers.span_names(), own.span_names())


async def test_a_monitor_added_later_replaces_the_automatic_one(providers: Providers) -> None:
    """add_observer(PipelineMonitor) after construction removes the instrumentor's monitor."""
    PipelineInstrumentor().instrument(
        tracer_provider=providers.tracer_provider, meter_provider=providers.meter_provider
    )
    own = Providers()
    engine = Engine(resolver=Resolver())
    monitor = PipelineMonitor(
        tracer_provider=own.tracer_provider, meter_provider=own.meter_provider
    )
    engine.add_observer(monitor)
    await _run(engine)
    monitor.close()
    own.meter_provider.shutdown()
    assert ([], 3) == (providers.span_names(), len(own.span_names()))


# --- opentelemetry-instrument, end to end ------------------------------------------------------

SCRIPT = """
import asyncio, sys
from taskdaemon.pipeline.config import load_pipeline
from taskdaemon.pipeline.engine import Engine
from taskdaemon.pipeline.events import ApprovalRequested


class Approve:
    engine = None

    def on_event(self, event):
        if isinstance(event, ApprovalRequested):
            asyncio.get_running_loop().call_soon(self.engine.approve, event.run_id, event.stage)


async def main():
    approve = Approve()
    async with Engine(observers=[approve], workspace=sys.argv[1]) as engine:
        approve.engine = engine
        result = await engine.run(load_pipeline("examples/feature_delivery.yaml"), {})
    assert result.succeeded, result


asyncio.run(main())
"""


def _json_objects(text: str) -> list[dict[str, Any]]:
    """Every JSON object that starts a line of ``text`` (console exporters' output)."""
    decoder, found, position = json.JSONDecoder(), [], 0
    while position < len(text):
        if text[position] == "{" and (position == 0 or text[position - 1] == "\n"):
            obj, position = decoder.raw_decode(text, position)
            found.append(obj)
            continue
        newline = text.find("\n", position)
        if newline == -1:
            break
        position = newline + 1
    return found


def _telemetry(stdout: str) -> tuple[list[str], set[str], set[str]]:
    """Span names (sorted), trace ids, and pipeline.* metric names in console output."""
    objects = _json_objects(stdout)
    spans = [o for o in objects if "context" in o and "name" in o]
    metrics = {
        metric["name"]
        for o in objects
        for rm in o.get("resource_metrics", [])
        for sm in rm["scope_metrics"]
        for metric in sm["metrics"]
        if metric["name"].startswith("pipeline.")
    }
    return sorted(s["name"] for s in spans), {s["context"]["trace_id"] for s in spans}, metrics


def _instrumented(args: list[str], tmp_path: Path, **extra: str) -> Any:
    env = {
        **os.environ,
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "TASKDAEMON_HOME": str(tmp_path / "home"),
        "OTEL_SERVICE_NAME": "td-instrumented",
        "OTEL_TRACES_EXPORTER": "console",
        "OTEL_METRICS_EXPORTER": "console",
        "OTEL_LOGS_EXPORTER": "none",
        "OTEL_METRIC_EXPORT_INTERVAL": "600000",
        # The span processor's timer too: both console exporters then write only at exit, one
        # after the other. With its 5 s default, a run slowed past 5 s by a loaded machine can
        # have the span thread's timed export coincide with the metric thread's last export at
        # exit, two threads writing one stdout (a TextIOWrapper, not thread-safe). The one
        # failure seen, under load 9, was the metric export's JSON broken at its 2,015th line.
        "OTEL_BSP_SCHEDULE_DELAY": "600000",
        **extra,
    }
    return asyncio.create_subprocess_exec(
        str(VENV_BIN / "opentelemetry-instrument"),
        *args,
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def _output(args: list[str], tmp_path: Path, **extra: str) -> tuple[int | None, str, str]:
    process = await _instrumented(args, tmp_path, **extra)
    stdout, stderr = await process.communicate()
    return process.returncode, stdout.decode(), stderr.decode()


EXPECTED_SPANS = sorted(
    ["RUN feature-delivery", "planning", "specification", "verification", "release"]
    + ["implementation"] * 3
)


def test_a_user_install_has_what_configures_opentelemetry_instrument() -> None:
    """`opentelemetry-instrument` builds the SDK's providers only through an
    `opentelemetry_configurator` entry point (opentelemetry-distro's): with none, a script using
    the engine ran under it with no telemetry and no word said. The tests below passed all the
    same, the dev extras having one; a user's install (`scripts/setup.sh`: no extras) had not."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    required = {re.split(r"[<>=~!\[; ]", requirement)[0] for requirement in project["dependencies"]}
    providers = {point.dist.name for point in entry_points(group="opentelemetry_configurator")}
    assert (True, True) == (bool(providers), bool(providers & required))


@pytest.mark.slow
async def test_opentelemetry_instrument_traces_a_plain_script(tmp_path: Path) -> None:
    """A script using the engine, run under opentelemetry-instrument, yields the full trace."""
    script = tmp_path / "script.py"
    script.write_text(SCRIPT)
    code, stdout, stderr = await _output(
        [str(VENV_BIN / "python"), str(script), str(tmp_path / "ws")], tmp_path
    )
    names, traces, metrics = _telemetry(stdout)
    expected = (0, EXPECTED_SPANS, 1, True)
    assert expected == (code, names, len(traces), "pipeline.executions" in metrics), stderr


@pytest.mark.slow
async def test_the_cli_and_a_script_give_the_same_telemetry(tmp_path: Path) -> None:
    """`taskdaemon run` and a plain script under opentelemetry-instrument produce the same
    span names and pipeline metric names, one trace each (the CLI's monitor is not doubled);
    the CLI says in one INFO line, as the README has it, that it uses its own providers (it
    said it in one line per provider)."""
    script = tmp_path / "script.py"
    script.write_text(SCRIPT)
    cli, plain = await asyncio.gather(
        _output(
            ["taskdaemon", "run", "examples/feature_delivery.yaml", "--auto-approve", "-q"],
            tmp_path,
        ),
        _output([str(VENV_BIN / "python"), str(script), str(tmp_path / "ws")], tmp_path),
    )
    # The CLI's own console exporters write to stderr (its stdout: the run id and what the
    # distro's unused providers print at exit), the script's (the distro's) to stdout.
    cli_names, cli_traces, cli_metrics = _telemetry(cli[2])
    names, traces, metrics = _telemetry(plain[1])
    said = [line.split(": ", 1)[1] for line in cli[2].splitlines() if "already set" in line]
    own = "a global TracerProvider and MeterProvider were already set; taskdaemon uses its own"
    expected = (0, 0, names, 1, 1, metrics, [own])
    actual = (cli[0], plain[0], cli_names, len(cli_traces), len(traces), cli_metrics, said)
    assert expected == actual, cli[2]


@pytest.mark.slow
async def test_disabled_instrumentation_is_honoured(tmp_path: Path) -> None:
    """OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=taskdaemon leaves the script untraced."""
    script = tmp_path / "script.py"
    script.write_text(SCRIPT)
    code, stdout, stderr = await _output(
        [str(VENV_BIN / "python"), str(script), str(tmp_path / "ws")],
        tmp_path,
        OTEL_PYTHON_DISABLED_INSTRUMENTATIONS="taskdaemon",
    )
    assert (0, []) == (code, _telemetry(stdout)[0]), stderr
