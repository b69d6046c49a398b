"""The writer's report aggregates, computed from what it kept of each run's stage spans, are the
rows a rebuild of the same runs from their stored spans writes: every aggregate table, row for
row, over runs of many shapes (retries, fan-out, skips, failures, DAG edges and declared
upstream lists, ties, stages started before their upstream ended, times whose float seconds
round, stages fired by events their upstream published while it ran on)."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

from pipeline_tracking_support import (
    RESOURCE,
    T0,
    kept_and_rebuilt,
    make_provider,
)
from taskdaemon.pipeline import telemetry as t
from taskdaemon.pipeline.reporting import FED, run_critical_path, stage_intervals
from taskdaemon.pipeline.tracking import RetentionPolicy, SpanStore, SqliteSpanProcessor, _kept_runs
from taskdaemon.pipeline.tracking._day_totals import refresh_stale_days
from taskdaemon.pipeline.tracking._kept_runs import (
    EdgeUpstream,
    Kept,
    attempt_from_sdk,
    kept_run,
)
from taskdaemon.pipeline.tracking._schema import connect

_HOUR = 3600 * 10**9


def _write_random_run(tracer: Any, rng: random.Random, number: int) -> None:
    """One ended run of a random DAG of 2-9 stages, its spans ended in an order a run could."""
    pipeline = rng.choice(["etl", "deploy"])
    names = [f"s{i}" for i in range(rng.randrange(2, 10))]
    upstream = {
        name: rng.sample(names[:i], min(i, rng.randrange(3))) for i, name in enumerate(names)
    }
    edges = [json.dumps([u, n, ["on_completion", u, True]]) for n in names for u in upstream[n]]
    start = T0 + number * rng.choice([7, _HOUR // 10**9]) * 10**9 + rng.randrange(10**9)
    attributes: dict[str, Any] = {
        t.CICD_PIPELINE_NAME: pipeline,
        t.CICD_PIPELINE_ACTION_NAME: t.RUN_ACTION,
        t.PIPELINE_STAGES: names,
    }
    if rng.random() < 0.7:  # else the declared upstream lists alone
        attributes[t.PIPELINE_EDGE_SPECS] = edges
    root = tracer.start_span(
        t.run_span_name(pipeline), kind=SpanKind.SERVER, start_time=start, attributes=attributes
    )
    context = trace.set_span_in_context(root)
    ends: dict[str, int] = {}
    # (execution's span context, a time it published an event at), of the executions so far
    published: list[tuple[Any, int]] = []
    last = start
    for name in names:
        ready = max((ends.get(u, start) for u in upstream[name]), default=start)
        begin = ready + rng.choice([0, 1, 137, 10**6, -(10**5), rng.randrange(10**9)])
        links = []
        if published and rng.random() < 0.4:  # fired by an event, maybe before its end
            publisher, at = rng.choice(published)
            begin = at + rng.choice([0, 1, 137, 10**6, -(10**5)])
            links.append(Link(publisher, {t.LINK_RELATION: t.LINK_TRIGGERED_BY}))
        if rng.random() < 0.2:  # a link of another kind is no release
            links.append(Link(root.get_span_context(), {t.LINK_RELATION: t.LINK_PARENT}))
        if rng.random() < 0.1:  # never ran: a zero-length skip span
            skip = tracer.start_span(
                name,
                context=context,
                start_time=begin,
                attributes={t.CICD_TASK_NAME: name, t.CICD_TASK_RUN_RESULT: t.RESULT_SKIP},
            )
            skip.end(begin)
            continue
        tries = rng.choice([1, 1, 1, 2, 3])
        instances = rng.choice([1, 1, 1, 2])
        for instance in range(instances):
            at = begin + instance * rng.randrange(1000)
            for attempt in range(1, tries + 1):
                failing = attempt < tries or rng.random() < 0.05
                stage_attributes: dict[str, Any] = {
                    t.CICD_PIPELINE_NAME: pipeline,
                    t.CICD_TASK_NAME: name,
                    t.CICD_TASK_RUN_ID: f"{name}.{instance}.{attempt}",
                    t.STAGE_ATTEMPT: attempt,
                    t.STAGE_INSTANCE: instance,
                    t.STAGE_UPSTREAM: upstream[name],
                }
                if rng.random() < 0.8:
                    stage_attributes[t.STAGE_QUEUE_TIME] = rng.random() / 50
                if rng.random() < 0.8:
                    stage_attributes[t.STAGE_CPU_TIME] = rng.random() / 10
                if rng.random() < 0.8:
                    stage_attributes[t.STAGE_PEAK_MEMORY] = rng.randrange(10**9)
                span = tracer.start_span(
                    name, context=context, start_time=at, attributes=stage_attributes, links=links
                )
                if rng.random() < 0.5:
                    span.set_attribute(t.STAGE_STATUS, "failure" if failing else "success")
                elif rng.random() < 0.5:
                    result = t.RESULT_FAILURE if failing else t.RESULT_SUCCESS
                    span.set_attribute(t.CICD_TASK_RUN_RESULT, result)
                elif failing:
                    span.set_status(Status(StatusCode.ERROR))
                took = rng.choice([0, 1, 999, 10**6 + 1, rng.randrange(5 * 10**9)])
                for _ in range(rng.choice([0, 0, 1, 2])):
                    when = at + rng.randrange(took + 1)
                    event = rng.choice(["spec.ready", "part"])
                    attributes = {t.PUBLISHED_EVENT_TYPE: event}
                    span.add_event(t.EVENT_PUBLISHED, attributes, timestamp=when)
                    published.append((span.get_span_context(), when))
                span.end(at + took)
                at += took + rng.randrange(10**6)
                last = max(last, at)
            ends[name] = max(ends.get(name, 0), at)
    result = rng.choice([t.RESULT_SUCCESS, t.RESULT_FAILURE])
    root.set_attribute(t.CICD_PIPELINE_RESULT, result)
    root.end(last + rng.randrange(10**7))


def test_kept_attempts_give_the_rows_of_runs_rebuilt_from_their_spans(tmp_path: Path) -> None:
    db = tmp_path / "spans.db"
    rng = random.Random(14)
    provider = TracerProvider(resource=RESOURCE)
    processor = SqliteSpanProcessor(db, retention=RetentionPolicy())
    provider.add_span_processor(processor)
    try:
        tracer = provider.get_tracer(t.SCOPE_NAME)
        for number in range(120):
            _write_random_run(tracer, rng, number)
            if number % 7 == 0:
                assert processor.force_flush()  # some batches end mid-way through runs
    finally:
        provider.shutdown()
    conn = connect(db)
    try:
        kept, rebuilt_runs, rebuilt = kept_and_rebuilt(conn)
    finally:
        conn.close()
    assert rebuilt_runs == 120
    assert len(kept["stage_attempts"]) > 500
    with SpanStore(db) as store:
        runs = [store.get_run(summary.run_id) for summary in store.search(limit=200)]
    # Steps cut at a publish, many of them before their stage's end: the runs drew them.
    cut = [
        (step, stage_intervals(run)[step.stage])
        for run in runs
        for step in run_critical_path(run).steps
        if step.event is not None
    ]
    assert len(cut) > 20
    assert sum(step.end < stage[1] for step, stage in cut) > 10
    assert {table: len(rows) for table, rows in kept.items()} == {
        table: len(rows) for table, rows in rebuilt.items()
    }
    assert kept == rebuilt


def test_a_run_span_ended_twice_is_aggregated_once(tmp_path: Path) -> None:
    """A run span that reaches the writer twice (in one batch, and in a later one) leaves its
    run's rows once and its days rebuilt, not counted twice, and no batch is lost."""
    db = tmp_path / "spans.db"
    rng = random.Random(3)
    exporter_provider, exporter = make_provider()
    tracer = exporter_provider.get_tracer(t.SCOPE_NAME)
    for number in range(3):
        _write_random_run(tracer, rng, number)
    spans = exporter.get_finished_spans()
    roots = [span for span in spans if span.parent is None]
    processor = SqliteSpanProcessor(db, retention=RetentionPolicy(), flush_interval=600)
    try:
        for root in roots:  # each run starts before its stages, as the SDK calls them
            processor.on_start(root)  # type: ignore[arg-type]
        for span in spans:
            if span.parent is not None:
                processor.on_start(span)  # type: ignore[arg-type]
            processor.on_end(span)
        processor.on_end(roots[0])  # again, in the same batch
        assert processor.force_flush()
        processor.on_end(roots[1])  # again, in a later batch
        assert processor.force_flush()
        assert processor.dropped_spans == 0
    finally:
        processor.shutdown()
    conn = connect(db)
    try:
        refresh_stale_days(conn)
        kept, rebuilt_runs, rebuilt = kept_and_rebuilt(conn)
        assert rebuilt_runs == 3
    finally:
        conn.close()
    assert len(kept["run_aggregates"]) == 3
    assert kept == rebuilt


# -- what is kept of one attempt, and one run's figures, value by value --------------------------

_SPAN_ID = "00000000000000a1"


@pytest.fixture(autouse=True)
def _fresh_upstream_lists(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts with no shared upstream list: one kept from an earlier test would be
    handed back without the conversion a test means to check."""
    monkeypatch.setattr(_kept_runs, "_UPSTREAMS", {})


def _kept(attributes: dict[str, Any], events: Any = (), links: Any = ()) -> Kept:
    return attempt_from_sdk(attributes, "build", _SPAN_ID, "success", T0, T0 + 10**9, events, links)


@pytest.mark.parametrize(
    ("key", "value", "index", "expected"),
    [
        (t.STAGE_ATTEMPT, 7, 2, 7),
        (t.STAGE_ATTEMPT, 2.0, 2, 2),
        (t.STAGE_ATTEMPT, "3", 2, 3),
        (t.STAGE_ATTEMPT, "x", 2, 1),
        (t.STAGE_ATTEMPT, 2**60 + 1, 2, 2**60 + 1),
        (t.STAGE_ATTEMPT, True, 2, 1),
        (t.STAGE_ATTEMPT, 0, 2, 1),
        (t.STAGE_ATTEMPT, None, 2, 1),
        (t.STAGE_PEAK_MEMORY, 7, 8, 7),
        (t.STAGE_PEAK_MEMORY, 5.5, 8, 5),
        (t.STAGE_PEAK_MEMORY, 2**60 + 1, 8, 2**60 + 1),
        (t.STAGE_PEAK_MEMORY, "7", 8, 7),
        (t.STAGE_PEAK_MEMORY, "x", 8, None),
        (t.STAGE_PEAK_MEMORY, True, 8, None),
        (t.STAGE_PEAK_MEMORY, None, 8, None),
        (t.STAGE_QUEUE_TIME, 0.25, 6, 0.25),
        (t.STAGE_QUEUE_TIME, 3, 6, 3.0),
        (t.STAGE_QUEUE_TIME, "3", 6, 3.0),
        (t.STAGE_QUEUE_TIME, "x", 6, None),
        (t.STAGE_QUEUE_TIME, False, 6, None),
        (t.STAGE_QUEUE_TIME, None, 6, None),
        (t.STAGE_CPU_TIME, 0.5, 7, 0.5),
        (t.STAGE_CPU_TIME, 2, 7, 2.0),
        (t.STAGE_CPU_TIME, "2", 7, 2.0),
        (t.STAGE_CPU_TIME, "x", 7, None),
        (t.STAGE_CPU_TIME, True, 7, None),
        (t.STAGE_CPU_TIME, None, 7, None),
        (t.STAGE_UPSTREAM, ("a", "b"), 9, ("a", "b")),
        (t.STAGE_UPSTREAM, (1, 2), 9, ("1", "2")),
        (t.STAGE_UPSTREAM, ["a", 1], 9, ("a", "1")),  # unhashable: converted, not shared
        (t.STAGE_UPSTREAM, (["a"],), 9, ("['a']",)),
        (t.STAGE_UPSTREAM, "ab", 9, ("ab",)),  # a single name
        (t.STAGE_UPSTREAM, {"a": 1}, 9, ("{'a': 1}",)),
        (t.STAGE_UPSTREAM, None, 9, None),
    ],
)
def test_an_attempts_numbers_and_upstream_are_kept_as_a_rebuild_reads_them(
    key: str, value: Any, index: int, expected: Any
) -> None:
    """A value of another type than the engine writes is read as a rebuild of the run from
    its stored spans reads it (``reconstruct``): a float's whole part, text that reads as a
    number, a bool as none; an upstream list as a tuple of names, a single value as one."""
    kept = _kept({} if value is None else {key: value})
    assert kept[index] == expected
    assert type(kept[index]) is type(expected)


def test_a_kept_attempt_holds_its_stage_times_failure_links_and_published_events() -> None:
    """The span ids its links name and the (time, type) of its ``published`` events only."""
    provider, exporter = make_provider()
    tracer = provider.get_tracer(t.SCOPE_NAME)
    with tracer.start_as_current_span("publisher") as publisher:
        pass
    link = Link(publisher.get_span_context(), {t.LINK_RELATION: t.LINK_TRIGGERED_BY})
    span = tracer.start_span("build", start_time=T0, links=[link])
    span.add_event(t.EVENT_PUBLISHED, {t.PUBLISHED_EVENT_TYPE: "spec.ready"}, timestamp=T0 + 5)
    span.add_event(t.EVENT_PUBLISHED, {}, timestamp=T0 + 6)
    span.add_event("something else", {t.PUBLISHED_EVENT_TYPE: "no"}, timestamp=T0 + 7)
    span.end(T0 + 10**9)
    provider.shutdown()
    ended = exporter.get_finished_spans()[-1]
    events, links = ended.events, ended.links
    kept = attempt_from_sdk({}, "build", _SPAN_ID, "failure", T0, T0 + 10**9, events, links)
    assert kept[:6] == ("build", _SPAN_ID, 1, 1, T0 / 1e9, T0 / 1e9 + 1)
    assert kept[10] == (publisher.get_span_context().span_id,)
    assert kept[11] == ((T0 / 1e9, "spec.ready"), ((T0 + 6) / 1e9, ""))
    assert _kept({})[3] == 0


def test_equal_upstream_lists_share_one_tuple_and_the_cache_starts_over_when_full() -> None:
    """Thousands of open runs keep one tuple per distinct list, and at most 4,096 lists."""
    first = _kept({t.STAGE_UPSTREAM: ("a", "b")})[9]
    assert _kept({t.STAGE_UPSTREAM: ("a", "b")})[9] is first
    for i in range(4095):
        _kept({t.STAGE_UPSTREAM: (f"s{i}",)})
    assert len(_kept_runs._UPSTREAMS) == 4096
    _kept({t.STAGE_UPSTREAM: ("new",)})
    assert list(_kept_runs._UPSTREAMS) == [("new",)]
    again = _kept({t.STAGE_UPSTREAM: ("a", "b")})[9]
    assert again == first
    assert again is not first


def _edges(*pairs: str) -> dict[str, Any]:
    specs = [json.dumps([s, d, ["on_completion", s, True]]) for s, d in map(str.split, pairs)]
    return {t.PIPELINE_EDGE_SPECS: tuple(specs)}


def test_a_runs_edges_are_decoded_once_per_distinct_list() -> None:
    edges = EdgeUpstream()
    ab = edges.of(_edges("a b", "x b", "b c"))
    assert ab == {"b": frozenset({"a", "x"}), "c": frozenset({"b"})}
    assert edges.of(_edges("a b", "x b", "b c")) is ab
    assert edges.of(_edges("a c")) == {"c": frozenset({"a"})}
    assert edges.of({t.PIPELINE_EDGES: ("a>c",)}) == {"c": frozenset({"a"})}
    assert edges.of({**_edges("a c"), t.PIPELINE_EDGES: ("b>c",)}) == {"c": frozenset({"a", "b"})}
    assert edges.of({}) == {}
    # A value that cannot key the cache (a list) is decoded, every time.
    listed = {t.PIPELINE_EDGE_SPECS: list(_edges("a d")[t.PIPELINE_EDGE_SPECS])}
    assert edges.of(listed) == {"d": frozenset({"a"})}


def test_the_edge_cache_starts_over_when_full() -> None:
    """At most ``size`` (64 unless told) edge lists are kept; one more starts the cache over."""
    one = EdgeUpstream(size=1)
    first = one.of(_edges("a b"))
    one.of(_edges("a c"))
    assert one.of(_edges("a b")) is not first
    default = EdgeUpstream()
    first = default.of(_edges("s0 t"))
    for i in range(1, 64):
        default.of(_edges(f"s{i} t"))
    assert default.of(_edges("s0 t")) is first  # 64 lists kept
    default.of(_edges("s64 t"))
    assert default.of(_edges("s0 t")) is not first


def _root(attributes: dict[str, Any], *, error: bool = False) -> Any:
    provider, exporter = make_provider()
    span = provider.get_tracer(t.SCOPE_NAME).start_span("run", start_time=T0, attributes=attributes)
    if error:
        span.set_status(Status(StatusCode.ERROR))
    span.end(T0 + 10 * 10**9)
    provider.shutdown()
    return exporter.get_finished_spans()[0]


def _attempt(stage: str, start: float, end: float, **fields: Any) -> Kept:
    return (
        stage,
        fields.get("span_id", f"{len(stage):016x}"),
        1,
        0,
        T0 / 1e9 + start,
        T0 / 1e9 + end,
        None,
        None,
        None,
        fields.get("up"),
        fields.get("links", ()),
        fields.get("published", ()),
    )


def test_a_runs_path_unites_its_edges_and_its_stages_declared_upstream() -> None:
    """c's edges name a, its declared list b (which ended later): the path runs through b;
    d has edges only, e a declared list only, f a declared list wider than its edges."""
    attempts = [
        _attempt("a", 0, 1),
        _attempt("b", 0, 2, up=("x",)),
        _attempt("c", 3, 4, up=("b",)),
    ]
    edges = EdgeUpstream()
    root = _root({t.CICD_PIPELINE_NAME: "etl", **_edges("a c")})
    run = kept_run(root, root.attributes, attempts, edges, fed=False)
    assert [step[0] for step in run.path] == ["b", "c"]
    attempts = [_attempt("a", 0, 1), _attempt("b", 0, 2), _attempt("d", 3, 4)]
    root = _root(_edges("b d"))
    assert [s[0] for s in kept_run(root, root.attributes, attempts, edges, fed=False).path] == [
        "b",
        "d",
    ]
    attempts = [_attempt("a", 0, 1), _attempt("b", 0, 2), _attempt("f", 3, 4, up=("a", "b"))]
    root = _root(_edges("a f"))
    assert [s[0] for s in kept_run(root, root.attributes, attempts, edges, fed=False).path] == [
        "b",
        "f",
    ]


def test_a_runs_path_is_cut_at_the_event_that_fired_a_stage() -> None:
    """b, linked to a's span, was fired by a's publish: a's step ends there, named by it."""
    published = ((T0 / 1e9 + 1, "spec.ready"),)
    attempts = [
        _attempt("a", 0, 5, span_id="00000000000000aa", published=published),
        _attempt("b", 1, 6, links=(0xAA,)),
    ]
    root = _root({t.CICD_PIPELINE_NAME: "etl"})
    run = kept_run(root, root.attributes, attempts, EdgeUpstream(), fed=False)
    start = T0 / 1e9
    assert run.path == [
        ("a", start, start + 1, 0.0, "spec.ready"),
        ("b", start + 1, start + 6, 0.0, None),
    ]


def test_a_runs_name_status_and_times_from_its_run_span() -> None:
    """No name is "", an ERROR status without a result a failure; a run that fed stages (a
    replay) is FED, with no path; a run span without times starts at 0 and lasts 0."""
    attempts = [_attempt("a", 0, 1), _attempt("a", 2, 3)]
    root = _root({}, error=True)
    run = kept_run(root, root.attributes, attempts, EdgeUpstream(), fed=False)
    assert (run.pipeline, run.status, run.start_ns, run.duration_ns) == (
        "",
        "failure",
        T0,
        10 * 10**9,
    )
    assert run.stages == {"a": (T0 / 1e9, T0 / 1e9 + 3)}
    assert run.attempts == attempts
    assert [step[0] for step in run.path] == ["a"]
    fed = kept_run(root, root.attributes, attempts, EdgeUpstream(), fed=True)
    assert (fed.status, fed.path) == (FED, [])
    unstarted = ReadableSpan(name="run", start_time=None, end_time=None)
    run = kept_run(unstarted, {}, [], EdgeUpstream(), fed=False)
    assert (run.status, run.start_ns, run.duration_ns, run.path) == ("success", 0, 0, [])


def _write_run_of_stages(
    db: Path, stages: list[dict[str, Any]], other: dict[str, Any] | None = None
) -> None:
    """One ended run of ``etl`` into the store ``db``: a stage span ``s<i>`` with each of
    ``stages``' attributes, one after the other; with ``other``, a span of another trace
    (another library's) with those attributes."""
    provider = TracerProvider(resource=RESOURCE)
    provider.add_span_processor(SqliteSpanProcessor(db, retention=RetentionPolicy()))
    try:
        tracer = provider.get_tracer(t.SCOPE_NAME)
        root = tracer.start_span(
            t.run_span_name("etl"),
            start_time=T0,
            attributes={t.CICD_PIPELINE_NAME: "etl", t.CICD_PIPELINE_ACTION_NAME: t.RUN_ACTION},
        )
        context = trace.set_span_in_context(root)
        for i, attributes in enumerate(stages):
            span = tracer.start_span(
                f"s{i}",
                context=context,
                start_time=T0 + i * 10**9,
                attributes={t.CICD_PIPELINE_NAME: "etl", t.CICD_TASK_NAME: f"s{i}", **attributes},
            )
            span.end(T0 + (i + 1) * 10**9)
        if other is not None:
            tracer.start_span("GET /", start_time=T0, attributes=other).end(T0 + 1)
        root.end(T0 + 10 * 10**9)
    finally:
        provider.shutdown()


def test_attributes_of_other_types_give_the_rows_of_a_rebuild(tmp_path: Path) -> None:
    """Values of other types than the engine writes (a float attempt, text for a number, a
    string for the upstream list) reach the writer's rows as a rebuild reads them."""
    db = tmp_path / "spans.db"
    odd: list[dict[str, Any]] = [
        {t.STAGE_ATTEMPT: 2.0, t.STAGE_PEAK_MEMORY: 5.5, t.STAGE_QUEUE_TIME: 3},
        {t.STAGE_ATTEMPT: "3", t.STAGE_PEAK_MEMORY: "x", t.STAGE_CPU_TIME: 2},
        {t.STAGE_ATTEMPT: True, t.STAGE_PEAK_MEMORY: 2**60 + 1, t.STAGE_QUEUE_TIME: "x"},
        {t.STAGE_ATTEMPT: 0, t.STAGE_CPU_TIME: True, t.STAGE_UPSTREAM: "s0"},
        {t.STAGE_UPSTREAM: (1, 2), t.STAGE_QUEUE_TIME: False},
    ]
    _write_run_of_stages(db, odd)
    conn = connect(db)
    try:
        kept, rebuilt_runs, rebuilt = kept_and_rebuilt(conn)
    finally:
        conn.close()
    assert rebuilt_runs == 1
    assert len(kept["stage_attempts"]) == len(odd)
    assert kept == rebuilt


def test_values_no_row_can_hold_lose_no_span(tmp_path: Path) -> None:
    """Numbers past what SQLite's ``INTEGER`` holds, or not finite, in the attributes the
    writer aggregates (a peak memory of ``inf``, a queue time of ``nan``), and an int past 64
    bits on any span (another library's, under ``opentelemetry-instrument``): every span is
    stored, the odd numbers read as unknown alike by the writer and a rebuild, the wide int
    as its digits. The writer used to fail, and drop, the whole batch on one of them."""
    db = tmp_path / "spans.db"
    odd: list[dict[str, Any]] = [
        {t.STAGE_PEAK_MEMORY: math.inf, t.STAGE_QUEUE_TIME: math.nan},
        {t.STAGE_PEAK_MEMORY: 1e300, t.STAGE_QUEUE_TIME: -math.inf, t.STAGE_CPU_TIME: 1e300},
        {t.STAGE_PEAK_MEMORY: 2**63, t.STAGE_ATTEMPT: 2**70, "wide": -(2**70)},
        {t.STAGE_PEAK_MEMORY: 2**63 - 1, t.STAGE_QUEUE_TIME: 0.5},
    ]
    _write_run_of_stages(db, odd, other={"http.bytes": 2**64})
    conn = connect(db)
    try:
        kept, rebuilt_runs, rebuilt = kept_and_rebuilt(conn)
        bodies = [body for (body,) in conn.execute("SELECT body FROM spans")]
    finally:
        conn.close()
    assert (rebuilt_runs, len(kept["stage_attempts"]), len(bodies)) == (1, len(odd), len(odd) + 2)
    assert kept == rebuilt
    with SpanStore(db) as store:
        run = store.get_run(store.search(limit=1)[0].run_id)
    read = [stage.attempts[-1] for stage in run.stages]
    assert [(a.peak_memory_bytes, a.queue_time, a.cpu_seconds, a.attempt) for a in read] == [
        (None, None, None, 1),
        (None, None, None, 1),
        (None, None, None, 1),
        (2**63 - 1, 0.5, None, 1),
    ]
    assert sum(f'"http.bytes":"{2**64}"' in body for body in bodies) == 1
    assert sum(f'"wide":"{-(2**70)}"' in body for body in bodies) == 1
