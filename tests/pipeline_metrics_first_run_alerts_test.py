"""A pipeline's first run against a real Prometheus with the shipped rules: its run-status
series are scraped at 0 before the run ends, so its first failure is growth ``increase()`` and
the failure-ratio rule can see.

Prometheus' ``rate()`` and ``increase()`` count what a series grew by between its samples: a
``pipeline_executions_total{status="failure"}`` series that first appeared at 1 hid that
failure from ``pipeline:execution_failure_ratio:rate30m`` and ``PipelineFailureRateHigh``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from cli_support import environment, write
from prometheus_support import (
    GATED_WAITING,
    answers,
    approve_the_run,
    free_port,
    gated,
    rules_prometheus,
    serving,
    until,
)

FAILED = 'pipeline_executions_total{pipeline="gated",status="failure"} > 0'
INCREASE = 'increase(pipeline_executions_total{pipeline="gated",status="failure"}[30m])'
RATIO = 'pipeline:execution_failure_ratio:rate30m{pipeline="gated"}'


@pytest.mark.slow
async def test_a_pipelines_first_failure_is_seen_by_increase_and_the_ratio(
    home: Path, tmp_path: Path
) -> None:
    """`serve` runs a pipeline once; Prometheus scrapes it while the run waits for an approval,
    then the approved stage fails: `increase()` over the failure series answers that one
    failure and the recorded failure ratio is 1."""
    port = free_port()
    pipeline = write(tmp_path / "gated.yaml", gated("false"))
    env = environment(home, OTEL_METRICS_EXPORTER="prometheus")
    async with (
        rules_prometheus(tmp_path, [f"127.0.0.1:{port}"]) as prometheus,
        serving(port, pipeline, env, "--max-runs", "1"),
    ):
        await until(
            lambda: answers(prometheus, GATED_WAITING), limit=60, what="the waiting run scraped"
        )
        await approve_the_run(home, port, "deploy")
        await until(lambda: answers(prometheus, FAILED), limit=60, what="the failure scraped")
        ratio = await until(
            lambda: answers(prometheus, f"{RATIO} > 0"),
            limit=60,
            what="the failure ratio recorded above 0",
        )
        increase = await answers(prometheus, INCREASE)
    assert 1.0 == float(ratio[0]["value"][1])
    assert [True] == [float(series["value"][1]) >= 1.0 for series in increase]
