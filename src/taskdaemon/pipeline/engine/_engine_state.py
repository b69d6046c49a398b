"""A live run's engine state as JSON-able data, for debug dumps."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from taskdaemon.pipeline.engine._api import Engine

__all__ = ["engine_state"]


def engine_state(engine: Engine, run_id: str) -> dict[str, Any]:
    """A live run's engine state, for debug dumps: status, worker slots, and per stage its
    status, instances (status, attempts), trigger states, approval and the events waiting for
    an instance (payloads as published: redact before writing them anywhere); plus what is
    paused and the breakpoints when debug mode is on. Never turns debug mode on. JSON-able."""
    handle = engine.get_run(run_id)
    run = handle._run
    stages: dict[str, Any] = {}
    for name, srt in run.stages.items():
        stages[name] = {
            "status": str(srt.status),
            "fired": srt.fired,
            "approval": srt.approval.value,
            "instances": [
                {
                    "instance": inst.index,
                    "status": str(inst.status),
                    "attempts": [str(ex.status) for ex in inst.executions],
                }
                for inst in srt.instances
            ],
            "triggers": [
                {
                    "description": srt.cs.descriptions[i],
                    "state": srt.states[i].value if i in srt.states else "by event",
                }
                for i in range(len(srt.cs.stage.triggers))
            ],
            "pending_events": [dict(payload) for payload, _source in srt.events],
        }
    session = engine._debugger
    return {
        "run_id": run.run_id,
        "pipeline": run.name,
        "status": str(run.status),
        "done": handle.done,
        "slots": {"size": max(1, run.pipeline.concurrency), "free": run.slots.free},
        "active": run.active,
        "stages": stages,
        "debug": session is not None,
        "paused": [] if session is None else [p.as_dict() for p in session.paused(run.run_id)],
        "breakpoints": (
            [] if session is None else [bp.as_dict() for bp in session.breakpoints(run.run_id)]
        ),
        "stepping": session is not None and session.is_stepping(run.run_id),
    }
