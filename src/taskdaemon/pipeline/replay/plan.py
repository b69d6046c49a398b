"""The replay plan: what a replay runs again, what it feeds from the record, and with what.

``build_plan(recorded, ...)`` decides, from the recorded run alone (pure, no OTel):

* **the definition**: the recorded canonical JSON, checked against its hash; a definition
  file given instead is used when it *is* the recorded definition (same hash), else only with
  ``use_file`` (the plan says how it differs: stages added, removed, changed);
* **the request**: the recorded one with ``--input key=value`` pairs on top (a cut request is
  replaced by the pairs as a whole);
* **which stages run again**: all of them, or with ``from_stage`` that stage and everything
  downstream of it, plus every stage that did not succeed in the original (re-execution from
  failure, as Dagster offers). Every other stage that ran is **fed**: its recorded outputs
  and the events every attempt of it published are handed to the run as they were, in one
  attempt standing for all of the record's (its span is ``replayed``).
  Stages upstream of ``from_stage`` are always fed, whatever their recorded status;
* **which instances run again**: with ``from_stage``, a stage run again that some of its
  instances did not succeed in (a fan-out, ``on_event``) runs only those again by default,
  and **reuses** the instances that succeeded: their recorded outputs and events are handed
  on as a fed stage's are, each in its instance (``replayed``, linked to its original span).
  Re-execution from failure as Dagster offers it, per instance: ninety-nine deployments that
  went well are not made again, with their side effects and their cost, for the one that
  failed. The plan names the candidates; an instance is reused only when it gets the item
  (its event's payload) and the inputs the original's got, compared by their recorded
  hashes as it starts (``reuse.py``: an upstream stage run again, ``--input`` or
  ``--stage-output`` may give instance 3 another item than the original's instance 3 had);
  the others run again. Not for a stage the definition file used changes (``_reused``),
  nor for a stage whose instances all succeeded (``--from`` it runs them again: there is no
  failure to resume from). ``rerun_all`` runs every instance again (today's handler code on
  all of them);
* **what is missing**: every value the replay needs that was redacted or cut, and the end
  of a stage to feed that the record stops while it runs (a run still going, or killed). A
  plan with missing values must not run (``ReplayPlan.check``): replay never runs on wrong
  data;
* **what it cannot repeat**: an input overridden, a stage skipped or retried at a breakpoint
  of the original, in a stage that runs again: one note each (the replay runs the stage as
  its definition says, so it may differ there);
* **what a fed failure does**: a stage upstream of ``from_stage`` that failed (or timed out)
  in the original is fed as it ended, so the replay fails there as the original did, and under
  ``error_strategy: fail`` (or ``retry``) skips the stages run again that have not started by
  then, ``from_stage`` among them unless another trigger started it first (under
  ``continue``, those that wait for its success): one note each
  (``_fed_failures``), which the dry run says, where it listed ``run c`` of a stage that was
  then skipped. Not refused: a replay that ends as the record did is what a test of the
  record's ending asks for, and ``--from`` the failed stage runs it again.

Which values are needed: the request (every replay), the definition, each fed stage's
outputs and published events, and each event from outside that a stage run again listens to
(published again at the start). ``--stage-output STAGE=FILE.json`` supplies a fed stage's
outputs: the JSON object of its outputs, or ``{"instances": [...]}`` for several instances.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from taskdaemon.pipeline.ascii_number import ascii_digits
from taskdaemon.pipeline.definition import DefinitionChanges
from taskdaemon.pipeline.errors import PipelineError, stage_meant, stages_named
from taskdaemon.pipeline.model import ErrorStrategy, OnEvent, Pipeline
from taskdaemon.pipeline.quoting import quote
from taskdaemon.pipeline.replay.plan_values import (
    FedExecution,
    MissingValue,
    fed_instance,
    fed_stage,
    load_definition,
    problem_with_hint,
    replay_request,
)
from taskdaemon.pipeline.replay.record import RecordedIntervention, RecordedRun
from taskdaemon.pipeline.status_rules import FAILED_STAGE_STATUSES
from taskdaemon.pipeline.wording import counted

__all__ = ["FED_TRUST", "FedExecution", "MissingValue", "ReplayError", "ReplayPlan", "build_plan"]

#: What feeding trusts, said once by the dry run (its last line) and by the replay (a note
#: before it runs): one sentence for both, so a user reads the same trust either way.
FED_TRUST = (
    "a fed stage is not run: the files it read are not read again, nor compared, so a "
    "change to them since is not seen (--from an earlier stage runs it again)"
)


class ReplayError(PipelineError):
    """A replay cannot run as asked; the message says why, one line per reason."""


@dataclass
class ReplayPlan:
    """A replay, decided (see the module docstring)."""

    recorded: RecordedRun
    pipeline: Pipeline | None
    request: dict[str, Any]
    from_stage: str | None
    rerun: tuple[str, ...]
    fed: dict[str, dict[int, FedExecution]]
    #: Stage run again -> its instances that may be reused from the record, each when it gets
    #: the item and inputs the original's got (the module docstring; ``reuse.py`` compares).
    reused: dict[str, dict[int, FedExecution]] = field(default_factory=dict)
    #: Stage with instances that failed and that succeeded -> (the instances it runs again and
    #: why, what may change those in ``reused``: "" when none is there).
    reuse_reasons: dict[str, tuple[str, str]] = field(default_factory=dict)
    missing: list[MissingValue] = field(default_factory=list)
    changes: DefinitionChanges | None = None
    notes: list[str] = field(default_factory=list)

    def check(self, *, verify: bool = False, no_end: str = "") -> Pipeline:
        """The pipeline to run; ``ReplayError`` naming every missing value when any is, and,
        with ``verify``, when the record has no end: a run still going (or one killed) has
        executions not ended or not started yet, each of which would read as a divergence
        (``running → success``, ``ran in the replay only``) that the code did not make.
        ``no_end``: what the source says of such a run (``was interrupted (its process
        died)``, as the command's note says it), else that it may be either."""
        if self.missing or self.pipeline is None:
            lines = [f"cannot replay run {self.recorded.run_id}:"]
            lines += [f"  {missing.describe()}" for missing in self.missing]
            raise ReplayError("\n".join(lines))
        if verify and self.recorded.status == "running":
            said = no_end or "is still running (or was interrupted)"
            raise ReplayError(
                f"cannot verify against run {self.recorded.run_id}: it {said}, so its record "
                "has no end; replay it without --verify"
            )
        return self.pipeline

    def describe(self) -> list[str]:
        """The dry run: one line per stage, what the replay would do with it."""
        lines = []
        names = [s.name for s in self.pipeline.stages] if self.pipeline else list(self.fed)
        for name in names:
            if name in self.fed:
                instances = self.fed[name]
                statuses = sorted({fed.original.status for fed in instances.values()})
                events = sum(len(fed.events) for fed in instances.values())
                lines.append(
                    f"feed  {name}: recorded outputs of {counted(len(instances), 'instance')} "
                    f"({'/'.join(statuses)}), {counted(events, 'event')}"
                )
            elif name in self.reuse_reasons and name not in self.reused:
                lines.append(f"run   {name}: {self.reuse_reasons[name][0]}")
            elif name in self.reused:
                kept = self.reused[name]
                pipeline = self.pipeline  # the one ``_reused`` read: not None
                fans_out = pipeline is not None and bool(pipeline.stage_map[name].event_types)
                again, basis = self.reuse_reasons[name]
                lines.append(
                    f"run   {name}: {again}; reuse the recorded outputs of "
                    f"{counted(len(kept), 'instance')} ({_kept(kept, fans_out)}) where each "
                    f"gets the item and inputs it got ({basis})"
                )
            else:
                lines.append(f"run   {name}")
        if self.reused:  # what reuse does not compare, said before it trusts it
            lines.append(
                "reuse compares an instance's item and inputs, not the files it reads: the "
                "workspace starts as the recorded run's as it ended, files elsewhere are read as "
                "they are now (--rerun-all runs every instance again)"
            )
        if self.fed:  # said for the same reason: ``--from`` trusts them (docs/architecture.md)
            lines.append(FED_TRUST)
        return lines


def _kept(kept: Mapping[int, FedExecution], fans_out: bool) -> str:
    """The instances a stage may reuse, in order; of a stage with ``on_event`` (``fans_out``), each
    that no event made says so: it is reused only when no event makes it again (``reuse.py``)."""
    return ", ".join(
        f"{i} with no event" if fans_out and not fed.original.by_event else str(i)
        for i, fed in sorted(kept.items())
    )


def _execution_order(done: RecordedIntervention, stages: Sequence[str]) -> tuple[int, ...]:
    """Where ``done`` falls among the stages run again (``stages``), then by its instance and
    attempt, read from its ``task_run_id`` (``stage.instance.attempt``)."""
    numbers = done.task_run_id.rsplit(".", 2)[1:]
    place = stages.index(done.stage) if done.stage in stages else len(stages)
    return (place, *(int(n) if ascii_digits(n) and len(n) <= 9 else 0 for n in numbers))


def _downstream(pipeline: Pipeline, start: str) -> set[str]:
    seen = {start}
    todo = [start]
    while todo:
        for target in pipeline.downstream.get(todo.pop(), ()):
            if target not in seen:
                seen.add(target)
                todo.append(target)
    return seen


def _upstream(pipeline: Pipeline, start: str) -> set[str]:
    seen: set[str] = set()
    todo = [start]
    while todo:
        for source in pipeline.upstream.get(todo.pop(), ()):
            if source not in seen:
                seen.add(source)
                todo.append(source)
    return seen


def _reused(
    recorded: RecordedRun,
    pipeline: Pipeline,
    rerun: tuple[str, ...],
    changes: DefinitionChanges | None,
    given: tuple[Sequence[str], Sequence[str]],
) -> tuple[dict[str, dict[int, FedExecution]], dict[str, tuple[str, str]]]:
    """The instances that succeeded in the record of each stage run again that some did not
    succeed in, kept whole (re-execution from failure, module docstring), and per such stage
    (what it runs again and why, what may give the others another item or other inputs).
    Not for a stage the definition file used changes (its code may differ). Which of them is
    reused is decided as each starts, by its item and inputs (``reuse.py``): an upstream stage
    run again, ``--input`` or ``--stage-output`` (``given``: their keys, their stages) may change
    them, and instance numbers do not say which item an instance got. An instance whose
    outputs or events the record lacks whole runs again, as one the record never saw end, and
    so does one whose record has no hash to compare (a run recorded before the item's hash was
    kept): the dry run's word is then what the replay does. An instance no event made (its
    stage's other trigger did) has no item to hash: it is a candidate, reused when it again
    starts with no event and the same inputs."""
    again = set(rerun)
    reused: dict[str, dict[int, FedExecution]] = {}
    reasons: dict[str, tuple[str, str]] = {}
    for name in rerun:
        finals = recorded.final.get(name, {})
        succeeded = {i: ex for i, ex in finals.items() if ex.status == "success"}
        if not succeeded or len(succeeded) == len(finals):
            continue  # all run again: nothing failed to re-execute from (``--from`` asked it)
        if changes is not None and name in changes.changed:
            continue
        kept = {}
        runs = [f"{i}: {ex.status}" for i, ex in sorted(finals.items()) if i not in succeeded]
        for instance, execution in sorted(succeeded.items()):
            lacking: list[MissingValue] = []
            fed = fed_instance(recorded, execution, None, lacking)
            if lacking:
                runs.append(f"{instance}: its record is not whole")
            elif execution.inputs is None or execution.inputs.sha256 is None:
                runs.append(f"{instance}: its record has no hash of its inputs")
            elif execution.by_event and execution.event_sha256 is None:
                runs.append(f"{instance}: its record has no hash of its item")
            else:
                kept[instance] = fed
        again_text = f"run {counted(len(runs), 'instance')} again ({'; '.join(runs)})"
        if not kept:
            reasons[name] = (again_text, "")
            continue
        upstream = _upstream(pipeline, name)
        may = [f"{stage} runs again" for stage in _in_order(pipeline, upstream & again)]
        may += [f"--input {key}" for key in given[0]]
        may += [f"--stage-output {stage}" for stage in given[1] if stage in upstream]
        basis = (
            f"compared as each starts: {', '.join(may)}"
            if may
            else f"it will: every stage upstream of {name} is fed"
        )
        reused[name] = kept
        reasons[name] = (again_text, basis)
    return reused, reasons


def _in_order(pipeline: Pipeline, names: set[str]) -> list[str]:
    """``names`` in the definition's order."""
    return [stage.name for stage in pipeline.stages if stage.name in names]


def _outside_events(
    recorded: RecordedRun, pipeline: Pipeline, rerun: tuple[str, ...], missing: list[MissingValue]
) -> None:
    """An event from outside is published again at the replay's start: one a stage that runs
    again listens to is needed whole. One whose payload was redacted (a key such as
    ``api_key``) or cut is missing, as a redacted request is, rather than dropped, which left
    its listener ``skipped: no event arrived`` and the replay a success on wrong data."""
    for event in recorded.external_events:
        if event.source is not None or event.payload.text is None:
            continue
        listeners = [
            name
            for name in rerun
            if any(
                isinstance(trigger, OnEvent) and trigger.type == event.event_type
                for trigger in pipeline.stage_map[name].triggers
            )
        ]
        problem = event.payload.problem() if listeners else None
        if problem is not None:
            missing.append(
                MissingValue(
                    f"event {event.event_type} #{event.event_id} from outside",
                    problem_with_hint(problem),
                    f"--from a stage after {', '.join(listeners)} (then fed from the record)",
                )
            )


def build_plan(
    recorded: RecordedRun,
    *,
    pipeline_file: Pipeline | None = None,
    use_file: bool = False,
    from_stage: str | None = None,
    inputs: Mapping[str, Any] | None = None,
    stage_outputs: Mapping[str, Any] | None = None,
    rerun_all: bool = False,
) -> ReplayPlan:
    """The plan of a replay of ``recorded`` (see the module docstring). Never raises for a
    missing value (the plan lists them); ``ReplayError`` for a ``from_stage`` or a
    ``stage_outputs`` stage the definition does not have."""
    missing: list[MissingValue] = []
    pipeline, changes = load_definition(recorded, pipeline_file, use_file, missing)
    request = replay_request(recorded, dict(inputs or {}), missing)
    supplied = dict(stage_outputs or {})
    rerun: tuple[str, ...]
    fed: dict[str, dict[int, FedExecution]] = {}
    reused: dict[str, dict[int, FedExecution]] = {}
    reuse_reasons: dict[str, tuple[str, str]] = {}
    names = [s.name for s in pipeline.stages] if pipeline is not None else []
    for name in [from_stage, *supplied]:
        if name is not None and pipeline is not None and name not in pipeline.stage_map:
            known = stages_named(names)
            gone = ""
            if use_file and (name in recorded.executions or name in recorded.skipped):
                gone = "; the recorded run had it: the file removed or renamed it"
            meant = stage_meant(name, names)
            raise ReplayError(
                f"no stage {quote(name)} in the definition (stages: {known}){gone}{meant}"
            )
    if pipeline is None or from_stage is None:
        rerun = tuple(names)
    else:
        again = _downstream(pipeline, from_stage)
        upstream = _upstream(pipeline, from_stage)
        for name in names:
            if name in again or name not in recorded.final:
                continue
            if name in upstream or recorded.stage_status(name) == "success":
                fed[name] = fed_stage(recorded, name, supplied.get(name), missing)
        rerun = tuple(name for name in names if name not in fed)
        if not rerun_all:
            given = (list(inputs or {}), [name for name in supplied if name in fed])
            reused, reuse_reasons = _reused(recorded, pipeline, rerun, changes, given)
    if pipeline is not None:
        _outside_events(recorded, pipeline, rerun, missing)
    notes = []
    for name in supplied:
        if name not in fed:
            notes.append(f"--stage-output {name}: the stage runs again; the file is not used")
    # In the order they were done, stage by stage: a retry of b.0.1 is noted before the
    # override of b.0.2 it led to (the overrides were all noted first).
    for done in sorted(recorded.interventions, key=lambda done: _execution_order(done, rerun)):
        if done.stage in rerun:  # a fed stage hands on what the intervention led to
            notes.append(
                f"{done.task_run_id} {done.what} at a breakpoint in the original (by "
                f"{done.by or 'a debugger'}): the replay runs {done.stage} as its definition "
                "says, so it may differ there"
            )
    notes += _fed_failures(recorded, pipeline, fed)
    if recorded.status == "cancelled" and not _fed_cancellation(fed):
        reason = recorded.cancel_reason or "no reason recorded"
        notes.append(
            f"run {recorded.run_id} was cancelled ({reason}): a replay does not repeat a "
            "cancellation from outside, so the stages it runs go on to their end (only a fed "
            "stage the cancellation caught stops it again)"
        )
    if unwhole := _fed_inputs_unwhole(fed):
        notes.append(unwhole)
    if lost := _record_gaps(recorded):
        notes.append(lost)
    return ReplayPlan(
        recorded=recorded,
        pipeline=pipeline,
        request=request,
        from_stage=from_stage,
        rerun=rerun,
        fed=fed,
        reused=reused,
        reuse_reasons=reuse_reasons,
        missing=missing,
        changes=changes,
        notes=notes,
    )


def _fed_failures(
    recorded: RecordedRun, pipeline: Pipeline | None, fed: Mapping[str, object]
) -> list[str]:
    """One note per fed stage that failed in the original (the module docstring)."""
    if pipeline is None:
        return []
    stops = pipeline.error_strategy != ErrorStrategy.CONTINUE
    notes = []
    for name in fed:
        status = recorded.stage_status(name)
        if status not in FAILED_STAGE_STATUSES:
            continue
        then = (
            f"error_strategy {pipeline.error_strategy} stops the replay there, as it stopped "
            "the original, and skips every stage run again that has not started by then"
            if stops
            else "a stage that waits for its success is skipped"
        )
        notes.append(
            f"{name} is fed as the original ended it, {status}: {then} (--from {name} "
            "runs it again)"
        )
    return notes


def _fed_cancellation(fed: Mapping[str, Mapping[int, FedExecution]]) -> bool:
    """Whether a fed execution ended cancelled: its stand-in stops the replay's run for the
    recorded reason (``run.py``), as the original's was stopped."""
    return any(
        execution.original.status == "cancelled"
        for instances in fed.values()
        for execution in instances.values()
    )


def _fed_inputs_unwhole(fed: Mapping[str, Mapping[int, FedExecution]]) -> str | None:
    """One note naming the fed executions whose recorded inputs are not whole (a secret
    redacted, or cut at the capture cap or on the way), with why: the replay does not
    evaluate a fed stage's inputs again (``run.py``, ``_feeding_pipeline``), so it does not
    need them, but its span records them as the record has them, which a user reading the
    replay's inputs should know. None when every one is whole (or none was recorded)."""
    unwhole = []
    for instances in fed.values():
        for execution in instances.values():
            inputs = execution.original.inputs
            problem = None if inputs is None or inputs.text is None else inputs.problem()
            if problem is not None:
                unwhole.append(f"{execution.original.task_run_id} {problem}")
    if not unwhole:
        return None
    return (
        f"recorded inputs not whole: {'; '.join(unwhole)}: a fed stage's inputs are not "
        "evaluated again, so the replay does not need them; its span keeps them as recorded"
    )


def _record_gaps(recorded: RecordedRun) -> str | None:
    """What the record lacks, said before a replay trusts it: events the OTel SDK dropped when
    the run was written (past its span limits) or a reader left unread (past ``spans.bounded``)
    may have held an approval, an output or a published event, and a replay fed from the record
    would then differ (a lost approval replays as never granted). None when nothing is missing."""
    spans = recorded.spans
    dropped = sum(
        span.events_dropped_when_written + span.links_dropped_when_written for span in spans
    )
    unread = sum(span.dropped_events + span.dropped_links for span in spans)
    if not dropped and not unread:
        return None
    parts = [f"{dropped} dropped when written"] if dropped else []
    parts += [f"{unread} not read"] if unread else []
    return (
        f"the record of run {recorded.run_id} is incomplete (span events and links: "
        f"{', '.join(parts)}): the replay may differ where they mattered"
    )
