"""What the OTel SDK's span limits cut from a long run: kept, or else counted and said.

The SDK keeps 128 events a span by default and drops the oldest past that. A run's span
gathers events for the whole run: a run of 200 stages waiting for an approval puts 800 on it
(each stage's request, its resolution and its trigger's two evaluations, before and after),
and at the SDK's default the first 672 were lost, every approval request among them: the run
read back with no approval waits at all, and nothing said so. The runs here are real
(``taskdaemon run`` in a subprocess, the embedded store, ``runs show``, ``dag --run`` and
``replay --dry-run``).
"""

from __future__ import annotations

import json
import sqlite3
import urllib.request
from collections import Counter
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import SpanLimits, TracerProvider

from cli_support import start_ui, taskdaemon
from taskdaemon.pipeline.cli.telemetry import span_limits
from taskdaemon.pipeline.tracking import SpanStore, SqliteSpanProcessor
from taskdaemon.pipeline.tracking.otlp_json import encode_traces, parse_traces
from taskdaemon.pipeline.tracking.spans import WRITTEN_SPAN_ITEMS, SpanRecord

STAGES = 200
#: The run span's events for ``STAGES`` approvals: request, resolution, two trigger
#: evaluations.
RUN_SPAN_EVENTS = 4 * STAGES
SDK_DEFAULT = 128


def _pipeline(folder: Path) -> Path:
    """``STAGES`` command stages, each an entry stage that waits for an approval."""
    lines = ["name: approvals", "concurrency: 8", "stages:"]
    for i in range(STAGES):
        lines += [
            f"  - name: s{i:03d}",
            '    command: "true"',
            "    triggers: [{manual: {approval_required: true}}]",
        ]
    path = folder / "approvals.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _run(home: Path, **env: str) -> str:
    """The id of a run of the approvals pipeline, every approval granted by the CLI."""
    done = taskdaemon(
        home, "run", str(_pipeline(home)), "--auto-approve", "--quiet", timeout=120, **env
    )
    assert (done.returncode, done.stderr) == (0, "")
    return done.stdout.strip()


def _show(home: Path, run_id: str) -> tuple[str, dict[str, object]]:
    """``runs show`` of the run, as a table and as JSON."""
    table = taskdaemon(home, "runs", "show", run_id)
    as_json = taskdaemon(home, "runs", "show", "--json", run_id)
    assert (table.returncode, table.stderr, as_json.returncode) == (0, "", 0)
    return table.stdout, json.loads(as_json.stdout)


def _root(home: Path, run_id: str) -> SpanRecord:
    with SpanStore(home / "spans.db") as store:
        return next(span for span in store.get_trace(run_id) if span.parent_span_id is None)


def _dropped(run: dict[str, object]) -> dict[str, object]:
    return {key: value for key, value in run.items() if key.endswith("_dropped_when_written")}


NOTHING_DROPPED = {
    "events_dropped_when_written": 0,
    "links_dropped_when_written": 0,
    "attributes_dropped_when_written": 0,
}


@pytest.mark.slow
def test_a_run_of_200_approvals_keeps_every_approval(home: Path) -> None:
    """Every stage's approval wait reads back, and nothing was dropped: the run span holds
    all 800 events, past the SDK's 128."""
    run_id = _run(home)
    table, run = _show(home, run_id)
    waits = run["approvals"]
    assert isinstance(waits, list)
    assert sorted(wait["stage"] for wait in waits) == [f"s{i:03d}" for i in range(STAGES)]
    assert all(wait["resolved"] is not None for wait in waits)
    assert (_dropped(run), "dropped" in table) == (NOTHING_DROPPED, False)
    assert "incomplete" not in _replay_notes(home, run_id)
    names = Counter(event.name for event in _root(home, run_id).events)
    assert names == {
        "approval.requested": STAGES,
        "approval.resolved": STAGES,
        "trigger.evaluated": 2 * STAGES,
    }


@pytest.mark.slow
def test_the_users_own_event_limit_wins_and_what_it_drops_is_said(home: Path) -> None:
    """With ``OTEL_SPAN_EVENT_COUNT_LIMIT`` at the SDK's default, the run span keeps its last
    128 events: the first approval requests are gone, and ``runs show``, its JSON,
    ``dag --run`` and the web page's run data say how many events were dropped when
    written."""
    run_id = _run(home, OTEL_SPAN_EVENT_COUNT_LIMIT=str(SDK_DEFAULT))
    table, run = _show(home, run_id)
    lost = RUN_SPAN_EVENTS - SDK_DEFAULT
    assert len(_root(home, run_id).events) == SDK_DEFAULT
    assert len(run["approvals"]) < STAGES  # type: ignore[arg-type]
    assert _dropped(run) == {**NOTHING_DROPPED, "events_dropped_when_written": lost}
    assert f"dropped   {lost} span events when written" in table.splitlines()
    dag = taskdaemon(home, "dag", "--run", run_id, "--format", "json")
    assert (dag.returncode, dag.stderr) == (
        0,
        f"taskdaemon dag: dropped: {lost} span events when written\n",
    )
    assert _dropped(_web_run_data(home, run_id)) == _dropped(run)
    assert _replay_notes(home, run_id) == (
        f"note: the record of run {run_id} is incomplete (span events and links: {lost} dropped "
        "when written): the replay may differ where they mattered\n"
    )


def _replay_notes(home: Path, run_id: str) -> str:
    """What ``replay --dry-run`` says on stderr before its plan."""
    done = taskdaemon(home, "replay", run_id, "--dry-run")
    assert done.returncode == 0, done.stderr
    return done.stderr


def _web_run_data(home: Path, run_id: str) -> dict[str, object]:
    """``/api/runs/RUN`` of a real ``taskdaemon ui`` over the home's store."""
    ui, url, token = start_ui(home, cwd=home)
    try:
        request = urllib.request.Request(
            f"{url}/api/runs/{run_id}", headers={"Authorization": f"Bearer {token}"}
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            answer: dict[str, object] = json.loads(response.read())
    finally:
        ui.terminate()
        ui.communicate(timeout=30)
    return answer


def test_the_tracer_provider_keeps_what_a_reader_reads_unless_the_user_says_otherwise(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OTEL_SPAN_EVENT_COUNT_LIMIT", raising=False)
    monkeypatch.delenv("OTEL_SPAN_LINK_COUNT_LIMIT", raising=False)
    monkeypatch.delenv("OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", raising=False)
    ours = span_limits()
    assert (ours.max_events, ours.max_links, ours.max_span_attributes) == (
        WRITTEN_SPAN_ITEMS,
        WRITTEN_SPAN_ITEMS,
        SpanLimits().max_span_attributes,
    )
    monkeypatch.setenv("OTEL_SPAN_EVENT_COUNT_LIMIT", "7")
    monkeypatch.setenv("OTEL_SPAN_LINK_COUNT_LIMIT", "0")
    theirs = span_limits()
    assert (theirs.max_events, theirs.max_links) == (7, 0)


def test_what_the_sdk_dropped_reaches_the_store_and_otlp_json(tmp_path: Path) -> None:
    """A span past every limit (attributes, events, links), written by the real SDK into the
    real store: the store's record carries the three counts, the SDK's record the same, and
    they survive OTLP JSON both ways (``droppedAttributesCount`` and its siblings)."""
    db = tmp_path / "spans.db"
    processor = SqliteSpanProcessor(db)
    provider = TracerProvider(span_limits=SpanLimits(max_span_attributes=2, max_events=1))
    provider.add_span_processor(processor)
    try:
        tracer = provider.get_tracer("test")
        with tracer.start_as_current_span("s", attributes={f"a{i}": i for i in range(5)}) as span:
            for i in range(4):
                span.add_event(f"e{i}")
            context = span.get_span_context()
        provider.force_flush()
    finally:
        provider.shutdown()
    run_id = format(context.trace_id, "032x")
    with SpanStore(db) as store:
        (stored,) = store.get_trace(run_id)
    counts = (
        stored.attributes_dropped_when_written,
        stored.events_dropped_when_written,
        stored.links_dropped_when_written,
    )
    assert (counts, len(stored.attributes), [e.name for e in stored.events]) == (
        (3, 3, 0),
        2,
        ["e3"],
    )
    document = encode_traces([stored])
    encoded = document["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    assert (encoded["droppedAttributesCount"], encoded["droppedEventsCount"]) == (3, 3)
    assert "droppedLinksCount" not in encoded  # zero, as OTLP leaves it out
    assert parse_traces(document) == [stored]
    encoded["droppedEventsCount"] = "-3"  # no count: the span is refused, as any bad field
    assert parse_traces(document) == []
    with sqlite3.connect(db) as conn:
        (body,) = conn.execute("SELECT body FROM spans").fetchone()
    conn.close()
    assert json.loads(body)[8] == [3, 3, 0]
