"""One run, the same bytes from every span source: the embedded store, Tempo, Jaeger, an
OTLP-JSON file and a debug dump, for every command that reads runs back (``runs list``,
``runs show`` and its ``--json`` and ``--at``, ``dag --run`` in each format, ``report`` in each
format, ``logs``, ``replay --dry-run``).

The runs are real: ``examples/feature_delivery.yaml`` (fan-out instances, published events,
an approval), a pipeline whose first stage fails once and is retried, whose two middle stages
start together and whose last stage fails, a replay of it, and that pipeline again under span
limits of one event and no link a span, so that the SDK drops some of each when writing. Their
spans are read from the store, then served as each other source holds them: Tempo's v2 answer
(base64 ids, enums as integers, the run in two chunks, spans in reverse), Jaeger's (attribute
lists sorted by key and events by name, as its ``SortCollections`` adjuster does), an OTLP-JSON
file of shuffled lines and one dump per run. The readers are the real ones, over a real local
HTTP server.

What is normalised, and why: a report names the source it read (``(sqlite:///...)``), which is
replaced by ``SOURCE``; a dump holds one run, so it is compared on the commands about that run;
``logs`` reads run logs the store and a dump keep, and the other sources say so in one line
(docs/span-store.md, "The same run from every source")."""

from __future__ import annotations

import difflib
import json
import random
import shutil
import sqlite3
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from cli_support import taskdaemon
from pipeline_tracking_support import Backend, serve
from taskdaemon.pipeline.cli import main
from taskdaemon.pipeline.record_fields import replace
from taskdaemon.pipeline.tracking import SpanStore, encode_traces, reconstruct_run
from taskdaemon.pipeline.tracking.spans import SpanRecord

pytestmark = pytest.mark.slow

EXAMPLE = "examples/feature_delivery.yaml"
SINCE, UNTIL = "2020-01-01T00:00:00Z", "2100-01-01T00:00:00Z"

#: Fails its first attempt (a marker file says it was tried), then left and right start
#: together, and broken fails both its attempts.
FLAKY = """\
name: flaky
error_strategy: retry
retry: {{max_attempts: 2, backoff: {{initial: 10ms, factor: 1.0, max: 10ms}}}}
stages:
  - name: fetch
    loop: command
    command: "test -e '{marker}' || {{ touch '{marker}'; echo first try fails >&2; exit 3; }}"
    triggers: [{{manual: {{approval_required: false}}}}]
  - name: left
    loop: command
    command: "echo left"
    triggers: [{{on_completion: {{stage: fetch}}}}]
  - name: right
    loop: command
    command: "echo right"
    triggers: [{{on_completion: {{stage: fetch}}}}]
  - name: broken
    loop: command
    command: "exit 1"
    triggers: [{{on_completion: {{stage: left}}}}]
"""


@dataclass(frozen=True)
class Recorded:
    """The store of the four runs, their spans, and one dump per run."""

    db: Path
    spans: dict[str, list[SpanRecord]]  # run id -> its spans, as the store gives them
    dumps: dict[str, Path]
    otlp: Path
    limited: str  # the run written under span limits


def _run_ids(home: Path) -> list[str]:
    with SpanStore(home / "spans.db") as store:
        return [summary.run_id for summary in store.search(limit=10)]


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Recorded:
    """Four real runs written by ``taskdaemon run`` and ``taskdaemon replay``."""
    tmp = tmp_path_factory.mktemp("sources")
    home = tmp / "home"
    example = taskdaemon(home, "run", EXAMPLE, "--auto-approve", "--quiet")
    assert 0 == example.returncode, example.stderr
    flaky = tmp / "flaky.yaml"
    flaky.write_text(FLAKY.format(marker=tmp / "tried"))
    assert 1 == taskdaemon(home, "run", str(flaky), "--quiet").returncode
    flaky_id, example_id = _run_ids(home)  # the newest first
    assert 1 == taskdaemon(home, "replay", flaky_id, "--quiet").returncode
    replay_id = _run_ids(home)[0]
    assert example_id != replay_id != flaky_id
    limited = tmp / "limited.yaml"
    limited.write_text(FLAKY.format(marker=tmp / "tried again"))
    limits = {"OTEL_SPAN_EVENT_COUNT_LIMIT": "1", "OTEL_SPAN_LINK_COUNT_LIMIT": "0"}
    assert 1 == taskdaemon(home, "run", str(limited), "--quiet", **limits).returncode
    limited_id = _run_ids(home)[0]
    with SpanStore(home / "spans.db") as store:
        spans = {run_id: store.get_trace(run_id) for run_id in _run_ids(home)}
    assert 4 == len(spans)
    dumps = {run_id: tmp / f"{run_id}.tar.gz" for run_id in spans}
    for run_id, dump in dumps.items():
        assert 0 == main(
            ["dump", run_id, "-o", str(dump), "--source", f"sqlite:///{home}/spans.db"]
        )
    every = [span for run in spans.values() for span in run]
    random.Random(33).shuffle(every)
    otlp = tmp / "spans.jsonl"
    otlp.write_text("".join(json.dumps(encode_traces([span])) + "\n" for span in every))
    return Recorded(home / "spans.db", spans, dumps, otlp, limited_id)


def _sorted_by_key(attributes: list[dict[str, Any]]) -> None:
    attributes.sort(key=lambda item: str(item["key"]))


def _as_jaeger(spans: list[SpanRecord]) -> dict[str, Any]:
    """``spans`` as Jaeger's API v3 answers them: OTLP/JSON, enums as integers, each attribute
    list sorted by key and each span's events by name."""
    document = encode_traces(spans, enums="int")
    for resource_spans in document["resourceSpans"]:
        _sorted_by_key(resource_spans["resource"]["attributes"])
        for scope in resource_spans["scopeSpans"]:
            for span in scope["spans"]:
                _sorted_by_key(span.get("attributes", []))
                span.get("events", []).sort(key=lambda event: event["name"])
                for item in (*span.get("events", []), *span.get("links", [])):
                    _sorted_by_key(item.get("attributes", []))
    return {"result": document}


def _as_tempo(spans: list[SpanRecord]) -> dict[str, Any]:
    """``spans`` as Tempo's v2 trace answer: base64 ids, integer enums, in two chunks, the
    later spans first."""
    backwards = spans[::-1]
    half = len(backwards) // 2
    chunks = [
        encode_traces(part, ids="base64", enums="int")
        for part in (backwards[:half], backwards[half:])
    ]
    return {
        "trace": {"resourceSpans": [rs for c in chunks for rs in c["resourceSpans"]]},
        "status": "COMPLETE",
    }


@contextmanager
def _sources(recorded: Recorded) -> Iterator[dict[str, str]]:
    """Name -> URL of every source holding all three runs, served while the block runs."""
    with ExitStack() as stack:
        tempo = stack.enter_context(serve(Backend()))
        jaeger = stack.enter_context(serve(Backend()))
        every: list[SpanRecord] = []
        found = []
        for run_id, spans in recorded.spans.items():
            tempo.route(f"/api/v2/traces/{run_id}", _as_tempo(spans))
            jaeger.route(f"/api/v3/traces/{run_id}", _as_jaeger(spans))
            every += spans
            start = min(span.start_ns for span in spans)
            # As Tempo spells a found trace's id: without its leading zeros.
            found.append({"traceID": run_id.lstrip("0"), "startTimeUnixNano": str(start)})
        tempo.route("/api/search", {"traces": found})
        jaeger.route("/api/v3/traces", _as_jaeger(every[::-1]))
        yield {
            "store": f"sqlite:///{recorded.db}",
            "tempo": f"tempo+{tempo.url}",
            "jaeger": f"jaeger+{jaeger.url}",
            "otlp-json": f"otlp-json://{recorded.otlp}",
        }


def _output(
    capsys: pytest.CaptureFixture[str], command: tuple[str, ...], source: str
) -> tuple[int, str, str]:
    """Exit code, stdout and stderr of ``command`` reading ``source``, the source's name in
    them replaced by ``SOURCE``."""
    code = main([*command, "--source", source])
    out, err = capsys.readouterr()
    return code, out.replace(source, "SOURCE"), err.replace(source, "SOURCE")


def _assert_same(expected: tuple[int, str, str], output: tuple[int, str, str], what: str) -> None:
    """``output`` equals ``expected``, else a failure showing the lines that differ."""
    if expected != output:
        lines = difflib.unified_diff(
            "\n".join(expected[1:]).splitlines(),
            "\n".join(output[1:]).splitlines(),
            lineterm="",
            n=0,
        )
        pytest.fail(
            f"{what} differs from the store: exit {output[0]}\n" + "\n".join(list(lines)[:40])
        )


#: Commands over every run a source holds (a dump holds one: not compared here).
OVER_ALL_RUNS = [
    ("runs", "list", "--since", SINCE, "--until", UNTIL),
    ("runs", "list", "--json", "--since", SINCE, "--until", UNTIL),
    ("runs", "list", "--json", "--status", "failure", "--since", SINCE, "--until", UNTIL),
    *(
        ("report", "--format", f, "--since", SINCE, "--until", UNTIL)
        for f in ("json", "markdown", "table", "html")
    ),
]

#: Commands about one run (``RUN`` is its id), compared for the dump of that run too.
ABOUT_ONE_RUN = [
    ("runs", "show", "RUN"),
    ("runs", "show", "--json", "RUN"),
    ("runs", "show", "--wide", "RUN"),
    ("runs", "show", "--at", "0.3s", "RUN"),
    ("runs", "show", "--json", "--at", "1s", "RUN"),
    *(("dag", "--run", "RUN", "--format", f) for f in ("json", "dot", "mermaid", "svg")),
    ("replay", "RUN", "--dry-run"),
]


@pytest.mark.parametrize("command", OVER_ALL_RUNS, ids=" ".join)
def test_every_source_gives_the_same_bytes_over_all_runs(
    recorded: Recorded, capsys: pytest.CaptureFixture[str], command: tuple[str, ...]
) -> None:
    with _sources(recorded) as sources:
        outputs = {name: _output(capsys, command, url) for name, url in sources.items()}
    expected = outputs.pop("store")
    assert (0, "") == (expected[0], expected[2])
    assert "flaky" in expected[1]
    for name, output in outputs.items():
        _assert_same(expected, output, name)


@pytest.mark.parametrize("command", ABOUT_ONE_RUN, ids=" ".join)
def test_every_source_gives_the_same_bytes_about_each_run(
    recorded: Recorded, capsys: pytest.CaptureFixture[str], command: tuple[str, ...]
) -> None:
    with _sources(recorded) as sources:
        for run_id, dump in recorded.dumps.items():
            asked = tuple(run_id if word == "RUN" else word for word in command)
            urls = {**sources, "dump": f"dump://{dump}"}
            outputs = {name: _output(capsys, asked, url) for name, url in urls.items()}
            expected = outputs.pop("store")
            # ``dag --run`` says on stderr what the SDK dropped from the limited run's spans,
            # and ``replay`` that its record is incomplete.
            said = run_id == recorded.limited and (
                "dropped: " in expected[2] or "is incomplete" in expected[2]
            )
            assert (0, "") == (expected[0], "" if said else expected[2]), asked
            for name, output in outputs.items():
                _assert_same(expected, output, f"{name}: {' '.join(asked)}")


def test_what_the_sdk_dropped_when_writing_is_said_alike_by_every_source(
    recorded: Recorded, capsys: pytest.CaptureFixture[str]
) -> None:
    """The run written under span limits: every source gives back the counts the SDK dropped
    (the store from its rows, the others from OTLP's ``dropped*Count``), so the same-bytes
    tests above compare a ``dropped`` line that is there."""
    run_id = recorded.limited
    with _sources(recorded) as sources:
        urls = {**sources, "dump": f"dump://{recorded.dumps[run_id]}"}
        shown = {
            name: _output(capsys, ("runs", "show", "--json", run_id), url)
            for name, url in urls.items()
        }
    counts = {
        name: {k: v for k, v in json.loads(out).items() if k.endswith("_dropped_when_written")}
        for name, (_, out, _) in shown.items()
    }
    store = counts.pop("store")
    assert store["events_dropped_when_written"] > 0
    assert store["links_dropped_when_written"] > 0
    assert counts == dict.fromkeys(counts, store)


def test_run_logs_are_the_same_from_the_store_and_the_dump_and_said_missing_elsewhere(
    recorded: Recorded, capsys: pytest.CaptureFixture[str]
) -> None:
    with _sources(recorded) as sources:
        for run_id, dump in recorded.dumps.items():
            expected = _output(capsys, ("logs", run_id), sources["store"])
            assert 0 == expected[0]
            assert f"run {run_id}" in expected[1]
            assert expected == _output(capsys, ("logs", run_id), f"dump://{dump}")
            for url in (sources["tempo"], sources["jaeger"], sources["otlp-json"]):
                code, out, err = _output(capsys, ("logs", run_id), url)
                assert (2, "") == (code, out)
                assert err.startswith("taskdaemon logs: run logs are kept in the embedded store")


def test_a_dump_lists_a_runs_logs_in_the_stores_order_not_by_time(
    recorded: Recorded, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The store lists records as they were stored; one can be older than the record stored
    before it (they come from several threads). The dump was read back by time, and ``logs``
    printed two orders for one run (the test above failed so once in CI)."""
    db = tmp_path / "spans.db"
    shutil.copyfile(recorded.db, db)
    run_id = next(iter(recorded.dumps))
    conn = sqlite3.connect(db)
    with conn:
        first, last = conn.execute(
            "SELECT min(id), max(id) FROM logs WHERE trace_id = ?", (run_id,)
        ).fetchone()
        conn.execute(
            "UPDATE logs SET time_ns = (SELECT time_ns - 1 FROM logs WHERE id = ?) WHERE id = ?",
            (first, last),
        )
    conn.close()
    dump = tmp_path / "run.tar.gz"
    assert 0 == main(["dump", run_id, "-o", str(dump), "--source", f"sqlite:///{db}"])
    capsys.readouterr()
    expected = _output(capsys, ("logs", run_id), f"sqlite:///{db}")
    assert expected == _output(capsys, ("logs", run_id), f"dump://{dump}")


def test_run_attributes_are_in_key_order_whatever_order_the_source_gave(
    recorded: Recorded, capsys: pytest.CaptureFixture[str]
) -> None:
    """The cause of the first difference found: Jaeger's attributes came in key order, the
    store's in the writer's, and ``runs show --json`` printed them as they came."""
    run_id = next(iter(recorded.spans))
    assert 0 == main(["runs", "show", "--json", run_id, "--source", f"sqlite:///{recorded.db}"])
    attributes = list(json.loads(capsys.readouterr().out)["attributes"])
    assert sorted(attributes) == attributes
    root = next(span for span in recorded.spans[run_id] if span.parent_span_id is None)
    assert sorted(root.attributes) != list(root.attributes)  # the store keeps the writer's order


def _published(record: Any) -> list[tuple[float, str]]:
    """Every event each attempt of ``record`` published, in the order the record holds them
    (``AttemptRecord.published`` is left out of the records' equality)."""
    return [
        event
        for stage in record.stages
        for attempt in stage.attempts
        for event in attempt.published
    ]


def test_a_run_is_the_same_whatever_order_its_spans_and_events_come_in(recorded: Recorded) -> None:
    """Events read in turn (the events a stage published, the run span's breakpoint and
    approval events) are taken in time order: Jaeger gives a span's events by name, and one
    that sorts them unstably may swap two of the same name."""
    published = []
    for spans in recorded.spans.values():
        turned = [replace(span, events=span.events[::-1]) for span in reversed(spans)]
        record = reconstruct_run(spans)
        assert record == reconstruct_run(turned)
        assert _published(record) == _published(reconstruct_run(turned))
        published += _published(record)
    # The example's specification publishes one event per spec, from one attempt, in turn.
    assert sorted(published) == published
    assert len(published) > 1
