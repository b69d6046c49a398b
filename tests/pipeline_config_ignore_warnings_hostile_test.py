"""Hostile ``ignore_warnings`` fields: a text holding control characters and a line break
where a list belongs, and a list of 200,000 unknown codes, in YAML, JSON and TOML. Each issue
is one line, and the codes past the issues shown are not looked at (each one's "did you mean"
took 40 s for such a list)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli_support import taskdaemon
from taskdaemon.pipeline import config_reader
from taskdaemon.pipeline.config import parse_pipeline
from taskdaemon.pipeline.errors import MAX_ISSUES, ConfigError

_STAGES = [{"name": "a", "command": "true", "triggers": [{"manual": {}}]}]


def test_a_text_where_the_list_belongs_is_refused_in_one_line(home: Path, tmp_path: Path) -> None:
    """Before, the hint ``(write [TEXT])`` quoted the text raw: its line break split the
    issue in two lines, the second starting with the rest of the text."""
    pipeline = tmp_path / "p.yaml"
    pipeline.write_text(
        'name: p\nignore_warnings: "\\e[31mred\\r\\nx: forged"\n'
        "stages:\n  - {name: a, command: 'true', triggers: [{manual: {}}]}\n"
    )
    checked = taskdaemon(home, "validate", str(pipeline))
    assert 2 == checked.returncode
    assert [f"{pipeline}:2: ignore_warnings: expected a list, got string"] == (
        checked.stdout.splitlines()
    )


@pytest.mark.parametrize("fmt", ["yaml", "json", "toml"])
def test_a_list_of_many_unknown_codes_is_read_as_far_as_its_issues_are_shown(
    fmt: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before, all 200,000 codes were each looked up (``unknown_code``), 40 s of "did you
    mean" for a validate that shows 1,000 issues."""
    codes = [f"code{index}" for index in range(200_000)]
    data = {"name": "p", "ignore_warnings": codes, "stages": _STAGES}
    if fmt == "json":
        text = json.dumps(data)
    elif fmt == "toml":
        text = (
            f'name = "p"\nignore_warnings = {json.dumps(codes)}\n'
            '[[stages]]\nname = "a"\ncommand = "true"\ntriggers = [{manual = {}}]\n'
        )
    else:
        text = f"name: p\nignore_warnings: {json.dumps(codes)}\nstages: {json.dumps(_STAGES)}\n"
    looked: list[str] = []
    original = config_reader.unknown_code

    def counted(code: str) -> str | None:
        looked.append(code)
        return original(code)

    monkeypatch.setattr(config_reader, "unknown_code", counted)
    with pytest.raises(ConfigError) as refused:
        parse_pipeline(text, fmt=fmt)  # type: ignore[arg-type]
    assert len(looked) <= MAX_ISSUES + 1
    assert "ignore_warnings[0]: unknown warning code 'code0'" in str(refused.value)
