"""The end of the debugger prompt's input typed ahead (``cli/_prompt.py``'s ``keys_kept``,
``cli/terminal_state.py``'s ``keys_as_typed``): Ctrl-D typed while the prompt waits for its
run, just as "run ended" shows, or at the next prompt, on a terminal (the command's
controlling one, or a script's that is not), at ``debug attach`` to a run ``serve`` runs, and
the input's end on a pipe: each ends the command at once, with the run's exit code."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import termios
from collections.abc import Iterator
from pathlib import Path

import pytest

from cli_faults_support import OnTerminal, on_a_terminal, wait_for_pids
from cli_support import (
    in_background,
    line_with,
    taskdaemon,
    write,
)
from schedule_support import Scheduled, scheduled_serve

PROMPT = "(taskdaemon) "
#: How long the command may take to end once its input ended after its run did (a hang used
#: to last for ever: this fails it fast).
ENDS_WITHIN = 10.0
#: When Ctrl-D is typed after ``continue``: while the stage it resumed runs (the prompt waits
#: for the run), once "run ended" shows (before or as the next prompt is drawn), or once that
#: prompt shows.
MOMENTS = ("waiting", "ended", "prompt")

#: What the stage the test resumes runs: its pid written to STARTED, then it waits for GO.
WAITS = "echo $$ >> STARTED; while [ ! -e GO ]; do sleep 0.05; done"
#: One stage, ``only``, which succeeds once GO exists.
ONE_STAGE = f"""\
    name: one
    stages:
      - name: only
        command: "{WAITS}"
        triggers: [{{manual: {{approval_required: false}}}}]
"""
#: a waits for an approval (the test's moment to attach and set a breakpoint at b); b
#: succeeds once GO exists.
GATED = f"""\
    name: gated
    stages:
      - name: a
        command: "true"
        triggers: [{{manual: {{approval_required: true}}}}]
      - name: b
        command: "{WAITS}"
        triggers: [{{on_completion: {{stage: a}}}}]
"""


def _written(home: Path, name: str, pipeline: str) -> Path:
    """``pipeline`` in ``home/name``, its stage's STARTED and GO files in ``home``."""
    text = pipeline.replace("STARTED", str(home / "started")).replace("GO", str(home / "go"))
    return write(home / name, text)


@pytest.fixture
def one_stage(home: Path) -> Path:
    """:data:`ONE_STAGE` in a file."""
    return _written(home, "one.yaml", ONE_STAGE)


def _ends_promptly(process: subprocess.Popen[bytes] | subprocess.Popen[str]) -> int:
    """``process``'s exit code, once it exited within :data:`ENDS_WITHIN` seconds."""
    try:
        return process.wait(ENDS_WITHIN)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"still running {ENDS_WITHIN:g} s after its input ended") from None


def _continue_then_ctrl_d(terminal: OnTerminal, moment: str, home: Path) -> int:
    """At the prompt on ``terminal``, ``continue`` (the run then goes to its end, its stage
    let go from ``home``'s GO file) and Ctrl-D at ``moment`` (:data:`MOMENTS`); the command's
    exit code."""
    terminal.wait_for(PROMPT)
    since = len(terminal.seen)
    if moment == "waiting":
        terminal.type(b"continue\n")
        wait_for_pids(home / "started", 1)  # readline has read the line: the stage runs
        terminal.type(b"\x04")
        (home / "go").touch()
        return _ends_promptly(terminal.process)
    (home / "go").touch()
    terminal.type(b"continue\n")
    terminal.wait_for("ended", since)  # "run ended success", or at attach "run ... has ended"
    if moment == "prompt":
        terminal.wait_for(PROMPT, terminal.seen.index(b"ended", since))
    terminal.type(b"\x04")
    return _ends_promptly(terminal.process)


def _debugged(
    home: Path, pipeline: Path, *, controlling: bool = True
) -> contextlib.AbstractContextManager[OnTerminal]:
    """``debug -q --break only PIPELINE`` on a terminal of its own (not its ``controlling``
    one: as a script's pseudo-terminal may be)."""
    return on_a_terminal(
        home,
        "debug",
        "-q",
        "--break",
        "only",
        str(pipeline),
        controlling=controlling,
        TERM="dumb",
    )


@pytest.mark.slow
@pytest.mark.parametrize("controlling", [True, False], ids=["controlling", "script"])
@pytest.mark.parametrize("moment", MOMENTS)
def test_ctrl_d_typed_ahead_on_a_terminal_ends_the_debug_command(
    home: Path, one_stage: Path, moment: str, controlling: bool
) -> None:
    """Ctrl-D typed after ``continue`` at any moment around the run's end ends ``debug FILE``
    at once with the run's exit code: typed while no line was read, it reached readline as a
    NUL byte, and the command waited for ever."""
    with _debugged(home, one_stage, controlling=controlling) as terminal:
        assert 0 == _continue_then_ctrl_d(terminal, moment, home)


@pytest.mark.slow
@pytest.mark.parametrize("controlling", [True, False], ids=["controlling", "script"])
@pytest.mark.parametrize(
    ("keys", "shown"),
    [(b"\x04", b""), (b"continue\n\x04", b"(taskdaemon) continue\r\n")],
    ids=["ctrl-d", "commands"],
)
def test_keys_typed_as_debug_starts_are_read_at_its_prompt(
    home: Path, one_stage: Path, keys: bytes, shown: bytes, controlling: bool
) -> None:
    """Ctrl-D, and commands before it, typed as ``debug FILE`` starts (before its prompt took
    the terminal) are read at the prompt: each command shown after it and run, the Ctrl-D
    ending the input, and the command ends with the run's exit code, its terminal back in line
    mode. Kept in line mode, the Ctrl-D reached readline as a NUL byte, and the command waited
    for ever."""
    (home / "go").touch()
    with _debugged(home, one_stage, controlling=controlling) as terminal:
        terminal.type(keys)
        assert 0 == _ends_promptly(terminal.process)
        terminal.wait_for("run ended success")
        assert shown in terminal.seen
        assert termios.tcgetattr(terminal.primary)[3] & termios.ICANON


@pytest.mark.slow
@pytest.mark.parametrize("signals", [1, 2], ids=["sigterm", "second-sigterm"])
def test_a_signal_at_the_debug_prompt_puts_line_mode_back(
    home: Path, one_stage: Path, signals: int
) -> None:
    """SIGTERM to ``debug FILE`` at its prompt, once (the run cancelled) or twice at once (the
    second exits at once, ``terminal_state.exit_now``), leaves its terminal in line mode, as
    before the prompt took it out."""
    with _debugged(home, one_stage) as terminal:
        terminal.wait_for(PROMPT)
        for _ in range(signals):
            terminal.process.send_signal(signal.SIGTERM)
        assert 143 == _ends_promptly(terminal.process)
        assert termios.tcgetattr(terminal.primary)[3] & termios.ICANON


@pytest.mark.slow
# Thirty debug sessions, each a process and a run of its own: on a loaded machine of two cores
# they took past the suite's timeout for one test (pyproject.toml's), no session stuck.
@pytest.mark.timeout(600)
def test_ctrl_d_typed_as_the_run_ends_is_never_lost(home: Path, one_stage: Path) -> None:
    """Ctrl-D typed as soon as "run ended" shows, 30 times over, ends the command each time:
    whether it came before readline drew its next prompt was a race, and one that came before
    was lost."""
    codes = []
    for _ in range(30):
        with _debugged(home, one_stage) as terminal:
            codes.append(_continue_then_ctrl_d(terminal, "ended", home))
    assert [0] * 30 == codes


@pytest.mark.slow
@pytest.mark.parametrize("moment", ["waiting", "ended"])
def test_the_end_of_a_piped_input_ends_the_debug_command(
    home: Path, one_stage: Path, moment: str
) -> None:
    """Commands on a pipe that ends after ``continue``, as the run is waited for or once it
    ended, end ``debug FILE`` at once with the run's exit code."""
    debugged = in_background(home, "debug", "-q", "--break", "only", str(one_stage))
    assert debugged.stdin is not None
    try:
        debugged.stdin.write("continue\n")
        debugged.stdin.flush()
        if moment == "ended":
            (home / "go").touch()
            line_with(debugged.stdout, "run ended success")
        else:
            wait_for_pids(home / "started", 1)  # the prompt read the line: the stage runs
        debugged.stdin.close()  # the input ends
        (home / "go").touch()
        assert 0 == _ends_promptly(debugged)
    finally:
        if debugged.poll() is None:
            debugged.kill()
        debugged.wait()
        for stream in (debugged.stdout, debugged.stderr):
            if stream is not None:
                stream.close()


@pytest.fixture
def scheduled(home: Path) -> Iterator[Scheduled]:
    """``serve`` running one scheduled run of :data:`GATED`, waiting at a's approval."""
    with scheduled_serve(home, _written(home, "gated.yaml", GATED)) as served:
        yield served


@pytest.mark.slow
@pytest.mark.parametrize("moment", MOMENTS)
def test_ctrl_d_typed_ahead_at_debug_attach_ends_it(scheduled: Scheduled, moment: str) -> None:
    """At ``debug attach`` to a run ``serve`` runs, paused at its breakpoint, Ctrl-D typed
    after ``continue`` at any moment around the run's end (which another process reports)
    ends the prompt at once: 0, the run had ended."""
    with on_a_terminal(scheduled.home, "debug", "attach", scheduled.run_id, TERM="dumb") as (
        terminal
    ):
        terminal.wait_for(PROMPT)
        terminal.type(b"break b\n")
        terminal.wait_for("breakpoint #1")
        approved = taskdaemon(scheduled.home, "approve", scheduled.run_id, "a")
        assert 0 == approved.returncode, approved.stderr
        scheduled.wait_paused("b")
        assert 0 == _continue_then_ctrl_d(terminal, moment, scheduled.home)


def test_the_keys_typed_ahead_stop_at_the_first_end_of_input() -> None:
    """What line mode held is read up to the first end of input: an input that reads as ended
    for ever (``/dev/null`` here; a terminal after a hang-up) gave an end of input at each read,
    and the read before the prompt never ended."""
    code = (
        "from taskdaemon.pipeline.cli.terminal_state import _lines_typed_ahead\n"
        "print(_lines_typed_ahead())\n"
    )
    with open("/dev/null", "rb") as nothing:
        done = subprocess.run(
            [sys.executable, "-c", code],
            stdin=nothing,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    assert ("[None]\n", 0) == (done.stdout, done.returncode), done.stderr
