"""The real ``taskdaemon`` process's end with what a *sync* handler (or any handler under ``debug
FILE``) left behind, as with an ``async def`` one's (``pipeline_cli_process_end_test.py``): a
thread it started without ``daemon=`` is waited for (``END_GRACE`` seconds at most) and named
when cut off, not killed unannounced (``cli/stage_leftovers.py``); and stage code's
``os._exit`` during that grace is said (``cli/process_end.py``). ``run``, ``debug FILE``,
``replay`` and ``serve`` alike."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli_support import pythonpath_with, taskdaemon
from schedule_support import scheduled_serve

#: ``a`` (sync) or ``a_async`` leaves what ``LEAVES`` names: a thread running that function,
#: ``hook``, an ``atexit`` hook calling ``os._exit(CODE)`` (``exit_hook``: ``os._exit`` itself);
#: nothing when it is unset.
HANDLERS = """\
import atexit
import os
import threading
import time


def at_end():
    threading.main_thread().join()  # returns once the process's end has begun


def held():
    at_end()
    threading.Event().wait()


def upload():
    at_end()
    time.sleep(0.3)  # the upload's own time (the test waits for its file, not for this)
    with open(os.environ["UPLOADED"], "w") as out:
        out.write("uploaded")


def exits():
    at_end()
    os._exit(int(os.environ["CODE"]))


def bye():
    os._exit(int(os.environ["CODE"]))


def leaves(ctx):
    leaves = os.environ.get("LEAVES")
    if leaves == "hook":
        atexit.register(bye)
    elif leaves == "exit_hook":
        atexit.register(os._exit, int(os.environ["CODE"]))
    elif leaves:
        threading.Thread(target=globals()[leaves], name="uploader").start()
    return {}


async def leaves_async(ctx):
    return leaves(ctx)
"""

PIPELINE = """\
name: leaves
stages:
  - name: a
    handler: "leaving:{handler}"
    triggers: [{{manual: {{approval_required: false}}}}]
  - name: b
    command: "exit ${{B_EXIT:-0}}"
    triggers: [{{on_completion: {{stage: a}}}}]
"""

CUT_OFF = (
    "taskdaemon: exiting without waiting for thread 'uploader' (started by stage 'a', running "
    "leaving.held), still running 2 s after the command ended; a handler joins the threads it "
    "starts before it returns"
)


def _pipeline(tmp_path: Path, handler: str) -> Path:
    (tmp_path / "leaving.py").write_text(HANDLERS)
    path = tmp_path / "p.yaml"
    path.write_text(PIPELINE.format(handler=handler))
    return path


def _ended(home: Path, pipeline: Path, command: str, **env: str) -> tuple[int, str]:
    """The exit code and stderr of ``command`` (``run``, ``debug``, ``replay`` of a run made
    before, ``serve`` stopped once its run ended) running ``pipeline`` with ``env``."""
    path = pythonpath_with(pipeline.parent)
    if command == "serve":
        with scheduled_serve(home, pipeline, PYTHONPATH=path, **env) as serve:
            serve.line(f"run {serve.run_id} of leaves ended ")
            serve.process.terminate()
            _out, stderr = serve.process.communicate(timeout=60)
        return serve.process.returncode, stderr
    if command == "replay":
        recorded = taskdaemon(home, "run", "-q", str(pipeline), PYTHONPATH=path)
        assert 0 == recorded.returncode, recorded.stderr
        args: tuple[str, ...] = ("replay", recorded.stdout.strip(), "--from", "a")
    else:
        args = (command, "-q", str(pipeline)) if command == "run" else ("debug", str(pipeline))
    ran = taskdaemon(home, *args, stdin="", PYTHONPATH=path, **env)
    return ran.returncode, ran.stderr


@pytest.mark.slow
@pytest.mark.parametrize(
    ("command", "handler"),
    [("run", "leaves"), ("debug", "leaves_async"), ("replay", "leaves"), ("serve", "leaves")],
)
def test_a_thread_a_sync_handler_leaves_is_named_when_cut_off(
    home: Path, tmp_path: Path, command: str, handler: str
) -> None:
    """Before, the thread was a daemon thread (as taskdaemon's thread that ran the handler)
    and was killed at the process's end with no word: stderr had no such line."""
    pipeline = _pipeline(tmp_path, handler)
    code, stderr = _ended(home, pipeline, command, LEAVES="held")
    assert (0, CUT_OFF) == (code, stderr.splitlines()[-1] if stderr else ""), stderr


@pytest.mark.slow
def test_a_thread_a_sync_handler_leaves_finishes_its_work_within_the_grace(
    home: Path, tmp_path: Path
) -> None:
    """The thread's work, begun as the process's end began and lasting less than the grace,
    is done: before, the file was never written (the thread was killed with the process)."""
    pipeline = _pipeline(tmp_path, "leaves")
    uploaded = tmp_path / "uploaded"
    code, stderr = _ended(home, pipeline, "run", LEAVES="upload", UPLOADED=str(uploaded))
    assert (0, "", "uploaded") == (code, stderr, uploaded.read_text())


#: Who calls ``os._exit`` after the command, as the line names it.
THREAD = "thread 'uploader' (started by stage 'a', running leaving.exits)"
HOOK = "the atexit hook leaving.bye (registered by stage 'a')"


@pytest.mark.slow
@pytest.mark.parametrize(
    ("command", "leaves", "said", "asked", "ended"),
    [
        ("run", "exits", THREAD, 5, 0),
        ("run", "hook", HOOK, 0, 1),
        ("run", "exit_hook", "the atexit hook os._exit (registered by stage 'a')", 5, 0),
        ("debug", "hook", HOOK, 5, 0),
        ("replay", "exits", THREAD, 5, 0),
        ("serve", "exits", THREAD, 5, 0),
    ],
)
def test_os_exit_after_the_command_ended_is_said(  # noqa: PLR0917 - the cases' columns
    home: Path, tmp_path: Path, command: str, leaves: str, said: str, asked: int, ended: int
) -> None:
    """``os._exit`` from a stage's thread or hook once the command has returned (``ended``
    its code): the process ends with the code asked, but one read as 0 never hides a run that
    failed (stage ``b`` exits 3 where ``ended`` is 1). Before, the process ended silent with
    the code asked."""
    pipeline = _pipeline(tmp_path, "leaves_async")
    env = {"LEAVES": leaves, "CODE": str(asked), "B_EXIT": str(3 * ended)}
    code, stderr = _ended(home, pipeline, command, **env)
    line = (
        f"taskdaemon: {said} ended the process with os._exit({asked}) after the command ended "
        f"with exit code {ended}"
    )
    assert (asked or ended, line) == (code, stderr.splitlines()[-1] if stderr else ""), stderr
