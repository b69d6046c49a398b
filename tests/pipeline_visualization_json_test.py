"""JSON output against the shipped JSON Schema (jsonschema, draft 2020-12)."""

from __future__ import annotations

import json
from importlib import resources

import jsonschema
import pytest

from pipeline_visualization_support import failed_run, feature_delivery
from taskdaemon.pipeline.visualization import dag_schema, render_json, snapshot_dict, validate_dag


def test_schema_is_shipped_in_the_package() -> None:
    """The schema is package data, loadable through importlib.resources."""
    text = resources.files("taskdaemon.pipeline").joinpath("schemas/dag.schema.json").read_text()
    assert json.loads(text) == dag_schema()


def test_schema_is_a_valid_draft_2020_12_schema() -> None:
    """The shipped schema itself passes the metaschema."""
    jsonschema.Draft202012Validator.check_schema(dag_schema())


@pytest.mark.parametrize(
    "document",
    [
        pytest.param(lambda: render_json(feature_delivery()), id="definition"),
        pytest.param(lambda: render_json(feature_delivery(), failed_run()), id="overlay"),
        pytest.param(lambda: render_json(run=failed_run()), id="run-only"),
    ],
)
def test_output_validates(document: object) -> None:
    """Every rendering, parsed back, validates against the schema."""
    assert callable(document)
    validate_dag(json.loads(document()))


def test_nodes_and_edges_carry_the_promised_fields() -> None:
    """Nodes have name, loop, state, timings, attempts, triggers; edges from, to, trigger."""
    data = snapshot_dict(feature_delivery(), failed_run())
    node = data["nodes"][2]
    edge = data["edges"][1]
    assert (
        node["name"],
        node["loop"],
        node["state"],
        node["timings"]["duration"],
        node["attempt_count"],
        node["triggers"][0]["kind"],
        (edge["from"], edge["to"], edge["trigger"], edge["label"]),
    ) == (
        "implementation",
        "phase",
        "failure",
        1.2,
        4,
        "on_event",
        ("specification", "implementation", "on_event", "on event\nspec.ready"),
    )


@pytest.mark.parametrize(
    ("corrupt", "message"),
    [
        (lambda d: d["nodes"][0].pop("name"), "'name' is a required property"),
        (lambda d: d["nodes"][0].update(state="exploded"), "'exploded' is not valid"),
        (lambda d: d["edges"][0].update(trigger="on_condition"), "'on_condition' is not one of"),
        (lambda d: d["nodes"][1]["attempts"][0].update(attempt=0), "0 is less than the minimum"),
        (lambda d: d["nodes"][0]["triggers"][0].pop("approval_required"), "'approval_required'"),
        (lambda d: d.update(extra=1), "Additional properties are not allowed"),
    ],
)
def test_schema_rejects_broken_documents(corrupt: object, message: str) -> None:
    """A document with a missing, unknown or out-of-range field fails validation."""
    document = snapshot_dict(feature_delivery(), failed_run())
    assert callable(corrupt)
    corrupt(document)
    with pytest.raises(jsonschema.ValidationError, match=message):
        validate_dag(document)
