"""Stage code whose results, errors or leftover processes misbehave after it returned, run by
the real ``taskdaemon run``: a value whose text never comes, an error whose text is huge, a
command whose child holds its output open. The run ends, says what happened, and keeps the
stage's end."""

from __future__ import annotations

import contextlib
import json
import os
import signal
from pathlib import Path

import psutil
import pytest

from cli_support import pythonpath_with, taskdaemon, write

#: Handlers whose results or errors misbehave; ``CALLS`` is a file each ``__str__`` call marks.
HANDLERS = """\
import asyncio
import logging
import time


class Spins:
    def __repr__(self):
        while True:
            pass


class Sleeps:
    def __repr__(self):
        time.sleep(1e9)


class Huge(Exception):
    def __str__(self):
        with open("CALLS", "a") as calls:
            calls.write("x")
        return "x" * 5_000_000 + " the end"


class SpinsError(Exception):
    def __str__(self):
        while True:
            pass


class SleepsError(Exception):
    def __str__(self):
        time.sleep(1e9)


class Mine(Exception):
    def __str__(self):
        return "mine: " + self.args[0]


def raises_spinning(ctx):
    raise SpinsError()


async def raises_from_sleeping(ctx):
    try:
        raise SleepsError()
    except SleepsError as error:
        raise ValueError("outer") from error


def logs_spinning(ctx):
    try:
        raise SpinsError()
    except SpinsError:
        logging.getLogger("misbehaving").exception("it failed")
    return {"kept": 1}


def raises_mine(ctx):
    raise Mine("its own text")


def million(ctx):
    return {f"k{i}": i for i in range(1_000_000)}


def spins(ctx):
    return {"r": Spins(), "kept": 1}


async def sleeps(ctx):
    return {"r": [Sleeps()], "kept": 1}


def huge(ctx):
    raise Huge()


async def stops_the_loop(ctx):
    asyncio.get_event_loop().stop()
    return {"kept": 1}
"""


def _pipeline(tmp_path: Path, work: str) -> Path:
    """One stage doing ``work`` (``handler: ...`` or ``command: ...``), timeout 20 s."""
    (tmp_path / "misbehaving.py").write_text(HANDLERS.replace("CALLS", str(tmp_path / "calls")))
    return write(
        tmp_path / "p.yaml",
        f"""\
        name: misbehaving
        timeout: 20s
        stages:
          - name: s
            {work}
            triggers: [{{manual: {{approval_required: false}}}}]
        """,
    )


def _stored_attempt(home: Path, run_id: str) -> dict[str, object]:
    shown = taskdaemon(home, "runs", "show", run_id, "--json")
    assert 0 == shown.returncode, shown.stderr
    (stage,) = json.loads(shown.stdout)["stages"]
    (attempt,) = stage["attempts"]
    assert isinstance(attempt, dict)
    return {"status": stage["status"], **attempt}


@pytest.mark.slow
@pytest.mark.parametrize(
    ("handler", "held"),
    [("spins", '"<misbehaving.Spins object>"'), ("sleeps", '["<misbehaving.Sleeps object>"]')],
)
def test_a_result_whose_repr_never_returns_is_stored_by_its_type(
    home: Path, tmp_path: Path, handler: str, held: str
) -> None:
    """The monitor called the value's ``__repr__`` on the thread the run's end waits for: the
    run never ended, SIGTERM did nothing (30 s TimeoutExpired here)."""
    pipeline = _pipeline(tmp_path, f'handler: "misbehaving:{handler}"')
    ran = taskdaemon(
        home, "run", str(pipeline), "-q", timeout=30, PYTHONPATH=pythonpath_with(tmp_path)
    )
    assert 0 == ran.returncode, ran.stderr
    assert "" == ran.stderr
    attempt = _stored_attempt(home, ran.stdout.strip())
    assert "success" == attempt["status"]
    assert f'{{"kept":1,"r":{held}}}' == attempt["outputs"]


@pytest.mark.slow
def test_an_error_whose_text_is_huge_is_taken_once_and_cut(home: Path, tmp_path: Path) -> None:
    """Its ``__str__`` was called three times (the engine's error, the span's message, the
    span's stack trace), each 5 MB text redacted whole before being cut."""
    pipeline = _pipeline(tmp_path, 'handler: "misbehaving:huge"')
    ran = taskdaemon(home, "run", str(pipeline), "-q", PYTHONPATH=pythonpath_with(tmp_path))
    assert 1 == ran.returncode, ran.stderr
    assert "x" == (tmp_path / "calls").read_text()
    cut = f"…[{5_000_008 - 8192} characters cut]…"
    said = f"taskdaemon run: run {ran.stdout.strip()} failure: stage 's' failure: xxx"
    assert ran.stderr.startswith(said), ran.stderr[:200]
    assert 1 == ran.stderr.count("\n")
    attempt = _stored_attempt(home, ran.stdout.strip())
    assert f"{'x' * 4096}{cut}{'x' * 4088} the end" == attempt["error"]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("handler", "error"),
    [
        ("raises_spinning", "<misbehaving.SpinsError: its text did not come within 1s>"),
        ("raises_from_sleeping", "outer"),
        ("raises_mine", "mine: its own text"),
    ],
)
def test_an_error_whose_text_never_comes_fails_the_stage_and_the_run_ends(
    home: Path, tmp_path: Path, handler: str, error: str
) -> None:
    """The engine (the error) and the monitor (a stack trace's cause) called the exception's
    ``__str__`` on threads the run's end waits for: the run never ended, deaf to SIGTERM (30 s
    TimeoutExpired here). A class's own ``__str__`` that returns is still the error."""
    pipeline = _pipeline(tmp_path, f'handler: "misbehaving:{handler}"')
    ran = taskdaemon(
        home, "run", str(pipeline), "-q", timeout=30, PYTHONPATH=pythonpath_with(tmp_path)
    )
    assert 1 == ran.returncode, ran.stderr
    said = f"taskdaemon run: run {ran.stdout.strip()} failure: stage 's' failure: {error}\n"
    assert said == ran.stderr
    attempt = _stored_attempt(home, ran.stdout.strip())
    assert ("failure", error) == (attempt["status"], attempt["error"])


@pytest.mark.slow
def test_a_handler_that_logs_an_error_whose_text_never_comes_goes_on(
    home: Path, tmp_path: Path
) -> None:
    """Its ``logger.exception`` took the text under the console handler's lock and never let
    go: the stage timed out and the engine's next log line blocked the loop for good, the run
    deaf to SIGTERM (30 s TimeoutExpired here)."""
    pipeline = _pipeline(tmp_path, 'handler: "misbehaving:logs_spinning"')
    ran = taskdaemon(
        home, "run", str(pipeline), "-q", timeout=30, PYTHONPATH=pythonpath_with(tmp_path)
    )
    assert 0 == ran.returncode, ran.stderr
    assert ran.stderr.endswith("]\nmisbehaving.SpinsError: its text did not come within 1s\n"), (
        ran.stderr
    )
    attempt = _stored_attempt(home, ran.stdout.strip())
    assert ("success", '{"kept":1}') == (attempt["status"], attempt["outputs"])


@pytest.mark.slow
def test_a_command_after_a_huge_result_does_not_pay_for_its_capture(
    home: Path, tmp_path: Path
) -> None:
    """Its ``TRACEPARENT`` settled the monitor's queue on the engine's loop, so the previous
    stage's capture of a million outputs (a million Python calls) ran inside the command's
    attempt: ``echo`` with ``timeout: 2s`` timed out (exit 1)."""
    pipeline = _pipeline(tmp_path, 'handler: "misbehaving:million"')
    with pipeline.open("a") as more:
        more.write(
            "  - name: echo\n"
            '    command: "echo $TRACEPARENT"\n'
            "    timeout: 2s\n"
            "    triggers: [{on_completion: {stage: s, success_only: true}}]\n"
        )
    ran = taskdaemon(
        home, "run", str(pipeline), "-q", timeout=100, PYTHONPATH=pythonpath_with(tmp_path)
    )
    assert 0 == ran.returncode, ran.stderr
    shown = taskdaemon(home, "runs", "show", ran.stdout.strip(), "--json")
    (_, echo) = json.loads(shown.stdout)["stages"]
    (attempt,) = echo["attempts"]
    outputs = json.loads(attempt["outputs"])
    named = outputs["stdout"].split("-")[1:3]  # the span the command names is its stage's
    assert (0, [ran.stdout.strip(), attempt["span_id"]]) == (outputs["exit_code"], named)


@pytest.mark.slow
def test_a_command_whose_child_holds_its_output_ends_with_its_process(
    home: Path, tmp_path: Path
) -> None:
    """The stage waited for the end of its output, which the child ``sleep`` held open: the
    command that printed ``done`` and exited 0 at once ran to its timeout and failed."""
    pids = tmp_path / "pids"
    pipeline = _pipeline(tmp_path, f'command: "sleep 1000 & echo $! > {pids}; echo done"')
    try:
        ran = taskdaemon(home, "run", str(pipeline), "-q", timeout=30)
        assert 0 == ran.returncode, ran.stderr
        assert (
            "WARNING taskdaemon.pipeline.command_loop: stage 's': its command exited, but "
            "processes it left running held its output open for 1s: they are killed with the "
            "stage [" in ran.stderr
        )
        attempt = _stored_attempt(home, ran.stdout.strip())
        assert "success" == attempt["status"]
        # The drain's grace and the kill, not the 20 s timeout: the stage's own time, as the
        # engine measured it (the whole command's, its start under load included, was taken).
        duration = attempt["duration"]
        assert isinstance(duration, float), attempt
        assert duration < 15, duration
        assert '{"exit_code":0,"stdout":"done"}' == attempt["outputs"]
        with contextlib.suppress(psutil.NoSuchProcess):  # killed with its stage
            assert psutil.STATUS_ZOMBIE == psutil.Process(int(pids.read_text())).status()
    finally:
        with contextlib.suppress(ProcessLookupError, ValueError, FileNotFoundError):
            os.kill(int(pids.read_text()), signal.SIGKILL)


@pytest.mark.slow
def test_an_async_handler_that_stops_the_loop_leaves_the_run_going(
    home: Path, tmp_path: Path
) -> None:
    """``get_event_loop().stop()`` ended the loop's wait with the run pending: a traceback
    (``Event loop stopped before Future completed``), exit 1, or with a command stage after
    it, closing the loop waited for ever for the run's tasks, deaf to SIGTERM."""
    pipeline = _pipeline(tmp_path, 'handler: "misbehaving:stops_the_loop"')
    ran = taskdaemon(
        home, "run", str(pipeline), "-q", timeout=30, PYTHONPATH=pythonpath_with(tmp_path)
    )
    assert 0 == ran.returncode, ran.stderr
    assert ran.stderr.endswith(
        "WARNING taskdaemon.pipeline.event_loop: the event loop was stopped (loop.stop()) by "
        "code running on it, such as a stage's handler: ignored, the run goes on\n"
    )
    attempt = _stored_attempt(home, ran.stdout.strip())
    assert ("success", '{"kept":1}') == (attempt["status"], attempt["outputs"])


@pytest.mark.slow
def test_a_process_that_left_the_command_group_and_holds_its_output_is_said(
    home: Path, tmp_path: Path
) -> None:
    """``setsid`` takes a child out of the command's process group, which the stage's end
    kills: the line said it was killed with the stage, and it ran on. Now a second line says
    its output is not read, and, adopted by taskdaemon (``adopted_orphans``), it is killed with
    the stage and said."""
    pids = tmp_path / "pids"
    # The command ends once the child wrote its pid, after ``setsid``: ending sooner, the
    # stage's group kill could end it while it is still in the group, not the case at hand.
    child = f"setsid sh -c 'echo $$ > {pids}; exec sleep 1000' &"
    command = f"{child} until [ -s {pids} ]; do sleep 0.02; done; echo done"
    pipeline = _pipeline(tmp_path, f'command: "{command}"')
    try:
        ran = taskdaemon(home, "run", str(pipeline), "-q", timeout=30)
        left = int(pids.read_text())
        said = (
            "WARNING taskdaemon.pipeline.command_loop: stage 's': a process its command "
            "started outside its process group (setsid) still holds its output open: what it "
            "writes is not read ["
        )
        killed = "stage 's': 1 process its command started left its process group (setsid) "
        attempt = _stored_attempt(home, ran.stdout.strip())
        assert (0, True, True, "success", False) == (
            ran.returncode,
            said in ran.stderr,
            f"{killed}and outlived it: killed with the stage (pid {left} 'sleep')" in ran.stderr,
            attempt["status"],
            psutil.pid_exists(left),
        ), ran.stderr
    finally:
        with contextlib.suppress(ProcessLookupError, ValueError, FileNotFoundError):
            os.kill(int(pids.read_text()), signal.SIGKILL)
