"""``run``'s and ``debug``'s progress lines (``cli.run.ProgressView``) at a breakpoint."""

from __future__ import annotations

import io

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
