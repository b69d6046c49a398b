"""Pure functions turning snapshots and records into what the web page and its API answer.

* :func:`run_state` is the document every live update carries (one per Server-Sent Event): the
  run's status, each node's state with its text label, the timeline rows, what the viewer may
  do (approve, reject, continue, step) and, for a run a remote source has had nothing new of
  for a while, since when (``quiet_since``); errors in it are cut to :data:`MAX_ERROR`
  characters.
  The page redraws itself from it alone, so a client that reconnects needs nothing but the
  latest one.
* :func:`timeline` cuts every stage attempt into segments: ``approval`` (waiting for a
  manual approval), ``queued`` (waiting for a worker slot), ``paused`` (held at a debugger
  breakpoint) and ``running``. An open segment ends at ``now``, or, in an interrupted run, at
  the last sign of life of its process (``RunRecord.last_seen``). Rows are capped
  (:data:`MAX_ROWS`) so a fan-out of thousands stays a bounded event.
* :func:`record_json` is the run record as stored (inputs and outputs redacted and capped when
  they were captured: the page shows nothing the spans do not hold).

A replay's attempts it did not run are stored ``replayed`` alike (their spans' status). The
page names them as ``replay --step``'s and the debugger's ``where`` do (:func:`not_run_words`):
a fed stage's ``replayed``, an instance of a stage it ran again ``reused``, with the run it
took them from; their ``status`` stays as stored, for the API's readers and the page's
no-length marks.

They read no clock: ``now`` is an argument.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote

from taskdaemon.pipeline import ellipsis
from taskdaemon.pipeline.durations import format_run_duration
from taskdaemon.pipeline.landing import landing_delay, scheduled_at
from taskdaemon.pipeline.record_fields import as_dict, replace
from taskdaemon.pipeline.records import (
    ApprovalWait,
    AttemptRecord,
    PausedBeforeStart,
    RunRecord,
    RunSummary,
)
from taskdaemon.pipeline.status_rules import INTERRUPTED
from taskdaemon.pipeline.telemetry import STATUS_REPLAYED
from taskdaemon.pipeline.telemetry_codec import recorded_request
from taskdaemon.pipeline.visualization import STATES, DagNode, DagSnapshot, format_duration
from taskdaemon.pipeline.visualization._snapshot import node_summary
from taskdaemon.pipeline.wording import counted, not_run_word

__all__ = [
    "MAX_ERROR",
    "MAX_ROWS",
    "STATE_NAMES",
    "cut",
    "dag_words",
    "grafana_trace_url",
    "is_run_id",
    "labelled",
    "merge_details",
    "pipelines_json",
    "record_json",
    "run_state",
    "state_label",
    "summary_json",
    "timeline",
]

#: A run id as taskdaemon makes them (a trace id): what the page links to as ``/runs/ID``.
_RUN_ID = re.compile(r"[0-9a-f]{32}")

#: The most timeline rows one event carries; the rest are counted in ``hidden``.
MAX_ROWS = 2000

#: The most characters of an error (a stage's, the run's) or a skip reason one event carries:
#: a span keeps a handler's message whole, and a live document goes to every viewer at every
#: change. The stage panel reads an attempt's whole error from the run record.
MAX_ERROR = 1000


def cut(text: str | None, limit: int = MAX_ERROR) -> str | None:
    """``text`` cut to ``limit`` characters, the last an ellipsis (None stays None)."""
    return None if text is None else ellipsis.cut(text, limit)


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


def state_label(node: DagNode) -> str:
    """The words shown with a node's colour: its state (``success`` too), instances, attempts
    and duration, so the state reads without colour."""
    if node.state is None:
        return ""
    summary = node_summary(node) or ""
    return summary if node.state != "success" else " · ".join(filter(None, ["success", summary]))


def labelled(snapshot: DagSnapshot) -> DagSnapshot:
    """``snapshot`` with every node titled with its stage's name, a successful one with its
    state as well.

    The shared renderers title a node ``Build Api`` for ``build-api``; the page's stages
    table, its URLs, its stage panel and ``taskdaemon logs --stage`` all take the name, so
    its drawing shows the name a user can copy. They also leave the word ``success`` out of
    a node's label (colour and the duration say it); the web page promises a word for every
    state, so its drawing adds it.
    """
    nodes = tuple(
        replace(node, title=f"{node.name}\n✓ success" if node.state == "success" else node.name)
        for node in snapshot.nodes
    )
    return replace(snapshot, nodes=nodes)


def _approval_gate(node: DagNode) -> bool:
    return any(t.kind == "manual" and t.approval_required for t in node.triggers)


#: Seconds an approval's resolution may come after its execution was queued: the engine queues
#: it at the resolution, and a stored record's times are the spans' nanoseconds.
_SLACK = 1e-3


def not_run_words(attempts: Iterable[AttemptRecord]) -> dict[str, str]:
    """Task run id -> the word for each of one stage's ``attempts`` a replay did not run
    (``replayed``): ``replayed`` when none of them ran (a fed stage), else ``reused``, the
    rule of ``replay/timeline.not_run``, read from records rather than spans."""
    attempts = list(attempts)
    fed = all(a.status == STATUS_REPLAYED for a in attempts)
    word = not_run_word(fed=fed)
    return {a.task_run_id: word for a in attempts if a.status == STATUS_REPLAYED}


def timeline(snapshot: DagSnapshot, *, now: float, max_rows: int = MAX_ROWS) -> dict[str, Any]:
    """``{"start", "end", "rows": [...], "hidden"}``: one row per attempt of every instance.

    A row is ``{"stage", "instance", "attempt", "status", "open", "segments": [{"kind",
    "start", "end"}]}``, its status a reused instance's ``reused`` (:func:`not_run_words`);
    kinds are ``approval``, ``queued``, ``paused``, ``running`` and
    ``replayed``: a replay's fed attempt is one mark of no length where it started, its
    handler did not run and its stand-in's time is its wait in the replay (``runs show``
    reads ``-`` for it). An
    instance's first attempt begins with the stage's latest approval wait resolved before it
    was queued. An attempt recording the seconds it spent paused before it started
    (``paused_time``) gets that segment between its queued and running ones; an attempt paused
    now at its failure (``paused_since``) is its ``running`` segment until it failed, then an
    open ``paused`` one: drawn all ``paused``, the time its handler ran read as held. A stage
    awaiting an approval before any attempt is one ``waiting`` row of an open ``approval``
    segment. An execution paused now before its start
    (``DagNode.paused_before_start``), which has no attempt yet, is a ``paused`` row of its
    own, an open ``paused`` segment since it paused, with ``"since"`` and ``"reason"`` (the
    breakpoint's) besides: it keeps its key, and becomes that attempt's row once it starts.

    An interrupted run (its process died) has no ``now``: its open attempts ended when the
    process died, at a time no span records. They end at ``"last_seen"`` (the run's
    ``last_seen``: its writer's last heartbeat, or its latest record), which bounds that time
    from below, marked ``"interrupted": true`` and not ``open``; drawn up to ``now`` they grew
    at every load, a stage killed after 5 s read as running for hours.
    """
    rows: list[dict[str, Any]] = []
    hidden = 0
    run = snapshot.run
    died = run.last_seen if run is not None and run.status == INTERRUPTED else None
    now = now if died is None else died
    first: float | None = run.start if run is not None else None
    waits: dict[str, list[ApprovalWait]] = {}
    for wait in run.approvals if run is not None else ():
        waits.setdefault(wait.stage, []).append(wait)
    for node in snapshot.nodes:
        stage_waits = waits.get(node.name, [])
        words = not_run_words(node.attempts)
        drawn = node.attempts or _awaiting(stage_waits)
        held: dict[str, PausedBeforeStart] = {}
        if node.paused_before_start:  # they have no attempt: one row each of their own
            held = {pause.task_run_id: pause for pause in node.paused_before_start}
            drawn = (*drawn, *map(_held, node.paused_before_start))
        for attempt in drawn:
            if len(rows) >= max_rows:
                hidden += 1
                continue
            segments = _segments(attempt, stage_waits, now)
            first = min(first, segments[0]["start"]) if first is not None else segments[0]["start"]
            row = {
                "stage": node.name,
                "instance": attempt.instance,
                "attempt": attempt.attempt,
                "status": words.get(attempt.task_run_id, attempt.status),
                "open": attempt.end is None and died is None,
                "segments": segments,
            }
            if attempt.end is None and died is not None:
                row["interrupted"] = True
            pause = held.get(attempt.task_run_id) if held else None
            if pause is not None:  # paused before its start: since when, and why
                row["since"], row["reason"] = _r(pause.since), cut(pause.reason)
            rows.append(row)
    last = now
    if run is not None and run.end is not None:
        last = run.end
    return {
        "start": _r(first if first is not None else now),
        "end": _r(last),
        "rows": rows,
        "hidden": hidden,
        "last_seen": _r(died),
    }


def _awaiting(waits: list[ApprovalWait]) -> tuple[AttemptRecord, ...]:
    """For a stage with no attempt: a ``waiting`` first attempt starting at its open approval
    request, none when it awaits none."""
    if not waits or waits[-1].resolved is not None:
        return ()
    return (AttemptRecord("", 0, 1, "waiting", waits[-1].requested, None),)


def _held(pause: PausedBeforeStart) -> AttemptRecord:
    """The open attempt a timeline draws for an execution paused before its start."""
    return AttemptRecord(
        pause.task_run_id, pause.instance, pause.attempt, "paused", pause.since, None
    )


def _segments(
    attempt: AttemptRecord, waits: list[ApprovalWait], now: float
) -> list[dict[str, Any]]:
    """The segments of one attempt's row (see :func:`timeline`)."""
    segments: list[dict[str, Any]] = []
    if attempt.status == "waiting":
        return [{"kind": "approval", "start": _r(attempt.start), "end": _r(now)}]
    if attempt.status == STATUS_REPLAYED:
        return [{"kind": "replayed", "start": _r(attempt.start), "end": _r(attempt.start)}]
    end = attempt.end if attempt.end is not None else now
    paused = attempt.paused_time or 0.0
    begin = attempt.start - paused
    queued = begin - (attempt.queue_time or 0.0)
    if attempt.attempt == 1:
        done = [w for w in waits if w.resolved is not None and w.resolved <= queued + _SLACK]
        if done:
            wait = done[-1]
            segments.append(
                {"kind": "approval", "start": _r(wait.requested), "end": _r(wait.resolved)}
            )
    if attempt.queue_time:
        segments.append({"kind": "queued", "start": _r(queued), "end": _r(begin)})
    if paused:
        segments.append({"kind": "paused", "start": _r(begin), "end": _r(attempt.start)})
    if attempt.status != "paused":
        segments.append({"kind": "running", "start": _r(attempt.start), "end": _r(end)})
    elif attempt.paused_since is not None:  # paused at its failure: it ran until then
        failed = max(attempt.start, attempt.paused_since)
        segments.append({"kind": "running", "start": _r(attempt.start), "end": _r(failed)})
        segments.append({"kind": "paused", "start": _r(failed), "end": _r(end)})
    else:
        segments.append({"kind": "paused", "start": _r(attempt.start), "end": _r(end)})
    return segments


def run_state(
    snapshot: DagSnapshot,
    *,
    now: float,
    can_control: bool,
    debug: bool = False,
    quiet_since: float | None = None,
    no_span: str | None = None,
    max_rows: int = MAX_ROWS,
) -> dict[str, Any]:
    """The document of one live update (see the module docstring), its timeline's rows cut
    at ``max_rows`` (``_live_document`` keeps them all).

    ``can_control``: the run is served by this process's engine, so approvals (and, with
    ``debug``, the debugger's continue and step) can be sent. ``quiet_since``: when the newest
    span ended of a running run a remote source has had nothing new of for a while (its
    process may be gone: ``web/_data.py``), else None. ``no_span``: what the page says of the
    stages of an ended run that a remote source has no span of (``RunData.no_span``), else
    None.
    """
    run = snapshot.run
    open_run = run is not None and run.end is None
    nodes = []
    for node in snapshot.nodes:
        waiting = node.state == "waiting" and _approval_gate(node)
        nodes.append(
            {
                "name": node.name,
                "title": node.title,
                "state": node.state or "pending",
                "label": _reused(node, state_label(node) or (node.state or "pending")),
                "duration": _r(node.duration),
                "instances": node.instances,
                # The most attempts one instance needed, as every table and the DAG's label
                # count them (docs/architecture.md, "Command line").
                "attempts": max((attempt.attempts_made for attempt in node.attempts), default=0),
                "error": cut(node.error),
                "skip_reason": cut(node.skip_reason),
                "approvable": bool(can_control and open_run and waiting),
                "resumable": bool(can_control and debug and open_run and node.state == "paused"),
                # paused at its failure (``paused_since``): Retry is offered beside them
                "retryable": bool(
                    can_control
                    and debug
                    and open_run
                    and any(a.paused_since is not None for a in node.attempts)
                ),
            }
        )
    return {
        "run": None
        if run is None
        else {
            "run_id": run.run_id,
            "pipeline": snapshot.pipeline,
            "status": run.status,
            "start": _r(run.start),
            "end": _r(run.end),
            "duration": format_run_duration(_run_duration(run, now), run.lasted_at_least),
            "lasted_at_least": _r(run.lasted_at_least),
            "error": cut(run.error),
            "error_type": cut(run.error_type),
            "replay_of": _run_id_or_none(run.replay_of),
            # a scheduled run's due time and how late it started (``landing``), else None
            "scheduled": _r(scheduled_at(run.attributes)),
            "late": _late(run),
            # the request (a CI's build parameters) as recorded: capped, redacted JSON
            "request": cut(recorded_request(run.attributes)),
        },
        "nodes": nodes,
        "timeline": timeline(snapshot, now=now, max_rows=max_rows),
        "now": _r(now),
        "quiet_since": _r(quiet_since),
        "no_span": no_span,
        "controls": {"approve": can_control and open_run, "debug": can_control and debug},
    }


def _reused(node: DagNode, label: str) -> str:
    """``label`` of a stage a replay ran again, its instances counted with those it reused:
    ``success · 3 instances (2 reused) · 5ms``. Its state is what the instances it ran gave;
    the others did not run (a stage with one reused has others: its count is there)."""
    word = not_run_word(fed=False)
    reused = sum(1 for said in not_run_words(node.attempts).values() if said == word)
    said = f"{node.instances} instances"
    return label.replace(said, f"{said} ({reused} {word})", 1) if reused else label


def _late(run: RunRecord) -> str | None:
    """How late a scheduled run started (``12.3s``), None for a run no schedule started."""
    delay = landing_delay(run.attributes, run.start)
    return None if delay is None else format_duration(delay)


def _run_duration(run: RunRecord, now: float) -> float | None:
    """The run's duration once it ended, ``now`` minus its start while it runs, None for an
    interrupted run (which the view writes ``at least`` its ``lasted_at_least``, as ``runs
    show`` and the list of runs do): its process died at a time no span records, and ``now``
    minus its start, which grows at every load, read as the time it ran (``1m35s`` for a run
    killed 5 s after its start)."""
    if run.end is not None:
        return run.duration
    return None if run.status == "interrupted" else now - run.start


def dag_words(state: Mapping[str, Any]) -> tuple[str, str]:
    """The DAG figure's accessible name and description at one live update: the pipeline, its
    stage count and the run's status; then how many stages are in each state, in the legend's
    order. The page's script writes them alike at each update (``sayDag``)."""
    nodes, run = state["nodes"], state["run"] or {}
    count = counted(len(nodes), "stage")
    name = f"DAG of {run.get('pipeline') or 'the run'}: {count}, run {run.get('status', '-')}"
    counts = Counter(node["state"] for node in nodes)
    return name, ", ".join(f"{counts[s]} {s}" for s in STATE_NAMES if counts[s])


def is_run_id(value: object) -> bool:
    """True for a run id the page may link to (``/runs/ID``): 32 hex digits (a foreign
    producer's spans may carry anything in ``replay_of``)."""
    return isinstance(value, str) and _RUN_ID.fullmatch(value) is not None


def _run_id_or_none(value: str | None) -> str | None:
    """``value`` when it is a run id the page may link to (:func:`is_run_id`), else None."""
    return value if is_run_id(value) else None


def record_json(record: RunRecord) -> dict[str, Any]:
    """The run record as JSON (``asdict`` plus durations, and a scheduled run's landing delay:
    ``landing``); values are as stored."""
    data = as_dict(record)
    data["duration"] = _r(record.duration)
    data["lasted_at_least"] = _r(record.lasted_at_least)  # interrupted: a bound, not a duration
    data["landing_delay"] = _r(landing_delay(record.attributes, record.start))
    data["attributes"] = {k: v for k, v in record.attributes.items() if _jsonable(v)}
    original = _run_id_or_none(record.replay_of)
    for stage, shown in zip(record.stages, data["stages"], strict=True):
        words = not_run_words(stage.attempts)
        for attempt in shown["attempts"]:
            # what the page calls one the replay did not run, and the run it took it from
            word = words.get(attempt["task_run_id"])
            attempt["not_run"] = word
            attempt["taken_from"] = original if word else None
    return data


def _jsonable(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


def merge_details(live: RunRecord, stored: RunRecord | None) -> RunRecord:
    """``live`` (the engine's view: current states) with each attempt's captured details
    (inputs, outputs, CPU, memory, span id) taken from ``stored`` (the spans), matched by
    task run id. Attempts the spans do not have yet keep what the engine knows."""
    if stored is None:
        return live
    found = {a.task_run_id: a for s in stored.stages for a in s.attempts}
    stages = []
    for stage in live.stages:
        attempts = []
        for current in stage.attempts:
            kept = found.get(current.task_run_id)
            attempt = current
            if kept is not None:
                attempt = replace(
                    current,
                    inputs=kept.inputs,
                    outputs=kept.outputs,
                    cpu_seconds=kept.cpu_seconds,
                    peak_memory_bytes=kept.peak_memory_bytes,
                    span_id=kept.span_id,
                )
            attempts.append(attempt)
        stages.append(replace(stage, attempts=tuple(attempts)))
    return replace(
        live, stages=tuple(stages), edges=live.edges or stored.edges, attributes=stored.attributes
    )


def summary_json(summary: RunSummary, *, live: bool = False) -> dict[str, Any]:
    """One row of the runs page. ``replay_of``: the run a replay replayed, None for a run that
    is no replay; and for a replay whose value is no run id (a foreign producer's span): the
    page marks the row a replay, and links no run. ``lasted_at_least``: a separate field, so
    that no client reads a lower bound as the run's duration; the page writes it ``at least
    5.2s``."""
    return {
        "run_id": summary.run_id,
        "pipeline": summary.pipeline,
        "status": summary.status,
        "start": _r(summary.start),
        "end": _r(summary.end),
        "duration": format_duration(summary.duration),
        # an interrupted run's start to its last sign of life (seconds; "duration" stays "-"),
        # and a scheduled run's landing delay (seconds), else None
        "lasted_at_least": _r(summary.lasted_at_least),
        "landing_delay": _r(summary.landing_delay),
        "stages": summary.stage_count,
        "failed_stages": summary.failed_stages,
        "replay_of": summary.replay_of,
        "live": live,
    }


def pipelines_json(
    summaries: Iterable[RunSummary],
    known: Mapping[str, Any],
    counts: Mapping[str, int] | None = None,
) -> list[dict[str, Any]]:
    """``/api/pipelines``: every pipeline with runs in ``summaries`` (newest first) or a
    definition in ``known`` (name → ``model.Pipeline``): its run count (from ``counts`` when
    the source gave them, else among ``summaries``), last run and, when the definition is
    known, its stages and definition hash."""
    found: dict[str, dict[str, Any]] = {}
    for summary in summaries:
        entry = found.setdefault(
            summary.pipeline,
            {
                "name": summary.pipeline,
                "runs": 0,
                "last_run": summary.run_id,
                "last_status": summary.status,
                "last_start": _r(summary.start),
            },
        )
        entry["runs"] += 1
    for name, count in (counts or {}).items():
        if name in found:
            found[name]["runs"] = count
    for name, pipeline in known.items():
        entry = found.setdefault(
            name,
            {"name": name, "runs": 0, "last_run": None, "last_status": None, "last_start": None},
        )
        entry["stages"] = [stage.name for stage in pipeline.stages]
        entry["definition_hash"] = pipeline.definition_hash
    return sorted(found.values(), key=lambda e: e["name"])


def grafana_trace_url(base: str, trace_id: str) -> str:
    """The Grafana Explore URL showing ``trace_id`` from the ``tempo`` datasource (the uid
    the shipped provisioning gives it)."""
    panes = {
        "trace": {
            "datasource": "tempo",
            "queries": [
                {
                    "refId": "A",
                    "datasource": {"type": "tempo", "uid": "tempo"},
                    "queryType": "traceql",
                    "query": trace_id,
                }
            ],
            "range": {"from": "now-7d", "to": "now"},
        }
    }
    encoded = quote(json.dumps(panes, separators=(",", ":")), safe="")
    return f"{base.rstrip('/')}/explore?schemaVersion=1&orgId=1&panes={encoded}"


#: States the page styles, for templates (legend) and tests.
STATE_NAMES: tuple[str, ...] = tuple(dict.fromkeys((*STATES, "paused")))
