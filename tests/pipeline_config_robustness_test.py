"""Loading pipeline files at scale and under fuzzing: linear in the number of stages, any
structure loaded or refused as a ConfigError, a scalar the YAML constructor refuses an issue,
and a file with thousands of issues reported up to the bound."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from config_support import load_error, one_stage, parse_error
from operation_count_support import growth
from taskdaemon.pipeline.config import parse_pipeline
from taskdaemon.pipeline.errors import ConfigError, ValidationIssue

# --- growth ---------------------------------------------------------------------------------


def _chain_text(stages: int) -> str:
    lines = ["name: big", "stages:"]
    for i in range(stages):
        trigger = "manual: {}" if i == 0 else f"on_completion: {{stage: s{i - 1}}}"
        lines += [
            f"  - name: s{i}",
            "    command: 'true'",
            "    timeout: 30s",
            f"    triggers: [{trigger}]",
            "    inputs: {x: request.x}",
        ]
    return "\n".join(lines) + "\n"


def _fan_out_text(stages: int) -> str:
    lines = ["name: big", "stages:", "  - {name: s0, command: 'true', triggers: [manual: {}]}"]
    lines += [
        f"  - {{name: s{i}, command: 'true', triggers: [on_completion: {{stage: s0}}]}}"
        for i in range(1, stages)
    ]
    return "\n".join(lines) + "\n"


@pytest.mark.slow
@pytest.mark.parametrize("shape", [_chain_text, _fan_out_text], ids=["chain", "fan-out"])
def test_loading_is_linear_in_the_number_of_stages(shape: Callable[[int], str]) -> None:
    """Loading 10x the stages takes about 10x the Python steps, not 100x (no quadratic checks).

    Steps are counted, not timed (``operation_count_support``): a loaded machine moves no
    count. The time it takes, and a quadratic C-level scan that no step count sees,
    ``benchmarks/validation_shapes.py`` measures.
    """
    # Linear loading makes 9.7 to 9.9 times the steps; N log N work would make about 14.
    assert growth(lambda stages: parse_pipeline(shape(stages)), 200, 2000) < 12


# --- robustness --------------------------------------------------------------------------------

_KEYS = sorted(
    {"name", "stages", "triggers", "loop", "command", "handler", "inputs", "outputs", "from"}
    | {"on_completion", "on_event", "on_condition", "manual", "stage", "type", "filter"}
    | {"expression", "retry", "backoff", "timeout", "loops", "emits", "required", "factor"}
)
_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 3),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["a", "", "10m", "request.x", "stages.a.outputs", "1 +", "m:f", "x.y"]),
)
_VALUES = st.recursive(
    _SCALARS,
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.sampled_from(_KEYS), children, max_size=4)
    ),
    max_leaves=25,
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(_KEYS), _VALUES, max_size=6))
@pytest.mark.slow
def test_any_structure_loads_or_raises_config_error(document: dict[str, object]) -> None:
    """Whatever shape a file has, loading returns a Pipeline or raises ConfigError, never more."""
    text = yaml.safe_dump(document)
    issues: tuple[ValidationIssue, ...] = ()
    try:
        parse_pipeline(text, registered_loops=())
    except ConfigError as error:
        issues = error.issues or (ValidationIssue("", "raised without issues"),)
    assert all(issue.file == "<string>" for issue in issues)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("2020-02-30", "invalid timestamp value: day is out of range for month"),
        ("!!int x", "invalid int value: invalid literal for int() with base 10: 'x'"),
        ("!!float x", "invalid float value: could not convert string to float: 'x'"),
        ("!!int " + "9" * 5000, "invalid int value: Exceeds the limit (4300 digits)"),
    ],
)
def test_a_scalar_the_constructor_refuses_is_an_issue(value: str, message: str) -> None:
    """A tagged or implicit scalar PyYAML cannot convert (a date that does not exist, ``!!int``
    of a word) is an issue on its line, not a ``ValueError`` escaping the loader."""
    text = one_stage(f"timeout: {value}")
    error = parse_error(text)
    assert error.startswith(f"<string>:7: stages[0].timeout: {message}"), error
    assert "\n" not in error


def test_issues_after_a_dropped_list_item_keep_the_file_s_numbering() -> None:
    """A stage or trigger the reader dropped for its own issue is not in the model; what the
    validator then finds in a later item is still reported at that item's index and line in
    the file, not at the index it has in the model."""
    text = """\
        name: demo
        stages:
          - name: a
            command: make
            triggers:
              - manual: {}
          - 5
          - name: b
            command: make
            triggers:
              - on_event: {type: ""}
              - manual: {timeout: 0}
    """
    assert parse_error(text).splitlines() == [
        "<string>:7: stages[1]: expected a mapping, got integer",
        "<string>:11: stages[2].triggers[0].on_event.type: must not be empty",
        "<string>:12: stages[2].triggers[1].manual.timeout: must be > 0, got 0",
        "<string>:12: stages[2].triggers[1].manual.timeout: "
        "only used when approval_required is true",
    ]


def test_a_file_with_thousands_of_issues_reports_the_first_thousand(tmp_path: Path) -> None:
    """A file of 3,000 wrong stages reports the first 1,000 issues, then one saying more were
    not shown, rather than holding and printing every one."""
    path = tmp_path / "many.yaml"
    path.write_text("name: w\nstages: [" + ",".join(["a"] * 3000) + "]\n")
    issues = load_error(path).issues
    assert (1001, "stages[999]: expected a mapping, got string") == (
        len(issues),
        f"{issues[999].path}: {issues[999].message}",
    )
    assert f"{path}: more issues not shown (at most 1000 are)" == str(issues[-1])
