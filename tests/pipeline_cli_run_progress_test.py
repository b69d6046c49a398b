"""``run``'s and ``debug``'s progress lines (``cli.run.ProgressView``): at a breakpoint, and
the first lines of a run."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import pytest

from cli_support import Served, taskdaemon, write
from taskdaemon.pipeline.cli.run import ProgressView
from taskdaemon.pipeline.events import BreakpointHit

RUN_ID = "ab" * 16


def _paused(instance: int) -> BreakpointHit:
    return BreakpointHit(
        run_id=RUN_ID,
        pipeline="p",
        stage="fan",
        instance=instance,
        attempt=1,
        task_run_id=f"fan.{instance}.1",
        at=0.0,
        kind="start",
        reason="#1 before fan",
    )


def _lines(view: ProgressView, stream: io.StringIO) -> list[str]:
    for instance in range(3):
        view.on_event(_paused(instance))
    return [line.split(None, 1)[1] for line in stream.getvalue().splitlines()]


def test_a_paused_fan_out_names_its_instances_and_how_to_attach() -> None:
    """Each instance paused before its start has its own line (``fan#1``, ``fan#2`` after the
    first), and ``run``'s lines say how to reach the pause from another terminal."""
    stream = io.StringIO()
    lines = _lines(ProgressView(stream, clock=lambda: 0.0), stream)
    hint = f"(taskdaemon debug attach {RUN_ID})"
    assert [
        f"fan                      paused: #1 before fan {hint}",
        f"fan#1                    paused: #1 before fan {hint}",
        f"fan#2                    paused: #1 before fan {hint}",
    ] == lines


def test_the_debuggers_own_progress_does_not_send_its_user_elsewhere() -> None:
    """``debug FILE`` runs the prompt itself: its pause lines name no ``debug attach``."""
    stream = io.StringIO()
    lines = _lines(ProgressView(stream, clock=lambda: 0.0, attach_hint=False), stream)
    assert [
        "fan                      paused: #1 before fan",
        "fan#1                    paused: #1 before fan",
        "fan#2                    paused: #1 before fan",
    ] == lines


#: An entry stage that waits for an approval: the engine asks for it as the run starts.
_APPROVAL_FIRST = """\
    name: gated
    stages:
      - name: gate
        command: "true"
        triggers: [{manual: {approval_required: true}}]
"""


@pytest.mark.slow
def test_an_entry_stage_asks_for_its_approval_after_the_run_s_first_line(
    tmp_path: Path, home: Path, serve: Callable[..., Served]
) -> None:
    """``run``'s first line names the run; an entry stage waiting for an approval comes after
    it, with the run's own id in the command that approves it. It came first, with ``RUN``
    in place of the id: the engine asks for the approval before ``start_run`` returns."""
    served = serve(str(write(tmp_path / "gated.yaml", _APPROVAL_FIRST)))
    stream = served.process.stderr
    assert stream is not None
    first, second = stream.readline(), stream.readline()
    header = first if first.startswith("run ") else second  # whichever came first: the run ends
    run_id = header.split()[1]
    approved = taskdaemon(home, "approve", run_id, "gate")
    code, _stdout, _stderr = served.finish()
    expected = (True, f"(taskdaemon approve {run_id} gate)", 0, 0)
    actual = (
        first.startswith(f"run {run_id} of gated started"),
        second.split("waiting for approval ")[-1].strip(),
        approved.returncode,
        code,
    )
    assert expected == actual, (first, second, approved.stderr)
