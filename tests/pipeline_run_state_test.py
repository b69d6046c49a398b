"""status_rules and run_state: the status vocabulary is defined once, its rules (precedence,
approvals), and the reducer against the embedded store for a paused run and a run waiting for an
approval."""

from __future__ import annotations

import ast
import asyncio
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider

from pipeline_engine_support import Recorder, Resolver, after, fail, pipeline, retry, stage
from taskdaemon.pipeline.engine import Engine
from taskdaemon.pipeline.events import ApprovalRequested, EngineEvent
from taskdaemon.pipeline.loops import StageContext
from taskdaemon.pipeline.model import InputMapping, Manual, OnEvent
from taskdaemon.pipeline.monitor import PipelineMonitor
from taskdaemon.pipeline.payloads import PayloadCapture
from taskdaemon.pipeline.record_fields import replace
from taskdaemon.pipeline.records import AttemptRecord, RunRecord
from taskdaemon.pipeline.run_state import RunState, apply
from taskdaemon.pipeline.state import StageStatus
from taskdaemon.pipeline.status_rules import halted_executions, stage_status_of
from taskdaemon.pipeline.tracking.store import RetentionPolicy, SpanStore
from taskdaemon.pipeline.tracking.writer import SqliteSpanProcessor

SRC = Path(__file__).resolve().parent.parent / "src" / "taskdaemon"
# The vocabulary's homes: the names and transitions (state.py), every set and order
# (status_rules.py).
HOMES = {SRC / "pipeline" / "state.py", SRC / "pipeline" / "status_rules.py"}
STATUS_NAMES = frozenset(StageStatus) | {"interrupted"}


def _status_name(node: ast.expr, aliases: dict[str, str]) -> str | None:
    """The status a literal names: ``"failure"``, ``StageStatus.FAILURE`` (``.value``), or a
    module-level alias of one (``_FAILURE = StageStatus.FAILURE``)."""
    if isinstance(node, ast.Attribute) and node.attr == "value":
        node = node.value
    if isinstance(node, ast.Constant) and node.value in STATUS_NAMES:
        return str(node.value)
    if (
        isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id in ("StageStatus", "RunStatus")
        and node.attr.lower() in STATUS_NAMES
    ):
        return node.attr.lower()
    if isinstance(node, ast.Name):
        return aliases.get(node.id)
    return None


def status_collections(source: str) -> list[tuple[int, list[str]]]:
    """``(line, names)`` of each tuple, list or set literal naming two statuses or more
    (``__slots__`` and ``__all__`` aside: those are attribute and export names)."""
    tree = ast.parse(source)
    aliases: dict[str, str] = {}
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
            if isinstance(target, ast.Name) and target.id in ("__slots__", "__all__"):
                skipped.add(id(node.value))
            elif isinstance(target, ast.Name) and not isinstance(node.value, ast.Constant):
                name = _status_name(node.value, {})
                if name is not None:
                    aliases[target.id] = name
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Tuple | ast.List | ast.Set) and id(node) not in skipped:
            names = [n for n in (_status_name(e, aliases) for e in node.elts) if n is not None]
            if len(names) >= 2:
                found.append((node.lineno, names))
    return sorted(found)


@pytest.mark.slow
def test_the_status_vocabulary_is_defined_once() -> None:
    """No source file outside state.py and run_state.py spells out a set or order of statuses."""
    defined_again = [
        f"{path.relative_to(SRC)}:{line}: {names}"
        for path in sorted(SRC.rglob("*.py"))
        if path not in HOMES
        for line, names in status_collections(path.read_text())
    ]
    assert defined_again == []


def test_the_vocabulary_check_finds_each_spelling() -> None:
    """Strings, enum members, ``.value`` and aliases of them are caught; one name alone is not."""
    source = """
_FAILURE = StageStatus.FAILURE
A = frozenset({"failure", "timeout"})
B = (StageStatus.CANCELLED, _FAILURE)
C = [RunStatus.RUNNING.value, "interrupted"]
D = {"failure"}
__slots__ = ("running", "queued")
"""
    assert sorted(line for line, _ in status_collections(source)) == [3, 4, 5]


def test_stage_status_precedence_and_agreement() -> None:
    """In-flight beats failed, failure beats timeout beats cancelled; agreeing instances give
    their status; a mix of success and skipped is skipped; no attempt is skipped."""
    assert stage_status_of([(0, "failure"), (1, "running")]) == "running"
    assert stage_status_of([(0, "cancelled"), (1, "timeout"), (2, "failure")]) == "failure"
    assert stage_status_of([(0, "failure"), (0, "success")]) == "success"  # the last attempt
    assert stage_status_of([(0, "success"), (1, "success")]) == "success"
    assert stage_status_of([(0, "success"), (1, "skipped")]) == "skipped"
    assert stage_status_of([]) == "skipped"


def test_fan_out_with_a_failed_and_a_cancelled_instance_is_failure_in_the_engine_too() -> None:
    """The engine's own stage status uses the same precedence as the records: the failed
    instance, the cause, names the stage, not the instance its failure cancelled."""

    async def go() -> tuple[str, RunRecord]:
        recorder = Recorder()
        second_started = asyncio.Event()

        async def work(ctx: StageContext) -> dict[str, int]:
            if ctx.inputs.get("v") == 0:
                await second_started.wait()
                raise RuntimeError("first instance broke")
            second_started.set()
            await asyncio.Event().wait()  # cancelled by the stop the failure causes
            return {}

        async def emit(ctx: StageContext) -> dict[str, int]:
            ctx.publish("item", {"v": 0})
            ctx.publish("item", {"v": 1})
            return {}

        p = pipeline(
            stage("src", emits=("item",)),
            stage(
                "fan",
                OnEvent("item"),
                inputs=(InputMapping("v", "event.v"),),
                parallel_instances=2,
            ),
        )
        engine = Engine(resolver=Resolver({"src": emit, "fan": work}), observers=[recorder])
        result = await engine.run(p)
        state: RunState | None = None
        for event in recorder.events:
            state = apply(state, event)
        assert state is not None
        return str(result.stage_status["fan"]), state.record()

    engine_status, record = asyncio.run(go())
    statuses = sorted(a.status for a in record.stage("fan").attempts)
    assert statuses == ["cancelled", "failure"]
    assert engine_status == record.stage("fan").status == "failure"


def _no_timings(attempt: AttemptRecord) -> AttemptRecord:
    return replace(
        attempt,
        start=0.0,
        end=None if attempt.end is None else 0.0,
        queue_time=None,
        trigger_wait=None,
        cpu_seconds=None,
        span_id="",
    )


class _Live:
    """Folds engine events into a RunState, with the payload text the monitor records."""

    def __init__(self) -> None:
        self.state: RunState | None = None
        self.capture = PayloadCapture()

    def on_event(self, event: EngineEvent) -> None:
        self.state = apply(self.state, event, payloads=lambda v: self.capture.capture(v).json)


async def test_a_paused_run_reads_the_same_live_and_from_the_embedded_store(
    tmp_path: Path,
) -> None:
    """Paused at a breakpoint, the live state and the store's record both say run and stage are
    ``paused``, the attempt held since its failure; once resumed and ended both carry the 5 s
    paused (engine clock) on the attempt."""
    now = [1000.0]
    db = tmp_path / "spans.db"
    processor = SqliteSpanProcessor(db, retention=RetentionPolicy())
    provider = TracerProvider()
    provider.add_span_processor(processor)
    monitor = PipelineMonitor(
        tracer_provider=provider, resource_sampling=False, clock=lambda: now[0]
    )
    live = _Live()
    p = pipeline(stage("a"), stage("b", *after("a")), stage("c", *after("b")))
    try:
        async with Engine(
            resolver=Resolver({"b": fail}), observers=[monitor, live], clock=lambda: now[0]
        ) as engine:
            debug = engine.with_debug(True)
            debug.set_breakpoint("b", on="failure")
            task = asyncio.create_task(debug.execute(p))
            paused = await debug.wait_paused()
            assert paused is not None
            assert live.state is not None
            monitor.flush()
            processor.force_flush()
            with SpanStore(db) as store:
                stored = store.get_run(paused.run_id)
            current = live.state.record()
            assert current.status == stored.status == "paused"
            assert current.stage("b").status == stored.stage("b").status == "paused"
            assert [_no_timings(a) for a in current.stage("b").attempts] == [
                _no_timings(a) for a in stored.stage("b").attempts
            ]
            assert current.stage("b").attempts[0].status == "paused"
            # since when it is held at its failure, which the page's timeline draws from
            assert [1000.0, 1000.0] == [
                record.stage("b").attempts[0].paused_since for record in (current, stored)
            ]
            assert current.stage("a") == replace(
                stored.stage("a"),
                attempts=tuple(
                    replace(x, span_id="", cpu_seconds=None) for x in stored.stage("a").attempts
                ),
            )
            now[0] += 5.0
            debug.continue_()
            assert not (await task).succeeded
        monitor.flush()
        processor.force_flush()
        with SpanStore(db) as store:
            stored = store.get_run(paused.run_id)
        final = live.state.record()
        assert final.status == stored.status == "failure"
        (live_b,) = final.stage("b").attempts
        (stored_b,) = stored.stage("b").attempts
        assert live_b.paused_time == stored_b.paused_time == 5.0
        assert live_b.paused_since is stored_b.paused_since is None  # resumed: held no more
        assert _no_timings(live_b) == _no_timings(stored_b)
        assert final.stage("c").skip_reason == stored.stage("c").skip_reason
    finally:
        monitor.close()
        provider.shutdown()


async def test_a_stage_waiting_for_approval_reads_the_same_live_and_from_the_store(
    tmp_path: Path,
) -> None:
    """While an approval is requested the live state lists the stage as awaiting it and both
    records say ``waiting``; once granted it awaits nothing."""
    db = tmp_path / "spans.db"
    processor = SqliteSpanProcessor(db, retention=RetentionPolicy())
    provider = TracerProvider()
    provider.add_span_processor(processor)
    monitor = PipelineMonitor(tracer_provider=provider, resource_sampling=False)
    live = _Live()
    asked = asyncio.Event()

    class Asked:
        def on_event(self, event: EngineEvent) -> None:
            if isinstance(event, ApprovalRequested):
                asked.set()

    p = pipeline(stage("gate", Manual(approval_required=True)), stage("b", *after("gate")))
    try:
        async with Engine(resolver=Resolver(), observers=[monitor, live, Asked()]) as engine:
            handle = await engine.start_run(p)
            await asyncio.wait_for(asked.wait(), timeout=10)
            assert live.state is not None
            monitor.flush()
            # The open stage span's approval event, rewritten now: ``force_flush`` writes what
            # is queued, and an open row only once its refresh spacing allows, which a slow
            # earlier rewrite stretches (the stage then read ``pending``).
            processor.flush_open_spans()
            with SpanStore(db) as store:
                stored = store.get_run(handle.run_id)
            assert live.state.awaiting_approval == {"gate"}
            assert live.state.record().stage("gate").status == "waiting"
            assert stored.stage("gate").status == "waiting"
            engine.approve(handle.run_id, "gate", "alice")
            assert (await handle.wait()).succeeded
        assert live.state.awaiting_approval == frozenset()
        assert live.state.record().stage("gate").status == "success"
    finally:
        monitor.close()
        provider.shutdown()


def test_a_stage_the_run_stopped_in_its_backoff_is_cancelled_as_in_the_engine() -> None:
    """A stage whose failed attempt waits for its retry when another stage's failure stops the
    run reads ``cancelled`` in the live record, as in the engine's result; its attempt stays a
    failure (the record said ``failure``)."""

    async def go() -> tuple[str, RunRecord]:
        recorder = Recorder()
        first_failed = asyncio.Event()

        async def flaky(ctx: StageContext) -> None:
            first_failed.set()
            raise RuntimeError("flaky")

        async def breaks(ctx: StageContext) -> None:
            await first_failed.wait()
            raise RuntimeError("breaks")

        p = pipeline(stage("flaky", retry=retry(2, initial=60.0)), stage("breaks"))
        resolver = Resolver({"flaky": flaky, "breaks": breaks})
        async with Engine(resolver=resolver, observers=[recorder]) as engine:
            result = await asyncio.wait_for(engine.run(p), 10)
        state: RunState | None = None
        for event in recorder.events:
            state = apply(state, event)
        assert state is not None
        return str(result.stage_status["flaky"]), state.record()

    engine_status, record = asyncio.run(go())
    flaky = record.stage("flaky")
    expected = ("cancelled", "cancelled", ["failure"])
    assert expected == (engine_status, flaky.status, [a.status for a in flaky.attempts])


def test_a_halted_task_run_id_with_digits_other_than_ascii_is_not_an_execution() -> None:
    """A stored task run id is read as ``STAGE.INSTANCE.ATTEMPT`` only in ASCII digits:
    ``int`` refuses ``²`` (which ``isdigit`` accepts), and a crafted store holding one is
    passed over, not a ValueError out of every reader."""
    resumed = [("s", "s.\u00b2.1", "skip"), ("s", "s.\u0663.1", "skip"), ("s", "s.2.1", "cancel")]
    assert {"s": {"s.2.1": (2, "cancelled")}} == halted_executions(resumed, started=set())
