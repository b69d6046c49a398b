"""A run's isolated CEL evaluations, answered off the engine's event loop.

An expression the static estimate marks as possibly expensive (``Expression.isolated``: a
comprehension over the run's data, or a high estimate) is evaluated in the CEL worker process,
which may take up to its time limit (0.25 s) to answer. Waiting for it on the engine's loop
would stall every run of the engine for that long, so such conditions and filters are evaluated
in tasks of their own (:meth:`Expression.evaluate_async`) and their verdicts applied when they
arrive:

* **Conditions.** The trigger keeps its state while its expression is evaluated (``pending``
  before its first verdict). At most one evaluation per trigger is in flight: its verdict is
  applied as if it had been evaluated before the changes of the run that came meanwhile, and if
  any came it is evaluated once more over the run's data as it is then (several changes make
  one more evaluation, not several).
* **Filters.** A stage with an isolated filter takes its events through a queue answered in
  publication order, so events are admitted in the order they were published, whichever
  trigger's filter they pass. The stage does not close while its queue holds events.
* **The run waits.** Each evaluation in flight counts as activity (``run.active``), so a run
  does not end, and skip a stage "because nothing can happen any more", while a verdict that
  could start it is still coming. A stopping run applies no verdict.

Only the event loop's thread touches the run: the worker's thread sees a pickled snapshot.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

from taskdaemon.pipeline.engine._stage_state import note_condition
from taskdaemon.pipeline.errors import ExpressionError
from taskdaemon.pipeline.triggers import PENDING, SATISFIED, TriggerState, expression_context

if TYPE_CHECKING:  # pragma: no cover
    from taskdaemon.pipeline.engine._stage_state import StageRun
    from taskdaemon.pipeline.events import TaskRunRef
    from taskdaemon.pipeline.state import RunStatus

__all__ = ["IsolatedEvaluations"]


class _Run(Protocol):
    """What the evaluations need of their run (``RunBase`` and its parts)."""

    active: int
    request: Mapping[str, Any]
    stages_ctx: dict[str, dict[str, Any]]
    stopping: RunStatus | None

    def process(self) -> None: ...
    def update(self, srt: StageRun) -> None: ...
    def check_event_stage(self, srt: StageRun) -> None: ...
    def record(
        self,
        srt: StageRun,
        index: int,
        state: TriggerState,
        detail: str,
        values: Mapping[str, Any] | None,
    ) -> None: ...
    def filtered(
        self,
        srt: StageRun,
        index: int,
        seq: int,
        payload: Mapping[str, Any],
        *,
        source: TaskRunRef | None,
        accepted: bool,
        detail: str,
        values: Mapping[str, Any] | None,
    ) -> None: ...


class IsolatedEvaluations:
    """The isolated conditions and filters of one run (see the module docstring)."""

    def __init__(self, run: _Run) -> None:
        self.run = run
        # (stage, trigger index) -> True when the run changed since its evaluation started
        self._conditions: dict[tuple[str, int], bool] = {}
        # stage -> events waiting for their filters, in publication order
        self._events: dict[str, deque[tuple[int, int, Mapping[str, Any], TaskRunRef | None]]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def has_events(self, srt: StageRun) -> bool:
        """True while events of ``srt`` wait for a filter (later ones must queue behind)."""
        return srt.name in self._events

    def condition(self, srt: StageRun, index: int) -> None:
        """Evaluate an isolated condition off the loop; its verdict is applied when it comes."""
        key = (srt.name, index)
        if key in self._conditions:
            self._conditions[key] = True  # stale: evaluate again once it answers
            return
        self._conditions[key] = False
        self._spawn(self._condition(srt, index, key))

    def event(
        self,
        srt: StageRun,
        index: int,
        seq: int,
        payload: Mapping[str, Any],
        source: TaskRunRef | None,
    ) -> None:
        """Queue event number ``seq`` for ``srt``'s filter of trigger ``index`` (events of
        triggers without an isolated filter too, when earlier events of the stage wait)."""
        queue = self._events.get(srt.name)
        if queue is not None:
            queue.append((index, seq, payload, source))
            return
        self._events[srt.name] = deque([(index, seq, payload, source)])
        self._spawn(self._filter(srt))

    def _spawn(self, coroutine: Any) -> None:
        run = self.run
        run.active += 1
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _done(self) -> None:
        run = self.run
        run.active -= 1
        run.process()

    async def _condition(self, srt: StageRun, index: int, key: tuple[str, int]) -> None:
        run = self.run
        try:
            while not srt.final and not srt.fired and run.stopping is None:
                compiled = srt.cs.conditions[index]
                values = expression_context(
                    compiled.expression, compiled.refs, run.request, run.stages_ctx
                )
                state, detail = await _verdict(compiled.expression, values)
                if srt.final or srt.fired or run.stopping is not None:
                    break
                note_condition(srt, index, detail)
                # As if evaluated before the changes that came meanwhile, which the engine
                # would then have re-evaluated it for: apply, then evaluate again if any came.
                run.record(srt, index, state, detail, values)
                run.update(srt)
                if not self._conditions[key]:
                    break
                self._conditions[key] = False
        finally:
            del self._conditions[key]
            self._done()

    async def _filter(self, srt: StageRun) -> None:
        run = self.run
        queue = self._events[srt.name]
        try:
            while queue and not srt.final and run.stopping is None:
                index, seq, payload, source = queue[0]
                compiled = srt.cs.filters[index]
                values = None
                if compiled is None:
                    accepted, detail = True, "no filter"
                else:
                    values = expression_context(
                        compiled.expression,
                        compiled.refs,
                        run.request,
                        run.stages_ctx,
                        {"event": payload},
                    )
                    state, detail = await _verdict(compiled.expression, values)
                    accepted = state is SATISFIED
                    if accepted or not detail.startswith("error: "):
                        detail = f"filter: {detail.removeprefix('value: ')}"
                queue.popleft()
                if not srt.final and run.stopping is None:
                    run.filtered(
                        srt,
                        index,
                        seq,
                        payload,
                        source=source,
                        accepted=accepted,
                        detail=detail,
                        values=values,
                    )
        finally:
            del self._events[srt.name]
            if run.stopping is None:
                run.check_event_stage(srt)  # the last event may have been its last chance
            self._done()


async def _verdict(expression: Any, values: Mapping[str, Any]) -> tuple[TriggerState, str]:
    """The trigger state an expression's value gives, as ``evaluate_condition`` answers it: an
    error is pending, with the error as the detail."""
    try:
        value = await expression.evaluate_async(values)
    except ExpressionError as exc:
        return PENDING, f"error: {exc}"
    return (SATISFIED if value is True else PENDING), f"value: {value!r}"
