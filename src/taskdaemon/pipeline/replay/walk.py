"""A cursor over a recorded run's events, for ``taskdaemon replay RUN --step``.

:class:`RecordedWalk` holds one trace's spans and its :func:`~.timeline.timeline`, and a
position in it (an event index). ``next``, ``prev`` and ``goto`` move it; everything else
answers *at the current instant* (the time of the current event), from the spans as
:func:`~.timeline.spans_at` cuts them, so nothing recorded later shows:

* ``state()``: the run as it stood (``reconstruct_run``), each stage's status included;
* ``stage(name)``: one stage then, with the attempts that had started;
* ``inputs(name)`` / ``outputs(name)``: each started execution's captured inputs, and each
  ended one's outputs, parsed when they are JSON (the text as recorded otherwise: redacted
  or cut values are shown as they are, they are not used for anything).

A replay's record walked (``replay_of``): an execution the replay did not run is named as the
replay's ``--dry-run`` and the debugger's ``where`` name it (``shown``), ``replayed`` (a stage
fed from the record) or ``reused`` (an instance of a stage run again), from its start on (its
``replayed_from`` link is there from its start), not ``running`` while its stand-in waits its
turn, nor ``replayed`` for an instance of a stage whose other instances ran.

Pure: no I/O, no OTel; the CLI's prompt (``cli/_step_prompt.py``) prints what it answers.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from taskdaemon.pipeline.errors import PipelineError
from taskdaemon.pipeline.quoting import quote
from taskdaemon.pipeline.records import AttemptRecord, RunRecord, StageRecord
from taskdaemon.pipeline.replay.timeline import (
    TimelineEvent,
    not_run,
    parse_offset,
    spans_at,
    timeline,
)
from taskdaemon.pipeline.status_rules import OPEN_RUN_STATUSES
from taskdaemon.pipeline.tracking.reconstruct import find_root, reconstruct_run
from taskdaemon.pipeline.tracking.spans import SpanRecord
from taskdaemon.pipeline.wording import is_not_run

__all__ = ["RecordedWalk"]


def _parsed(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text  # cut on the way: shown as recorded


class RecordedWalk:
    """A position in a recorded run's events (see the module docstring).

    ``ValueError`` (one line) when the spans hold no event to walk.
    """

    def __init__(self, spans: Sequence[SpanRecord]) -> None:
        self.spans = list(spans)
        #: Span id -> ``replayed`` or ``reused``: the executions the replay did not run.
        self._not_run = not_run(self.spans)
        self.events: list[TimelineEvent] = timeline(self.spans, self._not_run)
        if not self.events:
            raise ValueError("the run has no recorded events")
        root = find_root(self.spans)
        self.start_ns = root.start_ns if root is not None else self.events[0].time_ns
        self.index = 0
        self._states: dict[int, RunRecord] = {}
        whole = reconstruct_run(self.spans)
        self._status = str(whole.status)
        #: The run this record's run replays, None when it is no replay.
        self.replay_of = whole.replay_of

    # ------------------------------------------------------------------ moving

    @property
    def event(self) -> TimelineEvent:
        """The current event."""
        return self.events[self.index]

    @property
    def offset(self) -> float:
        """Seconds from the run's start to the current event."""
        return (self.event.time_ns - self.start_ns) / 1e9

    def next(self) -> None:
        """Move to the next event; PipelineError at the last one."""
        if self.index + 1 >= len(self.events):
            raise PipelineError("end of the recorded run ('prev' or 'goto T' to go back)")
        self.index += 1

    def prev(self) -> None:
        """Move to the previous event; PipelineError at the first one."""
        if self.index == 0:
            raise PipelineError("start of the recorded run ('next' or 'goto T' to go on)")
        self.index -= 1

    def goto(self, when: str) -> None:
        """Move to the last event at or before ``when`` (``12.5s``, ``1m30s``, ``500ms``, or
        seconds) from the run's start: the first event when ``when`` is before it, the last
        one when it is past the end. ValueError (one line) for a malformed time."""
        try:
            seconds = parse_offset(when)
        except ValueError as exc:
            raise ValueError(str(exc).replace("--at ", "goto ")) from None
        at = self.start_ns + round(seconds * 1e9)
        reached = sum(1 for event in self.events if event.time_ns <= at)
        self.index = max(0, reached - 1)

    @property
    def open(self) -> bool:
        """Whether the record has no end: the run still going, or interrupted (its process
        killed), as ``replay`` says of it."""
        return self._status in OPEN_RUN_STATUSES

    # ------------------------------------------------------------------ answering

    def state(self) -> RunRecord:
        """The run as it stood at the current event (computed once per event)."""
        state = self._states.get(self.index)
        if state is None:
            # An event recorded before any span began (a clock stepped back, a time of 0)
            # shows the run as its first span found it: before that there was no run at all.
            first = min(span.start_ns for span in self.spans)
            state = reconstruct_run(spans_at(self.spans, max(self.event.time_ns, first)))
            self._states[self.index] = state
        return state

    def shown(self, stage: StageRecord) -> tuple[str, dict[int, str]]:
        """``stage``'s status and each started instance's (its last attempt's), as a replay's
        are named (the module docstring): a stage all of whose instances it did not run is
        named as they are, as the debugger's ``where`` names it."""
        last = {
            a.instance: self.attempt_status(a)
            for a in sorted(stage.attempts, key=lambda a: a.attempt)
        }
        words = set(last.values())
        only = words.pop() if len(words) == 1 else stage.status
        return (only if is_not_run(only) else stage.status), last

    def attempt_status(self, attempt: AttemptRecord) -> str:
        """``attempt``'s status, as a replay's is named (the module docstring)."""
        return self._not_run.get(attempt.span_id, attempt.status)

    def stage_names(self) -> list[str]:
        """Every stage of the run, in the recorded order."""
        return [stage.name for stage in self.state().stages]

    def stage(self, name: str) -> StageRecord:
        """Stage ``name`` at the current event; PipelineError naming the stages if none."""
        state = self.state()
        for stage in state.stages:
            if stage.name == name:
                return stage
        known = ", ".join(s.name for s in state.stages)
        raise PipelineError(f"run {state.run_id} has no stage {quote(name)} (stages: {known})")

    def _started(self, name: str) -> tuple[AttemptRecord, ...]:
        stage = self.stage(name)
        if not stage.attempts:
            raise PipelineError(
                f"{name} ({stage.status}) has not started at +{self.offset:.3f}s: "
                "no inputs or outputs yet"
            )
        return stage.attempts

    def inputs(self, name: str) -> list[tuple[str, Any]]:
        """``(task_run_id, inputs)`` of each execution of ``name`` started by now
        (``None`` when its inputs were not captured)."""
        return [(a.task_run_id, _parsed(a.inputs)) for a in self._started(name)]

    def outputs(self, name: str) -> list[tuple[str, str, Any]]:
        """``(task_run_id, status, outputs)`` of each execution of ``name`` started by now (its
        status as a replay's is named: ``attempt_status``); outputs are ``None`` until it ended
        (or when they were not captured)."""
        return [
            (a.task_run_id, self.attempt_status(a), _parsed(a.outputs)) for a in self._started(name)
        ]
