"""What the debugger shows a person of a run and of one stage (``inspect``, ``state``).

Reads only: nothing here changes a run or what is paused. The session that owns the pauses,
the step modes and the breakpoints (``engine/_debug.py``) hands in what it knows of them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from taskdaemon.pipeline.engine._debug_records import split_instance
from taskdaemon.pipeline.errors import ExpressionError, StageNotFoundError
from taskdaemon.pipeline.quoting import quote
from taskdaemon.pipeline.wording import counted


class Replayed(Protocol):
    """What a replay tells of its run (``replay/run.py``'s ``ReplaySpanHook``)."""

    #: The id of the run replayed.
    replay_of: str

    def shown_as(self, run_id: str, stage: str, instance: int) -> str | None:
        """``replayed`` (fed from the record), ``reused`` (a reused instance) or None (it
        runs)."""


if TYPE_CHECKING:
    from taskdaemon.pipeline.engine._debug_records import Breakpoint, PausedExecution, _Pause
    from taskdaemon.pipeline.engine._run_base import RunBase
    from taskdaemon.pipeline.engine._stage_state import Instance, StageRun

__all__ = ["Replayed", "run_state", "stage_of", "stage_view"]


def stage_of(run: RunBase, name: str) -> StageRun:
    """Stage ``name`` of ``run``; StageNotFoundError naming the run's stages when it has none
    such (a typo must not read as "nothing is paused there")."""
    srt = run.stages.get(name)
    if srt is None:
        raise StageNotFoundError(
            f"run {run.run_id} of pipeline {run.name!r} has no stage {quote(name)} "
            f"(stages: {', '.join(run.stages)})"
        )
    return srt


def stage_view(
    run: RunBase, stage: str, pauses: Sequence[_Pause], replay: Replayed | None = None
) -> dict[str, Any]:
    """``DebugSession.inspect``: ``stage`` of ``run`` (``STAGE`` or ``STAGE#N``:
    ``split_instance``), with its executions' ``pauses``, first paused first. JSON-able.
    With ``replay``, the statuses of the stage, its instances and its upstream stages are
    named as ``run_state`` names them (``outputs`` and ``logs`` said ``success`` of a fed
    stage and of a reused instance where ``where`` said ``replayed`` and ``reused``)."""
    stage_name, index = split_instance(stage)
    srt = stage_of(run, stage_name)
    inst = _instance_of(srt, index)
    shown, statuses = _shown(run, srt, replay)
    if pauses:
        inputs: Any = dict(pauses[0].inputs)
    else:
        inputs = {}
        scope = {"request": run.request, "stages": run.stages_ctx}
        if inst is not None and inst.event is not None:
            scope["event"] = inst.event  # the instance's own event: its inputs resolve
        for name, compiled, _required in srt.cs.inputs:
            expression = compiled.expression
            paths = expression.paths
            if "event" not in scope and paths is not None and "event" in paths:
                # An event's payload: each instance has its own (STAGE#N shows it).
                inputs[name] = f"<from each event: {expression.source}>"
                continue
            try:
                inputs[name] = expression.evaluate(scope)
            except ExpressionError as exc:
                inputs[name] = f"<not resolvable now: {exc}>"
    upstream = {
        name: {
            "status": _shown(run, run.stages[name], replay)[0]
            if replay is not None and name in run.stages
            else run.stages_ctx[name]["status"],
            "outputs": run.stages_ctx[name]["outputs"],
        }
        for name in srt.cs.upstream
        if name in run.stages_ctx
    }
    triggers = [
        {
            "index": index,
            "description": srt.cs.descriptions[index],
            "state": srt.states[index].value if index in srt.states else "by event",
        }
        for index in range(len(srt.cs.stage.triggers))
    ]
    if inst is None:
        status, outputs = shown, run.stages_ctx[stage_name]["outputs"]
    else:  # the instance's, not the stage's: ``outputs work#0`` read ``work#0 (paused): {}``
        status = statuses[inst.index]
        outputs = inst.executions[-1].outputs if inst.executions else {}
    return {
        "stage": stage,
        "status": status,
        "paused": [p.snapshot().as_dict() for p in pauses],
        "inputs": inputs,
        "outputs": outputs,
        "upstream": upstream,
        "triggers": triggers,
        "fired": srt.fired,
        "approval": srt.approval.value,
        "pending_events": [dict(payload) for payload, _source in srt.events],
        "instances": [
            {"instance": i.index, "status": statuses[n], "attempts": len(i.executions)}
            for n, i in enumerate(srt.instances)
        ],
    }


def _shown(run: RunBase, srt: StageRun, replay: Replayed | None) -> tuple[str, list[str]]:
    """``srt``'s status and its instances', a replay's executions it did not run named so
    (``run_state``)."""
    status = str(srt.status)
    statuses = [str(i.status) for i in srt.instances]
    if replay is not None and statuses:
        words = [replay.shown_as(run.run_id, srt.name, i.index) for i in srt.instances]
        statuses = [word or was for word, was in zip(words, statuses, strict=True)]
        if len(set(words)) == 1 and words[0] is not None:
            status = words[0]
    return status, statuses


def _instance_of(srt: StageRun, index: int | None) -> Instance | None:
    """Instance ``index`` of ``srt`` (None: the stage as a whole); StageNotFoundError naming
    the instances it has when it has not that one."""
    if index is None:
        return None
    if index >= len(srt.instances):
        have = counted(len(srt.instances), "instance")
        raise StageNotFoundError(f"stage {quote(srt.name)} has no instance #{index} ({have})")
    return srt.instances[index]


def run_state(
    run: RunBase,
    stepping: bool,
    paused: Iterable[PausedExecution],
    breakpoints: Iterable[Breakpoint],
    replay: Replayed | None = None,
) -> dict[str, Any]:
    """``DebugSession.state``: ``run`` with whether it is ``stepping``, what of it is ``paused``
    and the ``breakpoints`` that can apply to it. JSON-able.

    With ``replay`` (the run is a replay's): an execution the replay did not run, one it fed
    from the record or reused, is shown as the replay's spans and ``--dry-run`` name it,
    ``replayed`` or ``reused``, not as the stand-in's ``success`` (or ``running``, while the
    stand-in waits its turn), as if it had run; a stage all of whose instances are such is
    shown so too, and ``replay_of`` names the original run."""
    stages: dict[str, Any] = {}
    for name, srt in run.stages.items():
        status, statuses = _shown(run, srt, replay)
        stages[name] = {
            "status": status,
            "instances": statuses,
            "pending_events": len(srt.events),
            "approval": srt.approval.value,
        }
    concurrency = max(1, run.pipeline.concurrency)
    extra = {} if replay is None else {"replay_of": replay.replay_of}
    return {
        **extra,
        "run_id": run.run_id,
        "pipeline": run.name,
        "status": str(run.status),
        "stepping": stepping,
        "paused": [p.as_dict() for p in paused],
        "breakpoints": [bp.as_dict() for bp in breakpoints],
        "slots": {"size": concurrency, "free": run.slots.free},
        "stages": stages,
    }
