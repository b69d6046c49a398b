"""The report's text forms (``reporting/_render.py``) over names a span source chose."""

from __future__ import annotations

import pytest

from taskdaemon.pipeline.reporting import render_report
from taskdaemon.pipeline.reporting._model import PipelineReport, Report, StageReport

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
