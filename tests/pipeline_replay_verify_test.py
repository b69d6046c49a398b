"""``replay --verify``'s divergence check: what it compares, what it reports, in what order,
and how the report reads as a table and as JSON. Recorded values are real captures."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import PurePosixPath
from typing import Any

import pytest

from taskdaemon.pipeline.engine import ExecutionResult
from taskdaemon.pipeline.payloads import PayloadCapture
from taskdaemon.pipeline.replay.record import (
    RecordedEvent,
    RecordedExecution,
    RecordedRun,
    RecordedValue,
)
from taskdaemon.pipeline.replay.verify import (
    Divergence,
    DivergenceReport,
    compare_run,
    first_difference,
)
from taskdaemon.pipeline.state import StageStatus, StageTimes

CAPTURE = PayloadCapture(max_bytes=65536)


def value(payload: Any, capture: PayloadCapture = CAPTURE) -> RecordedValue:
    """``payload`` as a span records it (text, size, sha256, truncated)."""
    captured = capture.capture(payload)
    return RecordedValue(captured.json, captured.size, captured.sha256, captured.truncated)


def was(
    stage: str,
    outputs: Any = None,
    *,
    instance: int = 0,
    attempt: int = 1,
    status: str = "success",
    events: Sequence[tuple[str, Any]] = (),
    recorded: RecordedValue | None = None,
) -> RecordedExecution:
    """A recorded execution with ``outputs`` (or the ``recorded`` value as it is)."""
    return RecordedExecution(
        stage=stage,
        instance=instance,
        attempt=attempt,
        status=status,
        span_id="0" * 16,
        start_ns=1,
        end_ns=2,
        inputs=None,
        outputs=recorded if recorded is not None else value(outputs),
        events=tuple(
            RecordedEvent(kind, number, "x", value(payload), 1)
            for number, (kind, payload) in enumerate(events, 1)
        ),
        error=None,
    )


def now(
    stage: str,
    outputs: Mapping[str, Any],
    *,
    instance: int = 0,
    attempt: int = 1,
    status: StageStatus = StageStatus.SUCCESS,
) -> ExecutionResult:
    """An execution of the replay, as the engine reports it."""
    return ExecutionResult(stage, instance, attempt, status, StageTimes(), outputs)


def run(*executions: RecordedExecution) -> RecordedRun:
    """A recorded run holding ``executions``."""
    by_stage: dict[str, list[RecordedExecution]] = {}
    for execution in executions:
        by_stage.setdefault(execution.stage, []).append(execution)
    return RecordedRun(
        run_id="orig",
        pipeline="p",
        schema_version=2,
        status="success",
        definition=None,
        definition_hash=None,
        request=None,
        executions={stage: tuple(found) for stage, found in by_stage.items()},
    )


def compare(
    recorded: RecordedRun,
    replayed: Sequence[ExecutionResult],
    published: Mapping[str, Sequence[tuple[str, Mapping[str, Any]]]] | None = None,
    rerun: Sequence[str] | None = None,
    capture: PayloadCapture = CAPTURE,
) -> DivergenceReport:
    """``compare_run`` of ``recorded`` with the replay's executions."""
    executions: dict[str, list[ExecutionResult]] = {}
    for execution in replayed:
        executions.setdefault(execution.stage, []).append(execution)
    stages = list(recorded.executions) if rerun is None else list(rerun)
    return compare_run(recorded, "new", executions, published or {}, stages, capture)


def rows(report: DivergenceReport) -> list[tuple[Any, ...]]:
    """The report's divergences as tuples."""
    return [(d.stage, d.instance, d.attempt, d.what, d.keys, d.first) for d in report.divergences]


# --- what is compared -------------------------------------------------------------------------


def test_an_identical_replay_has_no_divergence() -> None:
    """Same statuses, outputs (key order aside) and events: nothing diverges, all compared."""
    recorded = run(
        was("a", {"x": 1, "y": [1, 2]}, events=[("part", {"n": 1})]),
        was("b", {}, instance=1),
    )
    report = compare(
        recorded,
        [now("a", {"y": [1, 2], "x": 1}), now("b", {}, instance=1)],
        {"a.0.1": [("part", {"n": 1})]},
    )
    assert ([], 2, False) == (rows(report), report.compared, report.diverged)


def test_the_replays_run_id_is_read_as_the_recorded_one() -> None:
    """The replay's run id ("new") anywhere in its outputs or events' payloads, keys and
    values, nested, is read as the recorded run's ("orig"); any other change still diverges.
    """
    recorded = run(
        was(
            "a",
            {"run": "orig", "files": {"orig": ["/w/orig/x.txt"]}},
            events=[("p", {"r": "orig"})],
        ),
        was("b", {"run": "orig"}),
    )
    report = compare(
        recorded,
        [now("a", {"run": "new", "files": {"new": ["/w/new/x.txt"]}}), now("b", {"run": "old"})],
        {"a.0.1": [("p", {"r": "new"})]},
    )
    assert [("b", 0, 1, "outputs", ("run",), 'run: "orig" → "old"')] == rows(report)


def test_changed_outputs_name_the_keys_and_the_first_difference() -> None:
    """Keys that differ, appear or disappear are named (sorted); the first difference is the
    first in key order, down into lists."""
    recorded = run(was("a", {"a": 1, "b": [1, 2], "c": "x"}))
    report = compare(recorded, [now("a", {"a": 1, "b": [1, 3], "d": 2})])
    assert [("a", 0, 1, "outputs", ("b", "c", "d"), "b[1]: 2 → 3")] == rows(report)
    assert report.diverged


def test_a_key_equal_to_none_on_one_side_and_absent_on_the_other_differs() -> None:
    """``{"k": null}`` against ``{}``, either way round: the key is named, not taken as
    equal."""
    report = compare(
        run(was("a", {"k": None}), was("b", {})), [now("a", {}), now("b", {"k": None})]
    )
    assert [
        ("a", 0, 1, "outputs", ("k",), "k: null → (absent)"),
        ("b", 0, 1, "outputs", ("k",), "k: (absent) → null"),
    ] == rows(report)


def test_outputs_are_diffed_as_captured_so_tuples_equal_lists() -> None:
    """The replay's outputs are compared in their captured (JSON) form: a tuple that was
    recorded as a list is no difference; only the key that changed is named."""
    report = compare(run(was("a", {"pair": [1, 2], "n": 1})), [now("a", {"pair": (1, 2), "n": 2})])
    assert [("a", 0, 1, "outputs", ("n",), "n: 1 → 2")] == rows(report)


def test_outputs_over_the_cap_are_diffed_as_captured_json() -> None:
    """Outputs over the cap are diffed in their captured form, uncut: an int key beside
    string keys is the string key JSON makes of it, and a value JSON has no form for is its
    text; nothing crashes."""
    capture = PayloadCapture(max_bytes=20)
    recorded = run(was("a", {"7": "z", "k": 1, "w": "odd"}))  # recorded whole
    outputs = {"k": 2, 7: "z", "w": PurePosixPath("odd"), "pad": "p" * 30}
    (row,) = rows(compare(recorded, [now("a", outputs)], capture=capture))
    assert (("k", "pad"), "k: 1 → 2") == row[4:]


def test_outputs_over_the_cap_put_no_secret_in_the_report() -> None:
    """A secret in replayed outputs over the cap is redacted in the divergence report, as it
    is on the spans."""
    capture = PayloadCapture(max_bytes=20)
    recorded = run(was("a", recorded=value({"k": 1}, capture)))
    outputs = {"k": 1, "api_token": "hunter2-secret", "pad": "p" * 30}
    report = compare(recorded, [now("a", outputs)], capture=capture)
    assert [("a", 0, 1, "outputs", ("api_token", "pad"), 'api_token: (absent) → "[REDACTED]"')] == (
        rows(report)
    )
    assert "hunter2" not in report.render_table()


def test_recorded_outputs_that_are_not_an_object_are_compared_whole() -> None:
    """Recorded outputs that are exact JSON but not an object (foreign spans): no keys, the
    first difference is the whole value."""
    report = compare(run(was("a", [1])), [now("a", {"k": 1})])
    assert [("a", 0, 1, "outputs", (), '.: [1] → {"k": 1}')] == rows(report)


def test_outputs_that_are_not_exact_in_the_record_still_diverge_by_hash() -> None:
    """Recorded outputs cut at capture cannot be diffed: the divergence says the hash
    differs, with no keys."""
    capture = PayloadCapture(max_bytes=8)
    cut = value({"long": "x" * 40}, capture)
    assert cut.truncated
    report = compare(run(was("a", recorded=cut)), [now("a", {"long": "y" * 40})], capture=capture)
    expected = (
        "a",
        0,
        1,
        "outputs",
        (),
        "the output hash differs (recorded outputs are not exact)",
    )
    assert [expected] == rows(report)


def test_new_outputs_over_the_cap_are_diffed_in_full() -> None:
    """When the replay's outputs exceed the cap, the diff is made on the outputs themselves."""
    capture = PayloadCapture(max_bytes=20)
    recorded = run(was("a", recorded=value({"k": 1}, capture)))
    report = compare(recorded, [now("a", {"k": 1, "big": "z" * 50})], capture=capture)
    (row,) = rows(report)
    assert ("outputs", ("big",)) == row[3:5]
    assert row[5].startswith('big: (absent) → "zzz')


def test_no_recorded_outputs_or_no_hash_is_not_a_divergence() -> None:
    """Capture was off (no outputs), or a value without a hash: nothing to compare with."""
    no_hash = RecordedValue('{"k": 1}', None, None)
    missing = was("a")
    missing = RecordedExecution(**{**_fields(missing), "outputs": None})
    report = compare(
        run(missing, was("b", recorded=no_hash)), [now("a", {"k": 2}), now("b", {"k": 2})]
    )
    assert ([], 2) == (rows(report), report.compared)


def _fields(execution: RecordedExecution) -> dict[str, Any]:
    return {name: getattr(execution, name) for name in RecordedExecution.__dataclass_fields__}


def test_a_changed_status_is_reported_and_outputs_are_not_compared() -> None:
    """success → failure is a status divergence; the outputs of an execution whose status
    changed, or of one that did not succeed either time, are not compared."""
    recorded = run(was("a", {"k": 1}), was("b", {"k": 1}, status="failure"))
    report = compare(
        recorded,
        [now("a", {"k": 2}, status=StageStatus.FAILURE), now("b", {"k": 2}, status="failure")],  # type: ignore[arg-type]
    )
    assert [("a", 0, 1, "status", (), "success → failure")] == rows(report)
    assert 2 == report.compared


def test_missing_and_extra_executions_in_instance_then_attempt_order() -> None:
    """An execution only in the original is ``missing``, one only in the replay ``extra``;
    neither counts as compared; rows follow (instance, attempt)."""
    recorded = run(
        was("a", {}, instance=1, attempt=2), was("a", {}, instance=0), was("a", {}, instance=2)
    )
    report = compare(
        recorded,
        [now("a", {}, instance=0), now("a", {}, instance=3), now("a", {}, instance=2)],
    )
    assert [
        ("a", 1, 2, "missing", (), "ran in the original only"),
        ("a", 3, 1, "extra", (), "ran in the replay only"),
    ] == rows(report)
    assert (2, []) == (report.compared, report.retried)


def test_a_stage_retried_in_the_original_only_compares_its_last_attempt() -> None:
    """Retried into a success in the original (two failures, then success), and a success at
    once in the replay: the last attempts are compared, status, outputs and the events of all
    attempts, and agree; the report says how many attempts each took. Before: three rows,
    ``failure → success`` of attempt 1 and ``ran in the original only`` of attempts 2 and 3."""
    recorded = run(
        was("b", None, status="failure", events=[("part", {"n": 1})]),
        was("b", None, attempt=2, status="failure"),
        was("b", {"k": 1}, attempt=3, events=[("part", {"n": 2})]),
    )
    published = {"b.0.1": [("part", {"n": 1}), ("part", {"n": 2})]}
    report = compare(recorded, [now("b", {"k": 1})], published)
    assert ([], 1, [("b", 0, 3, 1)]) == (rows(report), report.compared, report.retried)
    assert report.render_table().splitlines() == [
        "verify: b#0 took 3 attempts in the original and 1 in the replay: the last of each "
        "compared",
        "verify: no divergence in 1 execution run again (replay new of orig)",
    ]
    assert [{"stage": "b", "instance": 0, "original": 3, "replay": 1}] == (
        report.to_json()["retried"]
    )
    differs = compare(recorded, [now("b", {"k": 2})], published)
    assert [("b", 0, 1, "outputs", ("k",), "k: 1 → 2")] == rows(differs)


def test_a_fed_execution_against_a_replay_that_did_not_retry_compares_its_last_attempt() -> None:
    """Against a replay's record, an execution it fed stands for the three attempts its own
    record made; a replay that succeeds at once is compared with it (before this, the
    attempt it stood for was skipped and the last one read ``ran in the original only``)."""
    fed = dataclasses.replace(was("b", {"k": 1}, events=[("part", {"n": 1})]), replayed_attempts=3)
    report = compare(run(fed), [now("b", {"k": 1})], {"b.0.1": [("part", {"n": 1})]})
    assert ([], 1, [("b", 0, 3, 1)]) == (rows(report), report.compared, report.retried)


def test_a_stage_retried_in_the_replay_only_compares_its_last_attempt() -> None:
    """The other way round: a success at once in the original, a failure then a success in
    the replay; its last attempt's failure would be a divergence (``success → failure``)."""
    recorded = run(was("a", {"k": 1}))
    retried = [now("a", {}, status=StageStatus.FAILURE), now("a", {"k": 1}, attempt=2)]
    failed = [
        now("a", {}, status=StageStatus.FAILURE),
        now("a", {}, attempt=2, status=StageStatus.FAILURE),
    ]
    assert ([], [("a", 0, 1, 2)]) == (
        rows(compare(recorded, retried)),
        compare(recorded, retried).retried,
    )
    assert [("a", 0, 2, "status", (), "success → failure")] == rows(compare(recorded, failed))


def test_a_stage_only_one_side_ran_is_missing_or_extra() -> None:
    """A stage run again that the original never ran (a new stage of the file) is ``extra``;
    one the original ran and the replay did not is ``missing``; the report names both runs."""
    report = compare(run(was("a", {})), [now("b", {})], rerun=["a", "b"])
    assert [
        ("a", 0, 1, "missing", (), "ran in the original only"),
        ("b", 0, 1, "extra", (), "ran in the replay only"),
    ] == rows(report)
    assert ("orig", "new", 0) == (report.original, report.replay, report.compared)


def test_only_the_stages_run_again_are_compared_in_their_order() -> None:
    """Fed stages (not in ``rerun``) are not compared; rows follow the ``rerun`` order."""
    recorded = run(was("a", {"k": 1}), was("b", {"k": 1}), was("c", {"k": 1}))
    replayed = [now("a", {"k": 2}), now("b", {"k": 2}), now("c", {"k": 2})]
    report = compare(recorded, replayed, rerun=["c", "a"])
    assert ["c", "a"] == [d.stage for d in report.divergences]
    assert 2 == report.compared


# --- events -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("published", "keys", "first"),
    [
        ([("part", {"n": 1}), ("part", {"n": 9})], (), "event #2 (part): payload differs"),
        ([("part", {"n": 1}), ("done", {"n": 2})], ("done",), "event #2: type part → done"),
        ([("part", {"n": 1})], (), "2 events → 1 event"),
        ([], ("part",), "2 events → 0 events"),
        (
            [("part", {"n": 1}), ("part", {"n": 2}), ("log", {})],
            ("log",),
            "2 events → 3 events",
        ),
    ],
)
def test_published_events_are_compared_in_order(
    published: list[tuple[str, Any]], keys: tuple[str, ...], first: str
) -> None:
    """Types and payload hashes in order: the first event that differs, or the counts; the
    keys are the event types found on one side only."""
    recorded = run(was("a", {}, events=[("part", {"n": 1}), ("part", {"n": 2})]))
    report = compare(recorded, [now("a", {})], {"a.0.1": published})
    assert [("a", 0, 1, "events", keys, first)] == rows(report)


def test_events_are_compared_even_when_the_status_changed() -> None:
    """A failed re-execution that published less reports both the status and the events."""
    recorded = run(was("a", {}, events=[("part", {"n": 1})]))
    report = compare(recorded, [now("a", {}, status=StageStatus.FAILURE)])
    assert ["status", "events"] == [d.what for d in report.divergences]


def test_events_are_matched_by_the_recorded_execution() -> None:
    """Events published by another execution (another attempt) are not this one's."""
    recorded = run(was("a", {}, events=[("part", {"n": 1})]))
    report = compare(recorded, [now("a", {})], {"a.0.2": [("part", {"n": 1})]})
    assert [("a", 0, 1, "events", ("part",), "1 event → 0 events")] == rows(report)


# --- first_difference -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ({"a": 1}, {"a": 1}, None),
        ([1, [2]], [1, [2]], None),
        (1, 2, ".: 1 → 2"),
        ({"a": {"b": 1}}, {"a": {"b": 2}}, "a.b: 1 → 2"),
        ({"a": 1}, {"a": 1, "b": [1]}, "b: (absent) → [1]"),
        ({"b": "x"}, {}, 'b: "x" → (absent)'),
        ({"a": [1, 2]}, {"a": [1, 2, 3]}, "a: 2 items → 3 items"),
        ([1], [], ".: 1 item → 0 items"),
        ([{"k": 1}, 5], [{"k": 1}, 6], "[1]: 5 → 6"),
        ({"b": 1, "a": 1}, {"b": 2, "a": 2}, "a: 1 → 2"),
        ({"a": [1]}, {"a": {"0": 1}}, 'a: [1] → {"0": 1}'),
        ({"a": "x" * 100}, {"a": 1}, 'a: "' + "x" * 58 + "… → 1"),
        ({"a": "x" * 58}, {"a": 1}, 'a: "' + "x" * 58 + '" → 1'),
        ({"a": "x" * 59}, {"a": 1}, 'a: "' + "x" * 58 + "… → 1"),
        ({"a": {"z": 1, "y": 2}}, {"a": 3}, 'a: {"y": 2, "z": 1} → 3'),
    ],
)
def test_first_difference(old: Any, new: Any, expected: str | None) -> None:
    """The path and both values at the first place two JSON values differ, keys in sorted
    order, values shown as sorted JSON of at most 60 characters."""
    assert expected == first_difference(old, new)


# --- the report -------------------------------------------------------------------------------


def _report() -> DivergenceReport:
    report = DivergenceReport("orig", "new", compared=3)
    report.divergences += [
        Divergence("build", 0, 1, "outputs", ("at", "n"), "at: 1 → 2"),
        Divergence("check", 12, 3, "missing", (), "ran in the original only"),
    ]
    return report


def test_the_report_as_a_table() -> None:
    """One row per divergence under aligned headers, ``-`` for no keys, then a summary."""
    assert _report().render_table() == (
        "STAGE  INSTANCE  ATTEMPT  WHAT     KEYS  FIRST DIFFERENCE\n"
        "build  0         1        outputs  at,n  at: 1 → 2\n"
        "check  12        3        missing  -     ran in the original only\n"
        "\n"
        "verify: 2 divergences in 3 executions run again (replay new of orig)"
    )


def test_an_empty_report_as_a_table_is_one_line() -> None:
    """No divergence: only the summary line."""
    report = DivergenceReport("orig", "new", compared=4)
    assert "verify: no divergence in 4 executions run again (replay new of orig)" == (
        report.render_table()
    )
    assert not report.diverged


def test_the_summary_counts_one_of_each_in_the_singular() -> None:
    """One divergence in one re-executed execution reads without plurals."""
    report = DivergenceReport("orig", "new", compared=1)
    report.divergences.append(Divergence("build", 0, 1, "status", (), "success → failure"))
    assert report.render_table().endswith(
        "verify: 1 divergence in 1 execution run again (replay new of orig)"
    )


def test_the_report_as_json() -> None:
    """Every field, keys as lists, and whether it diverged."""
    assert {
        "original": "orig",
        "replay": "new",
        "compared": 3,
        "diverged": True,
        "divergences": [
            {
                "stage": "build",
                "instance": 0,
                "attempt": 1,
                "what": "outputs",
                "keys": ["at", "n"],
                "first": "at: 1 → 2",
            },
            {
                "stage": "check",
                "instance": 12,
                "attempt": 3,
                "what": "missing",
                "keys": [],
                "first": "ran in the original only",
            },
        ],
        "retried": [],
    } == _report().to_json()
    assert {"diverged": False, "divergences": [], "retried": []}.items() <= (
        DivergenceReport("o", "n").to_json().items()
    )
