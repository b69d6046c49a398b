"""A run's request (a CI's build parameters) in ``runs show`` and on the run page, as its run
span recorded it: redacted."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from browser_support import browser_page, open_run_page, stored_runs_server, text_of
from cli_support import taskdaemon, write
from taskdaemon.pipeline.cli.run_tables import format_run_table
from taskdaemon.pipeline.records import RunRecord
from taskdaemon.pipeline.telemetry import PIPELINE_REQUEST, PIPELINE_REQUEST_TRUNCATED

PIPELINE = (
    "name: build\nstages:\n"
    "  - {name: checkout, command: 'true', inputs: {branch: request.branch},"
    " triggers: [{manual: {approval_required: false}}]}\n"
)


@pytest.mark.slow
def test_the_parameters_a_run_was_started_with_are_shown_redacted(
    home: Path, tmp_path: Path
) -> None:
    """``run -i branch=main -i password=...``: ``runs show`` has a ``request`` line and the run
    page a Request, both ``{"branch":"main","password":"[REDACTED]"}``; a run with no input
    has neither. Before, neither view said what a run was started with (only ``--json``'s
    raw attributes did)."""
    pipeline = write(tmp_path / "build.yaml", PIPELINE)
    started = taskdaemon(
        home, "run", "-q", str(pipeline), "-i", "branch=main", "-i", "password=hunter2-secret"
    )
    run_id = started.stdout.strip()
    assert started.returncode == 0, started.stderr
    shown = taskdaemon(home, "runs", "show", run_id).stdout
    expected = '{"branch":"main","password":"[REDACTED]"}'

    async def page() -> str | None:
        async with (
            stored_runs_server(home / "spans.db") as url,
            browser_page() as (opened, errors),
        ):
            await open_run_page(opened, url, run_id)
            assert errors == []
            return await text_of(opened, "#run-request")

    assert (True, expected, False) == (
        f"request   {expected}" in shown.splitlines(),
        asyncio.run(page()),
        "hunter2" in shown,
    ), shown


def _run(**attributes: object) -> RunRecord:
    return RunRecord("0" * 32, "p", "success", 100.0, 101.0, (), (), attributes=attributes)


@pytest.mark.parametrize(
    ("attributes", "line"),
    [
        ({}, None),
        ({PIPELINE_REQUEST: "{}"}, None),
        ({PIPELINE_REQUEST: 7}, None),
        ({PIPELINE_REQUEST: '{"a":"b\nc"}'}, 'request   {"a":"b c"}'),
        (
            {PIPELINE_REQUEST: '{"a":"bb', PIPELINE_REQUEST_TRUNCATED: True},
            'request   {"a":"bb (cut)',
        ),
    ],
    ids=["none", "empty", "not-text", "newline", "cut"],
)
def test_the_request_line_is_one_line_and_says_when_it_was_cut(
    attributes: dict[str, object], line: str | None
) -> None:
    """No request (or ``{}``, or a foreign producer's non-text value): no line; a newline in a
    value cannot break the head; a capped request says ``(cut)``."""
    lines = format_run_table(_run(**attributes)).splitlines()
    assert line == next((x for x in lines if x.startswith("request")), None)
