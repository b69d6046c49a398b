"""Live DAG snapshots of a run in another process: ``watch_stored_run`` polls a span source.

``DagWatcher`` follows a run through the engine's events, so it only sees runs of its own
process. A server or terminal view in another process reads the spans instead: the embedded
store has a running run's spans within its writer's flush interval, and rewrites open spans as
they gain events (an approval a stage waits for shows as ``waiting``). Tempo and Jaeger (and the
Collector's OTLP-JSON files) have a run's spans only once each ended, so a remote source shows
finished stages as they finish.

Each poll runs the source's blocking ``get_run`` in a daemon thread of its own
(``daemon_call``: a poll a silent remote source never answers does not hold Ctrl-C up to
``TASKDAEMON_SOURCE_TIMEOUT``), and so does ``recorded_pipeline``; a snapshot is yielded
only when the rebuilt run differs from the last one yielded. The stream ends after the snapshot
that shows the run no longer running (finished, or ``interrupted`` when its writer died). A run
``paused`` at a breakpoint is still going: it is followed on (the stream ended at the pause,
and the web page said the run had ended, ``paused``, and stopped following it).

A run whose process died. The embedded store tells: its writer's pid is gone, or its heartbeat
is stale, and the run reads ``interrupted`` (``tracking/store.py``), which ends the stream. A
remote source cannot: the run span reaches Tempo or Jaeger only when the run ends, so a run
whose process died stays ``running`` there for ever, and so does its watch. No bound tells that
run from a live one, since the same source shows nothing new while a stage runs for an hour or
an approval waits for a person (it shows neither: see below). So the stream keeps polling, and
says why instead: after ``quiet_polls`` polls in a row with nothing new (a minute at the CLI's
default interval), ``on_quiet`` gets one line saying the source has had no new span for so long
and that a run whose process died never ends in it; once per quiet stretch (a new span starts
a new one). How long is the source's own word: since the newest span it holds of the run ended,
not since this watch began to poll, which may be long after (a watch started on a run quiet for
an hour says an hour). A source that tells a dead writer (``is_interrupted``: the embedded
store) gets no such line: its run still ``running`` has a live writer. ``watch`` and ``dag
--watch`` write the line on stderr (above the live table on a terminal), the plain lines on
stdout unchanged. The web page's live view follows ``follow_stored_run``, which yields the
quiet stretch in the stream itself: a page gets it in the state it redraws from
(``web/_data.py``), and loses it at the next change.

A stage that has not started has no span, so the spans alone do not say what it waits for.
Drawn without a definition, a run is drawn over the one its run span recorded
(``taskdaemon.pipeline.definition``, ``recorded_pipeline``), as the live view draws a run over
the definition it runs: its stages' triggers fill WAITING FOR before they start. A definition
not recorded (capture off), cut at its cap, not hashing to the run's definition hash, or not
sound (``recorded_pipeline`` says what it checks: a span store may be crafted) is not used: the
DAG then comes from the spans alone, and a pending stage waits for ``unknown``.

A remote source cannot say what a stage waits for while it waits: the run span, which records
the definition, reaches a backend only when the run ends, and a stage's span when its attempt
ends. While the run runs, the view lists the stages with an ended attempt, and nothing else:
no pending stage, no approval asked for, no WAITING FOR (not even ``unknown``). The run's end
brings every span at once, and the definition with it, used when whole: Tempo cuts every
attribute over 2,048 bytes unless told otherwise (``tempo/tempo.yaml`` raises it to 1 MiB), and
a cut definition no longer hashes to the run's definition hash. To follow a run's waits, watch
it from the embedded store (``sqlite:///``), or from the process that runs it.

A run span in before a stage's. A backend receives the spans in batches, and a batch may arrive
after a later one (a Collector retries a failed export, or sends batches in parallel): the run
span, ended, can be read while a stage that ran has no span there yet. Rebuilt, that stage is
``skipped`` ("never ran", ``status_rules.NO_SPAN_REASON``), and the watch ended on it. Yet the
engine writes a skip span for every stage that never ran, so a stage the run span names without
any span of its own is a span not come yet, or lost. On a source that cannot tell a dead writer
(where spans arrive this way) such a run is not taken as ended: the watch polls on, shows nothing
new, and ends on the whole run once the spans are there. It waits at most ``settle_timeout``
seconds (30 by default: a Collector's export retries and batching take seconds), counted from
the run's end by its own span as the quiet line's time is, so a watch of a run that ended long
ago does not wait; and at most that long from the watch's first sight of the run, whatever the
clocks say. Then it ends on the run as it is, and ``on_quiet`` gets one line naming the stages
without a span (the first five). A missing attempt of a stage that has another is not told: the
run span counts neither attempts nor stages. The embedded store's writer commits a run's
spans in order, so a run it holds ended has all of them: it is never waited for.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Protocol

from taskdaemon.pipeline import telemetry as t
from taskdaemon.pipeline.daemon_call import daemon_call
from taskdaemon.pipeline.definition import pipeline_from_canonical, sha256_text
from taskdaemon.pipeline.durations import format_duration
from taskdaemon.pipeline.errors import RunNotFoundError
from taskdaemon.pipeline.model import Pipeline
from taskdaemon.pipeline.records import RunRecord
from taskdaemon.pipeline.status_rules import GOING_RUN_STATUSES, NO_SPAN_REASON
from taskdaemon.pipeline.visualization._snapshot import DagSnapshot, dag_snapshot

__all__ = [
    "SETTLE_TIMEOUT",
    "awaited_span_text",
    "follow_stored_run",
    "no_span_text",
    "recorded_pipeline",
    "spans_arrive_late",
    "stages_without_span",
    "watch_stored_run",
]

#: Seconds after a run's end that a watch waits for the spans of stages the run span names and
#: the source does not have yet (the module docstring).
SETTLE_TIMEOUT = 30.0
#: Stages without a span that the line names; the rest are counted.
_NAMED_MISSING = 5

#: The longest recorded definition used, in characters: the largest pipeline file the loader
#: reads (``yamlsafe.MAX_YAML_BYTES``, 16 MiB; not imported, which would import PyYAML). A longer
#: one is no file's, and parsing it would cost the reader its size many times over.
_MAX_DEFINITION_CHARS = 16 * 1024 * 1024


class _RunSource(Protocol):
    def get_run(self, run_id: str) -> RunRecord: ...


def recorded_pipeline(run: RunRecord) -> Pipeline | None:
    """The definition ``run``'s span recorded, or None when it recorded none whole and sound:
    capture was off, the text was cut, it does not hash to the run's definition hash (a backend
    cut it, or redaction changed it), it is larger than any pipeline file taskdaemon loads, or
    it is not a definition that can have run (a field of the wrong type, a cycle, a trigger on
    a stage it does not have, two stages of one name, a name or number out of bounds).

    The hash proves nothing: whoever wrote the span store (a crafted file, a buggy or hostile
    backend) wrote the hash too. So the definition is checked as one that ran
    (``pipeline_from_canonical(ran=True)``): what the drawings and WAITING FOR rely on, without
    the rules of a file that a pipeline built in code need not follow.
    """
    text = run.attributes.get(t.PIPELINE_DEFINITION)
    if not isinstance(text, str) or run.attributes.get(t.PIPELINE_DEFINITION_TRUNCATED) is True:
        return None
    if len(text) > _MAX_DEFINITION_CHARS:  # before it is hashed, parsed and checked
        return None
    if run.definition_hash is None or sha256_text(text) != run.definition_hash:
        return None
    try:
        return pipeline_from_canonical(text, ran=True)
    except ValueError:
        return None


async def watch_stored_run(
    source: _RunSource,
    run_id: str,
    *,
    pipeline: Pipeline | None = None,
    interval: float = 0.5,
    appear_timeout: float = 30.0,
    quiet_polls: int = 120,
    on_quiet: Callable[[str], None] | None = None,
    settle_timeout: float = SETTLE_TIMEOUT,
) -> AsyncIterator[DagSnapshot]:
    """Yield a snapshot of ``run_id`` as ``source`` (any span source: ``open_source(url)``)
    has it, then one after each change, until the run is no longer running.

    ``pipeline``: the definition to draw the run over (else the one the run recorded, if
    whole, else the DAG comes from the spans alone). ``interval``: seconds between polls. A
    run the source does not have yet (it was just started, or the first batch is not
    written) is polled for until ``appear_timeout`` seconds have passed, then
    RunNotFoundError is raised. ``on_quiet``: given one line once ``quiet_polls`` polls in a
    row found the running run unchanged on a source that cannot tell a dead writer (see the
    module docstring), again after each later change; and once, at the end, when the run ended
    with stages still without a span after ``settle_timeout`` seconds (the module docstring).
    """
    stream = follow_stored_run(
        source,
        run_id,
        pipeline=pipeline,
        interval=interval,
        appear_timeout=appear_timeout,
        quiet_polls=quiet_polls,
        settle_timeout=settle_timeout,
    )
    last: RunRecord | None = None
    async for snapshot, quiet_since in stream:
        if quiet_since is None:
            last = snapshot.run
            yield snapshot
        elif on_quiet is not None:
            on_quiet(_quiet_line(run_id, time.time() - quiet_since))
    missing = stages_without_span(last) if last is not None and spans_arrive_late(source) else []
    if missing and on_quiet is not None and last is not None:
        on_quiet(_missing_line(run_id, missing, max(0.0, time.time() - (last.end or last.start))))


async def follow_stored_run(
    source: _RunSource,
    run_id: str,
    *,
    pipeline: Pipeline | None = None,
    interval: float = 0.5,
    appear_timeout: float = 30.0,
    quiet_polls: int = 120,
    first: RunRecord | None = None,
    settle_timeout: float = SETTLE_TIMEOUT,
) -> AsyncIterator[tuple[DagSnapshot, float | None]]:
    """``watch_stored_run``'s stream with its quiet stretches in it: ``(snapshot, None)`` at
    each change, and ``(the same snapshot, when the newest span of the run ended)`` (epoch
    seconds) once ``quiet_polls`` polls in a row found the running run unchanged on a source
    that cannot tell a dead writer (once per quiet stretch: see the module docstring).
    ``first``: the run as the caller has just read it, taken as the first poll's: the web
    page keeps an ended run it read (``web/_data.py``), and its stream rebuilt that run from
    its spans once more, seconds for thousands of stages, to yield it and end. A run that ended
    with a stage the run span names still without a span is polled on, unyielded, for up to
    ``settle_timeout`` seconds (the module docstring)."""
    deadline = time.monotonic() + appear_timeout
    snapshot: DagSnapshot | None = None  # the last one yielded
    recorded = pipeline is not None  # the run span was read for its definition (fixed)
    tells_dead = not spans_arrive_late(source)
    unchanged = 0  # polls in a row that found the run as it was
    settle_by: float | None = None  # monotonic bound of the wait for late spans, once begun
    while True:
        try:
            if first is None:
                run = await daemon_call(source.get_run, run_id)  # Ctrl-C need not wait
            else:
                run, first = first, None
        except RunNotFoundError:
            if snapshot is not None or time.monotonic() > deadline:
                raise
        else:
            if not tells_dead and run.status not in GOING_RUN_STATUSES and stages_without_span(run):
                now = time.monotonic()
                settle_by = now + settle_timeout if settle_by is None else settle_by
                if now < settle_by and time.time() < (run.end or run.start) + settle_timeout:
                    await asyncio.sleep(interval)
                    continue
            if snapshot is not None and run == snapshot.run:
                unchanged += 1
                if unchanged == quiet_polls and not tells_dead:
                    yield snapshot, _newest_span_end(run)
            else:
                unchanged = 0
                if not recorded and run.definition_hash is not None:  # the run span is in
                    recorded = True
                    # Off the loop's thread, as each poll: checking a definition at the size
                    # bound takes seconds, which a server's other clients need not wait.
                    pipeline = await daemon_call(recorded_pipeline, run)
                snapshot = dag_snapshot(pipeline, run)
                yield snapshot, None
            if run.status not in GOING_RUN_STATUSES:
                return
        await asyncio.sleep(interval)


def spans_arrive_late(source: object) -> bool:
    """Whether ``source`` may hold a run's spans out of order: any but the embedded store (the
    one that tells a dead writer, ``is_interrupted``), whose writer commits them in order."""
    return not callable(getattr(source, "is_interrupted", None))


def stages_without_span(run: RunRecord) -> list[str]:
    """The stages of ``run`` (ended) that its run span names and that have no span at all."""
    return [
        stage.name
        for stage in run.stages
        if stage.skip_reason == NO_SPAN_REASON and not stage.attempts
    ]


def _missing_line(run_id: str, missing: list[str], seconds: float) -> str:
    """What ``on_quiet`` is told when a run ended with ``missing`` stages without a span."""
    return f"run {run_id}: ended {format_duration(seconds)} ago, and {no_span_text(missing)}"


def no_span_text(missing: list[str]) -> str:
    """``this source has no span of stage S: shown as skipped, ...``: the words ``watch`` and
    the web page say of an ended run's ``missing`` stages (the first five named, the rest
    counted)."""
    one = len(missing) == 1
    return (
        f"this source has no span of {_stages_named(missing)}: shown as skipped, "
        f"{'it' if one else 'they'} may have run (a span lost, or not arrived yet)"
    )


def awaited_span_text(missing: list[str]) -> str:
    """``waiting for the span of stage S ...``: what the web page says of an ended run's
    ``missing`` stages while the follower still waits for their spans (``SETTLE_TIMEOUT``)."""
    one = len(missing) == 1
    return (
        f"waiting for the {'span' if one else 'spans'} of {_stages_named(missing)}, up to "
        f"{SETTLE_TIMEOUT:g} s after the run's end: shown as skipped until "
        f"{'it arrives' if one else 'they arrive'}"
    )


def _stages_named(missing: list[str]) -> str:
    """``stage S`` or ``stages S, T``: the first five named, the rest counted."""
    named = ", ".join(missing[:_NAMED_MISSING])
    more = len(missing) - _NAMED_MISSING
    if more > 0:
        named += f" and {more} more"
    return f"{'stage' if len(missing) == 1 else 'stages'} {named}"


def _newest_span_end(run: RunRecord) -> float:
    """When the newest span of ``run`` a remote source holds ended: the latest end of an
    attempt (such a source holds ended spans only), else the run's start."""
    ends = (attempt.end for stage in run.stages for attempt in stage.attempts)
    return max((end for end in ends if end is not None), default=run.start)


def _quiet_line(run_id: str, seconds: float) -> str:
    """What ``on_quiet`` is told: the run, how long nothing came, and why that may last."""
    return (
        f"run {run_id}: no new span for {format_duration(seconds)}, still waiting "
        "(a run whose process died never ends in this source)"
    )
