"""The values a replay hands its new run, read from the record or supplied in their place.

The definition (:func:`load_definition`: the recorded one, or a file given instead), the
request (:func:`replay_request`: the recorded one with ``--input`` on top), each fed stage's
instances (:func:`fed_stage`, :func:`fed_instance`: outputs and published events, or
``--stage-output``'s file, :func:`load_stage_output`); each value that is missing, redacted or
cut becomes a :class:`MissingValue` saying how to supply it. Which stages are fed and which run
again is ``plan``'s.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from taskdaemon.pipeline.bounded import BoundedInputError, loads_bounded
from taskdaemon.pipeline.definition import (
    DefinitionChanges,
    definition_changes,
    pipeline_from_canonical,
)
from taskdaemon.pipeline.model import Pipeline
from taskdaemon.pipeline.quoting import quote
from taskdaemon.pipeline.replay.record import (
    RecordedExecution,
    RecordedRun,
    redacted_paths,
)
from taskdaemon.pipeline.yamlsafe import MAX_YAML_BYTES

__all__ = [
    "TEMPO_HINT",
    "FedExecution",
    "MissingValue",
    "fed_instance",
    "fed_stage",
    "load_definition",
    "load_stage_output",
    "problem_with_hint",
    "replay_request",
]


#: Where to raise Tempo's attribute limit, named whenever a value was cut on the way.
TEMPO_HINT = (
    "raise the backend's attribute limit (Tempo: distributor "
    "max_span_attr_byte, max_attribute_bytes from Tempo 2.8; see tempo/tempo.yaml)"
)


@dataclass(frozen=True, slots=True)
class MissingValue:
    """A value the replay needs that the spans do not hold exactly, and how to supply it."""

    what: str
    problem: str
    supply: str

    def describe(self) -> str:
        """``what: problem; supply with ...``."""
        return f"{self.what}: {self.problem}; supply it with {self.supply}"


@dataclass(frozen=True, slots=True)
class FedExecution:
    """What a fed stage's instance hands the new run: the original's last attempt, and the
    events every recorded attempt of it published, in order (a failed attempt's events were
    delivered too: the listeners ran on them)."""

    original: RecordedExecution
    outputs: Mapping[str, Any]
    events: tuple[tuple[str, Mapping[str, Any]], ...]


def load_definition(
    recorded: RecordedRun, file: Pipeline | None, use_file: bool, missing: list[MissingValue]
) -> tuple[Pipeline | None, DefinitionChanges | None]:
    value = recorded.definition
    # A run span with no end and no definition is the row ``run`` writes before its telemetry
    # loads (``tracking/run_start.py``), not one of schema 1, whose spans end.
    absent = (
        "not stored (the run's record stops before its telemetry loaded)"
        if recorded.status == "running"
        else "not recorded (span schema 1)"
    )
    problem, data = (absent, None) if value is None else value.check()
    original = None
    if value is not None and problem is None:
        try:
            # Checked as a definition that ran (its hash proves nothing: whoever wrote the
            # store wrote it too). ``check`` parsed it already, so it is not parsed twice
            # (benchmarks/README.md, "Replay plan (`replay_plan.py`)").
            original = pipeline_from_canonical(
                data if isinstance(data, dict) else value.text or "",
                source=f"run {recorded.run_id}",
                ran=True,
            )
        except ValueError as error:
            problem = str(error)
    if file is not None:
        if file.definition_hash == recorded.definition_hash:
            return file, None
        if original is None:
            if use_file:
                return file, None
            differs = (
                "the file given is not the recorded definition"
                if recorded.definition_hash
                else "no hash of it was recorded to check the file given against"
            )
            missing.append(
                MissingValue(
                    "the definition",
                    f"{problem}, and {differs}",
                    "--use-file to run the file anyway",
                )
            )
            return None, None
        changes = definition_changes(original, file)
        if use_file:
            return file, changes
        missing.append(
            MissingValue(
                "the definition",
                f"the file differs from the recorded one ({changes.describe()})",
                "--use-file to run the file instead",
            )
        )
        return None, changes
    if original is None:
        # Without a recorded hash a file given cannot be checked: it runs on --use-file alone.
        supply = "the pipeline file: taskdaemon replay RUN FILE" + (
            "" if recorded.definition_hash else " --use-file"
        )
        if problem and "cut on the way" in problem:
            problem = f"{problem}: {TEMPO_HINT}"
        missing.append(MissingValue("the definition", problem or "unreadable", supply))
    return original, None


def problem_with_hint(problem: str) -> str:
    return f"{problem}: {TEMPO_HINT}" if "cut on the way" in problem else problem


def replay_request(
    recorded: RecordedRun, inputs: Mapping[str, Any], missing: list[MissingValue]
) -> dict[str, Any]:
    value = recorded.request
    problem, parsed = ("not recorded", None) if value is None else value.check()
    if value is not None and (problem is None or problem.startswith("redacted")):
        request: dict[str, Any] = dict(parsed) if isinstance(parsed, dict) else {}
        request.update(inputs)
        still = redacted_paths(request)
        if still:
            top = dict.fromkeys(path.split(".")[0].split("[")[0] for path in still)
            missing.append(
                MissingValue(
                    "the request",
                    f"redacted ({', '.join(still)})",
                    " ".join(f"--input {key}=VALUE" for key in top),
                )
            )
        return request
    if inputs:  # a cut request cannot be trusted in part: the inputs are the whole request
        return dict(inputs)
    missing.append(
        MissingValue(
            "the request",
            problem_with_hint(problem or "not recorded"),
            "--input KEY=VALUE for every request field",
        )
    )
    return {}


def fed_stage(
    recorded: RecordedRun,
    stage: str,
    supplied: Any,
    missing: list[MissingValue],
) -> dict[int, FedExecution]:
    finals = recorded.final.get(stage, {})
    return {
        instance: fed_instance(recorded, execution, supplied, missing)
        for instance, execution in sorted(finals.items())
    }


def fed_instance(
    recorded: RecordedRun,
    execution: RecordedExecution,
    supplied: Any,
    missing: list[MissingValue],
) -> FedExecution:
    """What instance ``execution`` (its last attempt) hands the new run; every value it lacks
    goes to ``missing``."""
    stage, instance = execution.stage, execution.instance
    if execution.end_ns is None:
        # Fed only as an upstream of ``--from`` (a stage run again otherwise): the record
        # has no outcome to hand on, and a stand-in failing for want of one would fail the
        # replay, and skip the stage it was asked to run, every time.
        missing.append(
            MissingValue(
                f"the end of {execution.task_run_id}",
                "the record stops while it runs (the run is still going, or it was interrupted)",
                f"--from {stage} (run it again)",
            )
        )
    outputs: Any = {}
    if supplied is not None:
        if isinstance(supplied, dict) and isinstance(supplied.get("instances"), list):
            items = supplied["instances"]
            outputs = items[instance] if instance < len(items) else {}
        else:
            outputs = supplied
    elif execution.status == "success":
        value = execution.outputs
        problem, parsed = ("not recorded", None) if value is None else value.check()
        if problem is None:
            outputs = parsed
        else:
            missing.append(
                MissingValue(
                    f"outputs of {execution.task_run_id}",
                    problem_with_hint(problem or "not recorded"),
                    f"--stage-output {stage}=FILE.json",
                )
            )
    events = []
    attempts = [a for a in recorded.executions.get(stage, ()) if a.instance == instance]
    for event in [e for a in sorted(attempts, key=lambda a: a.attempt) for e in a.events]:
        problem, payload = event.payload.check()
        if problem is not None and event.payload.text is not None:
            missing.append(
                MissingValue(
                    f"event {event.event_type} #{event.event_id} of {execution.task_run_id}",
                    problem_with_hint(problem),
                    f"--from {stage} (run the stage again) or a larger capture cap",
                )
            )
            continue
        events.append((event.event_type, payload if isinstance(payload, dict) else {}))
    return FedExecution(
        execution, outputs if isinstance(outputs, dict) else {"value": outputs}, tuple(events)
    )


def load_stage_output(spec: str) -> tuple[str, Any]:
    """``STAGE=FILE.json`` → (stage, parsed JSON); ``ValueError`` with a one-line reason."""
    stage, sep, path = spec.partition("=")
    if not sep or not stage or not path:
        raise ValueError(f"--stage-output {quote(spec)}: expected STAGE=FILE.json")
    try:
        with open(path, "rb") as handle:  # never more than the limit, as --input-file reads
            data = handle.read(MAX_YAML_BYTES + 1)  # (/dev/zero grew until memory ran out)
    except OSError as error:
        raise ValueError(f"--stage-output {spec}: {error.strerror or error}") from None
    try:  # bounded: json recurses, and a deep file would end in a RecursionError traceback
        return stage, loads_bounded(data, max_bytes=MAX_YAML_BYTES)
    except BoundedInputError as error:  # not JSON, not UTF-8, nested too deep
        raise ValueError(f"--stage-output {spec}: {error}") from None
