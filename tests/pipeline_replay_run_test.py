"""Replay from stored spans: full replays from every source, --from with fed stages, the
links and statuses they leave, verification, missing values and a changed definition."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path
from typing import Any

import pytest

from pipeline_replay_support import FLOW, HANDLERS, Recording, check, counting, cut_like_tempo
from pipeline_tracking_support import Backend, serve
from taskdaemon.pipeline import telemetry as t
from taskdaemon.pipeline.model import Backoff, ErrorStrategy, OutputMapping, RetryPolicy
from taskdaemon.pipeline.payloads import PayloadCapture
from taskdaemon.pipeline.record_fields import replace
from taskdaemon.pipeline.replay import ReplayError, replay_async
from taskdaemon.pipeline.tracking import encode_traces

from pipeline_engine_support import Resolver, after, stage  # isort: skip


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

    flow = replace(
        FLOW,
        stages=FLOW.stages[:3],  # no release: nothing to approve
        error_strategy=ErrorStrategy.RETRY,
        retry=RetryPolicy(max_attempts=2, backoff=Backoff(initial=0.01)),
    )
    original = rec.run(flow=flow, handlers={**HANDLERS, "build": flaky_build})
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
    original = rec.run(handlers=handlers, flow=_flow_without_plan_mapping())
    outcome = rec.replay(original.run_id, verify=True, resolver=counting(handlers)[0])
    ((stage_name, what, keys, first),) = [
        (d.stage, d.what, d.keys, d.first.split(":")[0]) for d in outcome.report.divergences
    ]
    assert ("plan", "outputs", ("dice",), "dice") == (stage_name, what, keys, first)


def _flow_without_plan_mapping() -> Any:

    stages = tuple(replace(s, outputs=None) if s.name == "plan" else s for s in FLOW.stages)
    return replace(FLOW, stages=stages)


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


async def _plan_in_workspace(ctx: Any) -> dict[str, Any]:
    """Leaves a file in its workspace and returns its run id and the file's path."""
    path = Path(ctx.workspace) / "plan.txt"
    path.write_text(f"steps of {ctx.run_id}")
    return {"steps": ["a"], "run": ctx.run_id, "file": str(path)}


async def _build_from_file(ctx: Any) -> dict[str, Any]:
    """Reads the file the plan left in the workspace (fails when it is not there)."""
    return {"parts": [(Path(ctx.workspace) / "plan.txt").read_text()]}


_IN_WORKSPACE = {**HANDLERS, "plan": _plan_in_workspace, "build": _build_from_file}


@pytest.mark.slow
def test_verify_reads_the_replays_run_id_as_the_recorded_one(
    rec: Recording, tmp_path: Path
) -> None:
    """Stages returning their run id, or a path and text in their workspace, re-executed in a
    replay under the same workspace root, do not diverge; the replay's workspace is its own."""
    root = tmp_path / "workspaces"
    handlers = counting(_IN_WORKSPACE)[0]
    original = rec.run(handlers=_IN_WORKSPACE, flow=_flow_without_plan_mapping(), workspace=root)
    outcome = rec.replay(original.run_id, verify=True, resolver=handlers, workspace=str(root))
    assert ([], "steps of " + outcome.run_id) == (
        outcome.report.divergences,
        (root / outcome.run_id / "plan.txt").read_text(),
    )


@pytest.mark.slow
def test_a_stage_resumed_after_fed_ones_finds_the_files_they_left(
    rec: Recording, tmp_path: Path
) -> None:
    """With ``from_stage``, the replay's workspace starts as a copy of the recorded run's: the
    resumed stage reads the file the fed stage wrote, the original's folder is left as it
    was, and nothing diverges."""
    root = tmp_path / "workspaces"
    flow = _flow_without_plan_mapping()
    original = rec.run(handlers=_IN_WORKSPACE, flow=flow, workspace=root)
    before = sorted(p.name for p in (root / original.run_id).iterdir())
    handlers, calls = counting(_IN_WORKSPACE)
    outcome = rec.replay(
        original.run_id, from_stage="build", verify=True, resolver=handlers, workspace=str(root)
    )
    assert ("success", [], False, before) == (
        str(outcome.result.status),
        outcome.report.divergences,
        "plan" in calls,
        sorted(p.name for p in (root / original.run_id).iterdir()),
    )
    assert (root / outcome.run_id / "plan.txt").read_text() == f"steps of {original.run_id}"
