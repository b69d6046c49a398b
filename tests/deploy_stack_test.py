"""The docker-compose stack checked without a container engine: the compose file
against the Compose spec, the wiring between services, the Prometheus config as the container
sees it (promtool), and the Grafana provisioning and dashboards over the metric names that
`/metrics` really exposes (their queries in a real Prometheus: deploy_stack_prometheus_test.py).
The stack: docs/architecture.md, "Deployment stack"."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import sys
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from compose_spec import PyCompose
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import MeterProvider
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from cli_support import ONE_STAGE_PIPELINE, ROOT, free_port, write
from collector_support import answering_posts
from deploy_stack_support import (
    DASHBOARDS,
    dashboard_exprs,
    datasource_exprs,
    grafana_substitute,
    yaml_at,
)
from pipeline_monitor_support import (
    PROMETHEUS_NAMES,
    Feed,
    Telemetry,
    example_pipeline,
    play_example_run,
)
from prometheus_support import exporting_environment, serving, until
from taskdaemon.pipeline.cli.ui import DEFAULT_PORT as UI_DEFAULT_PORT
from taskdaemon.pipeline.settings import Settings
from taskdaemon.pipeline.web._views import grafana_trace_url

COMPOSE_FILE = ROOT / "docker-compose.yml"


SERVICES = {
    "taskdaemon",
    "otel-collector",
    "tempo",
    "loki",
    "prometheus",
    "alertmanager",
    "grafana",
}


# A metric or recording-rule name of ours: the bare `pipeline` label has no `_`/`:` after it.
OUR_NAME = re.compile(r"\bpipeline(?:_stage)?[_:][a-zA-Z0-9_:]+")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml_at(COMPOSE_FILE)
    return data


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
    rules = yaml_at(ROOT / "prometheus/rules/recording.yml")
    return {rule["record"]: rule["expr"] for group in rules["groups"] for rule in group["rules"]}


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


def _host_ports(service: dict[str, Any]) -> set[int]:
    """The host ports ``service`` publishes (``127.0.0.1:HOST:CONTAINER``)."""
    return {int(str(port).split(":")[1]) for port in service.get("ports", [])}


def test_host_ports_leave_taskdaemons_own_defaults_free(compose: dict[str, Any]) -> None:
    """No service but taskdaemon's publishes a port a taskdaemon command binds by default on
    the host: `taskdaemon ui --source tempo+http://127.0.0.1:3200` (README), reading the
    stack's Tempo, found its 9091 taken by the stack's Prometheus."""
    defaults = {Settings().metrics_port, UI_DEFAULT_PORT}
    taken = {
        (name, port)
        for name, service in compose["services"].items()
        if name != "taskdaemon"
        for port in _host_ports(service) & defaults
    }
    assert set() == taken


def _section(path: Path, title: str) -> str:
    """The text of ``path``'s section ``## title``, up to the next ``## `` heading."""
    return path.read_text().split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]


def test_docs_list_every_published_port(compose: dict[str, Any]) -> None:
    """The README's table of where to find the stack and docs/architecture.md's table of its
    services name every host port the compose file publishes, and no other: Loki's 3100 and
    the collector's 13133 were missing from the README's."""
    published = {port for service in compose["services"].values() for port in _host_ports(service)}
    readme = _section(ROOT / "README.md", "Deployment stack")
    in_readme = {int(port) for port in re.findall(r"127\.0\.0\.1:(\d+)", readme)}
    architecture = _section(ROOT / "docs/architecture.md", "Deployment stack")
    rows = [line for line in architecture.splitlines() if line.startswith("| `")]
    in_architecture = {
        int(port) for row in rows for port in re.findall(r"\b\d{4,5}\b", row.split("|")[-2])
    }
    assert (published, published) == (in_readme, in_architecture)


def test_docs_name_every_alert() -> None:
    """Every alert of ``prometheus/rules/`` is named in docs/architecture.md, where a reader
    paged by one looks it up: ``PipelineRunsStuck`` was in no document."""
    rules = "".join(path.read_text() for path in sorted((ROOT / "prometheus/rules").glob("*.yml")))
    alerts = re.findall(r"^\s*- alert: (\w+)$", rules, re.MULTILINE)
    documented = (ROOT / "docs/architecture.md").read_text()
    assert ([], True) == (
        [name for name in alerts if f"`{name}`" not in documented],
        "TaskdaemonDown" in alerts,
    )


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
    collector_config = yaml_at(ROOT / "collector/otel-collector.yaml")
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
    exporters = yaml_at(ROOT / "collector/otel-collector.yaml")["exporters"]
    tempo = yaml_at(ROOT / "tempo/tempo.yaml")
    http = tempo["distributor"]["receivers"]["otlp"]["protocols"]["http"]["endpoint"]
    endpoint = urlsplit(exporters["otlphttp/tempo"]["endpoint"])
    assert ("tempo", http.rpartition(":")[2]) == (endpoint.hostname, str(endpoint.port))
    assert "tempo" in compose["services"]


def test_tempo_stores_locally_and_serves_its_api_on_3200(compose: dict[str, Any]) -> None:
    """Tempo keeps blocks on local disk in its volume and its HTTP API is Grafana's Tempo URL."""
    tempo = yaml_at(ROOT / "tempo/tempo.yaml")
    datasources = yaml_at(ROOT / "grafana/provisioning/datasources/datasources.yml")["datasources"]
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
    config = yaml_at(ROOT / "prometheus/prometheus.yml")
    job = next(job for job in config["scrape_configs"] if job["job_name"] == "taskdaemon")
    assert (["taskdaemon:" + port], "0.0.0.0") == (job["static_configs"][0]["targets"], host)


def test_prometheus_alerts_go_to_the_alertmanager_service(compose: dict[str, Any]) -> None:
    """Prometheus sends alerts to the alertmanager service on its listening port."""
    config = yaml_at(ROOT / "prometheus/prometheus.yml")
    targets = config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    published = compose["services"]["alertmanager"]["ports"]
    assert (["alertmanager:9093"], ["127.0.0.1:9093:9093"]) == (targets, published)


def test_alertmanager_routes_to_defined_receivers() -> None:
    """Every route of alertmanager.yml names a receiver the file defines."""
    config = yaml_at(ROOT / "alertmanager/alertmanager.yml")
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
        for group in yaml_at(ROOT / "prometheus/rules/alerts.yml")["groups"]
        for rule in group["rules"]
        if "alert" in rule
    ]
    defined = {receiver["name"] for receiver in yaml_at(ROOT / config)["receivers"]}
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


def _healthcheck() -> list[str]:
    """The command of the Dockerfile's HEALTHCHECK (exec form)."""
    dockerfile = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    found = re.search(r"^HEALTHCHECK .*? CMD (\[.*\])$", dockerfile, re.MULTILINE)
    assert found is not None, "the Dockerfile has no HEALTHCHECK in exec form"
    command: list[str] = json.loads(found[1])
    return command


async def _probe(command: list[str], port: int, path: str = "/healthz") -> int:
    """The exit code of the HEALTHCHECK's Python ``command`` pointed at ``port`` (and at
    ``path`` instead of its own route when given)."""
    code = command[2].replace("127.0.0.1:9090/healthz", f"127.0.0.1:{port}{path}")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code, stderr=asyncio.subprocess.DEVNULL
    )
    return await process.wait()


@pytest.mark.slow
async def test_the_healthcheck_probes_liveness_and_passes_while_the_collector_is_down(
    compose: dict[str, Any], home: Path, tmp_path: Path
) -> None:
    """The image's HEALTHCHECK (which the compose service inherits) run against a real `serve`
    whose collector refuses every export: `/readyz` is 503, the probe passes; with the daemon
    gone it fails. It probed `/readyz`, in the compose file, and marked a working daemon
    unhealthy for every collector outage."""
    command = _healthcheck()
    service = compose["services"]["taskdaemon"]
    served = service["command"]
    # The service inherits the image's probe, which dials the port the service serves on.
    assert (["python", "-c"], False, "9090") == (
        command[:2],
        "healthcheck" in service,
        served[served.index("--port") + 1],
    )

    def refuse(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(400)
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    port = free_port()
    pipeline = write(tmp_path / "one.yaml", ONE_STAGE_PIPELINE)
    with answering_posts(refuse) as collector:
        env = exporting_environment(home, collector)
        async with serving(port, pipeline, env, "--every", "0.2"):

            async def unready() -> bool:
                async with httpx.AsyncClient(timeout=5) as client:
                    answer = await client.get(f"http://127.0.0.1:{port}/readyz")
                return answer.status_code == 503

            await until(unready, limit=60, what="/readyz 503 with the collector refusing")
            while_down = (await _probe(command, port), await _probe(command, port, "/readyz"))
        gone = await _probe(command, port)
    assert ((0, 1), 1) == (while_down, gone)


def test_the_image_has_the_debian_packages_a_user_install_gets() -> None:
    """The image installs the Debian packages `scripts/setup.sh` installs for a user (not
    `--dev`): without Graphviz the stack's web page said "Cannot draw the DAG" on every run."""
    setup = (ROOT / "scripts/setup.sh").read_text()
    packages = re.search(r"^apt_packages=\((.*)\)$", setup, re.MULTILINE)
    assert packages is not None
    dockerfile = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    installs = re.findall(r"apt-get install -y --no-install-recommends ([^&\n]+)", dockerfile)
    wanted = set(packages[1].split())
    assert (True, set()) == (
        bool(wanted),
        wanted - {name for line in installs for name in line.split()},
    )


def test_grafana_provisioning_points_at_the_mounted_dashboards(compose: dict[str, Any]) -> None:
    """The dashboard provider reads the directory grafana/dashboards is mounted at, and the
    provisioning directory is mounted where Grafana looks for it."""
    service = compose["services"]["grafana"]
    providers = yaml_at(ROOT / "grafana/provisioning/dashboards/dashboards.yml")["providers"]
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
    datasources = yaml_at(ROOT / "grafana/provisioning/datasources/datasources.yml")["datasources"]
    uids = {source["type"]: source["uid"] for source in datasources}
    tempo = next(source for source in datasources if source["type"] == "tempo")["jsonData"]
    prometheus = next(source for source in datasources if source["type"] == "prometheus")
    assert (uids["prometheus"], uids["prometheus"], True, uids["tempo"]) == (
        tempo["tracesToMetrics"]["datasourceUid"],
        tempo["serviceMap"]["datasourceUid"],
        not tempo["search"]["hide"],
        prometheus["jsonData"]["exemplarTraceIdDestinations"][0]["datasourceUid"],
    )


def test_run_pages_link_to_the_stacks_grafana_which_lets_viewers_follow(
    compose: dict[str, Any],
) -> None:
    """The taskdaemon service's web page links each run to the stack's Grafana, at its host
    address, through the provisioned Tempo datasource's uid; the link opens Explore, as every
    trace link of the stack does, which Grafana's anonymous Viewer may use only with
    `viewers_can_edit` (without it, the links led an anonymous visitor nowhere)."""
    services = compose["services"]
    grafana = services["grafana"]
    base = services["taskdaemon"]["environment"]["TASKDAEMON_GRAFANA_URL"]
    link = urlsplit(grafana_trace_url(base, "ab" * 16))
    pane = json.loads(parse_qs(link.query)["panes"][0])["trace"]
    datasources = yaml_at(ROOT / "grafana/provisioning/datasources/datasources.yml")["datasources"]
    tempo = next(source["uid"] for source in datasources if source["type"] == "tempo")
    settings = grafana["environment"]
    assert (f"{link.netloc}:3000", "/explore", tempo, "Viewer", "true") == (
        next(port for port in grafana["ports"] if port.startswith(link.netloc)),
        link.path,
        pane["queries"][0]["datasource"]["uid"],
        settings["GF_AUTH_ANONYMOUS_ORG_ROLE"],
        settings["GF_USERS_VIEWERS_CAN_EDIT"],
    )


def test_exemplar_links_name_the_label_tempos_exemplars_carry() -> None:
    """The stack's exemplars are the ones Tempo's metrics generator remote-writes with its span
    metrics (taskdaemon's `/metrics` serves none), their trace id under Tempo's label name
    (`trace_id_label_name`, `traceID` unless set): Grafana's exemplar link must read that label,
    or no exemplar ever links to its trace."""
    tempo = yaml_at(ROOT / "tempo/tempo.yaml")
    generator = tempo["overrides"]["defaults"]["metrics_generator"]
    datasources = yaml_at(ROOT / "grafana/provisioning/datasources/datasources.yml")["datasources"]
    prometheus = next(source for source in datasources if source["type"] == "prometheus")
    assert (True, generator.get("trace_id_label_name", "traceID")) == (
        tempo["metrics_generator"]["storage"]["remote_write"][0]["send_exemplars"],
        prometheus["jsonData"]["exemplarTraceIdDestinations"][0]["name"],
    )


def test_dashboards_use_only_provisioned_datasources() -> None:
    """Every datasource a dashboard panel or target names is a provisioned one."""
    datasources = yaml_at(ROOT / "grafana/provisioning/datasources/datasources.yml")["datasources"]
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
        for _, expr in dashboard_exprs() + datasource_exprs()
        for name in OUR_NAME.findall(grafana_substitute(expr))
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


def _recent_runs_traceql() -> tuple[str, dict[str, Any]]:
    """The TraceQL of the overview dashboard's Tempo panel, and its pipeline variable."""
    dashboard = json.loads((ROOT / "grafana/dashboards/taskdaemon-overview.json").read_text())
    (query,) = [
        target["query"]
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
        if target.get("datasource", {}).get("type") == "tempo"
    ]
    (variable,) = dashboard["templating"]["list"]
    return query, variable


def _grafana_fills(query: str, variable: dict[str, Any], picked: list[str] | None) -> str:
    """``query`` with the variable filled in as Grafana does for the pipelines ``picked``
    (None: "All", whose custom value is used as it is): `regex` escapes each value's regex
    characters and joins several as `(a|b)`, `pipe` joins them with `|` as they are."""
    name = variable["name"]
    if picked is None:
        values = {"regex": variable["allValue"], "pipe": variable["allValue"]}
    else:
        escaped = [re.sub(r"[\\^$*+?.()|[\]{}/]", r"\\\g<0>", value) for value in picked]
        joined = escaped[0] if len(escaped) == 1 else f"({'|'.join(escaped)})"
        values = {"regex": joined, "pipe": "|".join(picked)}
    for form, value in values.items():
        query = query.replace(f"${{{name}:{form}}}", value)
    assert "$" not in query.replace('$"', ""), query
    return query


@pytest.mark.parametrize(
    ("picked", "shown"),
    [
        (["etl.v2"], {"etl.v2"}),
        (["etl"], {"etl"}),
        (["etl", "feature-delivery"], {"etl", "feature-delivery"}),
        (None, {"etl", "etl.v2", "etl-staging", "old-etl", "feature-delivery"}),
    ],
)
def test_the_recent_runs_panel_finds_the_picked_pipelines_runs_only(
    picked: list[str] | None, shown: set[str]
) -> None:
    """The "Recent runs" TraceQL, filled in as Grafana does, is a string literal Tempo parses
    (Go's escapes only: the `regex` format's `\\.` for a dot, which pipeline names may hold,
    is "invalid char escape", grafana/tempo#3086), and its pattern matches the picked
    pipelines' names whole, not every name holding one: the stack's Tempo 2.6 searches a regex
    anywhere in the value (`etl` matched `old-etl`), later ones match it whole."""
    query, variable = _recent_runs_traceql()
    filled = _grafana_fills(query, variable, picked)
    (literal,) = re.findall(r'span\.cicd\.pipeline\.name =~ ("(?:[^"\\]|\\.)*")', filled)
    assert set() == set(re.findall(r"\\(.)", literal)) - set('abfnrtv\\"'), filled
    pattern = json.loads(literal)
    names = {"etl", "etl.v2", "etl-staging", "old-etl", "feature-delivery"}
    assert (shown, shown) == (
        {name for name in names if re.search(pattern, name)},
        {name for name in names if re.fullmatch(pattern, name)},
    )
