"""Time travel through a recorded run: its state at any instant, and its events one by one.

Nothing is executed: everything comes from the run's spans, from any span source.

* ``spans_at(spans, at_ns)``: the spans as a reader would have seen them at ``at_ns``: spans
  not started yet are dropped, spans still open lose their end, their span events after the
  instant and what is only set when a span ends (result, status, error); a zero-length skip
  span counts once its instant is reached. ``reconstruct_run(spans_at(...))`` is then the
  run's state at that instant (``runs show --at``, ``dag --run --at``).
* ``timeline(spans)``: the run's events in time order: run started, stage started and
  finished, trigger evaluated, approval requested and resolved, event published, retry,
  skip, a breakpoint's pause and resumption, an input overridden, run finished;
  ``replay --step`` walks it. Of a replay's record, an execution the replay did not run starts
  and ends as ``not_run`` names it, its start with the run it was taken from, as ``where``
  says it: ``c#0 reused from run R`` then ``c#0 reused`` (``a replayed ...`` when fed), not
  ``c#0 started``, as if it ran again.
* ``not_run(spans)``: a replay's executions it did not run (each span linked ``replayed_from``
  to the original from its start on), named as the replay's ``--dry-run`` and the debugger's
  ``where`` name them: ``replayed`` when every execution of its stage is such (fed from the
  record), else ``reused`` (an instance of a stage run again: its spans say ``replayed``).
* ``parse_offset(text)``: ``12.5s``, ``1m30s``, ``500ms`` or a number of seconds, from the
  run's start, in ASCII digits (``ascii_number``), of at most 2**63 ns: a span's time is a
  count of nanoseconds, and ``1e300`` seconds had none (an ``OverflowError`` traceback of
  ``runs show --at``, ``dag --at`` and the step prompt's ``goto``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from taskdaemon.pipeline import telemetry as t
from taskdaemon.pipeline.ascii_number import ascii_only
from taskdaemon.pipeline.quoting import quote
from taskdaemon.pipeline.record_fields import replace
from taskdaemon.pipeline.records import RunRecord
from taskdaemon.pipeline.tracking.reconstruct import (
    ended_attempt_status,
    find_root,
    is_skip,
    pipeline_of,
    reconstruct_run,
    replay_of,
)
from taskdaemon.pipeline.tracking.spans import SpanRecord
from taskdaemon.pipeline.wording import not_run_word, taken_from

__all__ = ["TimelineEvent", "not_run", "parse_offset", "run_at", "spans_at", "timeline"]

#: Attributes a span gets only when it ends: dropped from a span still open at the instant.
_END_ATTRIBUTES = frozenset(
    {
        t.CICD_PIPELINE_RESULT,
        t.CICD_TASK_RUN_RESULT,
        t.STAGE_STATUS,
        t.STAGE_REPLAYED_STATUS,
        t.STAGE_REPLAYED_ATTEMPTS,
        t.ERROR_TYPE,
        t.STAGE_ERROR_MESSAGE,
        t.STAGE_CPU_TIME,
        t.STAGE_PEAK_MEMORY,
        t.STAGE_WILL_RETRY,
        t.STAGE_CANCEL_REASON,
        t.STAGE_CANCEL_CAUSE,
    }
)
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)", re.ASCII)
#: The longest offset, in seconds: 2**63 ns (about 292 years), the span clock's range.
_LONGEST = 2**63 / 1e9
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_offset(text: str) -> float:
    """Seconds from ``12.5s``, ``1m30s``, ``500ms`` or ``12.5``; ``ValueError`` otherwise."""
    raw = text.strip()
    try:
        value = float(ascii_only(raw))
    except ValueError:
        parts = _PART.findall(raw)
        if not parts or "".join(n + u for n, u in parts) != raw:
            raise ValueError(
                f"--at {quote(text)}: expected a time from the run's start such as 12.5s, 1m30s, "
                "500ms or 12.5"
            ) from None
        value = sum(float(number) * _UNITS[unit] for number, unit in parts)
    if not 0 <= value <= _LONGEST:  # also refuses nan
        raise ValueError(f"--at {quote(text)}: expected a time of 0 to 292 years")
    return value


def spans_at(spans: Iterable[SpanRecord], at_ns: int) -> list[SpanRecord]:
    """The spans as they stood at ``at_ns`` (see the module docstring)."""
    found = []
    for span in spans:
        if span.start_ns > at_ns:
            continue
        if span.end_ns is not None and span.end_ns <= at_ns:
            found.append(span)
            continue
        found.append(
            replace(
                span,
                end_ns=None,
                status_code="UNSET",
                status_message="",
                attributes={k: v for k, v in span.attributes.items() if k not in _END_ATTRIBUTES},
                events=tuple(e for e in span.events if e.time_ns <= at_ns),
            )
        )
    return found


@dataclass(frozen=True, slots=True)
class TimelineEvent:
    """One recorded event: when (epoch ns), what (a short phrase) and the stage it concerns."""

    time_ns: int
    what: str
    stage: str | None = None


def _stage_label(attributes: Mapping[str, Any], multi: set[str]) -> str:
    """``stage``, ``stage#N`` for an instance of a stage in ``multi``, as ``run``'s progress
    names them, and the attempt past the first."""
    stage = str(attributes.get(t.CICD_TASK_NAME, "?"))
    instance = attributes.get(t.STAGE_INSTANCE)
    attempt = attributes.get(t.STAGE_ATTEMPT)
    suffix = f"#{instance}" if isinstance(instance, int) and stage in multi else ""
    retry = f" (attempt {attempt})" if isinstance(attempt, int) and attempt > 1 else ""
    return f"{stage}{suffix}{retry}"


def _span_events(span: SpanRecord, stage: str | None) -> list[TimelineEvent]:
    found = []
    for event in span.events:
        a = event.attributes
        name = a.get(t.CICD_TASK_NAME, stage)
        if event.name == t.EVENT_TRIGGER_EVALUATED:
            held = "holds" if a.get(t.TRIGGER_SATISFIED) else "does not hold"
            what = f"trigger {a.get(t.TRIGGER_DESCRIPTION, '?')} of {name} {held}"
        elif event.name == t.EVENT_APPROVAL_REQUESTED:
            what = f"{name} waits for approval"
        elif event.name == t.EVENT_APPROVAL_RESOLVED:
            verdict = "approved" if a.get(t.APPROVAL_APPROVED) else "rejected"
            if a.get(t.APPROVAL_TIMED_OUT):
                verdict = "approval timed out"
            by = f" by {a.get(t.APPROVAL_BY)}" if a.get(t.APPROVAL_BY) else ""
            what = f"{name} {verdict}{by}"
        elif event.name == t.EVENT_PUBLISHED:
            source = f" by {stage}" if stage else " from outside"
            what = f"event {a.get(t.PUBLISHED_EVENT_TYPE)} #{a.get(t.PUBLISHED_EVENT_ID)}{source}"
        elif event.name == t.EVENT_STAGE_RETRYING:
            what = f"{name} retries in {a.get(t.RETRY_DELAY)}s"
        elif event.name == t.EVENT_BREAKPOINT_HIT:
            what = f"{a.get(t.CICD_TASK_RUN_ID, name)} paused: {a.get(t.BREAKPOINT_REASON, '?')}"
        elif event.name == t.EVENT_BREAKPOINT_RESUMED:
            by = f" by {a.get(t.BREAKPOINT_BY)}" if a.get(t.BREAKPOINT_BY) else ""
            what = f"{a.get(t.CICD_TASK_RUN_ID, name)} resumed: {a.get(t.BREAKPOINT_ACTION)}{by}"
        elif event.name == t.EVENT_INPUT_OVERRIDE:
            by = f" by {a.get(t.OVERRIDE_BY)}" if a.get(t.OVERRIDE_BY) else ""
            what = f"{name}: input {a.get(t.OVERRIDE_INPUT)} overridden{by}"
        else:
            continue
        found.append(TimelineEvent(event.time_ns, what, name if isinstance(name, str) else None))
    return found


def not_run(spans: Iterable[SpanRecord]) -> dict[str, str]:
    """Span id -> ``replayed`` or ``reused``, for each execution the replay recorded by
    ``spans`` did not run (the module docstring); empty for a run that is no replay."""
    linked: dict[str, list[str]] = {}
    ran: set[str] = set()
    for span in spans:
        stage = span.attributes.get(t.CICD_TASK_NAME)
        if not isinstance(stage, str):
            continue
        if any(link.attributes.get(t.LINK_RELATION) == t.LINK_REPLAYED_FROM for link in span.links):
            linked.setdefault(stage, []).append(span.span_id)
        else:
            ran.add(stage)
    return {
        span_id: not_run_word(fed=stage not in ran)
        for stage, span_ids in linked.items()
        for span_id in span_ids
    }


def timeline(
    spans: Iterable[SpanRecord], words: Mapping[str, str] | None = None
) -> list[TimelineEvent]:
    """The run's recorded events in time order (stable: start before end at one instant);
    ``words`` is ``not_run(spans)`` when the caller has it already."""
    spans = list(spans)
    root = find_root(spans)
    words = not_run(spans) if words is None else words
    original = replay_of(root.attributes) if root is not None else None
    # Stages of several instances (fan-out, events): every instance is named with its number,
    # the first one too, as ``run``'s progress lines name them.
    multi = {
        str(s.attributes.get(t.CICD_TASK_NAME))
        for s in spans
        if t.STAGE_EVENT_TYPE in s.attributes
        or (isinstance(i := s.attributes.get(t.STAGE_INSTANCE), int) and i > 0)
    }
    events: list[tuple[int, int, TimelineEvent]] = []
    for span in spans:
        if span is root:
            named = pipeline_of(span, ())
            said = f"run {named} started" if named else "run started"
            events.append((span.start_ns, 0, TimelineEvent(span.start_ns, said)))
            if span.end_ns is not None:
                result = span.attributes.get(t.CICD_PIPELINE_RESULT, "ended")
                events.append((span.end_ns, 3, TimelineEvent(span.end_ns, f"run ended: {result}")))
            events.extend((e.time_ns, 2, e) for e in _span_events(span, None))
            continue
        stage = span.attributes.get(t.CICD_TASK_NAME)
        if not isinstance(stage, str):
            continue
        label = _stage_label(span.attributes, multi)
        if is_skip(span.attributes, span.start_ns, span.end_ns):
            reason = span.attributes.get(t.STAGE_SKIP_REASON, "")
            what = f"{stage} skipped" + (f": {reason}" if reason else "")
            events.append((span.start_ns, 2, TimelineEvent(span.start_ns, what, stage)))
            continue
        word = words.get(span.span_id)
        began = taken_from(word, original) if word and original else "started"
        events.append((span.start_ns, 1, TimelineEvent(span.start_ns, f"{label} {began}", stage)))
        events.extend((e.time_ns, 2, e) for e in _span_events(span, stage))
        if span.end_ns is not None:
            status = word or ended_attempt_status(span.attributes, span.status_code)
            events.append((span.end_ns, 2, TimelineEvent(span.end_ns, f"{label} {status}", stage)))
    events.sort(key=lambda item: (item[0], item[1]))
    return [event for _, _, event in events]


def run_at(spans: Iterable[SpanRecord], at: str | float) -> RunRecord:
    """The run as it stood ``at`` (seconds, or ``parse_offset`` text) after its start.

    ``ValueError`` (one line) for a malformed time or a trace without spans.
    """
    spans = list(spans)
    if not spans:
        raise ValueError("the run has no spans")
    offset = parse_offset(at) if isinstance(at, str) else float(at)
    root = find_root(spans)
    start = root.start_ns if root is not None else min(s.start_ns for s in spans)
    return reconstruct_run(spans_at(spans, start + round(offset * 1e9)))
