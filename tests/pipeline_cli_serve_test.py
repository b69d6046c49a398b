"""``taskdaemon serve``'s schedule arguments: refused at once with one line when they make no
schedule."""

from __future__ import annotations

from pathlib import Path

import pytest

from taskdaemon.pipeline.cli import main

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "feature_delivery.yaml"


@pytest.mark.parametrize(
    ("option", "value"),
    [("--every", "nan"), ("--every", "inf"), ("--max-runs", "-1")],
    ids=["every-nan", "every-inf", "negative-max-runs"],
)
def test_a_schedule_argument_that_makes_no_schedule_exits_2_before_serving(
    option: str, value: str, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A NaN or infinite --every, or a negative --max-runs, exits 2 without serving or running
    anything (NaN ran the pipeline back to back, -1 ran it for ever as "1 of -1")."""
    monkeypatch.setenv("TASKDAEMON_HOME", str(home))
    code = main(["serve", "--port", "0", "--pipeline", str(EXAMPLE), option, value])
    expected = (2, [])
    assert expected == (code, sorted(p.name for p in home.iterdir()))
