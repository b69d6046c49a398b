"""The loss counters against a real Prometheus: the first spans and log records a collector
loses fire the shipped alerts, as "any in the last 10 minutes" says.

Prometheus' ``increase()`` counts what a series grew by between its samples: a counter that
first appears already at its count grew by nothing it can see, so a series that only comes
into being with the first loss hides that loss (and every loss after it until the next one).
"""

from __future__ import annotations

import asyncio
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from cli_support import TASKDAEMON, write
from collector_support import answering_posts
from prometheus_support import (
    GATED_WAITING,
    alert_expression,
    answers,
    approve_the_run,
    exporting_environment,
    free_port,
    gated,
    rules_prometheus,
    stop,
    until,
)

LOSS_SERIES = ("taskdaemon_spans_export_failed_total", "taskdaemon_logs_export_failed_total")


@pytest.mark.slow
async def test_the_first_spans_and_log_records_lost_fire_their_alerts(
    home: Path, tmp_path: Path
) -> None:
    """A collector that takes the first exports and then refuses one batch of spans and one of
    log records: `TaskdaemonSpansLost` and `TaskdaemonRunLogsLost` fire for that loss alone."""
    status = {"code": 200}

    def answer(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(status["code"])
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    port = free_port()
    pipeline = write(tmp_path / "gated.yaml", gated("true"))
    with answering_posts(answer) as collector:
        async with rules_prometheus(tmp_path, [f"127.0.0.1:{port}"]) as prometheus:
            daemon = await asyncio.create_subprocess_exec(
                *(TASKDAEMON, "serve", "--port", str(port), "--pipeline", str(pipeline)),
                *("--max-runs", "1"),
                env=exporting_environment(home, collector),
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
            )
            try:
                # Scraped while the run waits for its approval and nothing was lost yet.
                await until(
                    lambda: answers(prometheus, GATED_WAITING),
                    limit=60,
                    what="the waiting run scraped",
                )
                status["code"] = 400  # the collector refuses what comes next
                await approve_the_run(home, port, "deploy")
                for lost in LOSS_SERIES:
                    await until(
                        lambda lost=lost: answers(prometheus, f"{lost} > 0"),
                        limit=60,
                        what=f"{lost} scraped above 0",
                    )
                fired = {
                    name: await answers(prometheus, alert_expression(name))
                    for name in ("TaskdaemonSpansLost", "TaskdaemonRunLogsLost")
                }
            finally:
                await stop(daemon)
    assert {"TaskdaemonSpansLost": 1, "TaskdaemonRunLogsLost": 1} == {
        name: len(series) for name, series in fired.items()
    }
