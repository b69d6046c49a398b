"""A pipeline's first run against a real Prometheus with the shipped rules: its run-status
series, and the execution series of every stage of its DAG, are scraped at 0 before the run
ends, so its first failure, and a stage's, is growth ``increase()`` and the rules can see.

Prometheus' ``rate()`` and ``increase()`` count what a series grew by between its samples: a
``pipeline_executions_total{status="failure"}`` series that first appeared at 1 hid that
failure from ``pipeline:execution_failure_ratio:rate30m`` and ``PipelineFailureRateHigh``, and
a ``pipeline_stage_executions_total{status="failure"}`` one a stage's from
``PipelineStageFailed``.
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
STAGE_FAILURES = 'pipeline_stage_executions_total{pipeline="flaky",stage="deploy",status="failure"}'
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


def flaky(mark: Path) -> str:
    """The text of pipeline ``flaky``: one stage, ``deploy``, run once approved, that fails
    its first attempt (leaving ``mark``) and succeeds its retry."""
    command = f"test -e {mark} || {{ touch {mark}; exit 1; }}"
    return (
        "name: flaky\nerror_strategy: retry\n"
        "retry: {max_attempts: 2, backoff: {initial: 100ms}}\n"
        "stages:\n  - name: deploy\n"
        f"    command: {command!r}\n"
        "    triggers: [{manual: {approval_required: true}}]\n"
    )


@pytest.mark.slow
async def test_a_stages_first_failure_is_seen_by_increase_and_its_alert(
    home: Path, tmp_path: Path
) -> None:
    """`serve` runs a pipeline once; Prometheus scrapes its stage's series at 0 while the run
    waits for an approval, then the stage's first attempt fails and its retry succeeds (so
    does the run): `increase()` over the stage's failure series, at its last scrape, is
    exactly 1 and `PipelineStageFailed` fires for that stage, its summary in whole attempts."""
    port = free_port()
    pipeline = write(tmp_path / "flaky.yaml", flaky(tmp_path / "attempted"))
    env = environment(home, OTEL_METRICS_EXPORTER="prometheus")
    async with (
        rules_prometheus(tmp_path, [f"127.0.0.1:{port}"]) as prometheus,
        serving(port, pipeline, env, "--max-runs", "1"),
    ):
        waiting = await until(
            lambda: answers(prometheus, f"{STAGE_FAILURES} == 0"),
            limit=60,
            what="the stage's failure series scraped at 0",
        )
        await approve_the_run(home, port, "deploy")
        await until(
            lambda: answers(prometheus, 'pipeline_executions_total{pipeline="flaky"} > 0'),
            limit=60,
            what="the run's end scraped",
        )
        alert = await until(
            lambda: answers(prometheus, 'ALERTS{alertname="PipelineStageFailed"}'),
            limit=60,
            what="PipelineStageFailed",
        )
        # At the last scrape's time nothing is extrapolated past it, and a series from 0
        # nothing before its first sample: the increase is the failure count itself.
        (last,) = await answers(prometheus, f"timestamp({STAGE_FAILURES})")
        response = await prometheus.post(
            "/api/v1/query",
            data={"query": f"increase({STAGE_FAILURES}[5m])", "time": last["value"][1]},
        )
        runs = await answers(prometheus, 'pipeline_executions_total{pipeline="flaky"}')
        (firing,) = (await prometheus.get("/api/v1/alerts")).json()["data"]["alerts"]
    (increase,) = response.json()["data"]["result"]
    # The summary names whole attempts: `increase()` at the evaluation's time extrapolates
    # past the last scrape, and "1.05 attempts" (or "1 attempts") read wrong.
    attempts = round(float(firing["value"]))
    assert (
        f"Stage deploy of flaky failed in the last 10 minutes "
        f"({attempts} attempt{'s' if attempts != 1 else ''})"
    ) == firing["annotations"]["summary"]
    assert (
        1,
        1.0,
        [("flaky", "deploy", "info", "firing")],
        {"success": 1.0, "failure": 0.0, "cancelled": 0.0},
    ) == (
        len(waiting),
        float(increase["value"][1]),
        [
            (
                a["metric"]["pipeline"],
                a["metric"]["stage"],
                a["metric"]["severity"],
                a["metric"]["alertstate"],
            )
            for a in alert
        ],
        {run["metric"]["status"]: float(run["value"][1]) for run in runs},
    )
