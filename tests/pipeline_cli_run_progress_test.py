"""``run``'s and ``debug``'s progress lines (``cli.run_progress.ProgressView``): at a
breakpoint, and the first lines of a run."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from cli_support import (
    GATED_PIPELINE,
    ONE_STAGE_PIPELINE,
    Served,
    printing_run,
    taskdaemon,
    write,
)
from pipeline_engine_support import pipeline, stage
from taskdaemon.pipeline.cli.run_progress import ProgressView
from taskdaemon.pipeline.events import (
    BreakpointHit,
    RunFinished,
    RunStarted,
    StageFinished,
    StageStarted,
)
from taskdaemon.pipeline.model import OnEvent
from taskdaemon.pipeline.state import RunStatus, StageStatus
from taskdaemon.pipeline.table_fit import text_columns
from terminal_support import on_a_terminal_of

RUN_ID = "ab" * 16


def _paused(instance: int) -> BreakpointHit:
    return BreakpointHit(
        run_id=RUN_ID,
        pipeline="p",
        stage="fan",
        instance=instance,
        attempt=1,
        task_run_id=f"fan.{instance}.1",
        at=0.0,
        kind="start",
        reason="#1 before fan",
    )


def _lines(view: ProgressView, stream: io.StringIO) -> list[str]:
    for instance in range(3):
        view.on_event(_paused(instance))
    return [line.split(None, 1)[1] for line in stream.getvalue().splitlines()]


def test_a_paused_fan_out_names_its_instances_and_how_to_attach() -> None:
    """Each instance paused before its start has its own line (``fan#1``, ``fan#2`` after the
    first), and ``run``'s lines say how to reach the pause from another terminal."""
    stream = io.StringIO()
    lines = _lines(ProgressView(stream), stream)
    hint = f"(waiting for: taskdaemon debug attach {RUN_ID}; Ctrl-C or SIGTERM cancels the run)"
    assert [
        f"fan                      paused: #1 before fan {hint}",
        f"fan#1                    paused: #1 before fan {hint}",
        f"fan#2                    paused: #1 before fan {hint}",
    ] == lines


def test_the_debuggers_own_progress_does_not_send_its_user_elsewhere() -> None:
    """``debug FILE`` runs the prompt itself: its pause lines name no ``debug attach``."""
    stream = io.StringIO()
    lines = _lines(ProgressView(stream, attach_hint=False), stream)
    assert [
        "fan                      paused: #1 before fan",
        "fan#1                    paused: #1 before fan",
        "fan#2                    paused: #1 before fan",
    ] == lines


def test_an_event_stages_first_paused_instance_is_numbered_too() -> None:
    """Once the run started, the instances of a stage that events start are numbered from its
    first line: the first pause of a fan-out read ``fan``, the next ``fan#1``, and its resume
    and start ``fan#0``: two names for one execution."""
    stream = io.StringIO()
    view = ProgressView(stream, attach_hint=False)
    definition = pipeline(stage("a", emits=("go",)), stage("fan", OnEvent("go")))
    view.on_event(RunStarted(run_id=RUN_ID, pipeline=definition, request={}, at=0.0))
    assert [
        "fan#0                    paused: #1 before fan",
        "fan#1                    paused: #1 before fan",
        "fan#2                    paused: #1 before fan",
    ] == _lines(view, stream)


def test_the_clock_counts_from_the_runs_start() -> None:
    """The first column counts from the run's start, ``RunStarted.at``, by each event's own
    time, not by when the view reads the event: the engine writes the run's start and names it
    before its observers hear of it, so an entry stage read ``running`` at ``0.00s`` while
    ``report`` said it had waited, and the run's last line read less than its duration."""
    stream = io.StringIO()
    view = ProgressView(stream, attach_hint=False)
    definition = pipeline(stage("a"))
    view.on_event(RunStarted(run_id=RUN_ID, pipeline=definition, request={}, at=1000.0))
    view.on_event(
        StageStarted(
            run_id=RUN_ID, pipeline="p", stage="a", instance=0, attempt=1, task_run_id="a.0.1",
            loop="command", at=1000.25, queued_at=1000.25, considered_at=1000.0, inputs={},
        )
    )  # fmt: skip
    view.on_event(RunFinished(run_id=RUN_ID, pipeline="p", status=RunStatus.SUCCESS, at=1001.5))
    assert [
        "    0.25s  a                        running",
        "    1.50s  run p                    success",
    ] == stream.getvalue().splitlines()[-2:]


@pytest.mark.slow
def test_a_real_runs_clock_agrees_with_its_report(home: Path, tmp_path: Path) -> None:
    """In a real run, the progress's clock at the entry stage's start is the wait ``report``'s
    critical path gives it, and at the run's end the run's duration: both count from the
    stored run's start."""
    path = write(
        tmp_path / "two.yaml",
        """\
        name: two
        stages:
          - name: a
            command: "sleep 0.2"
            triggers: [{manual: {}}]
          - name: b
            command: "true"
            triggers: [{on_completion: {stage: a}}]
        """,
    )
    run = taskdaemon(home, "run", str(path))
    report = taskdaemon(home, "report", "--pipeline", "two", "--format", "json")
    lines = re.findall(r"^ *(\d+\.\d\d)s  (a +running|run two +success)", run.stderr, re.M)
    said = {" ".join(line.split()): float(seconds) for seconds, line in lines}
    critical = json.loads(report.stdout)["pipelines"][0]["critical_path"]["slowest_run"]
    first = critical["steps"][0]
    assert (0, 0, "a") == (run.returncode, report.returncode, first["stage"]), run.stderr
    assert said["a running"] == pytest.approx(first["wait_s"], abs=0.006), run.stderr
    assert said["run two success"] == pytest.approx(critical["run_duration_s"], abs=0.006)


#: An entry stage that waits for an approval: the engine asks for it as the run starts.
_APPROVAL_FIRST = """\
    name: gated
    stages:
      - name: gate
        command: "true"
        triggers: [{manual: {approval_required: true}}]
"""


@pytest.mark.slow
def test_an_entry_stage_asks_for_its_approval_after_the_run_s_first_line(
    tmp_path: Path, home: Path, serve: Callable[..., Served]
) -> None:
    """``run``'s first line names the run; an entry stage waiting for an approval comes after
    it, with the run's own id in the command that approves it. It came first, with ``RUN``
    in place of the id: the engine asks for the approval before ``start_run`` returns."""
    served = serve(str(write(tmp_path / "gated.yaml", _APPROVAL_FIRST)))
    stream = served.process.stderr
    assert stream is not None
    first, second = stream.readline(), stream.readline()
    header = first if first.startswith("run ") else second  # whichever came first: the run ends
    run_id = header.split()[1]
    approved = taskdaemon(home, "approve", run_id, "gate")
    code, _stdout, _stderr = served.finish()
    expected = (True, f"(taskdaemon approve {run_id} gate)", 0, 0)
    actual = (
        first.startswith(f"run {run_id} of gated started"),
        second.split("waiting for approval ")[-1].strip(),
        approved.returncode,
        code,
    )
    assert expected == actual, (first, second, approved.stderr)


@pytest.mark.parametrize("grant", ["--approve", "--auto-approve"])
def test_a_stage_the_command_line_grants_names_no_command_to_approve_it(
    grant: str, tmp_path: Path, home: Path
) -> None:
    """``--approve STAGE`` and ``--auto-approve`` grant an approval as it is asked for, yet the
    line named ``taskdaemon approve RUN STAGE``: a wait the user read as theirs to end (the
    README's demo showed it). The command is for an approval nobody grants (the test above)."""
    file = str(write(tmp_path / "gated.yaml", _APPROVAL_FIRST))
    done = taskdaemon(home, "run", file, *([grant, "gate"] if grant == "--approve" else [grant]))
    lines = [line.split(None, 1)[1] for line in done.stderr.splitlines()[1:]]
    expected = [
        "gate                     waiting for approval",
        f"gate                     approved by cli {grant}",
    ]
    assert (0, expected) == (done.returncode, [line for line in lines if "approv" in line])


@pytest.mark.slow
def test_a_cancelled_runs_wait_for_an_approval_is_withdrawn_not_rejected(
    tmp_path: Path, home: Path, serve: Callable[..., Served]
) -> None:
    """The engine closes the request of a run that stops: the line said ``rejected by engine``,
    a rejection nobody made, before the stage's ``skipped: run cancelled by <user>``."""
    served = serve(str(write(tmp_path / "gated.yaml", GATED_PIPELINE)))
    line = served.wait_for_line("waiting for approval")
    cancelled = taskdaemon(home, "cancel", line.split("approve ")[1].split()[0])
    code, _stdout, stderr = served.finish()
    lines = [line.split(None, 1)[1] for line in stderr.splitlines()]
    expected = (0, 1, ["deploy                   approval withdrawn"])
    assert expected == (
        cancelled.returncode,
        code,
        [line for line in lines if "approval withdrawn" in line or "rejected" in line],
    ), stderr


class _Terminal(io.StringIO):
    """A stream that says it is a terminal (its width then comes from ``COLUMNS``)."""

    def isatty(self) -> bool:
        return True


def test_on_a_narrow_terminal_a_long_stage_name_gives_way_to_its_label() -> None:
    """On an 80-column terminal a 54-character stage name is cut to leave its status and
    error on the line (not below the clock column); a pipe keeps the name whole."""
    stage = "load-into-the-warehouse-and-refresh-materialized-views"
    failed = StageFinished(
        run_id=RUN_ID, pipeline="p", stage=stage, instance=0, attempt=1,
        task_run_id=f"{stage}.0.1", at=0.5, status=StageStatus.FAILURE,
        error="数据仓库刷新失败: the warehouse refused the load",
    )  # fmt: skip
    started = StageStarted(
        run_id=RUN_ID, pipeline="p", stage=stage, instance=0, attempt=1,
        task_run_id=f"{stage}.0.1", loop="command", at=0.0, queued_at=0.0, considered_at=0.0,
        inputs={},
    )  # fmt: skip
    terminal, pipe = _Terminal(), io.StringIO()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("COLUMNS", "80")
        views = [ProgressView(terminal), ProgressView(pipe)]
    for view in views:
        view.on_event(started)
        view.on_event(failed)
    narrow = terminal.getvalue().splitlines()
    assert [] == [line for line in narrow if text_columns(line) > 80], narrow
    assert ["running", "failure"] == [line.split()[2] for line in narrow], narrow
    assert narrow[1].split()[1].endswith("…"), narrow
    assert [stage, stage] == [line.split()[1] for line in pipe.getvalue().splitlines()]


@pytest.mark.slow
@pytest.mark.parametrize("watch", [(), ("--watch",)])
def test_on_a_narrow_terminal_the_runs_first_line_wraps_between_words(
    home: Path, tmp_path: Path, watch: tuple[str, ...]
) -> None:
    """On a 60-column terminal ``run``'s first line (``run ID of one started (workspace
    PATH)``, over 100 columns), above its progress lines or its ``--watch`` table, wraps
    between words as the debugger's opening does: the terminal broke it mid-word, in the
    workspace's path. The run id and the path are whole, each on a line."""
    path = write(tmp_path / "one.yaml", ONE_STAGE_PIPELINE)
    code, lines = on_a_terminal_of(60, home, "run", str(path), *watch, streams=("stderr",))
    run_id = lines[0].split()[1]
    workspace = home / "workspaces" / run_id
    expected = (0, [f"run {run_id} of one started", "    (workspace", f"    {workspace})"])
    assert expected == (code, lines[:3]), lines


def test_a_home_holding_esc_is_escaped_in_the_lines_of_a_run(tmp_path: Path) -> None:
    """``TASKDAEMON_HOME`` is the user's name, and two of ``run``'s lines quote it: the header
    (the workspace) and, under a home too long for a socket path, that the run has no control
    socket. Both printed it as it was: an ESC in it drove the reader's terminal."""
    home = tmp_path / ("e\x1b[31m" + "x" * 100)
    done = taskdaemon(home, "run", str(write(tmp_path / "one.yaml", ONE_STAGE_PIPELINE)))
    escaped = str(home).replace("\x1b", "\\x1b")
    quoting = [
        re.sub("[0-9a-f]{32}", "RUN", line.split(escaped)[0])
        for line in done.stderr.splitlines()
        if escaped in line
    ]
    expected = [
        "run RUN of one started (workspace ",
        "taskdaemon run: no control socket: control socket path too long (",
    ]
    assert (0, False, expected) == (done.returncode, "\x1b" in done.stderr, quoting)


@pytest.mark.slow
@pytest.mark.parametrize("command", ["run", "debug"])
def test_at_debug_each_line_follows_the_records_of_the_events_before_it(
    command: str, home: Path, tmp_path: Path
) -> None:
    """``--log-level debug`` with stderr a pipe: the run log's records of a stage's trigger
    and start come before its ``running`` and ``success`` lines. The monitor's worker wrote
    them a linger later, or ``run``'s loading thread once telemetry had loaded: after the
    lines of the stages that followed, or after the run's last line."""
    path = write(tmp_path / "one.yaml", ONE_STAGE_PIPELINE)
    done = taskdaemon(home, command, str(path), "--log-level", "debug", stdin="")
    assert 0 == done.returncode, done.stderr
    said = [
        " ".join(line.split()[3:6]) if " DEBUG " in line else " ".join(line.split()[1:3])
        for line in done.stderr.splitlines()
        if " DEBUG taskdaemon.run.decision: " in line or line.startswith("    0.")
    ]
    assert [
        "only trigger 0",
        "only.0.1 waits for",
        "only running",
        "only.0.1 got a",
        "only.0.1 resolved inputs",
        "only success",
        "only.0.1 mapped outputs",
        "run one",
    ] == said, done.stderr


@pytest.mark.slow
def test_what_a_handler_prints_comes_between_its_stages_lines_in_one_log(
    home: Path, tmp_path: Path
) -> None:
    """``run FILE > log 2>&1`` of Python stages that print (the first logs a warning after
    its line): each line printed comes after its stage's ``running`` and before its end, as
    on a terminal. They came after the run's last line, held in stdout's block buffer until
    the summary."""
    done = printing_run(home, tmp_path)
    said = []  # each progress line as its stage and first word; the handlers' lines as said
    for line in done.stdout.splitlines():
        if line.startswith("    "):
            said.append(" ".join(line.split()[1:3]))
        elif found := re.search(r"(printed|logged) by \w+", line):
            said.append(found.group())
    assert (0, said) == (
        done.returncode,
        [
            "first running",
            "printed by first",
            "logged by first",
            "first success",
            "second running",
            "printed by second",
            "second success",
            "run printing",
        ],
    ), done.stdout
