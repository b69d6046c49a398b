"""The real ``taskdaemon`` process's end with what a *sync* handler (or any handler under ``debug
FILE``) left behind, as with an ``async def`` one's (``pipeline_cli_process_end_test.py``): a
thread it started without ``daemon=`` is waited for (``END_GRACE`` seconds at most) and named
when cut off, not killed unannounced (``cli/stage_leftovers.py``). ``run``, ``debug FILE``,
``replay`` and ``serve`` alike."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli_support import pythonpath_with, taskdaemon
from schedule_support import scheduled_serve

#: ``a`` (sync) or ``a_async`` leaves what ``LEAVES`` names: a thread running that function;
#: nothing when it is unset.
HANDLERS = """\
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


def leaves(ctx):
    leaves = os.environ.get("LEAVES")
    if leaves:
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
