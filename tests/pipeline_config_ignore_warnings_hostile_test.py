"""Hostile ``ignore_warnings`` fields: a text holding control characters and a line break
where a list belongs, and a list of 200,000 unknown codes, in YAML, JSON and TOML. Each issue
is one line, and the codes past the issues shown are not looked at (each one's "did you mean"
took 40 s for such a list)."""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType

import pytest

from cli_support import taskdaemon
from taskdaemon.pipeline import config_reader, validation_warnings
from taskdaemon.pipeline.config import parse_pipeline
from taskdaemon.pipeline.errors import MAX_ISSUES, ConfigError

_STAGES = [{"name": "a", "command": "true", "triggers": [{"manual": {}}]}]


def counted_lookups(monkeypatch: pytest.MonkeyPatch, module: ModuleType) -> list[str]:
    """The codes ``module.unknown_code`` is asked about from now on, in order."""
    looked: list[str] = []
    original = module.unknown_code

    def counted(code: str) -> str | None:
        looked.append(code)
        return original(code)

    monkeypatch.setattr(module, "unknown_code", counted)
    return looked


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
    looked = counted_lookups(monkeypatch, config_reader)
    with pytest.raises(ConfigError) as refused:
        parse_pipeline(text, fmt=fmt)  # type: ignore[arg-type]
    assert len(looked) <= MAX_ISSUES + 1
    assert "ignore_warnings[0]: unknown warning code 'code0'" in str(refused.value)


def test_a_comment_of_many_unknown_codes_is_read_as_far_as_its_issues_are_shown(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``# taskdaemon: ignore[code0, ..., code99999]``: each code past the issues shown was
    still looked up (``unknown_code``, a "did you mean" each), and the issues were cut to
    exactly 1,000, so the line saying more were not shown never came."""
    codes = ", ".join(f"code{index}" for index in range(100_000))
    text = f"name: p  # taskdaemon: ignore[{codes}]\nstages: {json.dumps(_STAGES)}\n"
    looked = counted_lookups(monkeypatch, validation_warnings)
    with pytest.raises(ConfigError) as refused:
        parse_pipeline(text, fmt="yaml")
    issues = refused.value.issues
    assert (MAX_ISSUES + 1, MAX_ISSUES + 1) == (len(looked), len(issues))
    assert "more issues not shown (at most 1000 are)" == issues[-1].message


_ENTRY = "stages:\n  - {name: a, command: 'true', triggers: [{manual: {}}]}\n"


@pytest.mark.slow
def test_a_line_of_many_unclosed_ignore_comments_is_read_in_linear_time(
    home: Path, tmp_path: Path
) -> None:
    """20,000 ``# taskdaemon: ignore[`` on one line (420 KB): none is a directive. Before,
    each one looked for its list's ``]`` to the end of the line, time with the square of the
    line's length: ``validate`` went past the minute this test gives it."""
    pipeline = tmp_path / "p.yaml"
    pipeline.write_text("name: p\n" + "# taskdaemon: ignore[" * 20_000 + "\n" + _ENTRY)
    checked = taskdaemon(home, "validate", str(pipeline), timeout=60)
    assert (0, [f"OK {pipeline} (1 stage)"]) == (checked.returncode, checked.stdout.splitlines())


@pytest.mark.slow
def test_a_list_holding_a_bracket_is_no_directive(home: Path, tmp_path: Path) -> None:
    """``ignore[a[b]`` is read as a list not closed (nothing), so that a list's end is never
    looked for past the next directive's ``[``; ``ignore[a]`` beside it still is one."""
    pipeline = tmp_path / "p.yaml"
    pipeline.write_text(f"name: p  # taskdaemon: ignore[a[b]\n{_ENTRY}")
    assert 0 == taskdaemon(home, "validate", str(pipeline)).returncode
    pipeline.write_text(f"name: p  # taskdaemon: ignore[a[b] # taskdaemon: ignore[a]\n{_ENTRY}")
    checked = taskdaemon(home, "validate", str(pipeline))
    said = f"{pipeline}:1: ignore comment: unknown warning code 'a'"
    assert (2, True) == (checked.returncode, checked.stdout.startswith(said)), checked.stdout
