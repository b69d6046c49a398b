"""The docker-compose stack checked without a container engine: the compose file
against the Compose spec, the wiring between services, the Prometheus config as the container
sees it (promtool), and the Grafana dashboard's PromQL in a real Prometheus over the metric names
that `/metrics` really exposes. The stack: docs/architecture.md, "Deployment stack"."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import yaml
from compose_spec import PyCompose
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import MeterProvider
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from cli_support import TASKDAEMON, environment, write
from pipeline_monitor_support import (
    PROMETHEUS_NAMES,
    Feed,
    Telemetry,
    example_pipeline,
    play_example_run,
)
from prometheus_support import answers, free_port, scraped_serves, start_prometheus, stop, until

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
DASHBOARDS = sorted((ROOT / "grafana" / "dashboards").glob("*.json"))
SERVICES = {
    "taskdaemon",
    "otel-collector",
    "tempo",
    "loki",
    "prometheus",
    "alertmanager",
    "grafana",
}
# What Grafana substitutes before a query reaches Prometheus (the "All" pipeline value is ".*").
GRAFANA_VARIABLES = {
    "${pipeline:regex}": ".*",
    "$pipeline": ".*",
    "$__rate_interval": "1m",
    "$__interval": "15s",
    "$__range": "1h",
    "$__tags": 'pipeline="feature-delivery", stage="planning"',
    '${__span.tags["cicd.pipeline.name"]}': "feature-delivery",
}
# A metric or recording-rule name of ours: the bare `pipeline` label has no `_`/`:` after it.
OUR_NAME = re.compile(r"\bpipeline(?:_stage)?[_:][a-zA-Z0-9_:]+")


def _yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = _yaml(COMPOSE_FILE)
    return data


def _grafana_substitute(expr: str) -> str:
    for name, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(name, value)
    return expr


def _dashboard_exprs() -> list[tuple[str, str]]:
    """``(panel title, PromQL)`` for every Prometheus target of every dashboard."""
    found = []
    for path in DASHBOARDS:
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel.get("targets", []):
                if target.get("datasource", {}).get("type") == "prometheus":
                    found.append((panel["title"], target["expr"]))
    return found


def _traces_to_metrics() -> dict[str, Any]:
    """The Tempo datasource's trace-to-metrics settings."""
    datasources = _yaml(ROOT / "grafana/provisioning/datasources/datasources.yml")["datasources"]
    tempo = next(source for source in datasources if source["type"] == "tempo")
    settings: dict[str, Any] = tempo["jsonData"]["tracesToMetrics"]
    return settings


def _provisioned(text: str) -> str:
    """``text`` as Grafana's provisioning keeps it: `$NAME` and `${...}` are environment
    variables (none is set for Grafana: empty), `$$` a literal `$`."""
    return "$".join(re.sub(r"\$(\{[^}]*\}|\w+)", "", part) for part in text.split("$$"))


def _datasource_exprs() -> list[tuple[str, str]]:
    """The trace-to-metrics queries of the Tempo datasource, as provisioned."""
    return [
        (query["name"], _provisioned(query["query"])) for query in _traces_to_metrics()["queries"]
    ]


def _span_link(query: str, attributes: dict[str, str]) -> str:
    """A provisioned trace-to-metrics ``query`` as Grafana fills it in for a span with
    ``attributes``: `$__tags` is the mapped tags the span has, `${__span.tags["K"]}` its K."""
    tags = ", ".join(
        f'{tag["value"]}="{attributes[tag["key"]]}"'
        for tag in _traces_to_metrics()["tags"]
        if tag["key"] in attributes
    )
    query = query.replace("$__tags", tags)
    return re.sub(r'\$\{__span\.tags\["([^"]+)"\]\}', lambda m: attributes.get(m[1], ""), query)


def _exposed_names() -> set[str]:
    """Sample names of a real `PrometheusMetricReader` exposition after an example run, with a
    stage still open so the resource gauges report."""
    registry = CollectorRegistry()
    reader = PrometheusMetricReader(disable_target_info=True, registry=registry)
    telemetry = Telemetry(meter_provider=MeterProvider(metric_readers=[reader]))
    feed = Feed(telemetry, example_pipeline(), resource_sampling=True)
    play_example_run(feed)
    feed.start_run()
    feed.start("planning")
    text = generate_latest(registry).decode()
    feed.finish("planning")
    feed.finish_run()
    telemetry.shutdown()
    return {
        sample.name
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name.startswith("pipeline_")
    }


def _recording_rules() -> dict[str, str]:
    """Recording rule name to its PromQL."""
    rules = _yaml(ROOT / "prometheus/rules/recording.yml")
    return {rule["record"]: rule["expr"] for group in rules["groups"] for rule in group["rules"]}


# --- the compose file ---------------------------------------------------------------------------


def test_compose_file_follows_the_compose_spec() -> None:
    """The Compose-spec parser accepts docker-compose.yml and finds the six services."""
    parsed = PyCompose.from_yaml(COMPOSE_FILE.read_text())
    assert SERVICES == set(parsed.service_names())


def test_compose_spec_parser_rejects_an_unknown_key() -> None:
    """The parser used above is strict: a misspelt service key fails, so passing means something."""
    with pytest.raises(ValueError, match="portz"):
        PyCompose.from_yaml("services:\n  a:\n    image: busybox:1.36\n    portz: ['1:1']\n")


def test_every_image_is_pinned(compose: dict[str, Any]) -> None:
    """Every service names an image with an explicit version tag, never `latest`."""
    tags = {
        name: service["image"].rpartition(":")[2]
        for name, service in compose["services"].items()
        if ":" in service.get("image", "")
    }
    assert SERVICES == set(tags)
    assert [] == [name for name, tag in tags.items() if tag in {"", "latest"} or "/" in tag]


def test_host_ports_bind_loopback_only(compose: dict[str, Any]) -> None:
    """Every published port is bound to 127.0.0.1 on the host."""
    ports = [port for service in compose["services"].values() for port in service.get("ports", [])]
    assert ports
    assert [] == [port for port in ports if not str(port).startswith("127.0.0.1:")]


def test_host_ports_do_not_clash(compose: dict[str, Any]) -> None:
    """No two services publish the same host port (Prometheus is not on taskdaemon's 9090)."""
    host_ports = [
        str(port).split(":")[1]
        for service in compose["services"].values()
        for port in service.get("ports", [])
    ]
    assert sorted(set(host_ports)) == sorted(host_ports)


def test_bind_mounts_exist_in_the_repository(compose: dict[str, Any]) -> None:
    """Every `./…` volume source is a file or directory of the repository."""
    sources = [
        volume.split(":")[0]
        for service in compose["services"].values()
        for volume in service.get("volumes", [])
        if volume.startswith("./")
    ]
    assert len(sources) >= 6
    assert [] == [source for source in sources if not (ROOT / source).exists()]


def test_named_volumes_are_declared(compose: dict[str, Any]) -> None:
    """Every named volume a service mounts is declared at the top level."""
    named = {
        volume.split(":")[0]
        for service in compose["services"].values()
        for volume in service.get("volumes", [])
        if not volume.startswith(("./", "/"))
    }
    assert named == set(compose["volumes"])


def test_depends_on_names_real_services(compose: dict[str, Any]) -> None:
    """depends_on points at services of the file, and `service_healthy` only at ones with a
    healthcheck."""
    services = compose["services"]
    wrong = [
        (name, dependency)
        for name, service in services.items()
        for dependency, spec in service.get("depends_on", {}).items()
        if dependency not in services
        or (spec["condition"] == "service_healthy" and "healthcheck" not in services[dependency])
    ]
    assert [] == wrong


def _container_port(service: dict[str, Any], path: str) -> str:
    """The container path a host path of the repository is mounted at."""
    for volume in service["volumes"]:
        source, target = volume.split(":")[:2]
        if source == path:
            return str(target)
    raise AssertionError(f"{path} is not mounted")


def test_taskdaemon_exports_to_the_collector_receiver(compose: dict[str, Any]) -> None:
    """taskdaemon's OTLP endpoint is the collector service at its gRPC receiver's port."""
    collector_config = _yaml(ROOT / "collector/otel-collector.yaml")
    grpc = collector_config["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"]
    env = compose["services"]["taskdaemon"]["environment"]
    endpoint = urlsplit(env["OTEL_EXPORTER_OTLP_ENDPOINT"])
    assert ("otel-collector", grpc.rpartition(":")[2], "grpc", "otlp") == (
        endpoint.hostname,
        str(endpoint.port),
        env["OTEL_EXPORTER_OTLP_PROTOCOL"],
        env["OTEL_TRACES_EXPORTER"],
    )
    assert "traces" in collector_config["service"]["pipelines"]


def test_collector_mounts_its_config_where_it_reads_it(compose: dict[str, Any]) -> None:
    """The collector's --config is the path collector/otel-collector.yaml is mounted at."""
    service = compose["services"]["otel-collector"]
    mounted = _container_port(service, "./collector/otel-collector.yaml")
    assert [f"--config={mounted}"] == service["command"]


def test_collector_exports_to_tempo_otlp_http_receiver(compose: dict[str, Any]) -> None:
    """The collector's otlphttp exporter targets the tempo service at Tempo's OTLP HTTP port."""
    exporters = _yaml(ROOT / "collector/otel-collector.yaml")["exporters"]
    tempo = _yaml(ROOT / "tempo/tempo.yaml")
    http = tempo["distributor"]["receivers"]["otlp"]["protocols"]["http"]["endpoint"]
    endpoint = urlsplit(exporters["otlphttp/tempo"]["endpoint"])
    assert ("tempo", http.rpartition(":")[2]) == (endpoint.hostname, str(endpoint.port))
    assert "tempo" in compose["services"]


def test_tempo_stores_locally_and_serves_its_api_on_3200(compose: dict[str, Any]) -> None:
    """Tempo keeps blocks on local disk in its volume and its HTTP API is Grafana's Tempo URL."""
    tempo = _yaml(ROOT / "tempo/tempo.yaml")
    datasources = _yaml(ROOT / "grafana/provisioning/datasources/datasources.yml")["datasources"]
    tempo_url = next(source["url"] for source in datasources if source["type"] == "tempo")
    assert ("local", 3200, "http://tempo:3200") == (
        tempo["storage"]["trace"]["backend"],
        tempo["server"]["http_listen_port"],
        tempo_url,
    )
    assert "tempo-data:/var/tempo" in compose["services"]["tempo"]["volumes"]


def test_prometheus_scrapes_taskdaemon_where_it_listens(compose: dict[str, Any]) -> None:
    """Prometheus' taskdaemon target is the taskdaemon service at the port `serve` binds, on all
    interfaces."""
    command = compose["services"]["taskdaemon"]["command"]
    host, port = command[command.index("--host") + 1], command[command.index("--port") + 1]
    config = _yaml(ROOT / "prometheus/prometheus.yml")
    job = next(job for job in config["scrape_configs"] if job["job_name"] == "taskdaemon")
    assert (["taskdaemon:" + port], "0.0.0.0") == (job["static_configs"][0]["targets"], host)


def test_prometheus_alerts_go_to_the_alertmanager_service(compose: dict[str, Any]) -> None:
    """Prometheus sends alerts to the alertmanager service on its listening port."""
    config = _yaml(ROOT / "prometheus/prometheus.yml")
    targets = config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    published = compose["services"]["alertmanager"]["ports"]
    assert (["alertmanager:9093"], ["127.0.0.1:9093:9093"]) == (targets, published)


def test_alertmanager_routes_to_defined_receivers() -> None:
    """Every route of alertmanager.yml names a receiver the file defines."""
    config = _yaml(ROOT / "alertmanager/alertmanager.yml")
    defined = {receiver["name"] for receiver in config["receivers"]}
    routes = [config["route"], *config["route"].get("routes", [])]
    assert [] == [route["receiver"] for route in routes if route["receiver"] not in defined]


def _amtool(*args: str) -> tuple[int, str]:
    amtool = shutil.which("amtool")
    assert amtool is not None  # scripts/setup.sh --dev installs prometheus-alertmanager
    done = subprocess.run(
        [amtool, *args], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )
    return done.returncode, done.stdout + done.stderr


def test_alertmanager_config_passes_amtool_and_routes_every_alert() -> None:
    """`amtool check-config` passes on alertmanager.yml, and `amtool config routes test`
    delivers every alert of prometheus/rules/alerts.yml, with its severity, to a receiver the
    file defines."""
    config = "alertmanager/alertmanager.yml"
    checked = _amtool("check-config", config)
    rules = [
        rule
        for group in _yaml(ROOT / "prometheus/rules/alerts.yml")["groups"]
        for rule in group["rules"]
        if "alert" in rule
    ]
    defined = {receiver["name"] for receiver in _yaml(ROOT / config)["receivers"]}
    routed = {
        rule["alert"]: _amtool(
            "config",
            "routes",
            "test",
            f"--config.file={config}",
            f"alertname={rule['alert']}",
            f"severity={rule['labels']['severity']}",
            "pipeline=ci",
            "instance=taskdaemon:9090",
        )
        for rule in rules
    }
    assert (0, True) == (checked[0], "SUCCESS" in checked[1]), checked[1]
    assert dict.fromkeys(routed, (0, True)) == {
        name: (code, output.partition("\n")[0] in defined)
        for name, (code, output) in routed.items()
    }, routed


async def test_prometheus_config_passes_promtool_as_mounted(
    compose: dict[str, Any], tmp_path: Path
) -> None:
    """`promtool check config` passes on prometheus/ laid out as the container mounts it."""
    service = compose["services"]["prometheus"]
    mount = _container_port(service, "./prometheus")
    config_flag = next(arg for arg in service["command"] if arg.startswith("--config.file="))
    config_path = Path(config_flag.partition("=")[2])
    assert mount == str(config_path.parent)
    rendered = tmp_path / "etc-prometheus"
    shutil.copytree(ROOT / "prometheus", rendered)
    promtool = shutil.which("promtool")
    assert promtool is not None
    process = await asyncio.create_subprocess_exec(
        promtool,
        "check",
        "config",
        str(rendered / config_path.name),
        cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await process.communicate()
    text = output.decode()
    assert (0, True) == (process.returncode, "SUCCESS: 2 rule files found" in text), text


def test_dockerfile_builds_the_service_the_compose_file_runs(compose: dict[str, Any]) -> None:
    """The Dockerfile starts from python:3.11-slim, installs the project and ships the example
    pipeline the compose command runs."""
    dockerfile = (ROOT / "Dockerfile").read_text()
    command = compose["services"]["taskdaemon"]["command"]
    pipeline = command[command.index("--pipeline") + 1]
    assert (True, True, True, True) == (
        dockerfile.startswith("#") and "FROM python:3.11-slim\n" in dockerfile,
        "RUN pip install .\n" in dockerfile,
        "COPY examples ./examples" in dockerfile,
        (ROOT / pipeline).is_file(),
    )


# --- Grafana ------------------------------------------------------------------------------------


def test_grafana_provisioning_points_at_the_mounted_dashboards(compose: dict[str, Any]) -> None:
    """The dashboard provider reads the directory grafana/dashboards is mounted at, and the
    provisioning directory is mounted where Grafana looks for it."""
    service = compose["services"]["grafana"]
    providers = _yaml(ROOT / "grafana/provisioning/dashboards/dashboards.yml")["providers"]
    assert (
        [_container_port(service, "./grafana/dashboards")],
        "/etc/grafana/provisioning",
    ) == (
        [provider["options"]["path"] for provider in providers],
        _container_port(service, "./grafana/provisioning"),
    )


def test_datasources_link_traces_and_metrics() -> None:
    """Tempo links to Prometheus (trace to metrics, service map) and Prometheus exemplars link to
    Tempo, by the uids the datasources declare."""
    datasources = _yaml(ROOT / "grafana/provisioning/datasources/datasources.yml")["datasources"]
    uids = {source["type"]: source["uid"] for source in datasources}
    tempo = next(source for source in datasources if source["type"] == "tempo")["jsonData"]
    prometheus = next(source for source in datasources if source["type"] == "prometheus")
    assert (uids["prometheus"], uids["prometheus"], True, uids["tempo"]) == (
        tempo["tracesToMetrics"]["datasourceUid"],
        tempo["serviceMap"]["datasourceUid"],
        not tempo["search"]["hide"],
        prometheus["jsonData"]["exemplarTraceIdDestinations"][0]["datasourceUid"],
    )


def test_exemplar_links_name_the_label_tempos_exemplars_carry() -> None:
    """The stack's exemplars are the ones Tempo's metrics generator remote-writes with its span
    metrics (taskdaemon's `/metrics` serves none), their trace id under Tempo's label name
    (`trace_id_label_name`, `traceID` unless set): Grafana's exemplar link must read that label,
    or no exemplar ever links to its trace."""
    tempo = _yaml(ROOT / "tempo/tempo.yaml")
    generator = tempo["overrides"]["defaults"]["metrics_generator"]
    datasources = _yaml(ROOT / "grafana/provisioning/datasources/datasources.yml")["datasources"]
    prometheus = next(source for source in datasources if source["type"] == "prometheus")
    assert (True, generator.get("trace_id_label_name", "traceID")) == (
        tempo["metrics_generator"]["storage"]["remote_write"][0]["send_exemplars"],
        prometheus["jsonData"]["exemplarTraceIdDestinations"][0]["name"],
    )


def test_dashboards_use_only_provisioned_datasources() -> None:
    """Every datasource a dashboard panel or target names is a provisioned one."""
    datasources = _yaml(ROOT / "grafana/provisioning/datasources/datasources.yml")["datasources"]
    provisioned = {(source["type"], source["uid"]) for source in datasources}
    used = set()
    for path in DASHBOARDS:
        for panel in json.loads(path.read_text())["panels"]:
            for holder in [panel, *panel.get("targets", [])]:
                if "datasource" in holder:
                    used.add((holder["datasource"]["type"], holder["datasource"]["uid"]))
    assert {("prometheus", "prometheus"), ("tempo", "tempo")} == used
    assert used <= provisioned


def test_dashboard_has_pipeline_variable_and_recent_runs_table() -> None:
    """The overview has a `$pipeline` variable over the active-runs gauge and a Tempo table of
    run spans whose run id links to the trace."""
    dashboard = json.loads((ROOT / "grafana/dashboards/taskdaemon-overview.json").read_text())
    variable = dashboard["templating"]["list"][0]
    table = next(panel for panel in dashboard["panels"] if panel["title"] == "Recent runs")
    link_override = next(
        override
        for override in table["fieldConfig"]["overrides"]
        if override["matcher"]["options"] == "traceID"
    )
    links = next(prop for prop in link_override["properties"] if prop["id"] == "links")
    assert ("pipeline", "label_values(pipeline_active_executions, pipeline)", True) == (
        variable["name"],
        variable["definition"],
        variable["includeAll"],
    )
    assert '{ span.cicd.pipeline.action.name = "RUN"' in table["targets"][0]["query"]
    assert ("tempo", "${__value.raw}") == (
        links["value"][0]["internal"]["datasourceUid"],
        links["value"][0]["internal"]["query"]["query"],
    )


def test_dashboard_metric_names_are_exposed_or_recorded() -> None:
    """Every metric name a dashboard query uses is a sample `/metrics` exposes or a recording
    rule, and together the panels cover all ten metrics and the p50/p90/p99 rules."""
    known = _exposed_names() | set(_recording_rules())
    used = {
        name
        for _, expr in _dashboard_exprs() + _datasource_exprs()
        for name in OUR_NAME.findall(_grafana_substitute(expr))
    }
    assert set() == used - known
    rules = _recording_rules()
    through_rules = {name for rule in used & set(rules) for name in OUR_NAME.findall(rules[rule])}
    families = {re.sub(r"_(bucket|sum|count)$", "", name) for name in used | through_rules}
    recorded_quantiles = {name for name in rules if re.search(r":p(50|90|99)$", name)}
    assert set() == PROMETHEUS_NAMES - families
    assert set() == recorded_quantiles - used


def test_exposition_has_the_ten_metrics() -> None:
    """The exposition the name check relies on does carry all ten documented pipeline metrics."""
    families = {re.sub(r"_(bucket|sum|count|created)$", "", name) for name in _exposed_names()}
    assert PROMETHEUS_NAMES <= families


# --- every PromQL expression in a real Prometheus ----------------------------------------------


@pytest.fixture
async def prometheus(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    """A real Prometheus with this repository's recording and alert rules loaded and nothing to
    scrape (Alertmanager is left out: it is not there)."""
    port = free_port()
    rendered = tmp_path / "etc-prometheus"
    shutil.copytree(ROOT / "prometheus", rendered)
    config = rendered / "prometheus.yml"
    data = _yaml(config)
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


@pytest.mark.slow
async def test_every_dashboard_expression_runs_in_prometheus(
    prometheus: httpx.AsyncClient,
) -> None:
    """Every PromQL target and trace-to-metrics query, with Grafana's variables substituted, is
    accepted and evaluated by a real Prometheus that has the rules loaded."""
    groups = (await prometheus.get("/api/v1/rules")).json()["data"]["groups"]
    results = {}
    for title, expr in _dashboard_exprs() + _datasource_exprs():
        answer = (
            await prometheus.post("/api/v1/query", data={"query": _grafana_substitute(expr)})
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
    empty = {(title, expr) for title, expr in _dashboard_exprs()}
    async with scraped_serves(home, tmp_path, PANELS_PIPELINE) as client:

        async def all_answered() -> bool:
            for title, expr in sorted(empty):
                if await answers(client, _grafana_substitute(expr)):
                    empty.discard((title, expr))
            return not empty

        with contextlib.suppress(AssertionError):
            await until(all_answered, limit=120, what="data in every panel", interval=1)
    assert set() == empty


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
        for name, query in _datasource_exprs()
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
