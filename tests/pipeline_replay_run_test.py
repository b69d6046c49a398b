"""Replay from stored spans: full replays from every source, --from with fed stages, the
links and statuses they leave, verification, missing values and a changed definition (the
replay's workspace: ``pipeline_replay_run_workspace_test.py``)."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path
from typing import Any

import pytest

from pipeline_replay_support import (
    FLOW,
    HANDLERS,
    Recording,
    check,
    counting,
    cut_like_tempo,
    flow_without_plan_mapping,
)
from pipeline_tracking_support import Backend, serve
from taskdaemon.pipeline import telemetry as t
from taskdaemon.pipeline.engine import Engine
from taskdaemon.pipeline.events import ApprovalRequested, ApprovalResolved, StageFinished
from taskdaemon.pipeline.model import (
    Backoff,
    ErrorStrategy,
    InputMapping,
    Manual,
    OnEvent,
    OutputMapping,
    RetryPolicy,
)
from taskdaemon.pipeline.payloads import PayloadCapture
from taskdaemon.pipeline.record_fields import replace
from taskdaemon.pipeline.replay import ReplayError, replay_async
from taskdaemon.pipeline.tracking import encode_traces

from pipeline_engine_support import Recorder, Resolver, after, pipeline, stage  # isort: skip


@pytest.fixture
def rec(tmp_path: Path) -> Any:
    recording = Recording(tmp_path / "spans.db", PayloadCapture(max_bytes=65536))
    yield recording
    recording.close()


def _root(spans: list[Any]) -> Any:
    return next(s for s in spans if s.parent_span_id is None)


@pytest.mark.slow
def test_full_replay_is_a_new_linked_trace_with_the_same_results(rec: Recording) -> None:
    """A full replay runs every stage again in a new trace that names and links the original."""
    original = rec.run()
    outcome = rec.replay(original.run_id, verify=True)
    root = _root(rec.spans(outcome.run_id))
    links = [(link.trace_id, dict(link.attributes)[t.LINK_RELATION]) for link in root.links]
    assert (
        "success",
        original.run_id,
        [(original.run_id, t.LINK_REPLAY_OF)],
        dict(original.outputs),
        False,
    ) == (
        str(outcome.result.status),
        root.attributes[t.PIPELINE_REPLAY_OF],
        links,
        dict(outcome.result.outputs),
        outcome.report is not None and outcome.report.diverged,
    )
    assert outcome.run_id != original.run_id


@pytest.mark.slow
@pytest.mark.parametrize("dialect", ["tempo-v2", "tempo-v1", "jaeger-v3"])
def test_full_replay_from_a_remote_backend(rec: Recording, dialect: str) -> None:
    """The original's real spans served as a Tempo v2, Tempo v1 or Jaeger v3 answer replay
    to the same outputs, with nothing diverging."""
    original = rec.run()
    spans = rec.spans(original.run_id)
    run_id = original.run_id
    with serve(Backend()) as backend:
        if dialect == "tempo-v2":
            body = {"trace": encode_traces(spans, ids="base64", enums="int"), "status": "COMPLETE"}
            backend.route(f"/api/v2/traces/{run_id}", body)
        elif dialect == "tempo-v1":
            backend.route(
                f"/api/traces/{run_id}", encode_traces(spans, ids="base64", key="batches")
            )
        else:
            body = {"result": encode_traces(spans, scope_key="instrumentationLibrarySpans")}
            backend.route(f"/api/v3/traces/{run_id}", body)
        scheme = "jaeger+" if dialect == "jaeger-v3" else "tempo+"
        outcome = rec.replay(run_id, verify=True, source=f"{scheme}{backend.url}")
    assert report_rows(outcome) == []
    assert dict(original.outputs) == dict(outcome.result.outputs)


def report_rows(outcome: Any) -> list[Any]:
    """The divergences of an outcome, as tuples."""
    return [(d.stage, d.what, d.first) for d in outcome.report.divergences]


@pytest.mark.slow
def test_from_stage_feeds_upstream_and_marks_their_spans_replayed(rec: Recording) -> None:
    """--from check: plan and build are fed (not executed), their spans are ``replayed`` with
    the original status and link the original spans; check and release run again."""
    original = rec.run()
    original_spans = {
        s.attributes.get(t.CICD_TASK_NAME): s.span_id
        for s in rec.spans(original.run_id)
        if s.parent_span_id is not None
    }
    resolver, calls = counting(HANDLERS)
    outcome = rec.replay(original.run_id, from_stage="check", resolver=resolver)
    fed = {}
    for span in rec.spans(outcome.run_id):
        name = span.attributes.get(t.CICD_TASK_NAME)
        if name in ("plan", "build"):
            (link,) = [
                link
                for link in span.links
                if dict(link.attributes)[t.LINK_RELATION] == t.LINK_REPLAYED_FROM
            ]
            fed[name] = (
                span.attributes[t.STAGE_STATUS],
                span.attributes[t.STAGE_REPLAYED_STATUS],
                link.trace_id == original.run_id,
                link.span_id == original_spans[name],
                dict(link.attributes)[t.LINK_RELATION],
            )
    assert {
        "plan": ("replayed", "success", True, True, "replayed_from"),
        "build": ("replayed", "success", True, True, "replayed_from"),
    } == fed
    assert ({"check": 2, "release": 1}, dict(original.outputs)) == (
        calls,
        dict(outcome.result.outputs),
    )


@pytest.mark.slow
def test_a_run_beside_a_replay_on_the_same_monitor_is_not_fed(rec: Recording) -> None:
    """The replay's span hook asked only which stage and instance: a run of the same pipeline
    that another engine ran on the monitor while a replay fed plan and build had its plan and
    build spans marked ``replayed`` and linked to the recorded run's. Only the replay's are."""
    original = rec.run()

    async def both() -> tuple[Any, Any]:
        entered, gate = asyncio.Event(), asyncio.Event()

        async def held_check(ctx: Any) -> Any:
            entered.set()
            await gate.wait()
            return await check(ctx)

        replay = asyncio.create_task(
            replay_async(
                original.run_id,
                source=f"sqlite:///{rec.db}",
                from_stage="check",
                resolver=Resolver({**HANDLERS, "check": held_check}),
                monitor=rec.monitor,
            )
        )
        await entered.wait()  # fed plan and build are done; the hook is the monitor's
        beside = await rec.run_async()
        gate.set()
        return await replay, beside

    outcome, beside = asyncio.run(both())
    rec.monitor.flush()
    rec.provider.force_flush()

    def fed_spans(run_id: str) -> dict[str, tuple[Any, list[str]]]:
        return {
            span.attributes[t.CICD_TASK_NAME]: (
                span.attributes[t.STAGE_STATUS],
                [
                    link.trace_id
                    for link in span.links
                    if dict(link.attributes)[t.LINK_RELATION] == t.LINK_REPLAYED_FROM
                ],
            )
            for span in rec.spans(run_id)
            if span.attributes.get(t.CICD_TASK_NAME) in ("plan", "build")
        }

    assert (
        {"plan": ("replayed", [original.run_id]), "build": ("replayed", [original.run_id])},
        {"plan": ("success", []), "build": ("success", [])},
    ) == (fed_spans(outcome.run_id), fed_spans(beside.run_id))


#: Plan, build and check (no release: nothing to approve), a failed stage retried once.
_RETRIED = replace(
    FLOW,
    stages=FLOW.stages[:3],
    error_strategy=ErrorStrategy.RETRY,
    retry=RetryPolicy(max_attempts=2, backoff=Backoff(initial=0.01)),
)


@pytest.mark.slow
def test_a_fed_stage_hands_on_the_events_of_every_recorded_attempt(rec: Recording) -> None:
    """A fed stage published the events of its last recorded attempt only: the part build's
    failed first attempt published had been checked in the original, and the replay's check,
    run again on the events, lost that instance. Fed, build publishes all three parts again,
    in one attempt."""
    tries: list[int] = []

    async def flaky_build(ctx: Any) -> dict[str, Any]:
        tries.append(ctx.attempt)
        if ctx.attempt == 1:
            ctx.publish("part", {"name": "first try"})
            raise RuntimeError("build broke after one part")
        return await HANDLERS["build"](ctx)

    original = rec.run(flow=_RETRIED, handlers={**HANDLERS, "build": flaky_build})
    outcome = rec.replay(original.run_id, from_stage="check")

    def checked(run_id: str) -> list[tuple[Any, ...]]:
        return sorted(
            (span.attributes[t.STAGE_INSTANCE], span.attributes[t.STAGE_ATTEMPT])
            for span in rec.spans(run_id)
            if span.attributes.get(t.CICD_TASK_NAME) == "check"
        )

    assert ([1, 2], "success") == (tries, str(outcome.result.status))
    assert [(0, 1), (1, 1), (2, 1)] == checked(original.run_id) == checked(outcome.run_id)


@pytest.mark.slow
def test_verify_reports_a_nondeterministic_stage(rec: Recording) -> None:
    """A handler whose output changes on every run diverges: the report names the stage, the
    key and the first difference."""

    async def roll(ctx: Any) -> dict[str, Any]:
        return {"steps": ["a", "b"], "dice": random.random()}

    handlers = {**HANDLERS, "plan": roll}
    original = rec.run(handlers=handlers, flow=flow_without_plan_mapping())
    outcome = rec.replay(original.run_id, verify=True, resolver=counting(handlers)[0])
    ((stage_name, what, keys, first),) = [
        (d.stage, d.what, d.keys, d.first.split(":")[0]) for d in outcome.report.divergences
    ]
    assert ("plan", "outputs", ("dice",), "dice") == (stage_name, what, keys, first)


@pytest.mark.slow
def test_redacted_input_and_output_cut_by_tempo_are_both_named(rec: Recording) -> None:
    """A redacted request field and a stage output Tempo cut at 2,048 bytes stop the replay,
    one error naming both and how to supply them; nothing runs."""

    async def big_build(ctx: Any) -> dict[str, Any]:
        for step in ctx.inputs["steps"]:
            ctx.publish("part", {"name": step})
        return {"parts": list(ctx.inputs["steps"]), "log": "x" * 5000}

    handlers = {**HANDLERS, "build": big_build}
    original = rec.run(request={"goal": "g", "api_token": "s3cret"}, handlers=handlers)
    spans = cut_like_tempo(rec.spans(original.run_id))
    resolver, calls = counting(handlers)
    with serve(Backend()) as backend:
        body = {"trace": encode_traces(spans, ids="base64", enums="int"), "status": "COMPLETE"}
        backend.route(f"/api/v2/traces/{original.run_id}", body)
        with pytest.raises(ReplayError) as caught:
            rec.replay(
                original.run_id,
                from_stage="check",
                source=f"tempo+{backend.url}",
                resolver=resolver,
            )
    lines = str(caught.value).splitlines()[1:]
    assert [
        "  the request: redacted (api_token); supply it with --input api_token=VALUE",
        "  outputs of build.0.1: cut on the way to the span source (2048 of 5032 bytes kept): "
        "raise the backend's attribute limit (Tempo: distributor "
        "max_span_attr_byte, max_attribute_bytes from Tempo 2.8; see tempo/tempo.yaml); "
        "supply it with --stage-output build=FILE.json",
    ] == lines
    assert {} == calls


@pytest.mark.slow
def test_supplied_values_let_the_replay_run(rec: Recording) -> None:
    """With the redacted field given as an input the replay runs on it."""
    original = rec.run(request={"goal": "g", "api_token": "s3cret"})
    outcome = rec.replay(original.run_id, inputs={"api_token": "other"})
    assert ("success", "g-1") == (
        str(outcome.result.status),
        outcome.result.outputs["plan"]["steps"][0],
    )


@pytest.mark.slow
def test_definition_changed_on_disk_is_described_and_needs_use_file(rec: Recording) -> None:
    """A file that differs from the recorded definition is refused with what changed, and
    runs with use_file."""

    original = rec.run()
    changed = replace(
        FLOW,
        stages=(
            *FLOW.stages[:3],
            replace(FLOW.stages[3], outputs=(OutputMapping("ok", "result.released"),)),
            stage("notify", *after("release"), loop="notify"),
        ),
    )
    with pytest.raises(ReplayError, match="stages added: notify; stages changed: release"):
        rec.replay(original.run_id, pipeline=changed)
    outcome = rec.replay(original.run_id, pipeline=changed, use_file=True)
    assert ("success", {"ok": True}) == (
        str(outcome.result.status),
        dict(outcome.result.outputs["release"]),
    )


class DiskFullError(Exception):
    """A failure of a type of this test's own."""


async def _disk_full(ctx: Any) -> dict[str, Any]:
    raise DiskFullError("no space left on /data")


async def _hang(ctx: Any) -> dict[str, Any]:
    """Waits until the stage's timeout cancels it."""
    return await asyncio.get_running_loop().create_future()  # type: ignore[no-any-return]


#: ``bad`` fails twice, ``slow`` times out; ``z`` runs after both.
_ENDS = replace(
    FLOW,
    stages=(
        stage("bad", loop="bad", retry=RetryPolicy(max_attempts=2, backoff=Backoff(initial=0.01))),
        stage("slow", loop="slow", timeout=0.05),
        stage("z", *after("bad", "slow", success_only=False), loop="z"),
    ),
    error_strategy=ErrorStrategy.CONTINUE,
)


@pytest.mark.slow
def test_fed_stages_end_as_the_record_failed_and_timed_out(rec: Recording) -> None:
    """Fed, a stage the record saw fail fails with the recorded message under the recorded
    error type, once (the one fed execution stands for both recorded attempts), and one it
    saw time out times out with the recorded message."""
    handlers = {"bad": _disk_full, "slow": _hang}
    original = rec.run(flow=_ENDS, handlers=handlers)
    outcome = rec.replay(original.run_id, from_stage="z", resolver=Resolver(handlers))

    def ends(result: Any) -> list[tuple[Any, ...]]:
        return [
            (name, len(result.executions[name]), str(e.status), e.error_type, e.error)
            for name in ("bad", "slow")
            for e in result.executions[name][-1:]
        ]

    bad, slow = ends(original)
    assert [
        ("bad", 2, "failure", "DiskFullError", "no space left on /data"),
        ("slow", 1, "timeout", "TimeoutError", "timed out after 0.05s"),
    ] == ends(original)
    assert [("bad", 1, *bad[2:]), slow] == ends(outcome.result)


@pytest.mark.slow
def test_the_span_hook_tells_the_run_log_what_the_record_did_of_fed_executions(
    rec: Recording,
) -> None:
    """While a replay runs, the monitor's span hook answers, for each fed execution, the
    recorded status, the attempts the record made (a retried stage's two, which its span
    keeps too) and the recorded inputs, which the replay does not evaluate again; nothing
    for an execution run again, nor for another run's stage of the same name."""
    answers: list[tuple[Any, ...]] = []

    class Asking:
        def on_event(self, event: Any) -> None:
            if isinstance(event, StageFinished):
                hook = rec.monitor.span_hook
                answers.append(
                    (
                        event.stage,
                        event.instance,
                        hook.recorded(event.run_id, event.stage, event.instance),
                        hook.recorded("0" * 32, event.stage, event.instance),
                    )
                )

    async def flaky_plan(ctx: Any) -> dict[str, Any]:
        if ctx.attempt == 1:
            raise RuntimeError("plan broke once")
        return await HANDLERS["plan"](ctx)

    original = rec.run(flow=_RETRIED, handlers={**HANDLERS, "plan": flaky_plan})
    outcome = rec.replay(original.run_id, from_stage="check", observers=[Asking()])
    spans = {
        span.attributes.get(t.CICD_TASK_NAME): span.attributes for span in rec.spans(outcome.run_id)
    }
    assert (2, 1) == (
        spans["plan"][t.STAGE_REPLAYED_ATTEMPTS],
        spans["build"][t.STAGE_REPLAYED_ATTEMPTS],
    )
    assert [
        ("plan", 0, ("success", 2, {"goal": "g"}), None),
        ("build", 0, ("success", 1, {"steps": ["g-1", "g-2"]}), None),
        ("check", 0, None, None),
        ("check", 1, None, None),
    ] == sorted(answers, key=lambda a: ("plan", "build", "check").index(a[0]))


@pytest.mark.slow
def test_approvals_are_decided_as_recorded_and_one_never_recorded_is_rejected(
    rec: Recording,
) -> None:
    """A replay approves what alice approved and rejects what she rejected, in her name; an
    approval the record never asked for (its check failed, so release never waited) is
    rejected, since nobody approved it."""

    async def broken_check(ctx: Any) -> dict[str, Any]:
        raise RuntimeError("check broke")

    def decided(outcome: Any, recorder: Recorder) -> tuple[Any, ...]:
        (resolved,) = [e for e in recorder.events if isinstance(e, ApprovalResolved)]
        return (resolved.stage, resolved.approved, resolved.by, str(outcome.result.status))

    said = []
    for original in (
        rec.run(approve=True),
        rec.run(approve=False),
        rec.run(handlers={**HANDLERS, "check": broken_check}),
    ):
        recorder = Recorder()
        said.append(decided(rec.replay(original.run_id, observers=[recorder]), recorder))
    assert [
        ("release", True, "replay (alice)", "success"),
        ("release", False, "replay (alice)", "success"),
        ("release", False, "replay (no recorded decision)", "success"),
    ] == said


@pytest.mark.slow
def test_a_fed_stage_hands_on_its_recorded_outputs_as_they_were_mapped(rec: Recording) -> None:
    """The record holds a stage's outputs after its ``outputs:`` mapping (``todo`` from the
    result's ``steps``): fed, they reach the stage after it as they are, not mapped again.
    The replay's run span keeps the replayed definition (its hash, not the one of the
    variant with that mapping removed) and says who started it; without ``verify`` the
    outcome has no report, and it holds the plan it ran."""
    stages = list(FLOW.stages[:3])
    stages[0] = replace(stages[0], outputs=(OutputMapping("todo", "result.steps"),))
    stages[1] = replace(stages[1], inputs=(InputMapping("steps", "stages.plan.outputs.todo"),))
    flow = replace(FLOW, stages=tuple(stages))
    original = rec.run(flow=flow)
    outcome = rec.replay(original.run_id, from_stage="build")
    assert ("success", {"parts": ["g-1", "g-2"]}) == (
        str(outcome.result.status),
        dict(outcome.result.outputs["build"]),
    )
    recorded, replayed = (_root(rec.spans(run.run_id)).attributes for run in (original, outcome))
    assert (flow.definition_hash, "replay", None, original.run_id) == (
        replayed[t.PIPELINE_DEFINITION_HASH],
        replayed[t.PIPELINE_STARTED_BY],
        outcome.report,
        outcome.plan.recorded.run_id,
    )
    assert recorded[t.PIPELINE_DEFINITION_HASH] == replayed[t.PIPELINE_DEFINITION_HASH]


async def _sized(ctx: Any) -> dict[str, Any]:
    """The size the event that fired it carried, if any."""
    return {"size": ctx.event.get("size")}


#: ``worker`` runs once for each ``job`` event published from outside; ``hold``'s approval
#: keeps the run open meanwhile.
_OUTSIDE = pipeline(
    stage("hold", Manual(approval_required=True), loop="hold"),
    stage("worker", OnEvent("job"), loop="worker", parallel_instances=3),
    name="outside",
    external_events=("job",),
)


async def _published_from_outside(rec: Recording, payloads: list[Any]) -> Any:
    """A run of ``_OUTSIDE`` given each of ``payloads`` as a ``job`` event from outside while
    ``hold`` waits for its approval, then approved by alice."""
    asked = asyncio.Event()

    class Asked:
        def on_event(self, event: Any) -> None:
            if isinstance(event, ApprovalRequested):
                asked.set()

    engine = Engine(resolver=Resolver({"worker": _sized}), observers=[Asked(), rec.monitor])
    async with engine:
        handle = await engine.start_run(_OUTSIDE, {})
        await asked.wait()
        for payload in payloads:
            handle.publish("job", payload)
        handle.approve("hold", by="alice")
        return await handle.wait()


@pytest.mark.slow
def test_events_from_outside_are_published_again_in_order(rec: Recording) -> None:
    """A replay publishes the events the run got from outside again, in order and with their
    payloads (an empty one too): the stage they fire runs once for each, as it did."""
    original = asyncio.run(_published_from_outside(rec, [{"size": 2}, {}, {"size": 5}]))
    rec.monitor.flush()
    rec.provider.force_flush()
    outcome = rec.replay(original.run_id, resolver=Resolver({"worker": _sized}))

    def sizes(result: Any) -> list[Any]:
        return [dict(e.outputs) for e in result.executions["worker"]]

    assert ("success", [{"size": 2}, {"size": None}, {"size": 5}]) == (
        str(outcome.result.status),
        sizes(outcome.result),
    )
    assert sizes(original) == sizes(outcome.result)
