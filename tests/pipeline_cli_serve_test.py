"""``taskdaemon serve``'s schedule arguments: refused at once with one line when they make no
schedule."""

from __future__ import annotations

import argparse
import asyncio
import logging
import re
from pathlib import Path

import pytest

from taskdaemon.pipeline.cli import main
from taskdaemon.pipeline.cli.serve import _schedule
from taskdaemon.pipeline.config import parse_pipeline
from taskdaemon.pipeline.engine import Engine

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


async def test_a_scheduled_run_that_cannot_start_is_one_error_and_serving_goes_on(
    tmp_path: Path,
) -> None:
    """A run whose workspace cannot be made (a read-only home) is one error line; the schedule
    goes on to its end instead of a traceback that stops the server."""
    (tmp_path / "file").write_text("not a directory")
    pipeline = parse_pipeline(
        "name: one\nstages:\n  - {name: a, command: 'true', triggers: [{manual: {}}]}\n"
    )
    stop = asyncio.Event()
    records: list[logging.LogRecord] = []

    class Recorder(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)
            stop.set()  # after its only run, the schedule would serve until a signal

    logger = logging.getLogger("taskdaemon.serve")
    recorder = Recorder(logging.ERROR)
    logger.addHandler(recorder)
    try:
        async with Engine(workspace=tmp_path / "file" / "ws") as engine:
            args = argparse.Namespace(max_runs=1, every=60.0)
            await _schedule(engine, pipeline, {}, args, stop)
    finally:
        logger.removeHandler(recorder)
    errors = [
        re.sub("[0-9a-f]{32}", "RUN", r.getMessage()) for r in records if r.levelno >= logging.ERROR
    ]
    workspace = tmp_path / "file" / "ws" / "RUN"
    expected = [
        f"run 1 of one could not start: cannot create the workspace {workspace}: Not a directory"
    ]
    assert expected == errors
