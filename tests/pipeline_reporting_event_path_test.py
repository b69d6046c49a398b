"""The critical path through an event, on a real run (engine, monitor, OTel SDK, embedded
store): a stage fired by an event is released by the publish, so the chain goes on through the
publishing execution, whose step ends at the publish (docs/reports.md, "Reports"). The
store's aggregates (written as the run ended, or rebuilt from its spans), runs rebuilt from the
store and from an OTLP-JSON file, and every format agree."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from pipeline_engine_support import after, pipeline, stage
from pipeline_replay_support import Recording
from pipeline_tracking_support import kept_and_rebuilt, within_a_microsecond
from taskdaemon.pipeline.cli import main
from taskdaemon.pipeline.loops import StageContext
from taskdaemon.pipeline.model import OnEvent, Pipeline
from taskdaemon.pipeline.records import RunRecord
from taskdaemon.pipeline.reporting import RecordData, build_report, render_report
from taskdaemon.pipeline.reporting import run_critical_path as path_of
from taskdaemon.pipeline.tracking import SpanStore, encode_traces
from taskdaemon.pipeline.tracking._schema import connect
from taskdaemon.pipeline.tracking.aggregates import StoreReportData

DAY = 86400.0

#: The README example's shape: planning → specification, which publishes ``spec.ready`` twice
#: and runs on until an implementation has started → implementation (one instance an event)
#: → verification.
DELIVERY: Pipeline = pipeline(
    stage("planning"),
    stage("specification", *after("planning"), emits=("spec.ready",)),
    stage("implementation", OnEvent("spec.ready"), parallel_instances=2),
    stage("verification", *after("implementation")),
    name="delivery",
)


def _handlers() -> Mapping[str, Any]:
    started = asyncio.Event()

    async def specification(ctx: StageContext) -> Mapping[str, Any]:
        ctx.publish("spec.ready", {"n": 1})
        ctx.publish("spec.ready", {"n": 2})
        # Still running when an implementation starts: the bound only keeps a broken engine
        # from hanging the test.
        await asyncio.wait_for(started.wait(), 60)
        return {}

    async def implementation(ctx: StageContext) -> Mapping[str, Any]:
        started.set()
        await asyncio.sleep(0)
        return {}

    return {"specification": specification, "implementation": implementation}


class Delivered:
    """Two runs of ``DELIVERY`` recorded into one store."""

    def __init__(self, db: Path) -> None:
        self.db = db
        rec = Recording(db)
        try:
            self.runs = [rec.run(DELIVERY, handlers=_handlers()).run_id for _ in range(2)]
        finally:
            rec.close()
        with SpanStore(db) as store:
            self.records = [store.get_run(run_id) for run_id in self.runs]
            self.spans = [span for run_id in self.runs for span in store.get_trace(run_id)]


@pytest.fixture(scope="module")
def delivered(tmp_path_factory: pytest.TempPathFactory) -> Delivered:
    return Delivered(tmp_path_factory.mktemp("event-path") / "spans.db")


def _window() -> tuple[float, float]:
    now = time.time()
    return (now - 2 * DAY, now + 2 * DAY)


def _attempts(run: RunRecord, name: str) -> list[Any]:
    (found,) = [s for s in run.stages if s.name == name]
    return list(found.attempts)


def test_the_path_goes_through_the_publish_that_fired_a_stage(delivered: Delivered) -> None:
    """The chain reaches the entry stage: specification's step ends at the last publish
    before implementation started and names the event, implementation's wait counts from it,
    and the steps cover the run from its start to verification's end with no gap."""
    for run in delivered.records:
        path = path_of(run)
        steps = {step.stage: step for step in path.steps}
        assert ["planning", "specification", "implementation", "verification"] == [
            step.stage for step in path.steps
        ]
        (spec,) = _attempts(run, "specification")
        implementation = _attempts(run, "implementation")
        first = min(a.start for a in implementation)
        assert 2 == len(spec.published)
        published = max(at for at, _ in spec.published if at <= first)
        assert spec.end > first  # it ran on beside the stage its event fired
        assert (steps["specification"].end, steps["specification"].event) == (
            published,
            "spec.ready",
        )
        assert steps["specification"].duration == published - spec.start
        assert steps["implementation"].wait == pytest.approx(first - published, abs=1e-9)
        assert {a.span_id for a in implementation} == {
            a.span_id for a in implementation if spec.span_id in a.triggered_by
        }
        assert [None, "spec.ready", None, None] == [step.event for step in path.steps]
        (verification,) = _attempts(run, "verification")
        assert path.length == pytest.approx(verification.end - run.start, abs=1e-6)


def test_the_store_rebuilt_runs_and_an_otlp_file_report_the_same_path(
    delivered: Delivered, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The store's aggregates and runs rebuilt from it give the same JSON report (but for a
    microsecond of rounding), the same one an OTLP-JSON file of the runs' spans gives; a
    partial step counts up to the publish in its stage's critical share."""
    since, until = _window()
    with SpanStore(delivered.db) as store:
        data = StoreReportData(store)
        try:
            from_store = json.loads(render_report(build_report(data, since, until), "json"))
        finally:
            data.close()
    rebuilt = json.loads(
        render_report(build_report(RecordData(delivered.records), since, until), "json")
    )
    assert within_a_microsecond(rebuilt, from_store) == from_store
    file = tmp_path / "traces.jsonl"
    file.write_text(json.dumps(encode_traces(delivered.spans)) + "\n")
    window = ["--since", "2d", "--until", "2030-01-01"]
    assert 0 == main(["report", "--source", f"otlp-json://{file}", "--format", "json", *window])
    out, err = capsys.readouterr()
    assert "" == err
    from_file = json.loads(out)
    from_file.pop("source"), rebuilt.pop("source")
    assert (from_file["pipelines"], from_file["notes"]) == (rebuilt["pipelines"], rebuilt["notes"])

    (report,) = rebuilt["pipelines"]
    slowest = report["critical_path"]["slowest_run"]
    assert [None, "spec.ready", None, None] == [step["to_event"] for step in slowest["steps"]]
    paths = [path_of(run) for run in delivered.records]
    total = sum(run.duration or 0.0 for run in delivered.records)
    shares = {s["stage"]: s["critical_path_share"] for s in report["stages"]}
    for name in ("planning", "specification"):
        on_path = sum(step.duration for path in paths for step in path.steps if step.stage == name)
        assert shares[name] == pytest.approx(on_path / total, abs=1e-6)
    assert 0 < shares["planning"]
    spec_ran = sum(a.duration for run in delivered.records for a in _attempts(run, "specification"))
    assert shares["specification"] < spec_ran / total  # only up to the publish


def test_every_format_shows_the_step_cut_at_the_publish(
    delivered: Delivered, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["report", "--source", f"sqlite:///{delivered.db}", "--since", "2d"]
    outputs = {}
    for fmt in ("table", "markdown", "html"):
        assert 0 == main([*base, "--format", fmt, "-o", str(tmp_path / f"r.{fmt}")])
        outputs[fmt] = (tmp_path / f"r.{fmt}").read_text()
    assert "" == capsys.readouterr().err
    duration = r"[0-9.]+(?:µs|ms|s)"
    assert re.search(
        rf"\n  specification: waited {duration}, ran {duration} \(to spec\.ready\)\n"
        rf"  implementation: waited {duration}, ran {duration}\n",
        outputs["table"],
    )
    assert re.search(
        rf"\| specification \| {duration} \| {duration} \(to spec\.ready\) \|", outputs["markdown"]
    )
    assert re.search(
        rf"<td>specification</td><td>{duration}</td><td>{duration} \(to spec\.ready\)</td>",
        outputs["html"],
    )


def test_the_writer_and_a_rebuild_from_spans_write_the_same_rows(delivered: Delivered) -> None:
    """The rows the writer wrote from what it kept as the runs ended equal those a rebuild
    from the stored spans writes, the cut specification step included."""
    conn = connect(delivered.db)
    try:
        kept, runs, rebuilt = kept_and_rebuilt(conn)
    finally:
        conn.close()
    assert (2, 8) == (runs, len(kept["critical_steps"]))
    assert kept == rebuilt
