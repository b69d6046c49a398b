"""The HTML report's charts (``reporting/_html.py``) for pipelines of many stages."""

from __future__ import annotations

import re

import pytest

from taskdaemon.pipeline.records import AttemptRecord, RunRecord, StageRecord
from taskdaemon.pipeline.reporting import render_report
from taskdaemon.pipeline.reporting._model import PipelineReport, Report, StageReport

DAY = 86400.0


def _report(count: int) -> Report:
    """A pipeline of ``count`` stages, ``s00`` the fastest (p90 1 s) and each next one a
    second slower, with every chart's data for each stage."""
    names = [f"s{i:02d}" for i in range(count)]
    rows = tuple(
        StageReport(name, 1, 0.0, 0, i + 1.0, i + 1.0, i + 1.0, None, None, None, None, 0.0)
        for i, name in enumerate(names)
    )
    attempts = [
        AttemptRecord(f"{name}.0.1", 0, 1, "success", i, i + 1.0) for i, name in enumerate(names)
    ]
    run = RunRecord(
        "a" * 32,
        "wide",
        "success",
        0.0,
        float(count),
        tuple(
            StageRecord(name, "sh", "success", (attempt,))
            for name, attempt in zip(names, attempts, strict=True)
        ),
        (),
    )
    pipeline = PipelineReport(
        "wide",
        1,
        1.0,
        0.0,
        1.0,
        1.0,
        1.0,
        rows,
        None,
        None,
        (),
        distributions={
            name: (i, i, i + 0.5, i + 1, i + 1, i + 1, i + 1.0) for i, name in enumerate(names)
        },
        daily_p90={name: ((0.0, i + 1.0), (DAY, i + 1.0)) for i, name in enumerate(names)},
        median_run=run,
    )
    return Report(0.0, 2 * DAY, "sqlite:///x", (pipeline,))


def _charts(page: str) -> list[tuple[str, list[str]]]:
    """Each figure's caption and the stage names its drawing writes."""
    figures = re.findall(r"<figcaption>(.*?)</figcaption>(.*?)</figure>", page, re.S)
    return [(caption, sorted(set(re.findall(r">(s\d\d)</text>", svg)))) for caption, svg in figures]


@pytest.mark.slow
def test_the_charts_of_a_pipeline_of_many_stages_draw_its_20_slowest() -> None:
    """A pipeline of 25 stages gets charts of its 20 slowest stages by p90, each caption
    saying so; its table still lists all 25. A 300-stage pipeline's report drew a box plot
    and a timeline 135 inches tall and a p90 chart with a legend of 300 lines, in seconds
    of matplotlib per chart."""
    page = render_report(_report(25), "html")
    slowest = [f"s{i:02d}" for i in range(5, 25)]
    which = "the 20 slowest stages by p90 (of 25 in the table)"
    assert [
        (f"Duration distribution of {which}", slowest),
        (f"Timeline of the median run {'a' * 32} (25.0s): {which}", slowest),
        (f"p90 duration per day: {which}", slowest),
    ] == _charts(page)
    assert 25 == len(re.findall(r"<tr><td>s\d\d</td>", page))


@pytest.mark.slow
def test_the_charts_of_a_pipeline_of_20_stages_draw_every_stage() -> None:
    """Up to 20 stages, every chart draws every stage, under its plain caption."""
    every = [f"s{i:02d}" for i in range(20)]
    assert [
        ("Duration distribution per stage", every),
        (f"Timeline of the median run {'a' * 32} (20.0s)", every),
        ("p90 duration per day", every),
    ] == _charts(render_report(_report(20), "html"))
