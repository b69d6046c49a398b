"""watch_stored_run over a remote source (Tempo here; Jaeger and OTLP-JSON files alike): a
backend receives each span once it ends, the run span at the run's end, so what a stage not
started waits for is known to it only once nothing waits any more, and a run whose process
died never ends there: a watch says so after a while without a new span, and goes on."""

from __future__ import annotations

import asyncio
import re
import subprocess
import threading
from pathlib import Path

import pytest

from cli_support import ROOT, TASKDAEMON, environment, read_line
from pipeline_remote_run_support import (
    HELD,
    earlier,
    held_run_spans,
    jaeger_trace,
    tempo_trace,
)
from pipeline_replay_support import cut_like_tempo
from pipeline_tracking_support import Backend, serve
from taskdaemon.pipeline.records import RunRecord
from taskdaemon.pipeline.tracking import JaegerSource, SpanRecord, TempoSource
from taskdaemon.pipeline.visualization import DagSnapshot, watch_stored_run
from taskdaemon.pipeline.visualization._terminal import stage_rows


async def _watched(cut: bool) -> list[DagSnapshot]:
    """Every snapshot of HELD's run read from a Tempo that has the spans ended while deploy
    waits, then all of them (each string attribute cut at 2,048 bytes when ``cut``, Tempo's
    default)."""
    run_id, held, ended = await held_run_spans()
    snapshots = []
    with serve(Backend()) as tempo, TempoSource(tempo.url) as source:
        tempo.route(f"/api/v2/traces/{run_id}", tempo_trace(held))
        async for snapshot in watch_stored_run(source, run_id, interval=0.01):
            snapshots.append(snapshot)
            tempo.route(
                f"/api/v2/traces/{run_id}", tempo_trace(cut_like_tempo(ended) if cut else ended)
            )
    return snapshots


def _rows(snapshot: DagSnapshot) -> dict[str, tuple[str, str]]:
    return {row.stage: (row.state, row.waiting_for) for row in stage_rows(snapshot, 0.0)}


async def test_a_running_run_shows_its_ended_stages_only() -> None:
    """While deploy waits, Tempo has build's span and nothing else: no run span, so no
    definition, and no span of deploy or notify. The run is drawn with build alone; no stage
    is listed as waiting for ``unknown``, none is listed at all. Its end brings every span."""
    first, *_, last = await _watched(cut=False)
    assert (_rows(first), [node.name for node in last.nodes]) == (
        {"build": ("success", "")},
        ["build", "deploy", "notify"],
    )


async def test_the_definition_a_backend_cut_is_not_used() -> None:
    """At the run's end the run span brings the definition: whole, it is drawn over; cut at
    Tempo's default limit, it no longer hashes to the run's definition hash and is not."""
    assert (HELD, None) == (
        (await _watched(cut=False))[-1].definition,
        (await _watched(cut=True))[-1].definition,
    )


#: Polls in a row without a new span after which the tests' watches say so.
QUIET = 3


class _EndingLater:
    """A Tempo (or a Jaeger, ``jaeger``) that has ``held``, as it would for ever had the run's
    process died, until its ``end_at``-th poll, from which on it has ``ended``."""

    def __init__(
        self,
        tempo: Backend,
        run_id: str,
        held: list[SpanRecord],
        ended: list[SpanRecord],
        *,
        jaeger: bool = False,
    ) -> None:
        self.tempo, self.ended = tempo, ended
        self.source: TempoSource | JaegerSource
        if jaeger:
            self.path, self.answer = f"/api/v3/traces/{run_id}", jaeger_trace
            self.source = JaegerSource(tempo.url)
        else:
            self.path, self.answer = f"/api/v2/traces/{run_id}", tempo_trace
            self.source = TempoSource(tempo.url)
        self.polls = 0
        self.end_at = 10 * QUIET  # a watch that never says ends all the same: fails, not hangs
        tempo.route(self.path, self.answer(held))

    def get_run(self, run_id: str) -> RunRecord:
        self.polls += 1
        if self.polls == self.end_at:
            self.tempo.route(self.path, self.answer(self.ended))
        return self.source.get_run(run_id)


async def test_a_run_that_sends_no_new_span_is_said_once_and_still_watched() -> None:
    """Tempo has build's span and no run span: after QUIET polls finding nothing new the watch
    says so, in one line, once, though it polls three times as long again; it does not end.
    The run span, when it comes, ends it (a live run was only waiting)."""
    run_id, held, ended = await held_run_spans()
    said: list[str] = []
    with serve(Backend()) as tempo:
        source = _EndingLater(tempo, run_id, held, ended)

        def say(line: str) -> None:
            if not said:
                source.end_at = source.polls + 3 * QUIET
            said.append(line)

        try:
            stream = watch_stored_run(
                source, run_id, interval=0.01, quiet_polls=QUIET, on_quiet=say
            )
            snapshots = [snapshot async for snapshot in stream]
        finally:
            source.source.close()
    pattern = rf"run {run_id}: no new span for \S+, still waiting \(.* never ends in this source\)"
    assert (1, True, ["running", "success"]) == (
        len(said),
        re.fullmatch(pattern, said[0]) is not None,
        [snapshot.run.status for snapshot in snapshots if snapshot.run],
    ), said


def _an_hour_earlier(span: SpanRecord, hour: int = 3600 * 10**9) -> SpanRecord:
    """``span`` and its events as they were had it run an hour ago (``hour`` ns)."""
    return earlier(span, hour)


async def test_the_quiet_line_counts_from_the_newest_span_not_from_the_watch() -> None:
    """A watch started on a run whose newest span ended an hour ago says, after QUIET polls,
    that no new span came for an hour: the source's word (as the web page's), not the moment
    this watch began to poll."""
    run_id, held, ended = await held_run_spans()
    said: list[str] = []
    with serve(Backend()) as tempo:
        source = _EndingLater(tempo, run_id, [_an_hour_earlier(span) for span in held], ended)
        try:
            stream = watch_stored_run(
                source, run_id, interval=0.01, quiet_polls=QUIET, on_quiet=said.append
            )
            async for _ in stream:
                pass
        finally:
            source.source.close()
    assert [f"run {run_id}: no new span for 1h00m"] == [line.split(",")[0] for line in said]


@pytest.mark.slow
def test_watch_says_on_stderr_that_no_new_span_came(home: Path) -> None:
    """`taskdaemon watch RUN --source tempo+http://…` through a pipe: after 120 polls finding
    nothing new (a minute at the default interval, seconds at ``--interval 0.05``) one line on
    stderr says so; stdout keeps its plain lines, and the run span, once Tempo has it, ends the
    watch with the run's exit code."""
    run_id, held, ended = asyncio.run(held_run_spans())
    with serve(Backend()) as tempo:
        path = f"/api/v2/traces/{run_id}"
        tempo.route(path, tempo_trace(held))
        url = f"tempo+{tempo.url}"
        watch = subprocess.Popen(
            [TASKDAEMON, "watch", run_id, "--source", url, "--interval", "0.05"],
            cwd=ROOT,
            env=environment(home),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        guard = threading.Timer(120, watch.kill)  # a watch that never says it fails, not hangs
        guard.start()
        try:
            assert watch.stderr is not None
            said = read_line(watch.stderr)
            tempo.route(path, tempo_trace(ended))
            out, _ = watch.communicate()
        finally:
            guard.cancel()
            if watch.poll() is None:
                watch.kill()
                watch.communicate()
    lines = out.splitlines()
    assert (0, True, "build: success", f"run {run_id} of held: success") == (
        watch.returncode,
        said.startswith(f"taskdaemon watch: run {run_id}: no new span for "),
        lines[0].split(",")[0],
        lines[-1].split(",")[0],
    ), (said, out)


def _stages(snapshot: DagSnapshot) -> list[tuple[str, str]]:
    assert snapshot.run is not None
    return [(stage.name, stage.status) for stage in snapshot.run.stages]


async def _watch_torn(
    end_at: int, *, settle_timeout: float, hours_ago: int = 0, jaeger: bool = False
) -> tuple[list[DagSnapshot], list[str], int]:
    """The snapshots and lines of a watch of HELD's run on a Tempo (a Jaeger: ``jaeger``) that
    has every span but deploy's (the run span came in a batch before deploy's) until its
    ``end_at``-th poll, then all of them; and the polls it took (each span ``hours_ago`` hours
    earlier)."""
    run_id, _, ended = await held_run_spans()
    ended = [_an_hour_earlier(span, hours_ago * 3600 * 10**9) for span in ended]
    torn = [span for span in ended if span.name != "deploy"]
    said: list[str] = []
    with serve(Backend()) as tempo:
        source = _EndingLater(tempo, run_id, torn, ended, jaeger=jaeger)
        source.end_at = end_at
        try:
            stream = watch_stored_run(
                source, run_id, interval=0.01, on_quiet=said.append, settle_timeout=settle_timeout
            )
            snapshots = [snapshot async for snapshot in stream]
        finally:
            source.source.close()
    return snapshots, said, source.polls


async def test_a_run_span_in_before_a_stage_span_is_followed_until_the_stage_span_is() -> None:
    """Tempo has the run span, ended, and build's and notify's, not yet deploy's: the run read
    ``success`` with deploy ``skipped``, and the watch ended on that. It polls on, shows no such
    picture, and ends once deploy's span is in (the fifth poll), on the run as it was."""
    snapshots, said, polls = await _watch_torn(5, settle_timeout=30.0)
    assert ([[("build", "success"), ("deploy", "success"), ("notify", "success")]], [], 5) == (
        [_stages(snapshot) for snapshot in snapshots],
        said,
        polls,
    )


async def test_a_stage_span_that_never_comes_is_waited_for_a_while_then_said() -> None:
    """Deploy's span never reaches Tempo: after ``settle_timeout`` the watch ends on the run as
    Tempo has it, and says in one line which stage has no span (it may have run). The run's
    spans say it ended an hour from now (a clock ahead): the wait is bounded all the same."""
    snapshots, said, polls = await _watch_torn(10**6, settle_timeout=0.2, hours_ago=-1)
    assert (1, ("deploy", "skipped"), [True]) == (
        len(snapshots),
        _stages(snapshots[0])[1],
        ["has no span of stage deploy: shown as skipped, it may have run" in line for line in said],
    ), said
    assert polls > 1  # it waited


async def test_a_run_that_ended_long_ago_is_not_waited_for() -> None:
    """A run whose span ended an hour ago gets no wait for a span still missing: it is lost.
    One poll, and the line."""
    snapshots, said, polls = await _watch_torn(10**6, settle_timeout=30.0, hours_ago=1)
    assert (1, 1, ["ended 1h00m ago"]) == (
        len(snapshots),
        polls,
        [line.split(", ")[0].partition(": ")[2] for line in said],
    ), said


async def test_a_jaeger_run_span_in_before_a_stage_span_is_waited_for_as_tempos() -> None:
    """Jaeger (its API v3's answers: hex ids, sorted attributes) has the run span and build's
    and notify's, not deploy's: the watch polls on and ends once deploy's span is in, on the
    whole run; when it never comes, the wait ends and one line names deploy."""
    snapshots, said, polls = await _watch_torn(5, settle_timeout=30.0, jaeger=True)
    lost, lost_said, lost_polls = await _watch_torn(
        10**6, settle_timeout=0.2, hours_ago=-1, jaeger=True
    )
    assert (
        [[("build", "success"), ("deploy", "success"), ("notify", "success")]],
        [],
        5,
        [("deploy", "skipped")],
        [True],
    ) == (
        [_stages(snapshot) for snapshot in snapshots],
        said,
        polls,
        [_stages(snapshot)[1] for snapshot in lost],
        [
            "has no span of stage deploy: shown as skipped, it may have run" in line
            for line in lost_said
        ],
    ), (said, lost_said)
    assert lost_polls > 1  # it waited
