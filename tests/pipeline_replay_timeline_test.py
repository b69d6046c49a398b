"""Time travel over stored spans: states at chosen instants, the event walk and the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline_engine_support import Recorder
from pipeline_replay_support import Recording
from taskdaemon.pipeline import telemetry as t
from taskdaemon.pipeline.events import RunFinished, RunStarted, StageFinished, StageStarted
from taskdaemon.pipeline.replay.timeline import parse_offset, run_at, spans_at, timeline
from taskdaemon.pipeline.tracking import SpanRecord, reconstruct_run

#: States that happen before a stage starts; spans record only starts and ends.
_NOT_STARTED = {"pending", "waiting", "queued"}


def _live_states(recorder: Recorder, stages: list[str]) -> list[tuple[float, dict[str, str]]]:
    """The state of every stage after each start and end, replayed from the engine's own
    events as they were emitted while the run went."""
    states: dict[str, str] = dict.fromkeys(stages, "not started")
    found = []
    for event in recorder.events:
        if isinstance(event, StageStarted):
            states[event.stage] = "running"
        elif isinstance(event, StageFinished) and not event.will_retry:
            states[event.stage] = str(event.status)
        else:
            continue
        found.append((event.at, dict(states)))
    return found


@pytest.mark.slow
def test_states_at_instants_equal_the_live_states(tmp_path: Path) -> None:
    """At each start and end of the run, the state rebuilt from spans cut at that instant is
    the state the engine reported then (stages not started yet count as not started)."""
    recording = Recording(tmp_path / "spans.db")
    recorder = Recorder()
    try:
        result = recording.run(recorder=recorder)
        spans = recording.spans(result.run_id)
    finally:
        recording.close()
    (started,) = recorder.of(RunStarted)
    live = _live_states(recorder, ["plan", "build", "check", "release"])
    rebuilt = []
    for at, _ in live:
        # Epoch nanoseconds the way the monitor turns event times into span times.
        run = reconstruct_run(spans_at(spans, int(at) * 10**9 + round((at - int(at)) * 1e9)))
        rebuilt.append(
            (
                at,
                {
                    s.name: "not started" if s.status in _NOT_STARTED else s.status
                    for s in run.stages
                },
            )
        )
    assert live == rebuilt
    assert 8 <= len(live)
    end = run_at(spans, max(e.at for e in recorder.of(RunFinished)) - started.at + 1)
    assert "success" == end.status


def test_offsets_parse_and_bad_ones_are_one_line_errors() -> None:
    """12.5s, 1m30s, 500ms and plain seconds parse; anything else is a one-line error."""
    assert [12.5, 90.0, 0.5, 3.0] == [parse_offset(x) for x in ("12.5s", "1m30s", "500ms", "3")]
    for bad in ("soon", "-1", "nan", "1x"):
        with pytest.raises(ValueError, match="--at") as caught:
            parse_offset(bad)
        assert "\n" not in str(caught.value)


def test_an_offset_is_ascii_and_within_the_span_clock() -> None:
    """Other scripts' digits are no time (``float`` and ``\\d`` took ``١٠`` as ten), and a time
    past 2**63 ns is refused: ``1e300`` seconds overflowed when made nanoseconds."""
    assert [9_223_372_036.0, 10.0] == [parse_offset(x) for x in ("9223372036s", "1_0")]
    for bad, why in (
        ("١٠", "such as 12.5s"),
        ("٣s", "such as 12.5s"),
        ("1e300", "0 to 292 years"),
        ("9223372037s", "0 to 292 years"),
        ("9" * 400 + "h", "0 to 292 years"),
    ):
        with pytest.raises(ValueError, match=why):
            parse_offset(bad)


def test_a_long_bad_offset_is_quoted_cut_as_every_refusal() -> None:
    """A 100,000-character ``--at`` is quoted by its first 39 characters and an ellipsis
    (``quoting.quote``), not whole."""
    with pytest.raises(ValueError, match="--at") as caught:
        parse_offset("x" * 100_000)
    assert str(caught.value).startswith(f"--at '{'x' * 39}…': expected a time")


@pytest.mark.slow
def test_cli_step_walks_events_and_dry_run_and_verify_exit_codes(tmp_path: Path) -> None:
    """A real ``taskdaemon`` process: --step fed commands on stdin prints each event with the
    state after it; --dry-run lists fed stages; --verify exits 3 on a nondeterministic stage."""
    pipeline = tmp_path / "p.yaml"
    pipeline.write_text(
        "name: demo\n"
        "stages:\n"
        "  - {name: plan, command: 'echo {\\\"n\\\": 2}', triggers: [{manual: {}}]}\n"
        "  - name: build\n"
        "    command: 'echo {\\\"at\\\": $(date +%s%N)}'\n"
        "    triggers: [{on_completion: {stage: plan}}]\n"
    )
    env = {**os.environ, "TASKDAEMON_HOME": str(tmp_path / "home")}
    env.pop("TASKDAEMON_SPAN_SOURCE", None)

    def cli(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "taskdaemon.pipeline.cli", *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
            timeout=120,
            check=False,
        )

    run_id = cli("run", str(pipeline), "-q").stdout.strip()
    step = cli("replay", run_id, "--step", stdin="next\nnext\nprev\ngoto 10m\nquit\n")
    dry = cli("replay", run_id, "--from", "build", "--dry-run")
    verify = cli("replay", run_id, "--verify", "--json")
    lines = step.stdout.splitlines()
    report = json.loads(verify.stdout)
    assert (0, 0, 3) == (step.returncode, dry.returncode, verify.returncode)
    assert "run demo started" in lines[1]
    assert "plan=pending  build=pending" in lines[2]
    assert "run=success  plan=success  build=success" in lines[-2]
    assert "(replay) quit" == lines[-1]
    assert [
        "feed  plan: recorded outputs of 1 instance (success), 0 events",
        "run   build",
        "a fed stage is not run: the files it read are not read again, nor compared, so a "
        "change to them since is not seen (--from an earlier stage runs it again)",
    ] == (dry.stdout.splitlines()[1:])
    assert [("build", "outputs", ["at"])] == [
        (d["stage"], d["what"], d["keys"]) for d in report["divergences"]
    ]
    assert "at: " in verify.stdout
    assert "→" in verify.stdout  # readable, not "\u2192"


def test_timeline_of_no_spans_is_empty() -> None:
    """A trace without spans has no events (and no error)."""
    assert [] == timeline([])


def _stage_span(span_id: str, stage: str, instance: int, start: int) -> SpanRecord:
    attributes = {t.CICD_TASK_NAME: stage, t.STAGE_INSTANCE: instance, t.STAGE_ATTEMPT: 1}
    return SpanRecord(
        "a" * 32, span_id, "r" * 16, stage, "INTERNAL", start, start + 1, "OK", "", attributes
    )


def test_every_instance_of_a_fanned_out_stage_is_named_with_its_number() -> None:
    """The instances of a stage that ran several are ``impl#0`` and ``impl#1``, as ``run``'s
    progress names them; a stage that ran once has no number."""
    spans = [
        _stage_span("1" * 16, "plan", 0, 10),
        _stage_span("2" * 16, "impl", 0, 20),
        _stage_span("3" * 16, "impl", 1, 30),
    ]
    started = [e.what for e in timeline(spans) if e.what.endswith(" started")]
    assert ["plan started", "impl#0 started", "impl#1 started"] == started
