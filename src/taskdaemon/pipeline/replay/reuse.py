"""Which of a replay's reuse candidates is reused: decided as each instance starts.

The plan (``plan.py``) names, for a stage run again, the instances whose recorded outcome may
be reused: those that succeeded, with their outputs and events whole. Instance numbers alone
cannot say that instance N of the replay is the original's instance N: an upstream stage run
again may publish other items, or in another order, and ``--input`` or ``--stage-output`` may
change what a stage reads. So an instance is reused only when what it gets is what the
original's got: the payload of the event that made it (its item) and its inputs, each compared
by the sha256 of its full, redacted JSON, the form the record keeps
(``taskdaemon.payload.event_sha256`` and ``taskdaemon.payload.sha256`` of its ``stage.input``).
An instance no event made (a stage with ``on_event`` and another trigger, which the other one
fired) has no item: it is reused when it again starts with no event and the inputs it had,
all its handler was given, as exact a match as an event's instance's.
Every other instance runs again, and ``declined`` says why. The same redaction makes both
hashes, so a secret that differs between the runs is not told apart: its key is redacted in
the record too, and a replay never sees more of the original than the record holds.

What a handler reads besides (files in its workspace or elsewhere, the clock, the network) is
not compared: no record says what it read. A reused instance trusts them, and ``notes`` says
so after the run, as ``ReplayPlan.describe`` says it before (docs/architecture.md, replay).

``InstanceReuse`` decides once per instance, from the inputs and the event the engine has
resolved for it: at the debugger's gate (a reused instance never pauses) or at its
``StageStarted`` (it observes the replay's engine, ahead of the monitor and the progress
lines), whichever comes first. The decision then stands for every later question (the
stand-in handler, the span hook, the progress lines, ``--verify``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from taskdaemon.pipeline.events import EngineEvent, RunStarted, StageStarted
from taskdaemon.pipeline.payloads import PayloadCapture
from taskdaemon.pipeline.replay.plan import FedExecution, ReplayPlan
from taskdaemon.pipeline.wording import not_run_word, taken_from

__all__ = ["InstanceReuse"]


class InstanceReuse:
    """The reuse decisions of one replay's run (the module docstring); a container of the
    ``(stage, instance)`` pairs reused, as the progress lines ask."""

    def __init__(self, plan: ReplayPlan) -> None:
        self._candidates = plan.reused
        self._original = plan.recorded.run_id
        self._run_id: str | None = None
        #: The capture that made the hashes compared (the replay's monitor's: ``execute_plan``).
        self.capture = PayloadCapture()
        self._reused: dict[tuple[str, int], FedExecution] = {}
        #: (stage, instance) -> why a candidate runs again.
        self.declined: dict[tuple[str, int], str] = {}

    def on_event(self, event: EngineEvent) -> None:
        """Learn the replay's run; decide a candidate at its start, if its gate did not."""
        if type(event) is RunStarted:
            self._run_id = event.run_id
        elif type(event) is StageStarted and event.run_id == self._run_id:
            self.decide(event.stage, event.instance, event.inputs, event.event)

    def decide(
        self,
        stage: str,
        instance: int,
        inputs: Mapping[str, Any],
        event: Mapping[str, Any] | None,
    ) -> FedExecution | None:
        """The recorded execution instance ``instance`` of ``stage`` reuses, given the inputs and
        the event it starts with; None when it runs. Decided once: later calls repeat it."""
        key = (stage, instance)
        if key in self._reused or key in self.declined:
            return self._reused.get(key)
        fed = self._candidates.get(stage, {}).get(instance)
        if fed is None:
            return None
        why = self._difference(fed, inputs, event)
        if why is None:
            self._reused[key] = fed
            return fed
        self.declined[key] = why
        return None

    def _difference(
        self, fed: FedExecution, inputs: Mapping[str, Any], event: Mapping[str, Any] | None
    ) -> str | None:
        original = fed.original
        item = None if event is None else self.capture.capture(event).sha256
        if item != original.event_sha256:  # a candidate an event made has its hash (plan.py)
            if item is None:
                return "no event made it here, and one did in the original"
            if original.event_sha256 is None:
                return "an event made it here, and none did in the original"
            return "its item differs from the recorded one"
        recorded = None if original.inputs is None else original.inputs.sha256
        if recorded is None:
            return "the record has no hash of its inputs"
        if self.capture.capture(inputs).sha256 != recorded:
            return "its inputs differ from the recorded ones"
        return None

    def reused(self, run_id: str, stage: str, instance: int) -> FedExecution | None:
        """The recorded execution this instance of the replay's run reused, once decided."""
        return self._reused.get((stage, instance)) if run_id == self._run_id else None

    def by_stage(self) -> dict[str, set[int]]:
        """Stage -> the instances reused (``--verify`` compares the others)."""
        found: dict[str, set[int]] = {}
        for stage, instance in self._reused:
            found.setdefault(stage, set()).add(instance)
        return found

    def notes(self) -> list[str]:
        """One line per candidate that ran again, and why, in stage and instance order; then,
        when any was reused, which, and that the files they read were trusted."""
        lines = [
            f"{stage}#{instance} ran again: {why}"
            for (stage, instance), why in sorted(self.declined.items())
        ]
        if self._reused:
            named = ", ".join(f"{stage}#{instance}" for stage, instance in sorted(self._reused))
            lines.append(
                f"{taken_from(f'{not_run_word(fed=False)} {named}', self._original)} "
                "on their item and inputs alone: "
                "the files they read were not compared (--rerun-all runs them again)"
            )
        return lines

    def __contains__(self, key: object) -> bool:
        return key in self._reused

    def __iter__(self) -> Iterator[tuple[str, int]]:
        return iter(self._reused)

    def __len__(self) -> int:
        return len(self._reused)
