"""Suppressing a warning (``validation_warnings``, docs/validation.md): the ``ignore_warnings``
field of a stage or of the pipeline in YAML, JSON and TOML alike, and the one-line errors for a
suppression that names no warning, through the real ``taskdaemon validate``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli_support import taskdaemon, write
from taskdaemon.pipeline.config import parse_pipeline

#: A parked stage (``constant-condition``), a secret (``secret-literal``) and a typo
#: (``unknown-output``); the first two suppressed by fields, the typo left to show.
_DATA = {
    "name": "quiet",
    "ignore_warnings": ["secret-literal"],
    "stages": [
        {
            "name": "build",
            "command": "true",
            "triggers": [{"manual": {}}],
            "outputs": {"count": "result.count"},
            "inputs": {"api_key": "'hunter2-literal'"},
        },
        {
            "name": "parked",
            "ignore_warnings": ["constant-condition"],
            "command": "true",
            "triggers": [{"on_condition": {"expression": "1 > 2"}}],
        },
        {
            "name": "typo",
            "command": "true",
            "triggers": [{"on_condition": {"expression": "stages.build.outputs.cuont > 1"}}],
        },
    ],
}
_YAML = """\
name: quiet
ignore_warnings: [secret-literal]
stages:
  - name: build
    command: "true"
    triggers: [{manual: {}}]
    outputs: {count: result.count}
    inputs: {api_key: "'hunter2-literal'"}
  - name: parked
    ignore_warnings: [constant-condition]
    command: "true"
    triggers: [{on_condition: {expression: "1 > 2"}}]
  - name: typo
    command: "true"
    triggers: [{on_condition: {expression: "stages.build.outputs.cuont > 1"}}]
"""
_TOML = """\
name = "quiet"
ignore_warnings = ["secret-literal"]
[[stages]]
name = "build"
command = "true"
triggers = [{manual = {}}]
outputs = {count = "result.count"}
inputs = {api_key = "'hunter2-literal'"}
[[stages]]
name = "parked"
ignore_warnings = ["constant-condition"]
command = "true"
triggers = [{on_condition = {expression = "1 > 2"}}]
[[stages]]
name = "typo"
command = "true"
triggers = [{on_condition = {expression = "stages.build.outputs.cuont > 1"}}]
"""
_TYPO = (
    "warning: stages[2].triggers[0].on_condition.expression: reads output 'cuont' of stage "
    "'build', which never has it (did you mean 'count'?) [unknown-output]"
)


@pytest.mark.slow
def test_the_field_suppresses_in_every_format(home: Path, tmp_path: Path) -> None:
    """``ignore_warnings`` on a stage suppresses that code in the stage, on the pipeline in the
    whole file, in YAML, JSON and TOML; the other warning still shows. Before, the field was an
    unknown key (an error), and a JSON or TOML file could not suppress a warning at all."""
    yaml_file = write(tmp_path / "quiet.yaml", _YAML)
    json_file = tmp_path / "quiet.json"
    json_file.write_text(json.dumps(_DATA, indent=2))
    toml_file = write(tmp_path / "quiet.toml", _TOML)
    done = taskdaemon(home, "validate", str(yaml_file), str(json_file), str(toml_file))
    assert 0 == done.returncode, done.stdout + done.stderr
    assert [
        f"{yaml_file}:15:32: {_TYPO}",
        f"OK {yaml_file} (3 stages, 1 warning)",
        f"{json_file}:42:14: {_TYPO}",
        f"OK {json_file} (3 stages, 1 warning)",
        f"{toml_file}:17:30: {_TYPO}",
        f"OK {toml_file} (3 stages, 1 warning)",
    ] == done.stdout.splitlines()


def test_the_field_is_not_part_of_the_definition() -> None:
    """A suppression, like a comment, says nothing of what the pipeline does: the pipeline, and
    the definition hash its runs record, are those of the file without it."""
    bare = json.loads(json.dumps(_DATA))
    del bare["ignore_warnings"], bare["stages"][1]["ignore_warnings"]
    quiet = parse_pipeline(json.dumps(_DATA), fmt="json")
    assert parse_pipeline(json.dumps(bare), fmt="json") == quiet
    assert parse_pipeline(json.dumps(bare), fmt="json").definition_hash == quiet.definition_hash


@pytest.mark.slow
def test_a_suppression_that_names_no_warning_is_an_error(home: Path, tmp_path: Path) -> None:
    """An unknown code, in the field or in a YAML comment, is a one-line error with a "did you
    mean", and so is one in a TOML comment. Before, the field was an
    unknown key, a misspelt comment hid nothing and said nothing, and ``ignore[W123]`` (a code
    outside the comment's letters) read as a bare ``ignore``: it hid every warning."""
    yaml_file = write(
        tmp_path / "typos.yaml",
        """\
        name: typos
        ignore_warnings: constant-condition
        stages:
          - name: parked  # taskdaemon: ignore[constant-conditon, W123]
            ignore_warnings: [own-stauts, 3]
            command: "true"
            triggers:
              - on_condition: {expression: "1 > 2"}
        """,
    )
    toml_file = write(
        tmp_path / "typos.toml",
        """\
        name = "typos"
        [[stages]]
        name = "parked"  # taskdaemon: ignore[constant-conditon]
        command = "true"
        triggers = [{on_condition = {expression = "1 > 2"}}]
        """,
    )
    done = taskdaemon(home, "validate", str(yaml_file), str(toml_file))
    codes = "unknown-output, unknown-stage-field, own-status, constant-condition, secret-literal, "
    codes += "unknown-status, unused-ignore"
    assert 2 == done.returncode
    assert [
        f"{yaml_file}:2: ignore_warnings: expected a list, got string (write [constant-condition])",
        f"{yaml_file}:4: ignore comment: unknown warning code 'constant-conditon' "
        "(did you mean 'constant-condition'?)",
        f"{yaml_file}:4: ignore comment: unknown warning code 'W123' (expected {codes})",
        f"{yaml_file}:5: stages[0].ignore_warnings[0]: unknown warning code 'own-stauts' "
        "(did you mean 'own-status'?)",
        f"{yaml_file}:5: stages[0].ignore_warnings[1]: expected a warning code, got integer",
        f"{toml_file}:3: ignore comment: unknown warning code 'constant-conditon' "
        "(did you mean 'constant-condition'?)",
    ] == done.stdout.splitlines()
