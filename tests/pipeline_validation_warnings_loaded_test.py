"""The warnings of a valid pipeline (``validation_warnings``) as the loader gives them, in this
process: each code's words, where each is placed, what suppresses one, and the bound on their
number. ``pipeline_validation_warnings_test.py`` reads the same lines through ``taskdaemon
validate`` and ``run`` processes."""

from __future__ import annotations

import textwrap

import pytest

from taskdaemon.pipeline.config import parse_pipeline
from taskdaemon.pipeline.validation_warnings import MAX_WARNINGS, ValidationWarning

_CREDENTIAL = (
    "a string literal that looks like a credential, which the file and every run's recorded "
    "definition then hold (pass it at run time with --input NAME=VALUE and read request.NAME)"
)


def _warnings(text: str, fmt: str = "yaml") -> list[str]:
    """The lines ``validate`` prints of the warnings of ``text``, a file ``p.<fmt>``."""
    found: list[ValidationWarning] = []
    parse_pipeline(textwrap.dedent(text), fmt=fmt, source=f"p.{fmt}", warnings=found)  # type: ignore[arg-type]
    return [str(warning) for warning in found]


def test_each_read_of_a_field_or_output_a_stage_lacks_is_named_with_a_hint() -> None:
    """A condition, an event filter and an input each get their warning, on their own line and
    at the column of the key that holds them: the close name as "did you mean", else the
    declared outputs (or none), else what a stage has."""
    text = """\
    name: p
    external_events: [go]
    stages:
      - name: build
        command: "true"
        triggers: [{manual: {approval_required: false}}]
        outputs:
          count: result.count
          total: result.total
      - name: quiet
        command: "true"
        triggers: [{manual: {}}]
        outputs: {}
      - name: check
        command: "true"
        triggers:
          - on_condition: {expression: "stages.build.outputs.zzz > 1 || stages.build.stauts == 'x'"}
          - on_event: {type: go, filter: "stages.quiet.outputs.anything == 1"}
        inputs:
          n: stages.build.outputs.countt
          m: stages.build.qqq
          fine: stages.build.outputs.total
    """
    condition = "p.yaml:17:24: warning: stages[2].triggers[0].on_condition.expression"
    assert _warnings(text) == [
        f"{condition}: reads output 'zzz' of stage 'build', which never has it (it declares "
        "'count', 'total') [unknown-output]",
        f"{condition}: reads stages.build.stauts, which a stage does not have (did you mean "
        "'status'?) [unknown-stage-field]",
        "p.yaml:18:30: warning: stages[2].triggers[1].on_event.filter: reads output 'anything' "
        "of stage 'quiet', which never has it (it declares no output) [unknown-output]",
        "p.yaml:20:7: warning: stages[2].inputs.n.from: reads output 'countt' of stage 'build', "
        "which never has it (did you mean 'count'?) [unknown-output]",
        "p.yaml:21:7: warning: stages[2].inputs.m.from: reads stages.build.qqq, which a stage "
        "does not have (a stage has status and outputs) [unknown-stage-field]",
    ]


def test_a_stage_without_outputs_or_an_unknown_stage_is_not_judged() -> None:
    """A stage without ``outputs:`` returns what its handler returns: any key may be there.
    ``status`` and a declared output are fine; and only the first ten declared names are listed,
    long names cut."""
    names = [f"out{i}_" + "x" * 90 for i in range(12)]
    outputs = "".join(f"\n          {name}: result.a" for name in names)
    text = f"""\
    name: p
    stages:
      - name: free
        command: "true"
        triggers: [{{manual: {{}}}}]
      - name: many
        command: "true"
        triggers: [{{manual: {{}}}}]
        outputs:{outputs}
      - name: check
        command: "true"
        triggers:
          - on_condition:
              expression: "stages.free.outputs.w == 1 && stages.free.status == 'success'"
          - on_condition: {{expression: "stages.many.outputs.{names[0]} == 1"}}
          - on_condition: {{expression: "stages.many.outputs.zzzzzzzzzz == 1"}}
    """
    shown = ", ".join(f"'{name[:79]}…'" for name in names[:10])
    assert _warnings(text) == [
        f"p.yaml:28:24: warning: stages[2].triggers[2].on_condition.expression: reads output "
        f"'zzzzzzzzzz' of stage 'many', which never has it (it declares {shown}) "
        "[unknown-output]"
    ]


def test_a_condition_on_its_own_status_or_on_nothing_is_named() -> None:
    """Its own status: the stage has not started while it waits. No variable and not ``true``
    (``1 > 2``, or an error at every evaluation): it never starts. ``true`` and ``1 == 1`` start
    it, another stage's status is what conditions are for, and one that reads only the run's
    request (``--input``) is not constant."""
    text = """\
    name: p
    stages:
      - name: a
        command: "true"
        triggers: [{manual: {}}]
      - name: b
        command: "true"
        triggers:
          - on_condition: {expression: "stages.b.status == 'pending'"}
          - on_condition: {expression: "stages.a.status == 'success'"}
          - on_condition: {expression: "1 / 0 == 1"}
          - on_condition: {expression: "1 == 1"}
          - on_condition: {expression: "true"}
          - on_condition: {expression: "request.go == true"}
    """
    assert _warnings(text) == [
        "p.yaml:9:24: warning: stages[1].triggers[0].on_condition.expression: reads the stage's "
        "own status: it has not started while its condition waits, so the condition sees only "
        "that (wait for another stage's status) [own-status]",
        "p.yaml:11:24: warning: stages[1].triggers[2].on_condition.expression: '1 / 0 == 1' "
        "reads no variable and is never true: the stage never starts [constant-condition]",
    ]


def test_a_literal_is_a_secret_by_its_input_name_or_by_its_shape() -> None:
    """A non-empty literal under a secret's name, or a token's shape under any name, is named
    and never quoted; an empty literal, a plain word, and a read of another stage are not."""
    token = "ghp_" + "abcdefghij" * 3 + "012345"
    text = f"""\
    name: p
    stages:
      - name: a
        command: "true"
        triggers: [{{manual: {{}}}}]
      - name: b
        command: "true"
        triggers: [{{on_completion: {{stage: a}}}}]
        inputs:
          api_key: "'hunter2-literal'"
          password: "\\"x\\" + stages.a.status"
          note: "'{token}'"
          token: "''"
          plain: "'hello'"
          status: stages.a.status
    """
    lines = _warnings(text)
    assert lines == [
        f"p.yaml:10:7: warning: stages[1].inputs.api_key.from: {_CREDENTIAL} [secret-literal]",
        f"p.yaml:11:7: warning: stages[1].inputs.password.from: {_CREDENTIAL} [secret-literal]",
        f"p.yaml:12:7: warning: stages[1].inputs.note.from: {_CREDENTIAL} [secret-literal]",
    ]
    assert not any("hunter2" in line or token in line for line in lines)


def test_a_stage_read_whole_does_not_end_the_reading_of_the_next() -> None:
    """``size(stages.a)`` reads no field of ``a``, which is fine; the output read of ``b``
    after it in the same condition is still judged."""
    text = """\
    name: p
    stages:
      - name: a
        command: "true"
        triggers: [{manual: {}}]
      - name: b
        command: "true"
        triggers: [{manual: {}}]
        outputs: {n: result.n}
      - name: c
        command: "true"
        triggers:
          - on_condition: {expression: "size(stages.a) > 0 && stages.b.outputs.zzz == 1"}
    """
    assert _warnings(text) == [
        "p.yaml:13:24: warning: stages[2].triggers[0].on_condition.expression: reads output "
        "'zzz' of stage 'b', which never has it (it declares 'n') [unknown-output]"
    ]


@pytest.mark.parametrize(("length", "hint"), [(128, "did you mean"), (129, "it declares")])
def test_a_key_over_128_characters_gets_no_close_match(length: int, hint: str) -> None:
    """A close name is looked for among the declared outputs only for a key of 128 characters
    or fewer (the search's cost grows with the square of the length: a hostile file's keys are
    long); a longer key gets the list of declared names."""
    declared = "o" * length
    text = f"""\
    name: p
    stages:
      - name: a
        command: "true"
        triggers: [{{manual: {{}}}}]
        outputs: {{{declared}: result.n}}
      - name: b
        command: "true"
        triggers: [{{on_completion: {{stage: a}}}}]
        inputs:
          x: stages.a.outputs.{"o" * (length - 1)}x
    """
    (line,) = _warnings(text)
    assert line.partition(" (")[2].startswith(hint)
    assert f"reads output '{'o' * 79}…' of stage 'a'" in line  # the key cut at 80


def test_a_long_field_name_is_cut_at_80_characters() -> None:
    text = f"""\
    name: p
    stages:
      - name: a
        command: "true"
        triggers: [{{manual: {{}}}}]
      - name: b
        command: "true"
        triggers:
          - on_condition: {{expression: "stages.a.{"f" * 100} == 1"}}
    """
    (line,) = _warnings(text)
    assert f": reads stages.a.{'f' * 79}…, which a stage does not have (a stage has" in line


@pytest.mark.parametrize(
    ("comment", "kept"),
    [
        ("", 2),
        ("  # taskdaemon: ignore[unknown-output]", 1),
        ("  # taskdaemon: ignore[own-status, unknown-output]", 1),
        ("  # taskdaemon: ignore[unknown-output,own-status]", 1),
        ("  #taskdaemon:ignore", 1),
        ("  # taskdaemon: ignore[own-status]", 2),
    ],
)
def test_a_comment_suppresses_its_codes_on_its_line(comment: str, kept: int) -> None:
    """The comment on a warning's line drops that warning when it names its code (or names
    none); a comment for another code leaves it; the next line's warning stays."""
    text = f"""\
    name: p
    stages:
      - name: a
        command: "true"
        triggers: [{{manual: {{}}}}]
        outputs: {{n: result.n}}
      - name: b
        command: "true"
        triggers: [{{on_completion: {{stage: a}}}}]
        inputs:
          x: stages.a.outputs.m{comment}
          y: stages.a.outputs.k
    """
    # ``own-status`` suppresses nothing here: its own ``unused-ignore`` is not counted
    lines = [line for line in _warnings(text) if not line.endswith("[unused-ignore]")]
    assert len(lines) == kept
    assert lines[-1].startswith("p.yaml:12:7: warning: stages[1].inputs.y.from: ")


def test_a_file_on_one_line_has_its_warnings_suppressed_by_its_comment() -> None:
    """A flow-style file on one line: its warning is on line 1, the file's first and last, and
    the comment there suppresses it."""
    text = (
        '{name: p, stages: [{name: a, command: "true", triggers: [{manual: {}}], outputs: '
        '{n: result.n}}, {name: b, command: "true", triggers: [{on_condition: {expression: '
        '"stages.a.outputs.m == 1"}}]}]}'
    )
    (line,) = _warnings(text)
    assert line.startswith("p.yaml:1:152: warning: stages[1].triggers[0]")
    assert _warnings(text + "  # taskdaemon: ignore") == []


def test_a_comment_on_a_stage_s_first_line_suppresses_its_codes_in_the_whole_stage() -> None:
    """On the stage's first line: every warning of that code in the stage, none of another
    stage's."""
    text = """\
    name: p
    stages:
      - name: a
        command: "true"
        triggers: [{manual: {}}]
        outputs: {n: result.n}
      - name: b  # taskdaemon: ignore[unknown-output]
        command: "true"
        triggers:
          - on_condition: {expression: "stages.a.outputs.m == 1 || stages.b.status == 'success'"}
        inputs:
          x: stages.a.outputs.m
      - name: c
        command: "true"
        triggers: [{on_completion: {stage: a}}]
        inputs:
          x: stages.a.outputs.m
    """
    lines = _warnings(text)
    assert [(line.split(": ")[2], line.rpartition(" ")[2]) for line in lines] == [
        ("stages[1].triggers[0].on_condition.expression", "[own-status]"),
        ("stages[2].inputs.x.from", "[unknown-output]"),
    ]


def test_json_and_toml_have_lines_and_columns() -> None:
    """A JSON file is read as YAML reads it (its lines); a TOML file's lines are its keys'
    (``toml_lines``), the column the last key's of the path on the line."""
    json_text = """\
    {"name": "j", "stages": [
      {"name": "build", "command": "true", "triggers": [{"manual": {}}]},
      {"name": "check", "command": "true",
       "triggers": [{"on_condition": {"expression": "stages.build.stauts == 'x'"}}]}
    ]}
    """
    toml_text = """\
    name = "t"
    [[stages]]
    name = "build"
    command = "true"
    triggers = [{manual = {}}]
    [[stages]]
    name = "check"
    command = "true"
    triggers = [{on_condition = {expression = "stages.build.stauts == 'x'"}}]
    """
    warning = (
        "warning: stages[1].triggers[0].on_condition.expression: reads stages.build.stauts, "
        "which a stage does not have (did you mean 'status'?) [unknown-stage-field]"
    )
    assert _warnings(json_text, "json") == [f"p.json:4:36: {warning}"]
    assert _warnings(toml_text, "toml") == [f"p.toml:9:30: {warning}"]


def test_a_file_of_many_typos_gets_at_most_the_bound_of_warnings() -> None:
    """150 stages, each with two typos: the first 100 warnings, in stage order."""
    stages = "".join(
        f"""
      - name: s{i}
        command: "true"
        triggers: [{{on_condition: {{expression: "stages.s0.a == 1 || stages.s0.b == 1"}}}}]"""
        for i in range(150)
    )
    lines = _warnings(f"name: p\nstages:{stages}\n")
    assert len(lines) == MAX_WARNINGS
    assert lines[-1].split(": ")[2] == "stages[49].triggers[0].on_condition.expression"


def test_a_warning_s_line_says_what_place_it_knows() -> None:
    """No file: ``<pipeline>``; a line without a column; a long path cut."""
    bare = ValidationWarning("stages[0]", "why", "own-status")
    assert str(bare) == "<pipeline>: warning: stages[0]: why [own-status]"
    lined = ValidationWarning("stages[0]", "why", "own-status", "f.yaml", 3)
    assert str(lined) == "f.yaml:3: warning: stages[0]: why [own-status]"
    placed = ValidationWarning("p" * 500, "why", "own-status", "f.yaml", 3, 9)
    assert str(placed).startswith("f.yaml:3:9: warning: ppp")
    assert len(str(placed)) < 400
