"""Shared helpers of the replay tests: a small pipeline with data flow, fan-out events and an
approval, recorded for real (engine, monitor, OTel SDK, embedded store) and replayed."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import TracerProvider

from cli_support import taskdaemon, write
from pipeline_engine_support import Recorder, Resolver, after, pipeline, stage
from taskdaemon.pipeline.engine import Engine, RunResult
from taskdaemon.pipeline.loops import StageContext
from taskdaemon.pipeline.model import (
    InputMapping,
    Manual,
    OnEvent,
    OutputMapping,
    Pipeline,
    TriggerMode,
)
from taskdaemon.pipeline.monitor import PipelineMonitor
from taskdaemon.pipeline.payloads import PayloadCapture
from taskdaemon.pipeline.record_fields import replace
from taskdaemon.pipeline.replay import ReplayOutcome, replay_async
from taskdaemon.pipeline.tracking import SpanStore, SqliteSpanProcessor

#: plan → build (publishes one ``part`` event per step) → check (one instance per part)
#: → release (after an approval).
FLOW: Pipeline = pipeline(
    stage(
        "plan",
        loop="plan",
        inputs=(InputMapping("goal", "request.goal"),),
        outputs=(OutputMapping("steps", "result.steps"),),
    ),
    stage(
        "build",
        *after("plan"),
        loop="build",
        inputs=(InputMapping("steps", "stages.plan.outputs.steps"),),
        emits=("part",),
    ),
    stage("check", OnEvent("part"), loop="check", parallel_instances=2),
    stage(
        "release",
        *after("check"),
        Manual(approval_required=True),
        loop="release",
        trigger_mode=TriggerMode.ALL,
    ),
    name="flow",
)


def flow_without_plan_mapping() -> Pipeline:
    """``FLOW`` with the plan's output mapping left out: the plan's whole result reaches the
    build, so what a plan handler returns beside its steps is read downstream too."""
    stages = tuple(replace(s, outputs=None) if s.name == "plan" else s for s in FLOW.stages)
    return replace(FLOW, stages=stages)


async def plan(ctx: StageContext) -> Mapping[str, Any]:
    """Two steps derived from the goal."""
    return {"steps": [f"{ctx.inputs['goal']}-1", f"{ctx.inputs['goal']}-2"], "noise": 1}


async def build(ctx: StageContext) -> Mapping[str, Any]:
    """One ``part`` event per step; outputs name the parts."""
    for step in ctx.inputs["steps"]:
        ctx.publish("part", {"name": step})
    return {"parts": list(ctx.inputs["steps"])}


async def check(ctx: StageContext) -> Mapping[str, Any]:
    """Echoes the part it checked."""
    assert ctx.event is not None
    return {"checked": ctx.event["payload"]["name"] if "payload" in ctx.event else ctx.event}


async def release(ctx: StageContext) -> Mapping[str, Any]:
    """Releases."""
    return {"released": True}


HANDLERS = {"plan": plan, "build": build, "check": check, "release": release}


def counting(handlers: Mapping[str, Any]) -> tuple[Resolver, dict[str, int]]:
    """A resolver over ``handlers`` and the number of times each stage's handler ran."""
    calls: dict[str, int] = {}

    def wrap(name: str, fn: Any) -> Any:
        async def counted(ctx: StageContext) -> Any:
            calls[name] = calls.get(name, 0) + 1
            return await fn(ctx)

        return counted

    return Resolver({name: wrap(name, fn) for name, fn in handlers.items()}), calls


class Recording:
    """A tracer provider writing to the embedded store at ``db`` and a monitor on it."""

    def __init__(
        self,
        db: Path,
        capture: PayloadCapture | None = None,
        meter_provider: MeterProvider | None = None,
    ) -> None:
        self.db = db
        self.provider = TracerProvider()
        self.provider.add_span_processor(SqliteSpanProcessor(db))
        self.monitor = PipelineMonitor(
            tracer_provider=self.provider,
            meter_provider=meter_provider if meter_provider is not None else MeterProvider(),
            capture=capture,
            resource_sampling=False,
        )

    def close(self) -> None:
        """Stop the monitor and flush the store."""
        self.monitor.close()
        self.provider.shutdown()

    def run(
        self,
        flow: Pipeline = FLOW,
        request: Mapping[str, Any] | None = None,
        handlers: Mapping[str, Any] = HANDLERS,
        approve: bool = True,
        recorder: Recorder | None = None,
        *,
        workspace: Path | None = None,
    ) -> RunResult:
        """Run ``flow`` with ``handlers`` (in a workspace under ``workspace``, when given),
        granting (or rejecting) the approval when asked."""
        result = asyncio.run(self.run_async(flow, request, handlers, approve, recorder, workspace))
        self.monitor.flush()
        self.provider.force_flush()
        return result

    async def run_async(  # noqa: PLR0917 - ``run``'s arguments, in its order
        self,
        flow: Pipeline = FLOW,
        request: Mapping[str, Any] | None = None,
        handlers: Mapping[str, Any] = HANDLERS,
        approve: bool = True,
        recorder: Recorder | None = None,
        workspace: Path | None = None,
    ) -> RunResult:
        """``run`` inside a running event loop (beside a replay, say), the monitor not flushed."""
        observers: list[Any] = [self.monitor]
        if recorder is not None:
            observers.insert(0, recorder)
        engine = Engine(resolver=Resolver(dict(handlers)), observers=observers, workspace=workspace)
        async with engine:
            handle = await engine.start_run(flow, dict(request or {"goal": "g"}))
            while not handle.done:
                snapshot = handle.snapshot()
                if str(snapshot.stage_status.get("release")) == "waiting":
                    (handle.approve if approve else handle.reject)("release", by="alice")
                    break
                await asyncio.sleep(0.001)
            return await handle.wait()

    def replay(self, run_id: str, **options: Any) -> ReplayOutcome:
        """Replay ``run_id`` from this store, recording the replay into it too."""
        options.setdefault("resolver", Resolver(dict(HANDLERS)))
        options.setdefault("source", f"sqlite:///{self.db}")
        outcome = asyncio.run(replay_async(run_id, monitor=self.monitor, **options))
        self.monitor.flush()
        self.provider.force_flush()
        return outcome

    def spans(self, run_id: str) -> list[Any]:
        """The stored spans of ``run_id``."""
        with SpanStore(self.db) as store:
            return store.get_trace(run_id)


def cut_like_tempo(spans: list[Any], limit: int = 2048) -> list[Any]:
    """``spans`` with every string attribute (of spans and span events) longer than ``limit``
    UTF-8 bytes cut to it, as Tempo's distributor does by default."""

    def cut(attributes: Mapping[str, Any]) -> dict[str, Any]:
        return {
            key: value.encode()[:limit].decode("utf-8", "ignore")
            if isinstance(value, str) and len(value.encode()) > limit
            else value
            for key, value in attributes.items()
        }

    return [
        replace(
            span,
            attributes=cut(span.attributes),
            events=tuple(replace(event, attributes=cut(event.attributes)) for event in span.events),
        )
        for span in spans
    ]


#: The note a replay that feeds a stage says once, before it runs: the line its dry run ends
#: with (``replay/plan.py``).
FED_NOTE = (
    "note: a fed stage is not run: the files it read are not read again, nor compared, so a "
    "change to them since is not seen (--from an earlier stage runs it again)"
)

#: ``b`` after ``a``, each the command ``true``: ``replay --from b`` feeds ``a`` from the record
#: and runs ``b`` again.
TWO_STAGES = """\
    name: two
    stages:
      - name: a
        command: "true"
        triggers: [{manual: {approval_required: false}}]
      - name: b
        command: "true"
        triggers: [{on_completion: {stage: a}}]
"""


def replayed_from_b(home: Path, folder: Path) -> tuple[str, str]:
    """``taskdaemon run`` of :data:`TWO_STAGES` (written in ``folder``) in ``home``, then
    ``replay --from b`` of that run: the replay's run id and its standard output."""
    original = taskdaemon(home, "run", str(write(folder / "two.yaml", TWO_STAGES)), "-q")
    replay = taskdaemon(home, "replay", original.stdout.strip(), "--from", "b")
    new = next(line for line in replay.stdout.splitlines() if line.startswith("run ")).split()[1]
    return new, replay.stdout
