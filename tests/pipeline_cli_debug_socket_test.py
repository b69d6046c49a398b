"""``taskdaemon debug attach`` on a run ``serve`` scheduled, as real processes: ``serve`` with
a pipeline, the prompt on a pseudo-terminal, the HTTP debugger routes of the same ``serve``
(the prompt and the routes act on one engine, so each sees what the other set), and the
unhappy paths in one line (a second prompt attached, the run ended, a request's ``by`` over
a ``run``'s socket longer than the socket takes)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import pty
import select
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cli_support import (
    ONE_STAGE_PIPELINE,
    ROOT,
    TASKDAEMON,
    environment,
    in_background,
    line_with,
    taskdaemon,
    write,
)
from pipeline_debug_ops_support import debugged_runs
from schedule_support import Scheduled, scheduled_serve
from taskdaemon.pipeline.cli.debug_socket import debug_op
from taskdaemon.pipeline.control import ControlServer, send_request
from taskdaemon.pipeline.errors import PipelineError

#: a waits for an approval (the test's moment to attach), b reads a's x, c and d follow.
PIPELINE = """\
    name: sched
    stages:
      - name: a
        command: "echo '{\\"x\\": 1}'"
        triggers: [{manual: {approval_required: true}}]
      - name: b
        command: "echo '{}'"
        triggers: [{on_completion: {stage: a}}]
        inputs: {x: stages.a.outputs.x}
      - name: c
        command: "true"
        triggers: [{on_completion: {stage: b}}]
      - name: d
        command: "true"
        triggers: [{on_completion: {stage: c}}]
"""


@pytest.fixture
def scheduled(home: Path) -> Iterator[Scheduled]:
    """``serve`` running one scheduled run of :data:`PIPELINE`, waiting at a's approval."""
    with scheduled_serve(home, write(home / "sched.yaml", PIPELINE), "--max-runs=1") as served:
        yield served


class Terminal:
    """``taskdaemon debug attach RUN`` on a pseudo-terminal, typed at and read."""

    def __init__(self, home: Path, run_id: str) -> None:
        self.fd, terminal = pty.openpty()
        self.process = subprocess.Popen(
            [TASKDAEMON, "debug", "attach", run_id],
            cwd=ROOT,
            env=environment(home, TERM="dumb"),
            stdin=terminal,
            stdout=terminal,
            stderr=terminal,
            close_fds=True,
        )
        os.close(terminal)
        self.text = ""
        self._mark = 0  # where the text stood when the last keys were typed

    def read_until(self, needle: str, *, whole_line: bool = False) -> str:
        """Read until ``needle`` shows after the last keys typed, with ``whole_line`` its
        line's end too (a read returns what the terminal holds, which may end anywhere in a
        line); the text since then."""
        while not self._shown(needle, whole_line):
            ready, _, _ = select.select([self.fd], [], [], 60.0)
            if not ready:
                raise AssertionError(f"{needle!r} never came; the terminal showed:\n{self.text}")
            try:
                chunk = os.read(self.fd, 4096)
            except OSError:  # EIO: the prompt closed the terminal
                raise AssertionError(f"{needle!r} never came:\n{self.text}") from None
            self.text += chunk.decode(errors="replace")
        return self.text[self._mark :]

    def _shown(self, needle: str, whole_line: bool) -> bool:
        """Whether ``needle`` (and its line's end, with ``whole_line``) shows after the mark."""
        at = self.text.find(needle, self._mark)
        return at >= 0 and (not whole_line or "\n" in self.text[at + len(needle) :])

    def type(self, keys: str) -> str:
        """At the next prompt (readline owns the terminal then), type ``keys``; the text the
        prompt showed before."""
        shown = self.read_until("(taskdaemon) ")
        self._mark = len(self.text)
        os.write(self.fd, keys.encode())
        return shown

    def close(self) -> int:
        """Ctrl-D at the prompt; the exit code, once what the prompt wrote as it left is in
        ``text`` (read until the terminal closes)."""
        self.type("\x04")
        try:
            with contextlib.suppress(AssertionError):  # EIO: the prompt closed the terminal
                self.read_until("\0")  # never written: reads to the end
            return self.process.wait(timeout=60)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
            os.close(self.fd)


@pytest.mark.slow
def test_a_prompt_attached_to_a_scheduled_run_pauses_inspects_steps_and_leaves(
    scheduled: Scheduled,
) -> None:
    """``debug attach`` on a run ``serve`` scheduled (it answered "no run is served here",
    exit 3, before): a breakpoint set at the prompt is seen by the HTTP routes and one set
    over HTTP at the prompt; the run pauses at b, ``inputs b`` reads a's x, ``step`` runs b and
    pauses c; leaving (Ctrl-D) says it resumed c, deletes the prompt's breakpoint, not the
    HTTP one, at which d pauses and is resumed over HTTP; the run ends ``success`` and its
    breakpoints with it."""
    run_id = scheduled.run_id
    prompt = Terminal(scheduled.home, run_id[:8])
    try:
        attached = prompt.type("break b\n")
        set_b = prompt.read_until("breakpoint #1", whole_line=True)
        over_http = scheduled.api("PUT", f"/api/runs/{run_id}/debug/breakpoints", {"stage": "d"})
        prompt.type("info breakpoints\n")
        listed = prompt.read_until("#2 ", whole_line=True)
        seen_over_http = scheduled.api("GET", f"/api/runs/{run_id}/debug")
        approved = taskdaemon(scheduled.home, "approve", run_id, "a")
        scheduled.wait_paused("b")  # a "continue" typed before the pause would resume b
        prompt.type("where\n")
        paused_b = prompt.read_until("  c  ")
        prompt.type("inputs b\n")
        inputs = prompt.read_until('"x": 1')
        prompt.type("step\n")
        paused_c = prompt.read_until("paused at c.")
        http_paused = scheduled.api("GET", f"/api/runs/{run_id}/debug")["paused"]
        code = prompt.close()
        leaving = prompt.text[prompt.text.index("paused at c.") :]
        scheduled.wait_paused("d")  # at the HTTP breakpoint, which the prompt's leaving kept
        at_d = scheduled.api("GET", f"/api/runs/{run_id}/debug")
        resumed = scheduled.api("POST", f"/api/runs/{run_id}/debug/continue", {})
    finally:
        if prompt.process.poll() is None:
            prompt.process.kill()
            prompt.process.wait()
    ended = scheduled.line(" ended ")
    left = scheduled.api("GET", f"/api/runs/{run_id}/debug")["breakpoints"]
    assert f"debugging run {run_id} (sched)" in attached
    assert "nothing paused" in attached
    assert 2 == over_http["breakpoint"]["id"]
    assert f"breakpoint #1 before b (run {run_id[:8]})" in set_b
    assert f"#2 before d (run {run_id[:8]})  hits 0" in listed
    assert [1, 2] == sorted(bp["id"] for bp in seen_over_http["breakpoints"])
    assert 0 == approved.returncode, approved.stderr
    assert "  b  paused" in paused_b
    assert '"x": 1' in inputs
    assert "paused at c." in paused_c
    assert ["c"] == [paused["stage"] for paused in http_paused]
    assert 0 == code
    assert f"left run {run_id}, resuming 1 paused execution" in leaving  # Ctrl-D: c goes on
    assert [2] == [bp["id"] for bp in at_d["breakpoints"]]  # the prompt's #1 went as it left
    assert 1 == resumed["resumed"]
    assert f"run {run_id} of sched ended success" in ended
    assert [] == left  # the run's breakpoints end with it, the HTTP one too


@pytest.mark.slow
def test_a_second_prompt_and_an_ended_scheduled_run_are_told_in_one_line(
    scheduled: Scheduled,
) -> None:
    """A second ``debug attach`` while a first prompt holds b's pause sees the pause and,
    leaving, keeps it and the first's breakpoint (the run is left to the first). Once the run
    ended (cancelled), the first prompt is told so in one line, and ``debug attach`` and
    ``debug step`` of its id are one line each, exit 3, while ``serve`` goes on."""
    run_id = scheduled.run_id
    first = in_background(scheduled.home, "debug", "attach", run_id)
    try:
        assert first.stdin is not None
        assert first.stdout is not None
        first.stdin.write("break b\n")
        first.stdin.flush()
        line_with(first.stdout, "breakpoint #1")  # it is set
        taskdaemon(scheduled.home, "approve", run_id, "a")
        scheduled.wait_paused("b")
        second = taskdaemon(scheduled.home, "debug", "attach", run_id[:8], stdin="where\n")
        after_second = scheduled.api("GET", f"/api/runs/{run_id}/debug")
        cancelled = taskdaemon(scheduled.home, "cancel", run_id)
        ended = scheduled.line(" ended ")
        out, err = first.communicate("where\n", timeout=60)
    finally:
        if first.poll() is None:
            first.kill()
            first.communicate()
    attach = taskdaemon(scheduled.home, "debug", "attach", run_id)
    step = taskdaemon(scheduled.home, "debug", "step", run_id[:8])
    assert (0, "") == (second.returncode, second.stderr)
    assert "  b  paused" in second.stdout
    assert ["b"] == [paused["stage"] for paused in after_second["paused"]]
    assert [1] == [bp["id"] for bp in after_second["breakpoints"]]
    assert 0 == cancelled.returncode, cancelled.stderr
    assert f"run {run_id} of sched ended cancelled" in ended
    assert f"run {run_id} has ended: its process serves it no more" in out + err
    for refused in (attach, step):
        assert 3 == refused.returncode
        (line,) = refused.stderr.splitlines()
        assert line.startswith(f"taskdaemon debug: run {run_id} has ended (cancelled)"), line
    assert scheduled.process.poll() is None  # serve goes on


async def test_a_runs_debug_requests_delete_and_list_only_breakpoints_that_apply_to_it(
    home: Path,
) -> None:
    """Two runs of one engine paused at once, each served on its own control socket with the
    ``debug`` op: run A's ``delete N`` of run B's breakpoint is refused (it deleted it before),
    A's ``state`` lists A's own and the pipeline-wide ones, and A's ``delete`` clears exactly
    those, leaving B's breakpoint and B paused."""

    async def call(run_id: str, request: dict[str, object]) -> dict[str, object]:
        try:
            return await asyncio.to_thread(
                send_request, run_id, {"op": "debug", **request}, home=home, timeout=30.0
            )
        except PipelineError as exc:
            return {"refused": str(exc)}

    async with debugged_runs(2) as (mine, other):
        servers = [
            ControlServer(
                run.run_id,
                run.handle,
                home=home,
                extra_ops={"debug": debug_op(run.engine, run.run_id, [], None)},
            )
            for run in (mine, other)
        ]
        for server in servers:
            await server.start()
        try:
            await other.paused_at("a")
            await mine.paused_at("a")
            # A pipeline breakpoint, as --break sets them: it applies to both runs.
            everywhere = mine.session.set_breakpoint("b", pipeline=mine.handle.pipeline).id
            others = (await call(other.run_id, {"action": "break", "stage": "b"}))["breakpoint"]
            refused = await call(mine.run_id, {"action": "delete", "id": others["id"]})
            listed = (await call(mine.run_id, {"action": "state"}))["state"]
            cleared = await call(mine.run_id, {"action": "delete"})
            left = {(bp.id, bp.run_id) for bp in mine.session.breakpoints()}
            still_paused = [p.run_id for p in mine.session.paused()]
        finally:
            for server in servers:
                await server.aclose()
    mine_ids = sorted(bp["id"] for bp in listed["breakpoints"])  # type: ignore[index]
    assert f"run {mine.run_id} has no breakpoint #{others['id']}" in refused["refused"]
    assert everywhere in mine_ids
    assert others["id"] not in mine_ids
    assert len(mine_ids) == cleared["deleted"]
    assert (others["id"], other.run_id) in left
    assert {other.run_id} == {run_id for _, run_id in left}
    assert sorted([mine.run_id, other.run_id]) == sorted(still_paused)


@pytest.mark.slow
def test_a_debugger_s_name_is_bounded_as_an_approver_s(home: Path, serve: Any) -> None:
    """A ``debug`` request's ``by`` over a ``run``'s control socket took any length into the
    run's spans (``breakpoint.resumed``) and, for ``cancel``, its error: 4,097 characters, or
    a name that is not text, is refused in one line, as the socket refuses an approver's; the
    run stays paused, and a name of 4,096 characters resumes it."""
    served = serve(str(write(home / "one.yaml", ONE_STAGE_PIPELINE)), "--break", "only")
    served.wait_for_line("paused")
    refusals = []
    for action in ("continue", "cancel"):
        for by in ("x" * 4097, ["alice"]):
            request = {"op": "debug", "action": action, "by": by}
            with pytest.raises(PipelineError) as refused:
                send_request(served.run_id, request, home=home)
            refusals.append(str(refused.value))
    expected = ["by is longer than 4096 characters", "by must be a string"] * 2
    assert expected == refusals
    send_request(served.run_id, {"op": "debug", "action": "continue", "by": "y" * 4096}, home=home)
    code, _stdout, stderr = served.finish()
    assert (0, True) == (code, f"resumed: continue by {'y' * 4096}" in stderr)
