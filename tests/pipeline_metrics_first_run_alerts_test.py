"""A pipeline's first run against a real Prometheus with the shipped rules: its run-status
series are scraped at 0 before the run ends, so its first failure is growth ``increase()`` and
the failure-ratio rule can see.

Prometheus' ``rate()`` and ``increase()`` count what a series grew by between its samples: a
``pipeline_executions_total{status="failure"}`` series that first appeared at 1 hid that
failure from ``pipeline:execution_failure_ratio:rate30m`` and ``PipelineFailureRateHigh``.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from cli_support import TASKDAEMON, environment, write
from prometheus_support import answers, free_port, rules_prometheus, stop, until

GATED_FAILING = """\
name: gated
stages:
  - name: deploy
    command: "false"
    triggers: [{manual: {approval_required: true}}]
"""
WAITING = 'pipeline_active_executions{pipeline="gated"} == 1'
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
    pipeline = write(tmp_path / "gated.yaml", GATED_FAILING)
    async with rules_prometheus(tmp_path, [f"127.0.0.1:{port}"]) as prometheus:
        daemon = await asyncio.create_subprocess_exec(
            *(TASKDAEMON, "serve", "--port", str(port), "--pipeline", str(pipeline)),
            *("--max-runs", "1"),
            env=environment(home, OTEL_METRICS_EXPORTER="prometheus"),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        try:
            await until(
                lambda: answers(prometheus, WAITING), limit=60, what="the waiting run scraped"
            )
            token = (home / f"api-token.{port}").read_text().strip()
            async with httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{port}",
                headers={"Authorization": f"Bearer {token}"},
            ) as api:
                (run,) = (await api.get("/api/runs")).json()["runs"]
                approved = await api.post(
                    f"/api/runs/{run['run_id']}/approve/deploy", json={"comment": "go"}
                )
            assert 202 == approved.status_code, approved.text
            await until(lambda: answers(prometheus, FAILED), limit=60, what="the failure scraped")
            ratio = await until(
                lambda: answers(prometheus, f"{RATIO} > 0"),
                limit=60,
                what="the failure ratio recorded above 0",
            )
            increase = await answers(prometheus, INCREASE)
        finally:
            await stop(daemon)
    assert 1.0 == float(ratio[0]["value"][1])
    assert [True] == [float(series["value"][1]) >= 1.0 for series in increase]
