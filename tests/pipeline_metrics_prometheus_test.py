"""Prometheus: rule files pass promtool, and a real Prometheus scraping `taskdaemon serve`
answers PromQL that matches the runs."""

from __future__ import annotations

import asyncio
import json
import math
import os
import shutil
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from cli_support import free_port
from pipeline_monitor_support import PROMETHEUS_NAMES
from prometheus_support import PROMETHEUS, start_prometheus, stop, until

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent


async def _promtool(*args: str) -> tuple[int | None, str]:
    promtool = shutil.which("promtool")
    assert promtool is not None
    process = await asyncio.create_subprocess_exec(
        promtool,
        *args,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await process.communicate()
    return process.returncode, output.decode()


async def test_rules_pass_promtool_check() -> None:
    """The recording and alert rules are valid."""
    code, output = await _promtool(
        "check", "rules", "prometheus/rules/recording.yml", "prometheus/rules/alerts.yml"
    )
    assert (0, 2) == (code, output.count("SUCCESS")), output


@pytest.mark.slow
async def test_rule_unit_tests_pass() -> None:
    """`promtool test rules` passes: quantiles, failure ratio and alerts behave as written."""
    code, output = await _promtool("test", "rules", "prometheus/tests/rules_test.yml")
    assert (0, True) == (code, "SUCCESS" in output), output


def test_every_alert_rule_has_a_unit_test_that_fires_it_and_one_that_does_not() -> None:
    """Each alert of prometheus/rules/alerts.yml has `promtool test rules` cases in
    prometheus/tests/rules_test.yml both where it fires and where it does not."""
    alerts = yaml.safe_load((ROOT / "prometheus/rules/alerts.yml").read_text())
    names = {rule["alert"] for group in alerts["groups"] for rule in group["rules"]}
    cases = yaml.safe_load((ROOT / "prometheus/tests/rules_test.yml").read_text())["tests"]
    seen = {
        (case["alertname"], bool(case["exp_alerts"]))
        for test in cases
        for case in test.get("alert_rule_test", [])
    }
    missing = {(name, fires) for name in names for fires in (True, False)} - seen
    assert set() == {(name, "fires" if fires else "quiet") for name, fires in missing}


def test_every_recording_rule_has_a_unit_test_of_its_own() -> None:
    """Each recording rule of prometheus/rules/recording.yml is the expression of a
    `promql_expr_test` case, with the samples it must give: six had none, so a wrong quantile,
    metric or `by` in them passed `promtool test rules`."""
    recording = yaml.safe_load((ROOT / "prometheus/rules/recording.yml").read_text())
    names = {rule["record"] for group in recording["groups"] for rule in group["rules"]}
    cases = yaml.safe_load((ROOT / "prometheus/tests/rules_test.yml").read_text())["tests"]
    tested = {
        case["expr"]
        for test in cases
        for case in test.get("promql_expr_test", [])
        if case["exp_samples"]
    }
    assert set() == names - tested


async def test_prometheus_config_is_valid() -> None:
    """prometheus.yml and the rule files it names pass `promtool check config`."""
    code, output = await _promtool("check", "config", "prometheus/prometheus.yml")
    assert 0 == code, output


# --- a real Prometheus scraping a real daemon ---------------------------------------------------


# The example, with a last stage that holds each run until the test opens its gate: the resource
# gauges exist only while a stage runs, and the example's stages are over in a fraction of a
# second, so whether a once-a-second scrape caught one running was chance (a fresh clone missed
# both gauges once). Held, a running stage is there to be scraped for as long as it takes.
HOLD_STAGE = """
  - name: hold
    loop: command
    command: 'while [ ! -e "$TASKDAEMON_TEST_GATE" ]; do sleep 0.05; done'
    triggers:
      - on_completion: {stage: release}
"""


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[dict[str, Any]]:
    """Prometheus (scrape interval 1s) scraping `taskdaemon serve` running 3 scheduled runs of
    the example, each held in its last stage until ``gate`` exists."""
    assert os.access(PROMETHEUS, os.X_OK)
    daemon_port, prometheus_port = free_port(), free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        "scrape_configs:\n"
        "  - job_name: taskdaemon\n"
        f"    static_configs: [{{targets: ['127.0.0.1:{daemon_port}']}}]\n"
    )
    prometheus_log = (tmp_path / "prometheus.log").open("wb")
    daemon_log = (tmp_path / "daemon.log").open("wb")
    prometheus = await start_prometheus(config, tmp_path, prometheus_port, prometheus_log)
    pipeline = tmp_path / "feature_delivery_held.yaml"
    pipeline.write_text((ROOT / "examples" / "feature_delivery.yaml").read_text() + HOLD_STAGE)
    gate = tmp_path / "gate"
    env = {
        **os.environ,
        "TASKDAEMON_TEST_GATE": str(gate),
        "TASKDAEMON_HOME": str(tmp_path / "home"),
        "OTEL_TRACES_EXPORTER": "none",
        "OTEL_LOGS_EXPORTER": "none",
    }
    env.pop("OTEL_METRICS_EXPORTER", None)
    daemon = await asyncio.create_subprocess_exec(
        str(VENV_BIN / "taskdaemon"),
        "serve",
        "--port",
        str(daemon_port),
        "--pipeline",
        str(pipeline),
        "--every",
        "1",
        "--max-runs",
        "3",
        "--auto-approve",
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=daemon_log,
    )
    base = f"http://127.0.0.1:{prometheus_port}"
    try:
        async with httpx.AsyncClient(timeout=5.0) as client:

            async def ready() -> bool:
                return (await client.get(f"{base}/-/ready")).status_code == 200

            await until(ready, limit=60, what="Prometheus to be ready")
        yield {"prometheus": base, "tmp": tmp_path, "gate": gate}
    finally:
        await stop(daemon)
        await stop(prometheus)
        prometheus_log.close()
        daemon_log.close()


async def _query(client: httpx.AsyncClient, base: str, promql: str) -> list[dict[str, Any]]:
    response = await client.get(f"{base}/api/v1/query", params={"query": promql})
    response.raise_for_status()  # 503 while Prometheus starts: _until polls again
    body = response.json()
    assert "success" == body["status"], body
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


#: Every label (or instrument's label set) a fold is counted under, each at 0 from the start.
FOLD_LABELS = (
    "pipeline",
    "stage",
    "status",
    "trigger_type",
    "cicd.pipeline.name",
    "cicd.pipeline.result",
    "error.type",
    "pipeline,stage",
    "pipeline,stage,status",
    "pipeline,stage,trigger_type",
    "pipeline,status",
    "cicd.pipeline.name,cicd.pipeline.result",
    "cicd.pipeline.name,error.type",
)


@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_promql_over_real_runs(stack: dict[str, Any]) -> None:
    """While a run's stage runs, Prometheus scrapes its resource gauges; after three scheduled
    runs, PromQL counts them by status, sees all ten pipeline metrics (and the label guard's
    fold counter, at 0 for every label a fold can be counted under: ``PipelineLabelsFolded``
    stays quiet) and computes a stage-duration median from the histogram."""
    base = stack["prometheus"]
    async with httpx.AsyncClient(timeout=5.0) as client:

        async def gauges_scraped() -> Any:
            names = '{__name__=~"pipeline_memory_usage_bytes|pipeline_cpu_usage_percent"}'
            return len(await _query(client, base, f"count by (__name__) ({names})")) == 2

        await until(gauges_scraped, limit=60, what="a held stage's gauges in Prometheus")
        stack["gate"].touch()

        async def three_runs_scraped() -> Any:
            rows = await _query(client, base, "sum(pipeline_executions_total)")
            return rows and float(rows[0]["value"][1]) >= 3

        await until(three_runs_scraped, limit=90, what="3 runs in Prometheus")
        by_status = await _query(client, base, "sum by (status) (pipeline_executions_total)")
        # The median over the buckets' totals, which one scrape after the three runs holds.
        # A rate() over them needs two scrapes on either side of a stage's end, which this test
        # cannot schedule: when all runs end before the first scrape (a loaded machine starting
        # Prometheus slowly) the rate is empty, then zero, and its quantile NaN for good.
        median = await _query(
            client,
            base,
            "histogram_quantile(0.5, sum by (le) (pipeline_stage_duration_seconds_bucket))",
        )
        per_stage = await _query(
            client, base, 'sum by (stage) (pipeline_stage_executions_total{status="success"})'
        )
        by_label = await _query(client, base, "sum by (label) (pipeline_labels_folded_total)")
        # Every name ever scraped (the resource gauges exist only while a stage runs).
        response = await client.get(f"{base}/api/v1/label/__name__/values")
        names = response.json()["data"]
    counts = {row["metric"]["status"]: float(row["value"][1]) for row in by_status}
    value = float(median[0]["value"][1])
    stages = {row["metric"]["stage"]: float(row["value"][1]) for row in per_stage}
    folds = {row["metric"]["label"]: float(row["value"][1]) for row in by_label}
    metric_names = {
        name.removesuffix("_bucket").removesuffix("_sum").removesuffix("_count")
        for name in names
        if name.startswith("pipeline_")
    }
    expected = (
        {"success": 3.0, "failure": 0.0, "cancelled": 0.0},
        True,
        {
            "planning": 3.0,
            "specification": 3.0,
            "implementation": 9.0,
            "verification": 3.0,
            "release": 3.0,
            "hold": 3.0,
        },
        {*PROMETHEUS_NAMES, "pipeline_labels_folded_total"},
        dict.fromkeys(FOLD_LABELS, 0.0),
    )
    actual = (counts, math.isfinite(value) and value > 0, stages, metric_names, folds)
    assert expected == actual, json.dumps({"median": median, "names": sorted(metric_names)})
