"""Span schema 2: the definition round-trips through its canonical JSON, and the cap setting."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline_monitor_support import example_pipeline
from taskdaemon.pipeline.config import load_pipeline, parse_pipeline
from taskdaemon.pipeline.definition import (
    definition_changes,
    pipeline_from_canonical,
    sha256_text,
)
from taskdaemon.pipeline.settings import load_settings

ROOT = Path(__file__).resolve().parent.parent
FILES = [
    *sorted((ROOT / "tests" / "pipelines" / "valid").iterdir()),
    ROOT / "examples" / "feature_delivery.yaml",
]


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_definition_round_trips_through_canonical_json(path: Path) -> None:
    """Every valid file's definition is rebuilt equal, and hashes to the recorded hash."""
    pipeline = load_pipeline(path, registered_loops=("plan", "spec", "phase"))
    rebuilt = pipeline_from_canonical(pipeline.canonical_json)
    assert (pipeline, pipeline.definition_hash) == (rebuilt, sha256_text(rebuilt.canonical_json))
    # The form replay uses: the JSON it already parsed to check it.
    assert pipeline == pipeline_from_canonical(json.loads(pipeline.canonical_json))


def test_a_foreign_trigger_mode_or_document_is_a_one_line_error() -> None:
    """A trigger mode this version does not know, or a document that is not an object, is
    refused as not a taskdaemon definition, in one line."""
    data = json.loads(example_pipeline().canonical_json)
    data["stages"][0]["trigger_mode"] = "most"
    for document in (data, [1], json.dumps(data)):
        with pytest.raises(ValueError, match="not a taskdaemon definition") as caught:
            pipeline_from_canonical(document)  # type: ignore[arg-type]
        assert "\n" not in str(caught.value)


def test_cut_definition_is_a_one_line_error() -> None:
    """A definition cut as a backend would cut it is refused with a one-line reason."""
    text = example_pipeline().canonical_json
    with pytest.raises(ValueError, match="not JSON") as caught:
        pipeline_from_canonical(text[: len(text) // 2])
    assert "\n" not in str(caught.value)


def test_definition_changes_name_stages_added_removed_and_changed() -> None:
    """A file that differs from the recorded definition is described stage by stage."""
    base = """
name: p
stages:
  - {name: a, command: "true", triggers: [{manual: {}}]}
  - {name: b, command: "true", triggers: [{on_completion: {stage: a}}]}
"""
    changed = """
name: p
concurrency: 2
stages:
  - {name: a, command: "echo", triggers: [{manual: {}}]}
  - {name: c, command: "true", triggers: [{on_completion: {stage: a}}]}
"""
    changes = definition_changes(parse_pipeline(base), parse_pipeline(changed))
    assert "stages added: c; stages removed: b; stages changed: a; fields changed: concurrency" == (
        changes.describe()
    )


def test_capture_cap_defaults_to_64_kib_and_honours_the_older_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """TASKDAEMON_CAPTURE_MAX_BYTES wins; the older PAYLOAD name is used only on its own."""
    monkeypatch.delenv("TASKDAEMON_CAPTURE_MAX_BYTES", raising=False)
    monkeypatch.delenv("TASKDAEMON_PAYLOAD_MAX_BYTES", raising=False)
    default = load_settings().capture_limit
    monkeypatch.setenv("TASKDAEMON_PAYLOAD_MAX_BYTES", "100")
    older = load_settings().capture_limit
    monkeypatch.setenv("TASKDAEMON_CAPTURE_MAX_BYTES", "5000")
    both = load_settings().capture_limit
    assert (65536, 100, 5000) == (default, older, both)
