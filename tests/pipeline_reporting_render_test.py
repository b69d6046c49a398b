"""The report's text forms (``reporting/_render.py``) over names a span source chose."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from taskdaemon.pipeline.reporting import render_report
from taskdaemon.pipeline.reporting._model import PipelineReport, Report, StageReport
from taskdaemon.pipeline.reporting._stats import CriticalPath, CriticalStep

HOSTILE = "s\x1b]0;title\x07\x1b[2J\r\nfake"


def _report(stage: str) -> Report:
    row = StageReport(stage, 1, 0.0, 0, 1.0, 1.0, 1.0, None, None, None, None, 0.0)
    pipeline = PipelineReport(HOSTILE, 1, 1.0, 0.0, 1.0, 1.0, 1.0, (row,), None, None, ())
    return Report(0.0, 1.0, "sqlite:///x", (pipeline,))


@pytest.mark.parametrize("fmt", ["table", "markdown"])
def test_control_characters_in_names_are_escaped(fmt: str) -> None:
    """A pipeline and a stage named with a terminal's escapes and a line break are shown with
    each control character as its escape: the report holds no control character but its line
    breaks, and no line of its own starts with the name's second half."""
    text = render_report(_report(HOSTILE), fmt)
    expected = (True, False)
    actual = (
        text.replace("\n", "").isprintable(),
        any(line.startswith("fake") for line in text.splitlines()),
    )
    assert expected == actual, text


def _paths(median_run: str, slowest_run: str, runs: int) -> Report:
    """A one-stage report whose median and slowest critical paths are of the given runs."""
    row = StageReport("build", runs, 0.0, 0, 1.0, 1.0, 1.0, None, None, None, None, 1.0)
    median = CriticalPath(median_run, 1.0, (CriticalStep("build", 0.0, 1.0, 0.0),))
    slowest = CriticalPath(slowest_run, 2.0, (CriticalStep("build", 0.0, 1.5, 0.5),))
    pipeline = PipelineReport("etl", runs, 1.0, 0.0, 1.0, 2.0, 2.0, (row,), median, slowest, ())
    return Report(0.0, 1.0, "sqlite:///x", (pipeline,))


def _path_titles(text: str) -> list[str]:
    return [line for line in text.splitlines() if "ritical path of the" in line]


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [
        ("table", ["critical path of the median and slowest run r1 (1.0s):"]),
        ("markdown", ["### Critical path of the median and slowest run `r1` (1.0s)"]),
    ],
)
def test_one_run_that_is_median_and_slowest_gets_one_critical_path(
    fmt: str, expected: list[str]
) -> None:
    """When the median run is also the slowest, its critical path is shown once, saying so."""
    assert expected == _path_titles(render_report(_paths("r1", "r1", 1), fmt))


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [
        (
            "table",
            [
                "critical path of the median run r1 (1.0s):",
                "critical path of the slowest run r2 (2.0s):",
            ],
        ),
        (
            "markdown",
            [
                "### Critical path of the median run `r1` (1.0s)",
                "### Critical path of the slowest run `r2` (2.0s)",
            ],
        ),
    ],
)
def test_a_median_and_a_slowest_run_get_a_critical_path_each(fmt: str, expected: list[str]) -> None:
    """Two different runs get two critical paths, the median run's first."""
    assert expected == _path_titles(render_report(_paths("r1", "r2", 2), fmt))


def test_the_summary_counts_one_run_in_the_singular() -> None:
    """One run reads "1 run", not "1 runs"."""
    text = render_report(_paths("r1", "r1", 1), "table")
    assert "pipeline etl: 1 run, 100.0% succeeded" in text


def test_a_narrow_table_drops_what_a_stage_cost_first_and_keeps_every_id_whole() -> None:
    """At 80 columns the stage table leaves out PEAK MEM, CPU/EXEC and QUEUE P90 (named under it),
    the summary's durations go to a line of their own, and the critical path's heading wraps
    between words, its run id whole; no line is wider than 80."""
    run_id = "0123456789abcdef0123456789abcdef"
    stage = "extract-customer-orders-from-the-legacy-billing-system"
    row = StageReport(stage, 12, 0.25, 3, 1.5, 12.5, 130.0, 0.2, 1.25, 0.42, 45_000_000, 0.9)
    path = CriticalPath(run_id, 130.0, (CriticalStep(stage, 0.0, 130.0, 0.0),))
    pipeline = PipelineReport("etl", 12, 0.75, 0.25, 90.0, 120.0, 130.0, (row,), path, path, ())
    text = render_report(Report(0.0, 1.0, "sqlite:///x", (pipeline,)), "table", 80)
    lines = text.splitlines()
    assert all(len(line) <= 80 for line in lines), text
    at = next(n for n, line in enumerate(lines) if line.startswith("STAGE"))
    expected = [
        "STAGE             EXEC  FAILED  RETRIES  P50   P90    P99    QUEUE P50  CRITICAL",
        "extract-custome…  12    25.0%   3        1.5s  12.5s  2m10s  200ms      90.0%",
        "(--wide shows the columns left out to fit: QUEUE P90, CPU/EXEC, PEAK MEM)",
    ]
    assert expected == lines[at : at + 3]
    assert "    duration p50 1m30s, p90 2m00s, p99 2m10s" in lines, text
    heading = lines.index(f"critical path of the median and slowest run {run_id}")
    assert "    (2m10s):" == lines[heading + 1], text
    whole = render_report(Report(0.0, 1.0, "sqlite:///x", (pipeline,)), "table")
    assert "QUEUE P90  CPU/EXEC  PEAK MEM  CRITICAL" in whole, whole  # a pipe: every column


@pytest.mark.parametrize("width", [80, 40])
def test_a_wrapped_summary_breaks_between_its_clauses(width: int) -> None:
    """A summary with cancelled runs wraps its rates too: between two clauses, never between a
    rate and its word (``20.0%`` over ``cancelled;`` at 80 columns)."""
    row = StageReport("build", 5, 0.0, 0, 1.5, 12.5, 130.0, 0.2, 1.25, 0.42, 45_000_000, 0.9)
    figures = ("feature-delivery", 5, 0.8, 0.0, 10.9, 356.0, 562.0, (row,), None, None, ())
    pipeline = PipelineReport(*figures, cancelled_rate=0.2)
    text = render_report(Report(0.0, 1.0, "sqlite:///x", (pipeline,)), "table", width)
    lines = text.splitlines()
    at = next(n for n, line in enumerate(lines) if line.startswith("pipeline"))
    summary = lines[at : lines.index("", at)]
    clauses = ("5 runs", "80.0% succeeded", "0.0% failed", "20.0% cancelled;", "duration p50")
    assert (True, True) == (
        all(len(line) <= width for line in summary),
        all(any(clause in line for line in summary) for clause in clauses),
    ), summary


def test_a_long_pipeline_name_leaves_no_clause_alone_on_a_line() -> None:
    """A pipeline name that fills the line sends the figures after it to the next line, where
    they join: ``5 runs,`` stood alone on a line of its own, the rates on the next."""
    row = StageReport("build", 5, 0.0, 0, 1.5, 12.5, 130.0, 0.2, 1.25, 0.42, 45_000_000, 0.9)
    name = "nightly-data-warehouse-refresh-with-a-really-quite-long-pipeline-name"
    pipeline = PipelineReport(name, 5, 1.0, 0.0, 0.289, 0.402, 0.408, (row,), None, None, ())
    text = render_report(Report(0.0, 1.0, "sqlite:///x", (pipeline,)), "table", 60)
    lines = text.splitlines()
    at = next(n for n, line in enumerate(lines) if line.startswith("pipeline"))
    expected = [
        "pipeline nightly-data-warehouse-refresh-with-a-really-quit…:",
        "    5 runs, 100.0% succeeded, 0.0% failed;",
        "    duration p50 289ms, p90 402ms, p99 408ms",
    ]
    assert expected == lines[at : lines.index("", at)], text


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [
        ("table", "\nno ended runs in this window\n"),
        ("markdown", "\nNo ended runs in this window.\n"),
        ("html", "<p>No ended runs in this window.</p>"),
    ],
)
def test_an_empty_report_says_so_in_each_format(fmt: str, expected: str) -> None:
    """A report without figures says so: a line in the table, a sentence of its own (one
    capital, one full stop) in the Markdown and HTML documents."""
    assert expected in render_report(Report(0.0, 1.0, "", ()), fmt)


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [
        ("table", "\nno stage ran in these runs\n"),
        ("markdown", "\nNo stage ran in these runs.\n"),
        ("html", "<p>No stage ran in these runs.</p>"),
    ],
)
def test_runs_that_ran_no_stage_say_so_in_place_of_the_stage_table(fmt: str, expected: str) -> None:
    """Runs each cancelled before its first stage (or that skipped every stage) have no stage
    figures: the report says so where the stage table stands. It showed the table's headers
    over no row, and the HTML page no chart, without a word of why."""
    pipeline = PipelineReport("etl", 3, 0.0, 0.0, 0.001, 0.001, 0.001, (), None, None, ())
    text = render_report(Report(0.0, 1.0, "sqlite:///x", (pipeline,)), fmt)
    assert (True, False) == (expected in text, "STAGE" in text), text


def _many(count: int, failing: dict[int, float]) -> Report:
    """A pipeline of ``count`` stages, ``s00`` the slowest (p90 ``count`` s) and each next one
    a second faster; the stages in ``failing`` fail at the given rate, of 10 executions."""

    def row(i: int) -> StageReport:
        p90 = float(count - i)
        return StageReport(
            f"s{i:02d}", 10, failing.get(i, 0.0), 0, 1.0, p90, p90, None, None, None, None, 0.0
        )

    rows = tuple(row(i) for i in range(count))
    pipeline = PipelineReport("wide", 10, 1.0, 0.0, 1.0, 1.0, 1.0, rows, None, None, ())
    return Report(0.0, 1.0, "sqlite:///x", (pipeline,))


def _lines_between(text: str, first: str, last: str) -> list[str]:
    lines = text.splitlines()
    start = next(n for n, line in enumerate(lines) if line.startswith(first))
    end = next(n for n, line in enumerate(lines) if line.startswith(last))
    return [line for line in lines[start + 1 : end] if line]


@pytest.mark.parametrize(
    ("fmt", "first", "last", "end"),
    [("table", "pipeline wide:", "STAGE", ""), ("markdown", "10 runs", "| STAGE", ".")],
)
def test_a_long_stage_table_is_headed_by_the_stages_that_failed_most_and_the_slowest(
    fmt: str, first: str, last: str, end: str
) -> None:
    """Above a table of more than 20 stages, two lines name how many stages failed and the
    five that failed most often (by rate, then executions), and the five slowest by p90: in a
    300-stage pipeline's table, sorted by name, the eight that failed were rows to search for."""
    failing = dict.fromkeys(range(7), 0.1) | {20: 0.5}
    text = render_report(_many(21, failing), fmt)
    assert [
        "8 of 21 stages failed; most often (of their executions): s20 50.0% of 10, s00 10.0% of"
        f" 10, s01 10.0% of 10, s02 10.0% of 10, s03 10.0% of 10{end}",
        f"slowest by p90: s00 21.0s, s01 20.0s, s02 19.0s, s03 18.0s, s04 17.0s{end}",
    ] == _lines_between(text, first, last)


def test_a_long_stage_table_none_of_which_failed_says_so() -> None:
    """When no stage failed, the first line says that of the whole table."""
    text = render_report(_many(21, {}), "table")
    assert "none of 21 stages failed" == _lines_between(text, "pipeline wide:", "STAGE")[0]


@pytest.mark.parametrize("fmt", ["table", "markdown"])
def test_a_table_of_20_stages_has_no_lines_above_it(fmt: str) -> None:
    """Twenty stages are read at a glance: the summary is followed by the table."""
    first, last = ("pipeline wide:", "STAGE") if fmt == "table" else ("10 runs", "| STAGE")
    assert [] == _lines_between(render_report(_many(20, {3: 0.5}), fmt), first, last)


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [
        (
            "table",
            "regressions: not compared (no ended run in the previous window of the same length)",
        ),
        ("markdown", "Not compared (no ended run in the previous window of the same length)."),
    ],
)
def test_regressions_without_a_previous_run_say_nothing_was_compared(
    fmt: str, expected: str
) -> None:
    """A previous window without an ended run gives no baseline: the report says nothing was
    compared. It said "none (no stage p90 rose more than 20%)", which read as "not getting
    worse" for a first week of runs that had nothing to be compared with."""
    report = _many(3, {})
    first = replace(report.pipelines[0], previous_runs=0)
    text = render_report(replace(report, pipelines=(first,)), fmt)
    assert expected == text.splitlines()[-1]
    counted = replace(report.pipelines[0], previous_runs=4)
    document = json.loads(render_report(replace(report, pipelines=(counted,)), "json"))
    assert 4 == document["pipelines"][0]["previous_window_runs"]


def test_the_lines_above_a_long_table_wrap_between_stages_never_within_one() -> None:
    """In a narrow terminal the slowest stages' line wraps between two stages: a stage's name
    ended one line and its p90 began the next (``d012`` over ``307ms``)."""
    text = render_report(_many(21, {}), "table", 32)
    assert [
        "slowest by p90: s00 21.0s,",
        "    s01 20.0s, s02 19.0s,",
        "    s03 18.0s, s04 17.0s",
    ] == _lines_between(text, "none of 21 stages failed", "STAGE")
