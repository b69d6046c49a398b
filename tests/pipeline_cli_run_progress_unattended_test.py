"""``taskdaemon run FILE --break STAGE`` with no terminal on stdin (CI, ``</dev/null``): the
pause's progress line says, on stderr and in one line, what the process waits for and how to
stop the wait, and the way it names does stop it (``cli.run_progress.ProgressView``)."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import pytest

from cli_support import ROOT, TASKDAEMON, line_with
from pipeline_debug_cli_support import environment, write_pipeline


@pytest.mark.slow
def test_a_pause_with_no_terminal_says_what_it_waits_for_and_how_to_stop(home: Path) -> None:
    """The line named ``debug attach RUN`` only: with stdin ``/dev/null`` nothing told a CI
    log's reader that the process waits, with no time limit, for someone to attach, nor that
    SIGTERM (a CI job's cancel) ends the wait, cancelling the run."""
    process = subprocess.Popen(
        [TASKDAEMON, "run", str(write_pipeline(home)), "--break", "b"],
        cwd=ROOT,
        env=environment(home),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = line_with(process.stderr, " paused: ")
        run_id = line.rsplit("taskdaemon debug attach ", 1)[1].split(";")[0]
        assert line.endswith(
            f"(waiting for: taskdaemon debug attach {run_id}; Ctrl-C or SIGTERM cancels the run)\n"
        )
        process.send_signal(signal.SIGTERM)
        _out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert 128 + signal.SIGTERM == process.returncode
    assert "resumed: cancel by SIGTERM" in err
