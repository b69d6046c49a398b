"""SIGHUP, the terminal gone (an ssh connection dropped, a tmux pane killed), with real
``taskdaemon`` processes on a real terminal (a pty) that the test hangs up by closing its
other end: ``run``, ``replay`` and ``debug`` cancel their run as on SIGTERM, exit 129, the run
recorded ``cancelled`` because the terminal hung up; ``watch`` stops, exit 129; ``serve`` and
``ui`` stop cleanly, exit 0; under ``nohup`` (SIGHUP ignored at start) nothing changes: the
command goes on.
"""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path

import pytest

from cli_faults_support import (
    in_background,
    no_sleeper_left,
    on_a_terminal,
    slow_pipeline,
    stored_status,
    wait_for_pids,
)
from cli_support import TASKDAEMON, taskdaemon, write

pytestmark = pytest.mark.slow

HUNG_UP = "the terminal hung up (SIGHUP)"

SHORT_PIPELINE = """\
    name: short
    stages:
      - name: first
        command: "echo first"
        triggers: [{manual: {approval_required: false}}]
      - name: last
        command: "echo last"
        triggers: [{on_completion: {stage: first}}]
"""


def _cancel_reason(home: Path, run_id: str, stage: str) -> str | None:
    shown = taskdaemon(home, "runs", "show", run_id, "--json")
    assert 0 == shown.returncode, shown.stderr
    stages = {s["name"]: s for s in json.loads(shown.stdout)["stages"]}
    reason: str | None = stages[stage]["cancel_reason"]
    return reason


def _replayed_run(home: Path, original: str) -> str:
    """The id of the replay of ``original``: the other run of the home (``runs list``)."""
    listed = json.loads(taskdaemon(home, "runs", "list", "--json").stdout)
    replays = [run["run_id"] for run in listed if run["run_id"] != original]
    assert 1 == len(replays), listed
    return str(replays[0])


def test_a_hung_up_terminal_cancels_a_run_and_its_replay(home: Path, tmp_path: Path) -> None:
    """``run`` and then ``replay`` of it, each on a terminal that hangs up mid-stage: each run
    is recorded cancelled because the terminal hung up, exit 129, no stage process left.
    Before, SIGHUP's default action ended the process: the run read ``interrupted`` and its
    stage's processes were left to the group watchdog."""
    path, pids = slow_pipeline(tmp_path)
    with on_a_terminal(home, "run", str(path)) as run:
        run.wait_for("wait                     running")
        wait_for_pids(pids, 1)
        assert 129 == run.hang_up()
        run_id = run.run_id()
    assert "cancelled" == stored_status(home, run_id)
    assert HUNG_UP == _cancel_reason(home, run_id, "wait")
    no_sleeper_left(pids)
    with on_a_terminal(home, "replay", run_id) as replay:
        replay.wait_for("wait                     running")
        wait_for_pids(pids, 2)
        assert 129 == replay.hang_up()
    replayed = _replayed_run(home, run_id)
    assert "cancelled" == stored_status(home, replayed)
    assert HUNG_UP == _cancel_reason(home, replayed, "wait")
    no_sleeper_left(pids)


def test_a_hung_up_terminal_cancels_a_debugged_run_at_its_prompt(
    home: Path, tmp_path: Path
) -> None:
    """``debug FILE`` paused at a breakpoint, its prompt reading the terminal when it hangs
    up: the run is cancelled (``wait`` never ran: skipped), exit 129, never ``interrupted``."""
    path, _pids = slow_pipeline(tmp_path)
    with on_a_terminal(home, "debug", str(path), "--break", "wait") as debugged:
        debugged.wait_for("wait                     paused")
        assert 129 == debugged.hang_up()
        run_id = debugged.run_id()
    assert "cancelled" == stored_status(home, run_id)


def test_a_terminal_found_hung_up_by_the_prompt_cancels_the_debugged_run(
    home: Path, tmp_path: Path
) -> None:
    """The prompt's read fails (EIO) before any SIGHUP raised (here it is blocked, so it never
    comes; in life it comes late, put off while the main thread was inside an import): the
    same stop as the signal's, exit 129, the run cancelled because the terminal hung up.
    Before, the failed read ended ``debug`` as a full disk does ("cannot write the output",
    exit 1), or, with the SIGHUP raised just after, exit 130."""
    path, _pids = slow_pipeline(tmp_path)
    with on_a_terminal(home, "debug", str(path), "--break", "wait", hangup="blocked") as debugged:
        debugged.wait_for("(taskdaemon) ")
        assert 129 == debugged.hang_up()
        run_id = debugged.run_id()
    assert "cancelled" == stored_status(home, run_id)
    assert HUNG_UP == _cancel_reason(home, run_id, "wait")


def test_under_nohup_a_debugged_run_goes_on_when_its_terminal_hangs_up(
    home: Path, tmp_path: Path
) -> None:
    """``debug`` started with SIGHUP ignored (``nohup``): its terminal hanging up is the end of
    its input, as Ctrl-D is: the prompt lets go of the run, which runs to its end; exit 0."""
    path = write(tmp_path / "short.yaml", SHORT_PIPELINE)
    with on_a_terminal(home, "debug", str(path), "--break", "last", hangup="ignored") as debugged:
        debugged.wait_for("(taskdaemon) ")
        assert 0 == debugged.hang_up()
        run_id = debugged.run_id()
    assert "success" == stored_status(home, run_id)


@pytest.mark.parametrize(
    ("command", "ready"),
    [
        (("serve", "--port", "0"), "API: http://"),
        (("ui", "--port", "0"), "taskdaemon ui: read-only"),
    ],
)
def test_a_server_on_a_hung_up_terminal_stops_cleanly(
    home: Path, command: tuple[str, ...], ready: str
) -> None:
    """``serve`` or ``ui`` whose terminal hangs up stops as on SIGTERM: exit 0 (its log lines,
    written to the hung-up terminal, do not make it fail)."""
    with on_a_terminal(home, *command) as served:
        served.wait_for(ready)
        assert 0 == served.hang_up()


@pytest.mark.parametrize("command", ["serve", "ui"])
def test_a_servers_help_names_every_signal_that_stops_it(home: Path, command: str) -> None:
    """``serve --help`` and ``ui --help`` said they serve until SIGINT or SIGTERM, while
    SIGHUP, their terminal closing, stops them too (exit 0, the test above)."""
    shown = taskdaemon(home, command, "--help", COLUMNS="400")
    assert 0 == shown.returncode, shown.stderr
    said = " ".join(shown.stdout.split())
    assert "until SIGINT, SIGTERM or SIGHUP (its terminal closed; not under nohup)" in said


def test_watch_on_a_hung_up_terminal_stops_cleanly(home: Path, tmp_path: Path) -> None:
    """``watch`` of a run whose terminal hangs up stops as on SIGTERM, exit 129; the run it
    watched (on another terminal) goes on."""
    path, pids = slow_pipeline(tmp_path)
    with on_a_terminal(home, "run", str(path)) as run:
        run.wait_for("wait                     running")
        wait_for_pids(pids, 1)
        with on_a_terminal(home, "watch", run.run_id()) as watch:
            watch.wait_for("running")
            assert 129 == watch.hang_up()
        assert run.process.poll() is None
        assert 129 == run.hang_up()


#: Runs ARGV with SIGHUP ignored, as ``nohup`` starts a command.
_NOHUP = (
    "import os, signal, sys; signal.signal(signal.SIGHUP, signal.SIG_IGN); "
    "signal.signal(signal.SIGTERM, signal.SIG_DFL); os.execv(sys.argv[1], sys.argv[1:])"
)


def test_under_nohup_a_run_outlives_its_terminal(home: Path, tmp_path: Path) -> None:
    """A run started with SIGHUP ignored (``nohup``) is meant to outlive its terminal: SIGHUP
    changes nothing. SIGHUP and then SIGTERM are sent together; had SIGHUP been handled, it
    (the lower number, delivered first) would have cancelled the run, exit 129. The run ends
    by SIGTERM's cancel instead: exit 143, the reason naming SIGTERM."""
    path, pids = slow_pipeline(tmp_path)
    with in_background(home) as start:
        served = start("run", str(path), launcher=(sys.executable, "-c", _NOHUP, TASKDAEMON))
        wait_for_pids(pids, 1)
        served.process.send_signal(signal.SIGHUP)
        served.process.send_signal(signal.SIGTERM)
        code, _, stderr = served.finish()
    assert 143 == code, stderr
    assert "SIGTERM: cancelling run " in stderr
    run_id = next(line.split()[1] for line in stderr.splitlines() if " started " in line)
    assert "run cancelled by SIGTERM" == _cancel_reason(home, run_id, "wait")
    no_sleeper_left(pids)
