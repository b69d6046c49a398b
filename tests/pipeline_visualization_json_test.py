"""JSON output against the shipped JSON Schema (jsonschema, draft 2020-12)."""

from __future__ import annotations

import json
import tracemalloc
from importlib import resources
from typing import Any

import jsonschema
import pytest

from pipeline_visualization_support import failed_run, feature_delivery
from taskdaemon.pipeline.model import Manual, OnCompletion, Pipeline, Stage
from taskdaemon.pipeline.visualization import (
    dag_schema,
    dag_snapshot,
    render_json,
    snapshot_dict,
    validate_dag,
)


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


def _fan(stages: int) -> Pipeline:
    """One stage and ``stages - 1`` started by its completion."""
    fan = (Stage(f"stage_{i}", "phase", (OnCompletion("stage_0"),)) for i in range(1, stages))
    return Pipeline("fan", (Stage("stage_0", "plan", (Manual(),)), *fan))


@pytest.mark.parametrize("indent", [2, 4])
@pytest.mark.parametrize(
    ("pipeline", "run"),
    [
        pytest.param(feature_delivery, lambda: None, id="definition"),
        pytest.param(feature_delivery, failed_run, id="overlay"),
        pytest.param(lambda: None, failed_run, id="run-only"),
        pytest.param(lambda: _fan(1), lambda: None, id="no-edges"),
    ],
)
def test_text_is_the_documents_json_dumps(pipeline: Any, run: Any, indent: int) -> None:
    """Nodes and edges encoded one by one make the very text ``json.dumps`` makes of the
    whole document, at any indentation, empty lists included."""
    expected = json.dumps(snapshot_dict(pipeline(), run()), indent=indent, ensure_ascii=False)
    assert expected + "\n" == render_json(pipeline(), run(), indent=indent)


def test_a_big_dags_text_takes_little_more_memory_than_itself() -> None:
    """Rendering 2,000 stages peaks at under four times the text's size: ``json.dumps`` with
    an indent held every piece of the text in one list before joining them, and the whole
    document of dicts beside it."""
    snapshot = dag_snapshot(_fan(2000))
    tracemalloc.start()
    try:
        text = render_json(snapshot)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 * len(text)
