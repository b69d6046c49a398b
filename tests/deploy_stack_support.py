"""What the deployment stack's test files share: the dashboards, the variables Grafana
substitutes in their queries, and the PromQL the dashboards and the datasources hold."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from cli_support import ROOT

DASHBOARDS = sorted((ROOT / "grafana" / "dashboards").glob("*.json"))


# What Grafana substitutes before a query reaches Prometheus (the "All" pipeline value is ".*").
GRAFANA_VARIABLES = {
    "$pipeline": ".*",
    "$__rate_interval": "1m",
    "$__interval": "15s",
    "$__range": "1h",
    "$__tags": 'pipeline="feature-delivery", stage="planning"',
    '${__span.tags["cicd.pipeline.name"]}': "feature-delivery",
}


def yaml_at(path: Path) -> Any:
    """The YAML file at ``path``, parsed."""
    return yaml.safe_load(path.read_text())


def grafana_substitute(expr: str) -> str:
    """``expr`` with Grafana's variables replaced as :data:`GRAFANA_VARIABLES` says."""
    for name, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(name, value)
    return expr


def dashboard_exprs() -> list[tuple[str, str]]:
    """``(panel title, PromQL)`` for every Prometheus target of every dashboard."""
    found = []
    for path in DASHBOARDS:
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel.get("targets", []):
                if target.get("datasource", {}).get("type") == "prometheus":
                    found.append((panel["title"], target["expr"]))
    return found


def traces_to_metrics() -> dict[str, Any]:
    """The Tempo datasource's trace-to-metrics settings."""
    datasources = yaml_at(ROOT / "grafana/provisioning/datasources/datasources.yml")["datasources"]
    tempo = next(source for source in datasources if source["type"] == "tempo")
    settings: dict[str, Any] = tempo["jsonData"]["tracesToMetrics"]
    return settings


def provisioned(text: str) -> str:
    """``text`` as Grafana's provisioning keeps it: `$NAME` and `${...}` are environment
    variables (none is set for Grafana: empty), `$$` a literal `$`."""
    return "$".join(re.sub(r"\$(\{[^}]*\}|\w+)", "", part) for part in text.split("$$"))


def datasource_exprs() -> list[tuple[str, str]]:
    """The trace-to-metrics queries of the Tempo datasource, as provisioned."""
    return [
        (query["name"], provisioned(query["query"])) for query in traces_to_metrics()["queries"]
    ]
