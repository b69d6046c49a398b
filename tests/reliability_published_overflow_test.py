"""A stage that publishes more events than its span keeps loses published events, never its
own records, and says how many it lost.

The OTel SDK drops a span's *oldest* event past its event limit: a stage publishing as many
events as the limit lost its ``stage.input`` (read back as no input at all), and replay
called the record incomplete. Now the published events past the room the stage's own
records leave are the ones not recorded, counted with what the SDK dropped
(``monitor/_spans.py``, ``count_if_full``). The runs here are real: ``taskdaemon run`` in a
subprocess, the embedded store, ``runs show`` and ``replay --dry-run``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli_support import taskdaemon, write
from taskdaemon.pipeline import telemetry as t
from taskdaemon.pipeline.tracking import SpanStore
from taskdaemon.pipeline.tracking.spans import WRITTEN_SPAN_ITEMS, SpanRecord

#: The events a stage span gives its own records here: ``stage.input`` and its closing one.
OWN = 2


def _run(home: Path, folder: Path, published: int, *, fail: bool, **env: str) -> str:
    """The id of a run of one Python stage, given the input ``k=v``, that publishes
    ``published`` events and then returns, or raises when ``fail``."""
    write(
        folder / "publisher.py",
        f"""\
        def publish(ctx):
            for n in range({published}):
                ctx.publish("tick", {{"n": n}})
            if {fail}:
                raise RuntimeError("after the events")
            return {{"done": True}}
        """,
    )
    pipeline = write(
        folder / "ticks.yaml",
        """\
        name: ticks
        stages:
          - name: a
            handler: "publisher:publish"
            emits: [tick]
            triggers: [{manual: {approval_required: false}}]
            inputs: {k: request.k}
        """,
    )
    done = taskdaemon(home, "run", "-q", "-i", "k=v", str(pipeline), cwd=folder, **env)
    assert done.returncode == (1 if fail else 0), done.stderr
    run_id = done.stdout.strip()
    warning = (
        f"run {run_id}: the span of a.0.1 holds all the events its limit keeps: later "
        "published events and trigger evaluations on it are counted as dropped, not recorded"
    )
    (said,) = [line for line in done.stderr.splitlines() if "WARNING" in line]
    # Followed by the stage's ids when the engine's thread recorded the event, as it does
    # once the monitor's queue holds ``_record_queue.HEAVY_BOUND`` published events.
    assert warning in said
    return run_id


def _stage_span(home: Path, run_id: str) -> SpanRecord:
    with SpanStore(home / "spans.db") as store:
        return next(span for span in store.get_trace(run_id) if span.name == "a")


def _check(home: Path, run_id: str, room: int, lost: int, *, fail: bool) -> None:
    """The stage's input and closing record are whole, its first ``room`` published events
    are kept, and ``lost`` are counted and said by ``runs show`` and ``replay``."""
    span = _stage_span(home, run_id)
    closing = "exception" if fail else t.EVENT_STAGE_OUTPUT
    assert [event.name for event in span.events] == [
        t.EVENT_STAGE_INPUT,
        *[t.EVENT_PUBLISHED] * room,
        closing,
    ]
    published = [e.attributes[t.PUBLISHED_EVENT_ID] for e in span.events[1:-1]]
    assert published == list(range(1, room + 1))
    assert span.events_dropped_when_written == lost
    table = taskdaemon(home, "runs", "show", run_id)
    as_json = taskdaemon(home, "runs", "show", "--json", run_id)
    assert (table.returncode, table.stderr, as_json.returncode) == (0, "", 0)
    assert f"dropped   {lost} span events when written" in table.stdout.splitlines()
    run = json.loads(as_json.stdout)
    assert run["events_dropped_when_written"] == lost
    (attempt,) = run["stages"][0]["attempts"]
    assert attempt["inputs"] == '{"k":"v"}'
    assert attempt["outputs"] == (None if fail else '{"done":true}')
    assert len(attempt["published"]) == room
    replay = taskdaemon(home, "replay", run_id, "--dry-run")
    assert replay.returncode == 0, replay.stderr
    assert replay.stderr == (
        f"note: the record of run {run_id} is incomplete (span events and links: {lost} "
        "dropped when written): the replay may differ where they mattered\n"
    )


@pytest.mark.parametrize("fail", [False, True], ids=["output", "exception"])
def test_past_a_small_event_limit_published_events_are_lost_not_the_stages_records(
    home: Path, tmp_path: Path, fail: bool
) -> None:
    """With ``OTEL_SPAN_EVENT_COUNT_LIMIT=10``, a stage publishing 13 events keeps its input,
    its output (or its exception) and its first 8 events; the other 5 are counted."""
    limit, lost = 10, 5
    room = limit - OWN
    run_id = _run(home, tmp_path, room + lost, fail=fail, OTEL_SPAN_EVENT_COUNT_LIMIT=str(limit))
    _check(home, run_id, room, lost, fail=fail)


@pytest.mark.slow
def test_at_the_default_limit_published_events_are_lost_not_the_stages_records(
    home: Path, tmp_path: Path
) -> None:
    """At the limit the tracer provider ``taskdaemon`` builds keeps, the same: the stage's
    input and output read back whole and exactly the 3 events past the room are lost."""
    room, lost = WRITTEN_SPAN_ITEMS - OWN, 3
    run_id = _run(home, tmp_path, room + lost, fail=False)
    _check(home, run_id, room, lost, fail=False)
