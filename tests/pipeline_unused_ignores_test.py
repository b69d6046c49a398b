"""``unused-ignore`` (``unused_ignores``, docs/validation.md, "Unused suppressions"): an
``ignore_warnings`` code or a ``# taskdaemon: ignore`` comment that hides no warning is a
warning of its own, at its place, through the real ``taskdaemon validate`` (and ``--strict``
fails on it). Before, such a suppression stayed in the file unnoticed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli_support import taskdaemon, write
from taskdaemon.pipeline.config import parse_pipeline
from taskdaemon.pipeline.validation_warnings import ValidationWarning

#: Used: the stage field ``constant-condition`` (``parked``) and the comment on ``typo``'s
#: line. Unused: the file's ``secret-literal``, ``parked``'s ``own-status``, the comment on
#: ``build``'s first line, and a bare ``ignore`` on a line with no warning.
_YAML = """\
name: quiet
ignore_warnings: [secret-literal]
stages:
  - name: build  # taskdaemon: ignore[unknown-output]
    command: "true"  # taskdaemon: ignore
    triggers: [{manual: {}}]
    outputs: {count: result.count}
  - name: parked
    ignore_warnings: [constant-condition, own-status]
    command: "true"
    triggers: [{on_condition: {expression: "1 > 2"}}]
  - name: typo
    command: "true"
    triggers:
      - on_condition:
          expression: stages.build.outputs.cuont > 1  # taskdaemon: ignore[unknown-output]
"""


def _unused(place: str, path: str, what: str) -> str:
    return f"{place}: warning: {path}: {what} [unused-ignore]"


@pytest.mark.slow
def test_validate_reports_each_suppression_that_hides_nothing(home: Path, tmp_path: Path) -> None:
    """Each unused field code and comment on its line (a field's column, a comment's ``#``),
    after the file's other warnings; exit 0 and counted in the OK line; ``--strict`` exits 2
    with the same lines and no OK line. The used ones say nothing."""
    path = write(tmp_path / "quiet.yaml", _YAML)
    lines = [
        _unused(
            f"{path}:2:1",
            "ignore_warnings[0]",
            "secret-literal suppresses nothing: the file has no secret-literal warning (remove it)",
        ),
        _unused(
            f"{path}:9:5",
            "stages[1].ignore_warnings[1]",
            "own-status suppresses nothing: this stage has no own-status warning (remove it)",
        ),
        _unused(
            f"{path}:4:18",
            "ignore comment",
            "unknown-output suppresses nothing on this line or its stage (remove it)",
        ),
        _unused(
            f"{path}:5:22",
            "ignore comment",
            "a bare ignore suppresses nothing on this line or its stage (remove it)",
        ),
    ]
    done = taskdaemon(home, "validate", str(path))
    assert (0, [*lines, f"OK {path} (3 stages, 4 warnings)"], "") == (
        done.returncode,
        done.stdout.splitlines(),
        done.stderr,
    )
    strict = taskdaemon(home, "validate", "--strict", str(path))
    assert (2, lines) == (strict.returncode, strict.stdout.splitlines())


@pytest.mark.slow
def test_json_and_toml_report_their_unused_fields(home: Path, tmp_path: Path) -> None:
    """The field works in every format, and so does its check, each with its line and column
    (TOML's found by ``toml_lines``: the key's line, column 1)."""
    data = {
        "name": "p",
        "stages": [
            {
                "name": "a",
                "ignore_warnings": ["own-status"],
                "command": "true",
                "triggers": [{"manual": {}}],
            }
        ],
    }
    json_file = tmp_path / "p.json"
    json_file.write_text(json.dumps(data, indent=2))
    toml_file = write(
        tmp_path / "p.toml",
        """\
        name = "p"
        [[stages]]
        name = "a"
        ignore_warnings = ["own-status"]
        command = "true"
        triggers = [{manual = {}}]
        """,
    )
    done = taskdaemon(home, "validate", str(json_file), str(toml_file))
    what = "own-status suppresses nothing: this stage has no own-status warning (remove it)"
    assert (0, "") == (done.returncode, done.stderr)
    assert [
        _unused(f"{json_file}:7:9", "stages[0].ignore_warnings[0]", what),
        f"OK {json_file} (1 stage, 1 warning)",
        _unused(f"{toml_file}:4:1", "stages[0].ignore_warnings[0]", what),
        f"OK {toml_file} (1 stage, 1 warning)",
    ] == done.stdout.splitlines()


@pytest.mark.slow
def test_naming_the_code_keeps_a_suppression_quiet(home: Path, tmp_path: Path) -> None:
    """A suppression meant to outlive its warning names ``unused-ignore``: the file's field
    quiets every unused suppression of the file, a comment naming it those on its line, and
    ``--strict`` passes."""
    whole = write(
        tmp_path / "whole.yaml",
        _YAML.replace("ignore_warnings: [secret-literal]", "ignore_warnings: [unused-ignore]"),
    )
    texts = _YAML.replace("[secret-literal]", "[secret-literal, unused-ignore]")
    texts = texts.replace("own-status]", "own-status]  # taskdaemon: ignore[unused-ignore]")
    texts = texts.replace("# taskdaemon: ignore\n", "# taskdaemon: ignore[unused-ignore]\n")
    texts = texts.replace(
        "build  # taskdaemon: ignore[unknown-output]",
        "build  # taskdaemon: ignore[unknown-output, unused-ignore]",
    )
    each = write(tmp_path / "each.yaml", texts)
    done = taskdaemon(home, "validate", "--strict", str(whole), str(each))
    assert (0, [f"OK {whole} (3 stages)", f"OK {each} (3 stages)"]) == (
        done.returncode,
        done.stdout.splitlines(),
    ), done.stderr


def test_a_file_past_the_warning_cap_reports_no_unused_suppression() -> None:
    """A file whose warnings reach the 100 shown was not looked at whole: a suppression of a
    stage after the cap may well be used, so none is reported as unused."""
    stages = "".join(
        f"  - name: s{n}\n    command: 'true'\n"
        "    triggers: [{on_condition: {expression: '1 > 2'}}]\n"
        for n in range(101)
    )
    text = f"name: p\nignore_warnings: [own-status]\nstages:\n{stages}"
    warnings: list[ValidationWarning] = []
    parse_pipeline(text, source="p.yaml", warnings=warnings)
    assert (100, set()) == (
        len(warnings),
        {w.code for w in warnings} - {"constant-condition"},
    )
