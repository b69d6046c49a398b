"""``run``'s progress lines over a whole run (``cli.run_progress.ProgressView``): each kind of
stage transition, the approval's and the pause's lines, a failed command's stderr tail, the
stages a stop left queued, the run's end, and a replay's fed stages.

The events are the engine's, made here with the times and texts a run would give them; the
clock column is dropped (``pipeline_cli_run_progress_test.py`` reads the clock)."""

from __future__ import annotations

import io
import re
from typing import Any

import pytest

from pipeline_engine_support import pipeline, stage
from taskdaemon.pipeline.cli.run_progress import ProgressView
from taskdaemon.pipeline.command_loop import CommandFailedError
from taskdaemon.pipeline.events import (
    ApprovalRequested,
    ApprovalResolved,
    BreakpointHit,
    BreakpointResumed,
    EngineEvent,
    RunFinished,
    RunStarted,
    StageFinished,
    StageRetrying,
    StageSkipped,
    StageStarted,
)
from taskdaemon.pipeline.state import RunStatus, StageStatus

RUN_ID = "cd" * 16
DEFINITION = pipeline(
    stage("build"), stage("test"), stage("gate"), stage("deploy"), stage("notify"), name="ship"
)
#: An execution's own fields, as the engine gives them.
_BOOK: dict[str, Any] = {"run_id": RUN_ID, "pipeline": "ship"}


def _started(name: str, attempt: int = 1, at: float = 0.0, instance: int = 0) -> StageStarted:
    return StageStarted(
        **_BOOK, stage=name, instance=instance, attempt=attempt,
        task_run_id=f"{name}.{instance}.{attempt}", loop="command", at=at, queued_at=at,
        considered_at=at, inputs={},
    )  # fmt: skip


def _finished(
    name: str, status: StageStatus, at: float, attempt: int = 1, instance: int = 0, **more: Any
) -> StageFinished:
    return StageFinished(
        **_BOOK, stage=name, instance=instance, attempt=attempt,
        task_run_id=f"{name}.{instance}.{attempt}", status=status, at=at, **more,
    )  # fmt: skip


#: A line's clock column: ``   90.25s  ``.
_CLOCK = re.compile(r"^ *\d+\.\d\ds  ")


def _lines(view: ProgressView, stream: io.StringIO, *events: EngineEvent) -> list[str]:
    """The lines ``events`` add, each one's clock column dropped."""
    before = len(stream.getvalue().splitlines())
    for event in events:
        view.on_event(event)
    return [_CLOCK.sub("", line) for line in stream.getvalue().splitlines()[before:]]


def _view(**options: Any) -> tuple[ProgressView, io.StringIO]:
    stream = io.StringIO()
    return ProgressView(stream, **options), stream


def test_a_run_retried_skipped_approved_paused_and_cancelled_reads_line_by_line() -> None:
    """One line a transition, in the order of the events: the header first, a failure that
    will be retried with its stderr tail under it, the retry's delay and attempt, durations
    from each start, a skip's reason, the approval with the command that gives it, a pause
    with how to attach, a stage the stop caught queued said at the run's end, then the run."""
    failed = CommandFailedError("make", 2, "cc: error: x.c\nld: no output")
    view, stream = _view(
        header=lambda run_id: f"run {run_id} of ship started",
        approve_hint=lambda run_id, name: f"taskdaemon approve {run_id} {name}",
    )
    lines = _lines(
        view,
        stream,
        RunStarted(run_id=RUN_ID, pipeline=DEFINITION, request={}, at=0.0),
        _started("build"),
        _finished("build", StageStatus.FAILURE, 0.25, error=str(failed), exception=failed,
                  will_retry=True),
        StageRetrying(**_BOOK, stage="build", instance=0, attempt=1, task_run_id="build.0.1",
                      delay=90.0, error=str(failed), error_type="CommandFailedError", at=0.25),
        _started("build", attempt=2, at=90.25),
        _finished("build", StageStatus.SUCCESS, 91.75, attempt=2),
        StageSkipped(**_BOOK, stage="test", reason="no event 'tested' arrived", at=92.0),
        _finished("test", StageStatus.CANCELLED, 92.0),
        ApprovalRequested(**_BOOK, stage="gate", at=92.0),
        ApprovalResolved(**_BOOK, stage="gate", approved=True, at=93.0, by="alice"),
        BreakpointHit(**_BOOK, stage="deploy", instance=0, attempt=1, task_run_id="deploy.0.1",
                      at=93.0, kind="start", reason="breakpoint 1: before deploy"),
        BreakpointResumed(**_BOOK, stage="deploy", instance=0, attempt=1,
                          task_run_id="deploy.0.1", at=94.0, action="continue", by="bob",
                          paused=1.0),
        _started("deploy", at=94.0),
        _finished("deploy", StageStatus.CANCELLED, 94.5, error="CancelledError",
                  cancel_reason="cancelled by carol"),
        _finished("notify", StageStatus.CANCELLED, 94.5, cancel_reason="cancelled by carol"),
        RunFinished(**_BOOK, status=RunStatus.CANCELLED, at=94.5, error="cancelled by carol"),
    )  # fmt: skip
    assert [
        f"run {RUN_ID} of ship started",
        "build                    running",
        "build                    failure in 250ms (will retry): command 'make' exited with code "
        "2; stderr (last lines): cc: error: x.c ld: no o…",
        "            | cc: error: x.c",
        "            | ld: no output",
        "build                    retrying in 1m30s",
        "build                    running (attempt 2)",
        "build                    success in 1.5s",
        "test                     skipped: no event 'tested' arrived",
        f"gate                     waiting for approval (taskdaemon approve {RUN_ID} gate)",
        "gate                     approved by alice",
        f"deploy                   paused: breakpoint 1: before deploy (waiting for: taskdaemon "
        f"debug attach {RUN_ID}; Ctrl-C or SIGTERM cancels the run)",
        "deploy                   resumed: continue by bob",
        "deploy                   running",
        "deploy                   cancelled in 500ms: cancelled by carol",
        "notify                   skipped: not reached: the run ended (cancelled)",
        "run ship                 cancelled: cancelled by carol",
    ] == lines


@pytest.mark.parametrize(
    ("approved", "by", "timed_out", "said"),
    [
        (True, "", False, "approved"),
        (False, "", False, "rejected"),
        (False, "dave", False, "rejected by dave"),
        (False, "engine", False, "approval withdrawn"),
        (True, "engine", False, "approved by engine"),
        (False, "", True, "approval timed out"),
    ],
)
def test_an_approval_s_end_says_who_ended_it_and_how(
    approved: bool, by: str, timed_out: bool, said: str
) -> None:
    """Granted or refused, by whom when known; the engine's refusal of a stopped run's request
    is no one's (withdrawn); a wait past its timeout says so. No command to approve it is
    named when none is given."""
    view, stream = _view()
    lines = _lines(
        view,
        stream,
        ApprovalRequested(**_BOOK, stage="gate", at=0.0),
        ApprovalResolved(
            **_BOOK, stage="gate", approved=approved, at=1.0, by=by, timed_out=timed_out
        ),
    )
    assert ["gate                     waiting for approval", f"gate{'':20} {said}"] == lines


def test_a_replays_fed_stages_have_one_line_each_replayed() -> None:
    """A fed stage's only line is ``replayed`` at its end (no ``running``, no duration); a
    stage the replay runs has its lines as in a run."""
    view, stream = _view(replayed=("build",))
    lines = _lines(
        view,
        stream,
        _started("build"),
        _finished("build", StageStatus.SUCCESS, 5.0),
        _started("test", at=5.0),
        _finished("test", StageStatus.SUCCESS, 5.5),
    )
    assert [
        "build                    replayed",
        "test                     running",
        "test                     success in 500ms",
    ] == lines


def test_instances_are_numbered_once_a_stage_has_more_than_one() -> None:
    """The first instance of a plain stage has no number; an instance past the first, or one
    an event started, names its stage with ``#n`` from then on (its end and retry too)."""
    view, stream = _view()
    event_started = StageStarted(
        **_BOOK, stage="react", instance=0, attempt=1, task_run_id="react.0.1",
        loop="command", at=0.0, queued_at=0.0, considered_at=0.0, inputs={},
        event={"type": "go"},
    )  # fmt: skip
    lines = _lines(
        view,
        stream,
        _started("fan"),
        _started("fan", instance=1),
        _finished("fan", StageStatus.SUCCESS, 1.0),
        StageRetrying(**_BOOK, stage="fan", instance=1, attempt=1, task_run_id="fan.1.1",
                      delay=0.5, error="x", error_type="X", at=1.0),
        event_started,
        BreakpointResumed(**_BOOK, stage="fan", instance=1, attempt=2, task_run_id="fan.1.2",
                          at=2.0, action="step", by="bob", paused=0.5),
        _finished("fan", StageStatus.CANCELLED, 3.0, instance=2),
        RunFinished(**_BOOK, status=RunStatus.FAILURE, at=3.0, error="fan failed"),
    )  # fmt: skip
    assert [
        "fan                      running",
        "fan#1                    running",
        "fan#0                    success in 1.0s",
        "fan#1                    retrying in 500ms",
        "react#0                  running",
        "fan#1                    resumed: step by bob",
        "fan#2                    skipped: not reached: the run ended (failure)",
        "run ship                 failure: fan failed",
    ] == lines


def test_an_execution_cancelled_at_its_pause_ends_there_without_a_duration() -> None:
    """An execution paused before its start and cancelled there never started: its end has
    its line at once, with no duration (it did not run), unlike a queued one the stop
    caught, which is said at the run's end."""
    view, stream = _view(attach_hint=False)
    lines = _lines(
        view,
        stream,
        BreakpointHit(**_BOOK, stage="deploy", instance=0, attempt=1, task_run_id="deploy.0.1",
                      at=1.0, kind="start", reason="step"),
        _finished("deploy", StageStatus.CANCELLED, 2.0, cancel_reason="cancelled by carol"),
        _finished("notify", StageStatus.CANCELLED, 2.0, cancel_reason="cancelled by carol"),
    )  # fmt: skip
    assert [
        "deploy                   paused: step",
        "deploy                   cancelled: cancelled by carol",
    ] == lines


def test_without_a_stream_the_lines_go_to_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    """The view made without a stream writes to stderr (``run``'s), nothing to stdout."""
    ProgressView().on_event(_started("build"))
    assert ("", "    0.00s  build                    running\n") == capsys.readouterr()


class _Terminal(io.StringIO):
    """A stream that says it is a terminal (its width then comes from ``COLUMNS``)."""

    def isatty(self) -> bool:
        return True


def test_a_retry_cancelled_before_it_started_ends_on_its_stage_s_line_at_once() -> None:
    """A stage whose failed attempt waits for its retry when the run stops ran already: the
    retry's end is said at once, not with the queued stages as not reached."""
    view, stream = _view()
    lines = _lines(
        view,
        stream,
        _started("build"),
        _finished("build", StageStatus.FAILURE, 0.5, error="exit 1", will_retry=True),
        _finished("build", StageStatus.CANCELLED, 1.0, attempt=2, cancel_reason="cancelled"),
        RunFinished(**_BOOK, status=RunStatus.CANCELLED, at=1.0),
    )
    assert [
        "build                    running",
        "build                    failure in 500ms (will retry): exit 1",
        "build                    cancelled: cancelled",
        "run ship                 cancelled",
    ] == lines


def _on_terminal(columns: int, *events: EngineEvent, **options: Any) -> list[str]:
    """The lines ``events`` make on a terminal ``columns`` wide, clock column and all."""
    terminal = _Terminal()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("COLUMNS", str(columns))
        view = ProgressView(terminal, **options)
    for event in events:
        view.on_event(event)
    return terminal.getvalue().splitlines()


LONG = "n" * 45


@pytest.mark.parametrize(
    ("columns", "events", "line"),
    [
        # The error gives way to the width, to no fewer than its 10 columns.
        (70, [_started("build"), _finished("build", StageStatus.FAILURE, 0.0, error="x" * 99)],
         f"{'build':<24} failure in 0ms: {'x' * 17}…"),
        (60, [_started("build"), _finished("build", StageStatus.FAILURE, 0.0, error="x" * 99)],
         f"{'build':<24} failure in 0ms: {'x' * 9}…"),
        # A long name gives way first, to the columns the status and 10 of the error leave.
        (60, [_started(LONG)], f"{'n' * 40}… running"),
        (70, [_started(LONG), _finished(LONG, StageStatus.FAILURE, 0.0, error="boom")],
         f"{'n' * 31}… failure in 0ms: boom"),
        # ... never to fewer than its label's 24.
        (40, [_started(LONG)], f"{'n' * 23}… running"),
    ],
)  # fmt: skip
def test_on_a_terminal_a_line_gives_way_to_its_width(
    columns: int, events: list[EngineEvent], line: str
) -> None:
    """A long stage name, then the error, is cut to keep the line within the terminal."""
    assert [f"    0.00s  {line}"] == _on_terminal(columns, *events)[-1:]


def test_a_hint_exactly_as_wide_as_what_is_left_stays_on_its_line() -> None:
    """The approval's command ends its line when it fits to the last column."""
    hint = lambda run_id, name: f"taskdaemon approve {run_id} {name}"  # noqa: E731
    asked = ApprovalRequested(**_BOOK, stage="gate", at=0.0)
    line = f"    0.00s  {'gate':<24} waiting for approval (taskdaemon approve {RUN_ID} gate)"
    assert [line] == _on_terminal(len(line), asked, approve_hint=hint)


def test_on_a_narrow_terminal_a_hint_that_does_not_fit_goes_whole_on_its_own_line() -> None:
    """On a 60-column terminal the approval's command does not fit after its line: it goes on
    the next, under the stage's label, never cut; on a pipe it ends the line."""
    hint = lambda run_id, name: f"taskdaemon approve {run_id} {name}"  # noqa: E731
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("COLUMNS", "60")
        stream = _Terminal()
        narrow = ProgressView(stream, approve_hint=hint)
    asked = ApprovalRequested(**_BOOK, stage="gate", at=0.0)
    narrow.on_event(asked)
    assert [
        "    0.00s  gate                     waiting for approval",
        f"            (taskdaemon approve {RUN_ID} gate)",
    ] == stream.getvalue().splitlines()
