"""What stage code leaves running past its run (a thread, a pool never shut down, a blocking
``atexit`` hook) holds the real ``taskdaemon`` process's end for ``END_GRACE`` seconds at most:
then one line names it and the process ends with the run's exit code; Ctrl-C meanwhile is one
line and exit 130 (``cli/process_end.py``)."""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path

import pytest

from cli_faults_support import on_a_terminal
from cli_support import pythonpath_with, taskdaemon
from schedule_support import scheduled_serve

#: ``a`` leaves what ``LEAVES`` names behind; its thread (or hook) says ``held`` once the
#: process's end waits for it (the main thread is past the command: its ``join`` returns).
HANDLERS = """\
import atexit
import concurrent.futures
import os
import sys
import threading
import time


def held():
    threading.main_thread().join()  # returns once the process's end has begun
    print("held", file=sys.stderr, flush=True)
    time.sleep(3600)


def hook():
    print("held", file=sys.stderr, flush=True)
    time.sleep(3600)


if os.environ.get("LEAVES") == "import":  # as the module is imported: no stage registers it
    atexit.register(hook)


async def leaves(ctx):
    leaves = os.environ.get("LEAVES")
    if leaves == "thread":
        threading.Thread(target=held, name="uploader").start()
    elif leaves == "pool":
        concurrent.futures.ThreadPoolExecutor(1).submit(held)
    elif leaves == "hook":
        atexit.register(hook)
    return {}
"""

PIPELINE = """\
name: leaves
stages:
  - name: a
    handler: "leaving:leaves"
    triggers: [{manual: {approval_required: false}}]
  - name: b
    command: "exit ${B_EXIT:-0}"
    triggers: [{on_completion: {stage: a}}]
"""

SAID = {
    "thread": "taskdaemon: exiting without waiting for thread 'uploader' (started by stage 'a', "
    "running leaving.held), still running 2 s after the command ended; a handler joins the "
    "threads it starts before it returns",
    "pool": "taskdaemon: exiting without waiting for thread 'ThreadPoolExecutor-0_0' (started "
    "by stage 'a', running concurrent.futures.thread._worker), still running 2 s after the "
    "command ended; a handler joins the threads it starts before it returns",
    "hook": "taskdaemon: exiting without waiting for the atexit hook leaving.hook (registered "
    "by stage 'a'), still running 2 s after the command ended; an atexit hook must not block",
}


@pytest.fixture
def pipeline(tmp_path: Path) -> Path:
    (tmp_path / "leaving.py").write_text(HANDLERS)
    path = tmp_path / "p.yaml"
    path.write_text(PIPELINE)
    return path


def _status(home: Path, run_id: str) -> str:
    shown = json.loads(taskdaemon(home, "runs", "show", run_id, "--json").stdout)
    return str(shown["status"])


@pytest.mark.slow
@pytest.mark.parametrize(
    ("leaves", "b_exit", "code"), [("thread", "0", 0), ("pool", "3", 1), ("hook", "0", 0)]
)
def test_run_ends_with_its_code_and_names_what_its_stage_left(
    home: Path, pipeline: Path, leaves: str, b_exit: str, code: int
) -> None:
    """Before, the run was stored and its id printed, then the process never ended (here,
    ``TimeoutExpired`` at 60 s)."""
    env = {"PYTHONPATH": pythonpath_with(pipeline.parent), "LEAVES": leaves, "B_EXIT": b_exit}
    ran = taskdaemon(home, "run", "-q", str(pipeline), **env)
    assert (code, SAID[leaves]) == (ran.returncode, ran.stderr.splitlines()[-1]), ran.stderr
    assert ("success" if code == 0 else "failure") == _status(home, ran.stdout.split()[0])


@pytest.mark.slow
@pytest.mark.parametrize(("command", "leaves"), [("debug", "hook"), ("replay", "thread")])
def test_debug_and_replay_end_alike(home: Path, pipeline: Path, command: str, leaves: str) -> None:
    """``debug FILE`` and ``replay`` too: before, neither ended. (A thread a handler starts
    under ``debug``, whose engine runs on a daemon thread:
    ``pipeline_cli_process_end_sync_test.py``.)"""
    path = pythonpath_with(pipeline.parent)
    if command == "debug":
        ran = taskdaemon(home, "debug", str(pipeline), stdin="", PYTHONPATH=path, LEAVES=leaves)
    else:
        recorded = taskdaemon(home, "run", "-q", str(pipeline), PYTHONPATH=path)
        assert 0 == recorded.returncode, recorded.stderr
        args = ("replay", recorded.stdout.strip(), "--from", "a")
        ran = taskdaemon(home, *args, PYTHONPATH=path, LEAVES=leaves)
    assert (0, SAID[leaves]) == (ran.returncode, ran.stderr.splitlines()[-1]), ran.stderr


@pytest.mark.slow
def test_validate_ends_alike_when_a_handler_module_registers_a_hook(
    home: Path, pipeline: Path
) -> None:
    """``validate`` imports the handler modules it checks: one that registers a blocking
    ``atexit`` hook as it is imported held it for ever (here, ``TimeoutExpired`` at 60 s)."""
    env = {"PYTHONPATH": pythonpath_with(pipeline.parent), "LEAVES": "import"}
    checked = taskdaemon(home, "validate", str(pipeline), **env)
    said = (
        "taskdaemon: exiting without waiting for the atexit hook leaving.hook, still running "
        "2 s after the command ended; an atexit hook must not block"
    )
    assert (0, said) == (checked.returncode, checked.stderr.splitlines()[-1]), checked.stderr


@pytest.mark.slow
def test_serve_stopped_ends_alike(home: Path, pipeline: Path) -> None:
    """``serve`` stopped (SIGTERM) after a scheduled run's stage left a thread: before, it
    never ended."""
    env = {"PYTHONPATH": pythonpath_with(pipeline.parent), "LEAVES": "thread"}
    with scheduled_serve(home, pipeline, **env) as serve:
        serve.line(f"run {serve.run_id} of leaves ended success")
        serve.process.terminate()
        _out, stderr = serve.process.communicate(timeout=60)
    assert (0, SAID["thread"]) == (serve.process.returncode, stderr.splitlines()[-1]), stderr


#: ``taskdaemon`` with the grace made long: the Ctrl-C typed comes within it. The import may
#: fail, so that the test runs against a tree without the module (its check before the fix).
LONG_GRACE = """\
import sys
try:
    from taskdaemon.pipeline.cli import process_end
    process_end.END_GRACE = 600.0
except ImportError:
    pass
from taskdaemon.__main__ import main
sys.exit(main())
"""


@pytest.mark.slow
@pytest.mark.parametrize("leaves", ["thread", "hook"])
def test_ctrl_c_while_the_end_is_held_is_one_line_and_exit_130(
    home: Path, pipeline: Path, leaves: str
) -> None:
    """Typed on the terminal once the leftover holds the end: before, the thread's case
    printed a ``KeyboardInterrupt`` traceback from ``threading._shutdown``, and the hook's
    one from the hook."""
    args = ("-c", LONG_GRACE, "run", "-q", str(pipeline))
    path = pythonpath_with(pipeline.parent)
    with on_a_terminal(home, *args, command=sys.executable, PYTHONPATH=path, LEAVES=leaves) as ran:
        # The whole line, its end too: Ctrl-C typed between ``print``'s two writes cut the
        # hook's line in the main thread, and the next line began on it ("heldtaskdaemon").
        ran.wait_for("held\r\n")
        ran.type(b"\x03")
        # The terminal echoes Ctrl-C as ^C, before the line.
        shown = ran.read_to_end().decode().replace("\r\n", "\n").replace("^C", "")
        code = ran.process.wait(60)
    said = SAID[leaves].split(", still running")[0].replace("exiting", "Ctrl-C: exiting")
    assert (130, said) == (code, shown.splitlines()[-1]), shown
    assert "Traceback" not in shown


def test_what_holds_the_end_is_named_within_bounds() -> None:
    """Stage code chooses its threads' names and code: a line names 5 threads at most and
    counts the rest, each name cut and its control characters escaped."""
    from taskdaemon.pipeline.cli.process_end import _holder

    release = threading.Event()

    def waits() -> None:
        release.wait(60)

    waits.__qualname__ = "x\x1b]52;c;" + "y" * 500
    threads = [threading.Thread(target=waits, name=f"t{n}\x1b[2J" + "z" * 500) for n in range(7)]
    for thread in threads:
        thread.start()
    try:
        holder, _hint = _holder()
    finally:
        release.set()
        for thread in threads:
            thread.join()
    assert (True, False, 5, True) == (
        holder.startswith("threads "),
        "\x1b" in holder,
        holder.count("(running "),
        holder.endswith(" and 2 more") and len(holder) < 5 * 200,
    )
