"""``--verify``: compare a replay's re-executed stages with the recorded ones.

Temporal's non-determinism check, for pipelines: each execution that ran again (same stage,
instance and attempt) is compared with the original on

* its status;
* its outputs: the sha256 of the captured JSON (the same capture, so redaction and key order
  are the same on both sides); when they differ and the recorded outputs are exact, the
  report names the top-level keys that differ and the first difference;
* the events it published: types and payload hashes, in order.

The replay's own run id, wherever it appears in a value the replay produced, is read as the
recorded run's before comparing: a stage that returns its run id (``TASKDAEMON_RUN_ID``) or a
path in its workspace (``<root>/<run_id>/...``, the same root for both runs by default) did
what it did in the original, and is not a divergence. Any other difference is.

An execution the original had and the replay did not (or the other way round) is a divergence
too, but for an attempt: an instance both ran, retried another number of times in each (it
failed in the original and retried into a success, and succeeded at once in the replay), has
its last attempt on each side compared, status and outputs, with the events of all its
attempts, and the report says how many each took (``retried``). Decision: the instance's
outcome is what a replay reproduces or not; compared attempt by attempt, the first attempt's
``failure → success`` and ``ran in the original only`` for each retry said the replay diverged
where it ended as the original did, after a failure the retry policy is there for. When the
original is itself a replay, an execution it fed stands for every attempt its own record made
(``_standing_for``): a stage run again that retries as the first run did does not diverge from
it. The report renders as a table or as JSON; the CLI exits 3 when it is not empty.
"""

from __future__ import annotations

import json
from collections.abc import Container, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from taskdaemon.pipeline.ellipsis import cut
from taskdaemon.pipeline.payloads import PayloadCapture
from taskdaemon.pipeline.record_fields import as_dict, replace
from taskdaemon.pipeline.replay.record import RecordedExecution, RecordedRun
from taskdaemon.pipeline.wording import counted

__all__ = ["Divergence", "DivergenceReport", "compare_run"]


@dataclass(frozen=True, slots=True)
class Divergence:
    """One difference between a re-executed execution and the recorded one."""

    stage: str
    instance: int
    attempt: int
    what: str  # status | outputs | events | missing | extra
    keys: tuple[str, ...] = ()
    first: str = ""


@dataclass
class DivergenceReport:
    """Every divergence found, and how many executions were compared."""

    original: str
    replay: str
    compared: int = 0
    divergences: list[Divergence] = field(default_factory=list)
    #: (stage, instance, the original's attempts, the replay's) of each instance retried
    #: another number of times in each, whose last attempts alone were compared.
    retried: list[tuple[str, int, int, int]] = field(default_factory=list)

    @property
    def diverged(self) -> bool:
        """True when any execution diverged."""
        return bool(self.divergences)

    def to_json(self) -> dict[str, Any]:
        """The report as a JSON-ready mapping."""
        return {
            "original": self.original,
            "replay": self.replay,
            "compared": self.compared,
            "diverged": self.diverged,
            "divergences": [{**as_dict(d), "keys": list(d.keys)} for d in self.divergences],
            "retried": [
                {"stage": stage, "instance": instance, "original": was, "replay": now}
                for stage, instance, was, now in self.retried
            ],
        }

    def render_table(self) -> str:
        """A plain-text table, one row per divergence, and a closing summary line."""
        header = ("STAGE", "INSTANCE", "ATTEMPT", "WHAT", "KEYS", "FIRST DIFFERENCE")
        rows = [
            (d.stage, str(d.instance), str(d.attempt), d.what, ",".join(d.keys) or "-", d.first)
            for d in self.divergences
        ]
        lines = []
        if rows:
            widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header))]
            lines = [
                "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
                for row in (header, *rows)
            ]
            lines.append("")
        lines += [
            f"verify: {stage}#{instance} took {counted(was, 'attempt')} in the original and "
            f"{now} in the replay: the last of each compared"
            for stage, instance, was, now in self.retried
        ]
        verdict = counted(len(self.divergences), "divergence") if rows else "no divergence"
        executions = f"{counted(self.compared, 'execution')} run again"
        lines.append(f"verify: {verdict} in {executions} (replay {self.replay} of {self.original})")
        return "\n".join(lines)


def _short(value: Any, limit: int = 60) -> str:
    return cut(json.dumps(value, sort_keys=True, default=str), limit)


def first_difference(old: Any, new: Any, path: str = "") -> str | None:
    """``path: old → new`` at the first place two JSON values differ (keys in sorted order)."""
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        for key in sorted(set(old) | set(new), key=str):
            where = f"{path}.{key}" if path else str(key)
            if key not in old:
                return f"{where}: (absent) → {_short(new[key])}"
            if key not in new:
                return f"{where}: {_short(old[key])} → (absent)"
            found = first_difference(old[key], new[key], where)
            if found:
                return found
        return None
    if isinstance(old, list) and isinstance(new, list):
        for index, (a, b) in enumerate(zip(old, new, strict=False)):
            found = first_difference(a, b, f"{path}[{index}]")
            if found:
                return found
        if len(old) != len(new):
            return f"{path or '.'}: {counted(len(old), 'item')} → {counted(len(new), 'item')}"
        return None
    if old != new:
        return f"{path or '.'}: {_short(old)} → {_short(new)}"
    return None


def _outputs_divergence(
    recorded: RecordedExecution, outputs: Mapping[str, Any], capture: PayloadCapture
) -> Divergence | None:
    if recorded.outputs is None or recorded.outputs.sha256 is None:
        return None  # nothing recorded to compare with (capture was off)
    captured = capture.capture(outputs)
    if captured.sha256 == recorded.outputs.sha256:
        return None
    keys: tuple[str, ...] = ()
    first = "the output hash differs (recorded outputs are not exact)"
    if recorded.outputs.problem() is None:
        old = recorded.outputs.value()
        # Diff the replay's outputs in the form the record holds them: redacted, as JSON (so
        # keys are strings and odd values text). Over the cap, capture them again uncut: the
        # raw outputs would put secrets into the report and crash on mixed key types.
        full = captured
        if captured.truncated:
            full = replace(capture, max_bytes=captured.size).capture(outputs)
        new = json.loads(full.json)
        if isinstance(old, Mapping) and isinstance(new, Mapping):
            keys = tuple(
                sorted(k for k in set(old) | set(new) if old.get(k, _ABSENT) != new.get(k, _ABSENT))
            )
        first = first_difference(old, new) or first
    return Divergence(recorded.stage, recorded.instance, recorded.attempt, "outputs", keys, first)


_ABSENT = object()


def _events_divergence(
    recorded: RecordedExecution,
    published: Sequence[tuple[str, Mapping[str, Any]]],
    capture: PayloadCapture,
) -> Divergence | None:
    old = [(e.event_type, e.payload.sha256) for e in recorded.events]
    new = [(kind, capture.capture(payload).sha256) for kind, payload in published]
    if old == new:
        return None
    for index, (a, b) in enumerate(zip(old, new, strict=False)):
        if a != b:
            what = (
                f"event #{index + 1}: type {a[0]} → {b[0]}"
                if a[0] != b[0]
                else f"event #{index + 1} ({a[0]}): payload differs"
            )
            break
    else:
        what = f"{counted(len(old), 'event')} → {counted(len(new), 'event')}"
    types = tuple(sorted({kind for kind, _ in old} ^ {kind for kind, _ in new}))
    return Divergence(recorded.stage, recorded.instance, recorded.attempt, "events", types, what)


def _as_recorded(value: Any, replay_id: str, recorded_id: str) -> Any:
    """A copy of ``value`` with ``replay_id`` read as ``recorded_id`` in every string, key or
    value, at any depth (the module docstring)."""
    if isinstance(value, str):
        return value.replace(replay_id, recorded_id) if replay_id in value else value
    if isinstance(value, Mapping):
        return {
            _as_recorded(k, replay_id, recorded_id): _as_recorded(v, replay_id, recorded_id)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [_as_recorded(item, replay_id, recorded_id) for item in value]
    return value


def _retried_apart(
    old: Mapping[tuple[int, int], RecordedExecution], new: Mapping[tuple[int, int], Any]
) -> dict[int, tuple[int, int]]:
    """Instance -> (the original's last attempt, the replay's), of each instance both ran
    that took another number of attempts in each: a stage retried in the original and not in
    the replay, or the other way round (``compare_run`` compares those last attempts)."""
    last_old: dict[int, int] = {}
    last_new: dict[int, int] = {}
    for instance, attempt in old:
        last_old[instance] = max(attempt, last_old.get(instance, 0))
    for instance, attempt in new:
        last_new[instance] = max(attempt, last_new.get(instance, 0))
    return {
        instance: (last, last_new[instance])
        for instance, last in last_old.items()
        if instance in last_new and last != last_new[instance]
    }


def _all_events(
    old: Mapping[tuple[int, int], RecordedExecution], instance: int, last: int
) -> tuple[Any, ...]:
    """The events every recorded attempt of ``instance`` up to ``last`` published, in order."""
    return tuple(
        event
        for number in range(1, last + 1)
        if (execution := old.get((instance, number))) is not None
        for event in execution.events
    )


def _standing_for(
    executions: Sequence[RecordedExecution],
) -> tuple[dict[tuple[int, int], RecordedExecution], dict[tuple[int, int], int]]:
    """The recorded executions by (instance, attempt), and the first attempt each stood for
    when that was not its own. An execution the recorded run (a replay) fed stood for every
    attempt its own record made (``attempts_made``): it has the last one's status and outputs
    and the events all of them published, so it is compared with the replay's last attempt
    and the events of all of them; the replay's earlier attempts are no extra executions,
    since the first run made them too."""
    old: dict[tuple[int, int], RecordedExecution] = {}
    first: dict[tuple[int, int], int] = {}
    for execution in executions:
        last = execution.attempts_made
        if last != execution.attempt:
            first[(execution.instance, last)] = execution.attempt
            execution = replace(execution, attempt=last)  # noqa: PLW2901 - keyed by its last
        old[(execution.instance, execution.attempt)] = execution
    return old, first


def compare_run(  # noqa: PLR0917 - one call site, each argument named there
    recorded: RecordedRun,
    replay_id: str,
    executions: Mapping[str, Sequence[Any]],
    published: Mapping[str, Sequence[tuple[str, Mapping[str, Any]]]],
    rerun: Sequence[str],
    capture: PayloadCapture,
    reused: Mapping[str, Container[int]] | None = None,
) -> DivergenceReport:
    """Compare the re-executed stages ``rerun`` of a replay with ``recorded``.

    ``executions``: ``RunResult.executions``; ``published``: events by publishing
    ``task_run_id``, in order; ``reused``: stage -> the instances the replay reused from the
    record (not re-executed: not compared, nor counted as compared).
    """
    report = DivergenceReport(recorded.run_id, replay_id)
    for stage in rerun:
        old, first = _standing_for(recorded.executions.get(stage, ()))
        new = {(e.instance, e.attempt): e for e in executions.get(stage, ())}
        stood_for = {
            (i, number) for (i, last), start in first.items() for number in range(start, last)
        }
        kept = (reused or {}).get(stage, ())
        retried = _retried_apart(old, new)
        for key in sorted(old.keys() | new.keys()):
            instance, attempt = key
            if instance in kept:
                continue
            if instance in retried:  # each side's last attempt, compared once
                last_old, last_new = retried[instance]
                if attempt != last_new:
                    continue
                report.retried.append((stage, instance, last_old, last_new))
                first[key] = 1
                old[key] = replace(
                    old[(instance, last_old)],
                    attempt=last_new,
                    events=_all_events(old, instance, last_old),
                )
            elif key in stood_for:
                continue  # an earlier attempt a fed execution stood for: compared with it
            if key not in new:
                report.divergences.append(
                    Divergence(stage, instance, attempt, "missing", (), "ran in the original only")
                )
                continue
            if key not in old:
                report.divergences.append(
                    Divergence(stage, instance, attempt, "extra", (), "ran in the replay only")
                )
                continue
            report.compared += 1
            was, now = old[key], new[key]
            status = str(now.status)
            if was.status != status:
                report.divergences.append(
                    Divergence(stage, instance, attempt, "status", (), f"{was.status} → {status}")
                )
            elif status == "success":
                outputs = _as_recorded(now.outputs, replay_id, recorded.run_id)
                found = _outputs_divergence(was, outputs, capture)
                if found is not None:
                    report.divergences.append(found)
            events = _events_divergence(
                was,
                [
                    (kind, _as_recorded(payload, replay_id, recorded.run_id))
                    for number in range(first.get(key, attempt), attempt + 1)
                    for kind, payload in published.get(f"{stage}.{instance}.{number}", ())
                ],
                capture,
            )
            if events is not None:
                report.divergences.append(events)
    return report
