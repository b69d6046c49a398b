"""The debugger's prompts attaching to a run and detaching (``debug_ops.py``): which prompt
holds a run paused (a live process, one without a pid, one whose process is gone, one that
detached), what a ``detach`` deletes and resumes, and that checking a prompt is alive does not
signal it."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from cli_support import read_line
from pipeline_debug_ops_support import debugged
from pipeline_engine_support import Recorder
from taskdaemon.pipeline.events import BreakpointResumed


async def test_detach_of_one_prompt_leaves_the_run_paused_for_another() -> None:
    """A prompt's ``detach`` deletes only its breakpoints and resumes nothing while another
    prompt (a live process) is attached."""
    async with debugged() as run:
        await run.ops({"action": "state", "client": "other", "pid": os.getpid()})
        await run.ops({"action": "break", "stage": "b", "client": "other"})
        await run.ops({"action": "break", "stage": "a", "client": "me"})
        run.release()
        await run.engine.with_debug(True).wait_paused(run.run_id)
        answer = await run.ops({"action": "detach", "client": "me"})
        left = [bp.stage for bp in run.engine.with_debug(True).breakpoints(run.run_id)]
        still = len(run.engine.with_debug(True).paused(run.run_id))
    assert ({"ok": True, "deleted": 1, "resumed": 0}, ["b"], 1) == (answer, left, still)


async def test_a_prompt_attached_without_a_pid_holds_the_run() -> None:
    """A prompt attached without a pid (or with one that is not a process id) counts as
    attached: another prompt's ``detach`` resumes nothing."""
    async with debugged() as run:
        await run.ops({"action": "state", "client": "old", "pid": -5})
        await run.paused_at("a")
        answer = await run.ops({"action": "detach", "client": "me"})
    assert {"ok": True, "deleted": 0, "resumed": 0} == answer


@pytest.fixture
def gone_pid() -> int:
    """The pid of a process that has ended (and was reaped)."""
    gone = subprocess.Popen(["true"])
    gone.wait()
    return gone.pid


async def test_a_prompt_whose_process_is_gone_no_longer_holds_the_run(gone_pid: int) -> None:
    """A prompt attached with the pid of a process that has ended does not count: another
    prompt's ``detach`` resumes the run."""
    async with debugged() as run:
        await run.ops({"action": "state", "client": "old", "pid": gone_pid})
        await run.ops({"action": "state", "client": "me", "pid": os.getpid()})
        await run.paused_at("a")
        answer = await run.ops({"action": "detach", "client": "me"})
    assert {"ok": True, "deleted": 0, "resumed": 1} == answer


async def test_a_prompt_that_detached_no_longer_holds_the_run() -> None:
    """After a prompt detached, the next prompt's ``detach`` resumes the run."""
    async with debugged() as run:
        await run.ops({"action": "state", "client": "first", "pid": os.getpid()})
        await run.ops({"action": "detach", "client": "first"})
        await run.ops({"action": "state", "client": "second", "pid": os.getpid()})
        await run.paused_at("a")
        answer = await run.ops({"action": "detach", "client": "second"})
    assert {"ok": True, "deleted": 0, "resumed": 1} == answer


async def test_detach_all_deletes_every_breakpoint_and_resumes() -> None:
    """``detach`` with ``all`` deletes every breakpoint of the run, another prompt's too, and
    resumes it even while another prompt is attached."""
    async with debugged() as run:
        await run.ops({"action": "state", "client": "other", "pid": os.getpid()})
        await run.ops({"action": "break", "stage": "b", "client": "other"})
        await run.paused_at("a")
        answer = await run.ops({"action": "detach", "client": "me", "all": True})
    assert {"ok": True, "deleted": 2, "resumed": 1} == answer


async def test_detach_without_client_deletes_every_breakpoint_and_resumes() -> None:
    """``detach`` without ``client`` (an older prompt) deletes every breakpoint and resumes."""
    async with debugged() as run:
        await run.ops({"action": "state", "client": "other", "pid": os.getpid()})
        await run.paused_at("a")
        answer = await run.ops({"action": "detach", "by": "old"})
    assert {"ok": True, "deleted": 1, "resumed": 1} == answer


async def test_detach_records_who_resumed() -> None:
    """``detach`` with ``by`` records ``by`` on the resume event of what it resumed."""
    recorder = Recorder()
    async with debugged(recorder) as run:
        await run.paused_at("a")
        await run.ops({"action": "detach", "client": "me", "by": "eve"})
        await run.handle.wait()
    assert ["eve"] == [e.by for e in recorder.of(BreakpointResumed)]


class Prompt:
    """A live process standing in for a prompt; any signal with a default action that ends a
    process (SIGHUP included) ends it."""

    CODE = (
        "import signal, sys\n"
        "signal.signal(signal.SIGHUP, signal.SIG_DFL)\n"
        "print('ready', flush=True)\n"
        "sys.stdin.readline()\n"
        "print('alive', flush=True)\n"
    )

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", self.CODE],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert "ready\n" == read_line(self.process.stdout)
        except BaseException:  # a prompt that never got ready is not left running
            self.close()
            raise

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        """Whether the process was still running: a signal sent before this call has been
        delivered by the time it answers."""
        try:
            out, _ = self.process.communicate("\n", timeout=60)
        except BrokenPipeError:
            return False
        return "alive\n" == out

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.communicate()


@pytest.fixture
def prompt() -> Iterator[Prompt]:
    """A live process standing in for a prompt, ended at teardown."""
    process = Prompt()
    yield process
    process.close()


async def test_checking_whether_a_prompt_is_alive_does_not_signal_it(prompt: Prompt) -> None:
    """A prompt's ``detach`` that finds another prompt attached leaves that prompt's process
    running."""
    async with debugged() as run:
        await run.ops({"action": "state", "client": "other", "pid": prompt.pid})
        await run.paused_at("a")
        answer = await run.ops({"action": "detach", "client": "me"})
    assert ({"ok": True, "deleted": 0, "resumed": 0}, True) == (answer, prompt.alive())
