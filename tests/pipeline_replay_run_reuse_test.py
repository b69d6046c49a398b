"""A replay in this process of a fan-out one instance of which failed, from that stage: only
that instance runs again, the others hand on their recorded events and outputs (``replayed``,
linked to their original spans); ``rerun_all`` runs them all (``replay/run.py``, the reused
instances). ``pipeline_cli_replay_reuse_test.py`` does the same through ``taskdaemon replay``
processes, which mutation testing cannot credit."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from pipeline_engine_support import Recorder, Resolver
from pipeline_replay_support import Recording
from taskdaemon.pipeline import telemetry as t
from taskdaemon.pipeline.config import parse_pipeline
from taskdaemon.pipeline.events import EventPublished
from taskdaemon.pipeline.payloads import PayloadCapture

#: ``a`` publishes three items; ``c`` runs one instance per item and maps its ``double`` to
#: ``twice``; ``d`` reads every instance's mapped outputs.
FAN = parse_pipeline(
    textwrap.dedent(
        """\
        name: fan
        error_strategy: continue
        stages:
          - name: a
            handler: "fanned:x"
            emits: [item]
            triggers: [{manual: {approval_required: false}}]
          - name: c
            handler: "fanned:x"
            emits: [checked]
            parallel_instances: 3
            inputs: {n: event.n}
            outputs: {twice: result.double}
            triggers: [{on_event: {type: item}}]
          - name: d
            handler: "fanned:x"
            inputs: {parts: stages.c.outputs.instances}
            triggers: [{on_completion: {stage: c}}]
        """
    )
)


class Fan:
    """The handlers, ``c`` failing for item 2 while ``broken``; what ``c`` and ``d`` saw."""

    def __init__(self) -> None:
        self.broken = True
        self.checked: list[int] = []
        self.published = 0
        self.parts: list[Any] = []

    def handlers(self) -> dict[str, Any]:
        async def a(ctx: Any) -> dict[str, Any]:
            self.published += 1
            for n in (1, 2, 3):
                ctx.publish("item", {"n": n})
            return {}

        async def c(ctx: Any) -> dict[str, Any]:
            n = ctx.inputs["n"]
            self.checked.append(n)
            ctx.publish("checked", {"n": n})
            if n == 2 and self.broken:
                raise RuntimeError("broken")
            return {"double": 2 * n}

        async def d(ctx: Any) -> dict[str, Any]:
            self.parts.append(ctx.inputs["parts"])
            return {}

        return {"a": a, "c": c, "d": d}


@pytest.fixture
def rec(tmp_path: Path) -> Any:
    recording = Recording(tmp_path / "spans.db", PayloadCapture(max_bytes=65536))
    yield recording
    recording.close()


def _instances(spans: list[Any], stage: str) -> dict[int, Any]:
    return {
        span.attributes[t.STAGE_INSTANCE]: span
        for span in spans
        if span.attributes.get(t.CICD_TASK_NAME) == stage and t.STAGE_INSTANCE in span.attributes
    }


def _replayed_from(span: Any) -> list[tuple[str, str]]:
    return [
        (link.trace_id, link.span_id)
        for link in span.links
        if link.attributes.get(t.LINK_RELATION) == t.LINK_REPLAYED_FROM
    ]


@pytest.mark.slow
def test_only_the_failed_instance_runs_again_and_the_others_are_handed_on(
    rec: Recording,
) -> None:
    fan = Fan()
    original = rec.run(flow=FAN, handlers=fan.handlers())
    assert (str(original.status), sorted(fan.checked)) == ("failure", [1, 2, 3])
    recorded = _instances(rec.spans(original.run_id), "c")
    fan.broken, fan.checked, fan.parts = False, [], []
    recorder = Recorder()
    outcome = rec.replay(
        original.run_id,
        from_stage="c",
        resolver=Resolver(fan.handlers()),
        verify=True,
        observers=[recorder],
    )
    assert (str(outcome.result.status), fan.checked, fan.published) == ("success", [2], 1)
    fed = _instances(rec.spans(outcome.run_id), "a")[0]
    assert fed.attributes[t.STAGE_STATUS] == "replayed"  # fed: its handler not run again
    assert fan.parts == [[{"twice": 2}, {"twice": 4}, {"twice": 6}]]  # not mapped again
    spans = _instances(rec.spans(outcome.run_id), "c")
    trace = rec.spans(original.run_id)[0].trace_id
    assert {
        i: (
            span.attributes[t.STAGE_STATUS],
            span.attributes.get(t.STAGE_REPLAYED_STATUS),
            _replayed_from(span),
        )
        for i, span in spans.items()
    } == {
        0: ("replayed", "success", [(trace, recorded[0].span_id)]),
        1: ("success", None, []),
        2: ("replayed", "success", [(trace, recorded[2].span_id)]),
    }
    assert outcome.report is not None
    assert [(d.stage, d.instance, d.what) for d in outcome.report.divergences] == [
        ("c", 1, "status"),
        ("d", 0, "extra"),
    ]  # none of the reused instances
    checked = sorted(
        (e.source.instance if e.source else None, e.payload["n"])
        for e in recorder.of(EventPublished)
        if e.event_type == "checked"
    )
    assert checked == [(0, 1), (1, 2), (2, 3)]  # the reused ones' as recorded


@pytest.mark.slow
def test_rerun_all_runs_every_instance_again(rec: Recording) -> None:
    fan = Fan()
    original = rec.run(flow=FAN, handlers=fan.handlers())
    fan.broken, fan.checked = False, []
    outcome = rec.replay(
        original.run_id, from_stage="c", resolver=Resolver(fan.handlers()), rerun_all=True
    )
    assert (str(outcome.result.status), sorted(fan.checked)) == ("success", [1, 2, 3])
    statuses = {
        i: span.attributes[t.STAGE_STATUS]
        for i, span in _instances(rec.spans(outcome.run_id), "c").items()
    }
    assert statuses == {0: "success", 1: "success", 2: "success"}
