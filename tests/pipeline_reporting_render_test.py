"""The report's text forms (``reporting/_render.py``) over names a span source chose."""

from __future__ import annotations

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
