"""``serve``'s landing times: each scheduled run's span records when its slot was due, and
``runs show`` (text and JSON) and the web page say how late it started (``landing``)."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import pytest

from browser_support import browser_page, open_run_page, stored_runs_server, text_of
from cli_support import taskdaemon
from schedule_support import EVERY, TAKES, two_runs_the_second_late
from taskdaemon.pipeline import telemetry as t
from taskdaemon.pipeline.cli.run_tables import format_run_table
from taskdaemon.pipeline.durations import format_duration
from taskdaemon.pipeline.landing import landing_delay, scheduled_at
from taskdaemon.pipeline.records import RunRecord


@pytest.mark.slow
def test_a_scheduled_run_that_waited_for_the_one_before_says_how_late_it_started(
    home: Path,
) -> None:
    """A real ``serve --every 0.2`` whose first run takes a second: the second run's slot came
    while the first still ran, so it started at least 0.8 s after its scheduled time, and
    ``runs show`` says so in a ``scheduled`` line, ``runs show --json`` as ``landing_delay``
    and the run page beside its start. The first run was due when the schedule began: its
    slot is no later than its start. Before: no span said when a run was due."""
    first, second = two_runs_the_second_late(home)
    shown = {
        run_id: json.loads(taskdaemon(home, "runs", "show", run_id, "--json").stdout)
        for run_id in (first, second)
    }
    due = {run_id: shown[run_id]["attributes"][t.PIPELINE_SCHEDULED_AT] for run_id in shown}
    text = taskdaemon(home, "runs", "show", second).stdout
    line = next(line for line in text.splitlines() if line.startswith("scheduled "))
    late = format_duration(shown[second]["landing_delay"])
    assert (True, True, True, True, True) == (
        due[first] / 1e9 <= shown[first]["start"],
        shown[second]["landing_delay"] >= TAKES - EVERY,
        re.fullmatch(rf"scheduled .+ \(started {late} late\)", line) is not None,
        # the second slot: the first's start (read just before it) plus --every
        abs(due[second] - due[first] - EVERY * 1e9) < 0.5e9,
        shown[first]["landing_delay"] < shown[second]["landing_delay"],
    ), (shown, text)

    async def page() -> str:
        async with (
            stored_runs_server(home / "spans.db") as url,
            browser_page() as (opened, errors),
        ):
            await open_run_page(opened, url, second)
            said = await text_of(opened, "#run-landing")
            assert errors == []
            return " ".join((said or "").split())

    assert re.fullmatch(rf"scheduled .+, started {late} late", asyncio.run(page()))


def _run(**attributes: object) -> RunRecord:
    return RunRecord("0" * 32, "p", "success", 100.0, 101.0, (), (), attributes=attributes)


def test_a_run_no_schedule_started_has_no_landing_delay_anywhere() -> None:
    """``taskdaemon run``'s runs (no ``scheduled_at_ns``) show no ``scheduled`` line and no
    delay: ``0ms late`` would claim a schedule that was met."""
    table = format_run_table(_run(**{t.PIPELINE_STARTED_BY: "cli"}))
    assert (None, False) == (
        landing_delay({}, 100.0),
        any(line.startswith("scheduled") for line in table.splitlines()),
    )


@pytest.mark.parametrize("value", [True, -1, 1.5e18, "1796593892466016531", None], ids=repr)
def test_a_scheduled_time_that_is_no_whole_number_of_nanoseconds_is_none(value: object) -> None:
    """A foreign producer's span may carry anything under the key: it is no scheduled time,
    and every view says nothing of a delay rather than failing."""
    assert None is scheduled_at({t.PIPELINE_SCHEDULED_AT: value})


def test_a_run_that_started_before_its_slot_by_the_wall_clock_started_on_time() -> None:
    """A wall-clock step between the schedule's due time and the run's start reads as 0,
    never as a negative delay."""
    run = _run(**{t.PIPELINE_SCHEDULED_AT: 100_500_000_000})
    assert (0.0, "scheduled", "0ms") == (
        landing_delay(run.attributes, run.start),
        format_run_table(run).splitlines()[5].split()[0],
        format_run_table(run).splitlines()[5].split("started ")[1].split()[0],
    )


def test_a_scheduled_time_reads_as_seconds_to_the_nanosecond_the_epoch_included() -> None:
    """Nanoseconds read as seconds (a run due at …892 s that started at …893.25 s is 1.25 s
    late), and 0 is a time like any other: a machine without a real-time clock boots at the
    epoch, and its first schedule's slot is a whole number of nanoseconds there too."""
    due_ns = 1_796_593_892_000_000_000
    assert (1_796_593_892.0, 1.25) == (
        scheduled_at({t.PIPELINE_SCHEDULED_AT: due_ns}),
        landing_delay({t.PIPELINE_SCHEDULED_AT: due_ns}, 1_796_593_893.25),
    )
    assert (0.0, 1.5) == (
        scheduled_at({t.PIPELINE_SCHEDULED_AT: 0}),
        landing_delay({t.PIPELINE_SCHEDULED_AT: 0}, 1.5),
    )
