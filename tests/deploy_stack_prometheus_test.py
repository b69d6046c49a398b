"""The docker-compose stack's rules and dashboards run in a real Prometheus, without a
container engine: every dashboard expression, the pipeline variable and every panel and trace
link after real runs, and the alerts of a daemon that is down. The stack: docs/architecture.md,
"Deployment stack"."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from cli_support import ONE_STAGE_PIPELINE, ROOT, TASKDAEMON, environment, free_port, write
from deploy_stack_support import (
    dashboard_exprs,
    datasource_exprs,
    grafana_substitute,
    traces_to_metrics,
    yaml_at,
)
from prometheus_support import (
    alert_expression,
    answers,
    rules_prometheus,
    scraped_serves,
    serving,
    start_prometheus,
    stop,
    until,
)


@pytest.fixture
async def prometheus(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    """A real Prometheus with this repository's recording and alert rules loaded and nothing to
    scrape (Alertmanager is left out: it is not there)."""
    port = free_port()
    rendered = tmp_path / "etc-prometheus"
    shutil.copytree(ROOT / "prometheus", rendered)
    config = rendered / "prometheus.yml"
    data = yaml_at(config)
    data.pop("alerting")
    data["scrape_configs"] = []
    config.write_text(yaml.safe_dump(data))
    log = (tmp_path / "prometheus.log").open("wb")
    process = await start_prometheus(config, tmp_path, port, log)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:

            async def ready() -> bool:
                return (await client.get("/-/ready")).status_code == 200

            await until(ready, limit=30, what="prometheus ready")
            yield client
    finally:
        await stop(process)
        log.close()


def _span_link(query: str, attributes: dict[str, str]) -> str:
    """A provisioned trace-to-metrics ``query`` as Grafana fills it in for a span with
    ``attributes``: `$__tags` is the mapped tags the span has, `${__span.tags["K"]}` its K."""
    tags = ", ".join(
        f'{tag["value"]}="{attributes[tag["key"]]}"'
        for tag in traces_to_metrics()["tags"]
        if tag["key"] in attributes
    )
    query = query.replace("$__tags", tags)
    return re.sub(r'\$\{__span\.tags\["([^"]+)"\]\}', lambda m: attributes.get(m[1], ""), query)


@pytest.mark.slow
async def test_every_dashboard_expression_runs_in_prometheus(
    prometheus: httpx.AsyncClient,
) -> None:
    """Every PromQL target and trace-to-metrics query, with Grafana's variables substituted, is
    accepted and evaluated by a real Prometheus that has the rules loaded."""
    groups = (await prometheus.get("/api/v1/rules")).json()["data"]["groups"]
    results = {}
    for title, expr in dashboard_exprs() + datasource_exprs():
        answer = (
            await prometheus.post("/api/v1/query", data={"query": grafana_substitute(expr)})
        ).json()
        results[(title, expr)] = answer.get("error", answer["status"])
    assert 2 == len(groups)
    assert len(results) >= 25
    assert dict.fromkeys(results, "success") == results


# A run that waits for an approval nobody gives: active for as long as it is served, never ended.
WAITING_PIPELINE = """\
    name: awaiting-approval
    stages:
      - name: start
        command: "true"
        triggers: [{manual: {approval_required: false}}]
      - name: gate
        command: "true"
        triggers: [{on_completion: {stage: start}}, {manual: {approval_required: true}}]
        trigger_mode: all
    """


@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_the_pipeline_variable_offers_a_pipeline_whose_first_run_has_not_ended(
    home: Path, tmp_path: Path
) -> None:
    """The dashboard's `$pipeline` choices, asked of a real Prometheus scraping a real
    `taskdaemon run --serve` whose run waits for an approval, include that pipeline: the one
    `PipelineRunsStuck` names can be picked on the dashboard it leads to."""
    dashboard = json.loads((ROOT / "grafana/dashboards/taskdaemon-overview.json").read_text())
    definition = dashboard["templating"]["list"][0]["definition"]
    match = re.fullmatch(r"label_values\((.+), pipeline\)", definition)
    assert match is not None, definition
    daemon_port, prometheus_port = free_port(), free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s}\n"
        "scrape_configs:\n"
        "  - job_name: taskdaemon\n"
        f"    static_configs: [{{targets: ['127.0.0.1:{daemon_port}']}}]\n"
    )
    pipeline = write(tmp_path / "waiting.yaml", WAITING_PIPELINE)
    log = (tmp_path / "prometheus.log").open("wb")
    prometheus = await start_prometheus(config, tmp_path, prometheus_port, log)
    daemon = await asyncio.create_subprocess_exec(
        TASKDAEMON,
        "run",
        str(pipeline),
        "--serve",
        f"127.0.0.1:{daemon_port}",
        env=environment(home, OTEL_METRICS_EXPORTER="prometheus"),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        base = f"http://127.0.0.1:{prometheus_port}"
        async with httpx.AsyncClient(base_url=base, timeout=5) as client:

            async def active_run_scraped() -> bool:
                query = {"query": 'pipeline_active_executions{pipeline="awaiting-approval"} > 0'}
                response = await client.get("/api/v1/query", params=query)
                response.raise_for_status()  # 503 while Prometheus starts: polled again
                return bool(response.json()["data"]["result"])

            await until(active_run_scraped, limit=90, what="the waiting run's active gauge")
            answer = await client.get("/api/v1/label/pipeline/values", params={"match[]": match[1]})
        assert ["awaiting-approval"] == answer.json()["data"]
    finally:
        await stop(daemon)
        await stop(prometheus)
        log.close()


# Real runs for every panel: a stage held long enough to be scraped running (the resource
# gauges), one queued behind it (one worker slot), one that fails.
PANELS_PIPELINE = """\
    name: panels
    concurrency: 1
    error_strategy: continue
    stages:
      - name: start
        command: "true"
        triggers: [{manual: {approval_required: false}}]
      - name: held
        command: "sleep 1.5"
        triggers: [{on_completion: {stage: start}}]
      - name: queued
        command: "true"
        triggers: [{on_completion: {stage: start}}]
      - name: fails
        command: "exit 3"
        triggers: [{on_completion: {stage: start}}]
    """


# A second pipeline beside it, so that a link showing every pipeline is told from one showing
# the span's.
OTHER_PIPELINE = """\
    name: other
    stages:
      - name: only
        command: "true"
        triggers: [{manual: {approval_required: false}}]
    """


# The attributes of a run span and of a stage span of PANELS_PIPELINE that trace-to-metrics reads.
RUN_SPAN = {"cicd.pipeline.name": "panels"}


STAGE_SPAN = {**RUN_SPAN, "cicd.pipeline.task.name": "held"}


@pytest.mark.slow
@pytest.mark.timeout(180)
async def test_every_dashboard_panel_shows_data_after_real_runs(home: Path, tmp_path: Path) -> None:
    """Every Prometheus target of the dashboards, with Grafana's variables substituted, answers
    at least one series from a real Prometheus that loads this repository's rules (evaluated
    every second) and scrapes a real `taskdaemon serve` running a pipeline every second, its
    spans and logs exported to a collector that is down."""
    empty = {(title, expr) for title, expr in dashboard_exprs()}
    async with scraped_serves(home, tmp_path, PANELS_PIPELINE) as client:

        async def all_answered() -> bool:
            for title, expr in sorted(empty):
                if await answers(client, grafana_substitute(expr)):
                    empty.discard((title, expr))
            return not empty

        with contextlib.suppress(AssertionError):
            await until(all_answered, limit=120, what="data in every panel", interval=1)
    assert set() == empty


#: A metric name of ours in PromQL (a bare label such as `pipeline` has no `_` or `:` after it).
OUR_METRIC = re.compile(r"\b(?:pipeline|taskdaemon|cicd)[_:][a-zA-Z0-9_:]+")


@pytest.mark.slow
@pytest.mark.timeout(180)
async def test_every_series_the_rules_read_is_scraped_from_a_real_daemon(
    home: Path, tmp_path: Path
) -> None:
    """Every metric of ours that an alert or recording rule reads is one a real `taskdaemon
    serve` gets scraped for (or one a recording rule makes). The rules' promtool unit tests feed
    them series named by hand, and the dashboard tests read only what the dashboards do: a
    metric renamed in the code, or a name misspelt alike in a rule and its unit test, passed
    them all while the alert could never fire (`taskdaemon_runs_not_started_total` is read by
    an alert alone)."""
    rules = [
        rule
        for name in ("recording.yml", "alerts.yml")
        for group in yaml_at(ROOT / "prometheus" / "rules" / name)["groups"]
        for rule in group["rules"]
    ]
    recorded = {rule["record"] for rule in rules if "record" in rule}
    read = {name for rule in rules for name in OUR_METRIC.findall(rule["expr"])} - recorded
    missing = set(read)
    async with scraped_serves(home, tmp_path, PANELS_PIPELINE) as client:

        async def all_scraped() -> bool:
            rows = await answers(client, 'count by (__name__) ({job="taskdaemon"})')
            missing.difference_update(row["metric"]["__name__"] for row in rows)
            return not missing

        with contextlib.suppress(AssertionError):
            await until(all_scraped, limit=60, what="every series the rules read", interval=1)
    assert (True, set()) == (len(read) >= 10, missing)


def _of_span(series: dict[str, Any], span: dict[str, str]) -> bool:
    """Whether a series is the span's: its pipeline, and its stage when both have one."""
    labels = series["metric"]
    stage = labels.get("stage")
    same_stage = stage is None or stage == span.get("cicd.pipeline.task.name", stage)
    return labels["pipeline"] == span["cicd.pipeline.name"] and same_stage


@pytest.mark.slow
@pytest.mark.timeout(180)
async def test_every_trace_link_shows_the_spans_data(home: Path, tmp_path: Path) -> None:
    """Each trace-to-metrics link, as Grafana fills it in from a run span and from a stage
    span, answers series, and only the span's pipeline's (and stage's), with two pipelines
    scraped."""
    links = {
        (name, kind): _span_link(query, span)
        for name, query in datasource_exprs()
        for kind, span in (("run", RUN_SPAN), ("stage", STAGE_SPAN))
    }
    spans = {"run": RUN_SPAN, "stage": STAGE_SPAN}
    wrong = dict.fromkeys(links, "no data")
    async with scraped_serves(home, tmp_path, PANELS_PIPELINE, OTHER_PIPELINE) as client:

        async def all_right() -> bool:
            for (name, kind), expr in links.items():
                series = await answers(client, expr)
                if series and all(_of_span(one, spans[kind]) for one in series):
                    wrong.pop((name, kind), None)
                elif series:
                    wrong[(name, kind)] = f"{expr}: {[one['metric'] for one in series]}"
            return not wrong

        with contextlib.suppress(AssertionError):
            await until(all_right, limit=90, what="the span's data in every link", interval=1)
    assert {} == wrong


# Found on PATH (scripts/setup.sh --dev installs Debian's, which names it so), like Prometheus.
ALERTMANAGER = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")


@pytest.mark.slow
async def test_a_daemon_that_is_down_silences_its_own_alerts_only(tmp_path: Path) -> None:
    """A real Alertmanager with alertmanager/alertmanager.yml: `TaskdaemonDown` for one daemon
    inhibits the warnings of that daemon only. With several daemons (one `serve` per pipeline)
    it silenced every warning of the others, and every pipeline alert, for as long as one was
    down."""
    assert ALERTMANAGER is not None, "prometheus-alertmanager is not installed"
    port = free_port()
    with (tmp_path / "alertmanager.log").open("wb") as log:
        alertmanager = await asyncio.create_subprocess_exec(
            ALERTMANAGER,
            f"--config.file={ROOT / 'alertmanager' / 'alertmanager.yml'}",
            f"--storage.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
            stdout=asyncio.subprocess.DEVNULL,
            stderr=log,
        )
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as api:
                down = {"alertname": "TaskdaemonDown", "instance": "a:9090", "severity": "critical"}
                warnings = [
                    {"alertname": "TaskdaemonSpansLost", "instance": name, "severity": "warning"}
                    for name in ("a:9090", "b:9090")
                ]
                failing = {
                    "alertname": "PipelineFailureRateHigh",
                    "pipeline": "p",
                    "severity": "warning",
                }
                sent = [{"labels": labels} for labels in (down, *warnings, failing)]

                async def posted() -> bool:
                    return (await api.post("/api/v2/alerts", json=sent)).status_code == 200

                await until(posted, limit=30, what="Alertmanager taking the alerts")

                async def listed() -> dict[str, list[str]] | None:
                    alerts = (await api.get("/api/v2/alerts")).json()
                    states = {
                        f"{a['labels']['alertname']} {a['labels'].get('instance', '-')}": a[
                            "status"
                        ]["state"]
                        for a in alerts
                    }
                    # The inhibitor has taken the down daemon in once it silences its own.
                    silenced = states.get("TaskdaemonSpansLost a:9090") == "suppressed"
                    return states if len(states) == 4 and silenced else None

                states = await until(listed, limit=30, what="the down daemon's warning silenced")
        finally:
            await stop(alertmanager)
    assert {
        "TaskdaemonDown a:9090": "active",
        "TaskdaemonSpansLost a:9090": "suppressed",
        "TaskdaemonSpansLost b:9090": "active",
        "PipelineFailureRateHigh -": "active",
    } == states


@pytest.mark.slow
async def test_a_dead_daemons_stage_alerts_stop_at_its_first_failed_scrape(
    home: Path, tmp_path: Path
) -> None:
    """`PipelineStageSlow` and `PipelineStageQueueing` (their thresholds lowered to 0 here) answer
    while a real `serve` runs its stage, and nothing once Prometheus failed to scrape it after a
    SIGKILL, while `TaskdaemonDown`'s expression answers. They read an hour: they kept
    answering that hour from the samples of a daemon that was gone."""
    rules = {
        name: alert_expression(name).replace(threshold, "> 0")
        for name, threshold in (("PipelineStageSlow", "> 1800"), ("PipelineStageQueueing", "> 300"))
    }
    assert all("> 0" in expr for expr in rules.values())
    port = free_port()
    pipeline = write(tmp_path / "one.yaml", ONE_STAGE_PIPELINE)
    env = environment(home, OTEL_METRICS_EXPORTER="prometheus")
    async with (
        rules_prometheus(tmp_path, [f"127.0.0.1:{port}"]) as prometheus,
        serving(port, pipeline, env, "--every", "0.2") as daemon,
    ):
        for name, expr in rules.items():
            await until(lambda expr=expr: answers(prometheus, expr), limit=60, what=name)
        daemon.kill()
        await daemon.wait()
        await until(
            lambda: answers(prometheus, alert_expression("TaskdaemonDown")),
            limit=60,
            what="the failed scrape",
        )
        after = {name: await answers(prometheus, expr) for name, expr in rules.items()}
    assert {"PipelineStageSlow": [], "PipelineStageQueueing": []} == after
