"""The engine's public value types: a resolver, a pause gate's request, a run's result."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

from taskdaemon.pipeline.frozen import field, frozen
from taskdaemon.pipeline.loops import Handler
from taskdaemon.pipeline.model import Pipeline, Stage
from taskdaemon.pipeline.state import RunStatus, StageStatus, StageTimes


class HandlerResolver(Protocol):
    """Turns a stage into the handler that runs it (``LoopRegistry`` is one)."""

    def resolve(self, pipeline: Pipeline, stage: Stage) -> Handler:
        """The handler for ``stage``; raise (e.g. ``LoopTypeError``) when there is none."""
        ...


@frozen
class StageGateRequest:
    """What ``pause_gate`` is asked about: an execution that holds a slot and is about to start."""

    run_id: str
    pipeline: str
    stage: str
    instance: int
    attempt: int
    task_run_id: str
    loop: str
    inputs: Mapping[str, Any]
    event: Mapping[str, Any] | None = None


@frozen
class GateDecision:
    """A pause gate's answer (``None`` means "go on, unchanged").

    ``skip``: the execution ends ``skipped`` without running its handler. ``inputs``: the inputs
    it runs with instead of the resolved ones (a missing required input is then forgiven).
    ``paused``: seconds the gate held it, kept out of its queue time.
    """

    skip: bool = False
    inputs: Mapping[str, Any] | None = None
    paused: float = 0.0


PauseGate = Callable[[StageGateRequest], Awaitable[GateDecision | None]]


@frozen
class ExecutionResult:
    """One execution (attempt of one instance) of a stage, as it ended."""

    stage: str
    instance: int
    attempt: int
    status: StageStatus
    times: StageTimes
    outputs: Mapping[str, Any]
    error: str | None = None
    error_type: str | None = None
    cancel_cause: str | None = None  # the stage whose failure cancelled this execution
    #: Held at a start breakpoint (a debugger paused it before it ran), however the pause
    #: ended: with ``times.running`` set, what a run's records know of an execution.
    held: bool = False

    @property
    def task_run_id(self) -> str:
        """``{stage}.{instance}.{attempt}``."""
        return f"{self.stage}.{self.instance}.{self.attempt}"


@frozen
class RunResult:
    """A finished (or, from ``RunHandle.snapshot``, running) run: a frozen snapshot.

    Its repr names the run and its outcome, not its stages: the per-stage mappings are left
    out. A repr gets formatted where nobody reads it (``asyncio.run`` on the main thread
    formats its main task's, result included, when it restores the SIGINT handler: every
    stage's executions, once per run), and the outputs are the handlers' own values, which a
    repr would hand to whatever logs or prints it, past redaction.
    """

    run_id: str
    pipeline: str
    status: RunStatus
    started_at: float
    finished_at: float | None
    error: str | None
    stage_status: Mapping[str, StageStatus] = field(repr=False)
    executions: Mapping[str, tuple[ExecutionResult, ...]] = field(repr=False)
    outputs: Mapping[str, Mapping[str, Any]] = field(repr=False)
    skip_reasons: Mapping[str, str] = field(repr=False)

    @property
    def succeeded(self) -> bool:
        """True when the run ended ``success``."""
        return self.status is RunStatus.SUCCESS


class MappedOutputs(dict[str, Any]):
    """A handler's result that already is its stage's outputs: the engine applies no
    ``outputs:`` mapping to it. A replay hands on an instance's outputs as recorded, after
    the mapping, for a stage whose other instances run again with it."""
