"""Shared helpers of the monitor tests: fresh SDK providers, the example pipeline, and a feeder
that plays engine event records into a monitor with a hand-driven clock."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    HistogramDataPoint,
    InMemoryMetricReader,
    MetricsData,
    NumberDataPoint,
)
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from taskdaemon.pipeline import telemetry as names
from taskdaemon.pipeline.events import (
    ApprovalRequested,
    ApprovalResolved,
    EventPublished,
    RunFinished,
    RunStarted,
    StageFinished,
    StageProcess,
    StageQueued,
    StageRetrying,
    StageSkipped,
    StageStarted,
    TaskRunRef,
    TriggerEvaluated,
    task_run_id,
)
from taskdaemon.pipeline.model import (
    ErrorStrategy,
    InputMapping,
    Manual,
    OnCompletion,
    OnCondition,
    OnEvent,
    Pipeline,
    RetryPolicy,
    Stage,
    TriggerMode,
)
from taskdaemon.pipeline.monitor import PipelineMonitor
from taskdaemon.pipeline.payloads import PayloadCapture
from taskdaemon.pipeline.state import RunStatus, StageStatus

T0 = 1_700_000_000.0
T0_NS = int(T0) * 1_000_000_000

#: The ten Prometheus names (docs/architecture.md, "Metrics"), as `/metrics` must show them.
PROMETHEUS_NAMES = frozenset(
    {
        "pipeline_executions_total",
        "pipeline_execution_duration_seconds",
        "pipeline_active_executions",
        "pipeline_stage_executions_total",
        "pipeline_stage_duration_seconds",
        "pipeline_stage_queue_time_seconds",
        "pipeline_trigger_evaluations_total",
        "pipeline_trigger_wait_time_seconds",
        "pipeline_memory_usage_bytes",
        "pipeline_cpu_usage_percent",
    }
)


#: Every attribute a stage span's end may set, in the order ``end_stage_span`` sets them.
STAGE_END_KEYS = (
    names.CICD_TASK_RUN_RESULT,
    names.STAGE_STATUS,
    names.STAGE_CPU_TIME,
    names.STAGE_PEAK_MEMORY,
    names.STAGE_WILL_RETRY,
    names.ERROR_TYPE,
    names.STAGE_ERROR_MESSAGE,
    names.STAGE_CANCEL_REASON,
    names.STAGE_CANCEL_CAUSE,
)


def end_attributes(span: ReadableSpan) -> list[tuple[str, Any]]:
    """A stage span's end attributes (``STAGE_END_KEYS``) in the order it holds them."""
    return [(key, value) for key, value in (span.attributes or {}).items() if key in STAGE_END_KEYS]


@dataclass
class Telemetry:
    """A fresh tracer provider + in-memory exporter and meter provider + in-memory reader."""

    tracer_provider: TracerProvider = field(default_factory=TracerProvider)
    exporter: InMemorySpanExporter = field(default_factory=InMemorySpanExporter)
    reader: InMemoryMetricReader = field(default_factory=InMemoryMetricReader)
    meter_provider: MeterProvider | None = None
    monitors: list[PipelineMonitor] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        if self.meter_provider is None:
            self.meter_provider = MeterProvider(metric_readers=[self.reader])

    def spans(self) -> list[ReadableSpan]:
        """Finished spans in end order."""
        return list(self.exporter.get_finished_spans())

    def by_name(self, name: str) -> list[ReadableSpan]:
        """Finished spans called ``name``, in end order."""
        return [s for s in self.spans() if s.name == name]

    def points(self, metric: str, data: MetricsData | None = None) -> list[Any]:
        """Every data point of ``metric`` in ``data`` (default: collected now)."""
        data = data if data is not None else self.reader.get_metrics_data()
        found: list[Any] = []
        if data is None:
            return found
        for resource in data.resource_metrics:
            for scope in resource.scope_metrics:
                for item in scope.metrics:
                    if item.name == metric:
                        found.extend(item.data.data_points)
        return found

    def values(
        self, metric: str, data: MetricsData | None = None
    ) -> dict[tuple[tuple[str, Any], ...], float]:
        """Sum/gauge values of ``metric`` by sorted attribute items."""
        return {
            tuple(sorted(p.attributes.items())): p.value
            for p in self.points(metric, data)
            if isinstance(p, NumberDataPoint)
        }

    def histograms(self, metric: str) -> dict[tuple[tuple[str, Any], ...], HistogramDataPoint]:
        """Histogram points of ``metric`` by sorted attribute items."""
        return {
            tuple(sorted(p.attributes.items())): p
            for p in self.points(metric)
            if isinstance(p, HistogramDataPoint)
        }

    def monitor(self, **options: Any) -> PipelineMonitor:
        """A monitor on these providers (``options`` go to :class:`PipelineMonitor`), closed by
        :meth:`shutdown` so that its worker thread does not outlive the test."""
        monitor = PipelineMonitor(
            tracer_provider=self.tracer_provider, meter_provider=self.meter_provider, **options
        )
        self.monitors.append(monitor)
        return monitor

    def shutdown(self) -> None:
        """Close the monitors made by :meth:`monitor`, then release the providers."""
        for monitor in self.monitors:
            monitor.close()
        self.tracer_provider.shutdown()
        assert self.meter_provider is not None
        self.meter_provider.shutdown()


def example_pipeline(error_strategy: ErrorStrategy = ErrorStrategy.FAIL) -> Pipeline:
    """The example's shape: planning → specification (spec.ready) → implementation → release."""
    return Pipeline(
        name="feature-delivery",
        description="Plan, specify, implement, release",
        concurrency=4,
        error_strategy=error_strategy,
        retry=RetryPolicy(max_attempts=2),
        stages=(
            Stage(
                "planning",
                "plan",
                (Manual(approval_required=False),),
                inputs=(InputMapping("goal", "request.goal"),),
            ),
            Stage(
                "specification",
                "spec",
                (OnCompletion("planning"),),
                emits=("spec.ready",),
            ),
            Stage(
                "implementation",
                "phase",
                (OnEvent("spec.ready", "event.spec.dependencies_met == true"),),
                parallel_instances=10,
            ),
            Stage(
                "release",
                "command",
                (
                    OnCompletion("implementation"),
                    OnCondition("size(stages.specification.outputs.specs) > 0"),
                    Manual(approval_required=True, timeout=3600),
                ),
                trigger_mode=TriggerMode.ALL,
                command="python -c 'print(42)'",
            ),
        ),
    )


def chain_pipeline(
    names: Sequence[str] = ("a", "b", "c"),
    error_strategy: ErrorStrategy = ErrorStrategy.FAIL,
    name: str = "chain",
) -> Pipeline:
    """A linear pipeline of python stages."""
    stages = [Stage(names[0], "python", (Manual(),))]
    stages += [Stage(n, "python", (OnCompletion(prev),)) for prev, n in pairwise(names)]
    return Pipeline(name=name, stages=tuple(stages), error_strategy=error_strategy)


def started_record(stage: str, run_id: str = "r") -> StageStarted:
    """A ``StageStarted`` of stage ``stage`` in run ``run_id``, at time 0."""
    return StageStarted(
        run_id=run_id,
        pipeline="p",
        stage=stage,
        instance=0,
        attempt=1,
        task_run_id=f"{stage}.0.1",
        loop="python",
        at=0.0,
        queued_at=0.0,
        considered_at=0.0,
        inputs={},
    )


class Feed:
    """Plays engine event records into ``monitor`` the way the engine emits them.

    Time is a counter the monitor's clock reads, advanced explicitly with ``tick``.
    """

    def __init__(
        self,
        telemetry: Telemetry,
        pipeline: Pipeline,
        *,
        capture: PayloadCapture | None = None,
        monitor: PipelineMonitor | None = None,
        resource_sampling: bool = False,
    ) -> None:
        self.now = T0
        self.pipeline = pipeline
        self.monitor = monitor or telemetry.monitor(
            capture=capture,
            clock=lambda: self.now,
            resource_sampling=resource_sampling,
        )
        self.run_id = ""

    def tick(self, seconds: float = 1.0) -> float:
        """Advance the clock."""
        self.now += seconds
        return self.now

    def emit(self, event: Any) -> Any:
        """Feed one record."""
        self.monitor.on_event(event)
        return event

    def start_run(self, request: Mapping[str, Any] | None = None, **kwargs: Any) -> str:
        """allocate_run_id then RunStarted."""
        request = dict(request or {"goal": "ship it"})
        run_id = self.monitor.allocate_run_id(self.pipeline, request)
        assert run_id is not None
        self.run_id = run_id
        self.emit(
            RunStarted(
                run_id=run_id, pipeline=self.pipeline, request=request, at=self.now, **kwargs
            )
        )
        return run_id

    def trigger(self, stage: str, index: int, kind: str, *, ready: bool = True) -> None:
        """One satisfied trigger evaluation."""
        description = self.pipeline.stage(stage).triggers[index].describe()
        self.emit(
            TriggerEvaluated(
                run_id=self.run_id,
                pipeline=self.pipeline.name,
                stage=stage,
                trigger_index=index,
                trigger_type=kind,
                description=description,
                satisfied=True,
                stage_ready=ready,
                at=self.now,
            )
        )

    def start(
        self,
        stage: str,
        instance: int = 0,
        attempt: int = 1,
        *,
        inputs: Mapping[str, Any] | None = None,
        fired_by: Sequence[TaskRunRef] = (),
        event: Mapping[str, Any] | None = None,
        queue: float = 0.25,
        wait: float = 0.5,
    ) -> StageStarted:
        """StageQueued then StageStarted ``queue`` seconds later (``wait`` of trigger wait)."""
        trid = task_run_id(stage, instance, attempt)
        queued_at = self.now
        self.emit(
            StageQueued(
                run_id=self.run_id,
                pipeline=self.pipeline.name,
                stage=stage,
                instance=instance,
                attempt=attempt,
                at=queued_at,
                task_run_id=trid,
            )
        )
        self.tick(queue)
        started = StageStarted(
            run_id=self.run_id,
            pipeline=self.pipeline.name,
            stage=stage,
            instance=instance,
            attempt=attempt,
            task_run_id=trid,
            loop=self.pipeline.stage(stage).loop,
            at=self.now,
            queued_at=queued_at,
            considered_at=queued_at - wait,
            inputs=dict(inputs or {}),
            fired_by=tuple(fired_by),
            previous_attempt=TaskRunRef(stage, instance, attempt - 1) if attempt > 1 else None,
            triggers=tuple(t.describe() for t in self.pipeline.stage(stage).triggers),
            event=event,
        )
        return self.emit(started)

    def finish(
        self,
        stage: str,
        instance: int = 0,
        attempt: int = 1,
        status: StageStatus = StageStatus.SUCCESS,
        **kwargs: Any,
    ) -> StageFinished:
        """StageFinished now."""
        trid = task_run_id(stage, instance, attempt)
        return self.emit(
            StageFinished(
                run_id=self.run_id,
                pipeline=self.pipeline.name,
                stage=stage,
                instance=instance,
                attempt=attempt,
                task_run_id=trid,
                status=status,
                at=self.now,
                **kwargs,
            )
        )

    def retrying(self, stage: str, attempt: int, error: str, error_type: str) -> None:
        """StageRetrying for the failed ``attempt``."""
        trid = task_run_id(stage, 0, attempt)
        self.emit(
            StageRetrying(
                run_id=self.run_id,
                pipeline=self.pipeline.name,
                stage=stage,
                instance=0,
                attempt=attempt,
                task_run_id=trid,
                delay=1.0,
                error=error,
                error_type=error_type,
                at=self.now,
            )
        )

    def publish(
        self, event_type: str, payload: Mapping[str, Any], event_id: int, source: TaskRunRef | None
    ) -> None:
        """EventPublished now."""
        self.emit(
            EventPublished(
                run_id=self.run_id,
                pipeline=self.pipeline.name,
                event_type=event_type,
                payload=payload,
                event_id=event_id,
                at=self.now,
                source=source,
            )
        )

    def process(self, stage: str, pid: int, instance: int = 0, attempt: int = 1) -> None:
        """StageProcess now."""
        trid = task_run_id(stage, instance, attempt)
        self.emit(
            StageProcess(
                run_id=self.run_id,
                pipeline=self.pipeline.name,
                stage=stage,
                task_run_id=trid,
                pid=pid,
                at=self.now,
            )
        )

    def approval(self, stage: str, *, approved: bool = True) -> None:
        """ApprovalRequested, one tick, ApprovalResolved."""
        self.emit(
            ApprovalRequested(
                run_id=self.run_id,
                pipeline=self.pipeline.name,
                stage=stage,
                at=self.now,
                timeout=3600.0,
            )
        )
        self.tick()
        self.emit(
            ApprovalResolved(
                run_id=self.run_id,
                pipeline=self.pipeline.name,
                stage=stage,
                approved=approved,
                at=self.now,
                by="alice",
            )
        )

    def skip(self, stage: str, reason: str) -> None:
        """StageSkipped now."""
        self.emit(
            StageSkipped(
                run_id=self.run_id,
                pipeline=self.pipeline.name,
                stage=stage,
                reason=reason,
                at=self.now,
            )
        )

    def finish_run(self, status: RunStatus = RunStatus.SUCCESS, **kwargs: Any) -> None:
        """RunFinished now."""
        self.emit(
            RunFinished(
                run_id=self.run_id,
                pipeline=self.pipeline.name,
                status=status,
                at=self.now,
                **kwargs,
            )
        )


def play_example_run(feed: Feed, specs: int = 2) -> None:
    """The example run: planning, specification publishing ``specs`` spec.ready events, one
    implementation instance per spec, then release after an approval."""
    feed.start_run({"goal": "ship it", "api_token": "hunter2"})
    feed.trigger("planning", 0, "manual")
    feed.start("planning", inputs={"goal": "ship it"})
    feed.tick(2)
    feed.finish("planning", outputs={"plan": ["a", "b"]})
    planning = TaskRunRef("planning", 0, 1)
    feed.trigger("specification", 0, "on_completion")
    feed.start("specification", inputs={"plan": ["a", "b"]}, fired_by=[planning])
    spec_ref = TaskRunRef("specification", 0, 1)
    for i in range(specs):
        feed.tick()
        feed.publish("spec.ready", {"spec": {"id": i, "dependencies_met": True}}, i + 1, spec_ref)
    feed.tick()
    feed.finish("specification", outputs={"specs": list(range(specs))})
    for i in range(specs):
        feed.trigger("implementation", 0, "on_event")
        feed.start(
            "implementation",
            instance=i,
            inputs={"spec": {"id": i}},
            fired_by=[spec_ref],
            event={"type": "spec.ready", "spec": {"id": i}},
        )
    feed.tick(3)
    for i in range(specs):
        feed.finish("implementation", instance=i, outputs={"implementation": f"done {i}"})
    feed.trigger("release", 0, "on_completion", ready=False)
    feed.trigger("release", 1, "on_condition", ready=False)
    feed.approval("release")
    feed.trigger("release", 2, "manual")
    feed.start(
        "release",
        fired_by=[TaskRunRef("implementation", i, 1) for i in range(specs)],
    )
    feed.tick()
    feed.finish(
        "release", outputs={"stdout": "42\n"}, cpu_seconds=0.02, peak_memory_bytes=9_000_000
    )
    feed.tick()
    feed.finish_run()


def scope_labels(**labels: str) -> dict[str, str]:
    """``labels`` with the instrumentation scope labels every metric of taskdaemon's own
    carries on ``/metrics`` (the sample's labels as ``get_sample_value`` takes them)."""
    from taskdaemon import __version__
    from taskdaemon.pipeline import telemetry as t

    return {
        **labels,
        "otel_scope_name": t.SCOPE_NAME,
        "otel_scope_schema_url": t.SCHEMA_URL,
        "otel_scope_version": __version__,
    }


def relations(span: ReadableSpan, spans: list[ReadableSpan]) -> list[tuple[str, str]]:
    """(relation, task run id of the linked span) of each link."""
    by_id = {s.context.span_id: s for s in spans}
    return [
        (
            str(link.attributes[names.LINK_RELATION]),
            str(by_id[link.context.span_id].attributes[names.CICD_TASK_RUN_ID]),
        )
        for link in span.links
    ]


def event_attributes(span: ReadableSpan, name: str) -> dict[str, Any]:
    """The attributes of ``span``'s first event called ``name``."""
    return dict(next(e for e in span.events if e.name == name).attributes or {})
