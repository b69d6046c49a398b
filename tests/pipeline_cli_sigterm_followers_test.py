"""``logs -f`` and ``dag --run --watch``, which follow a run until it ends, stopped by SIGTERM
or SIGHUP as ``watch`` is (``cli/sigterm.py``): exit 143 or 129, no traceback, no line of
their own, every record they wrote whole, the terminal echoing as before, ``dag``'s drawing
whole with no temporary file beside it. Before, the signals' default action ended them where
they stood: their parent was told of a death by signal (-15, -1), not an exit code.

On a terminal of its own (a pty) a command gets SIGTERM, and SIGHUP when the test closes the
terminal; through pipes it gets SIGHUP with its default action restored (the suite may run
under ``nohup``: ``cli_support.in_background(..., hangup=True)``), and its output is read."""

from __future__ import annotations

import signal
import termios
import time
from pathlib import Path
from typing import Any

import pytest

from cli_faults_support import OnTerminal, on_a_terminal, read_until
from cli_support import (
    GATED_PIPELINE,
    ended_at_exit,
    in_background,
    read_line,
    wait_until_stored,
    write,
)

pytestmark = pytest.mark.slow


def _gated_run(home: Path, serve: Any, tmp_path: Path) -> str:
    """The id of a run that waits for an approval (so it never ends by itself), in the store:
    the run's terminal says "waiting for approval" before its writer commits (every 100 ms),
    and ``logs`` given a run the store does not have yet says "no run" and exits 1."""
    served = serve(str(write(tmp_path / "gated.yaml", GATED_PIPELINE)))
    served.wait_for_line("waiting for approval")
    wait_until_stored(home, str(served.run_id), "build", "success")
    return str(served.run_id)


def _terminated(command: OnTerminal) -> tuple[int, bool]:
    """SIGTERM to ``command``: its exit code, and whether its terminal echoes keys after it;
    what it wrote to the terminal up to its end is then in ``command.seen``."""
    command.process.send_signal(signal.SIGTERM)
    code = command.process.wait(60)
    echoing = bool(termios.tcgetattr(command.primary)[3] & termios.ECHO)
    read_until(command.primary, b"\0never written", command.seen)  # to the terminal's end
    return code, echoing


def _wait_for_file(path: Path) -> None:
    """Wait until ``path`` exists (``dag --watch`` drew the run once)."""
    for _ in range(600):
        if path.exists():
            return
        time.sleep(0.05)
    raise AssertionError(f"{path} was never written")


def test_logs_follow_ends_on_sigterm_and_sighup_as_watch_does(
    home: Path, tmp_path: Path, serve: Any
) -> None:
    run_id = _gated_run(home, serve, tmp_path)
    with on_a_terminal(home, "logs", run_id, "-f") as logs:
        logs.wait_for("finished: success")
        terminated, echoing = _terminated(logs)
    shown = bytes(logs.seen)
    with on_a_terminal(home, "logs", run_id, "-f") as hung:
        hung.wait_for("finished: success")
        hung_up = hung.hang_up()
    with ended_at_exit(in_background(home, "logs", run_id, "-f", hangup=True)) as piped:
        first = read_line(piped.stdout)
        piped.send_signal(signal.SIGHUP)
        rest, stderr = piped.communicate(timeout=60)
    assert (143, True, 129, 129, "") == (
        terminated,
        echoing,
        hung_up,
        piped.returncode,
        stderr,
    ), shown[-500:]
    assert shown.endswith(b"finished: success\r\n"), shown[-500:]
    assert first.endswith(f"run {run_id} of gated started\n"), first
    assert rest == "" or rest.endswith("\n"), rest


def test_dag_watch_ends_on_sigterm_and_sighup_as_watch_does(
    home: Path, tmp_path: Path, serve: Any
) -> None:
    run_id = _gated_run(home, serve, tmp_path)
    drawn = {ending: tmp_path / ending / "dag.dot" for ending in ("sigterm", "hangup", "pipe")}
    watch = ("dag", "--run", run_id, "--watch", "-o")
    with on_a_terminal(home, *watch, str(drawn["sigterm"])) as dag:
        _wait_for_file(drawn["sigterm"])
        terminated, echoing = _terminated(dag)
    with on_a_terminal(home, *watch, str(drawn["hangup"])) as hung:
        _wait_for_file(drawn["hangup"])
        hung_up = hung.hang_up()
    piped = in_background(home, *watch, str(drawn["pipe"]), hangup=True)
    _wait_for_file(drawn["pipe"])
    piped.send_signal(signal.SIGHUP)
    stdout, stderr = piped.communicate(timeout=60)
    assert (143, True, b"", 129, 129, "", "") == (
        terminated,
        echoing,
        bytes(dag.seen),
        hung_up,
        piped.returncode,
        stdout,
        stderr,
    )
    for out in drawn.values():
        assert ["dag.dot"] == [path.name for path in out.parent.iterdir()]
        assert out.read_text().endswith("}\n"), out.read_text()[-200:]
