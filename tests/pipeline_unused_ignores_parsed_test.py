"""``unused-ignore`` read from ``parse_pipeline``'s warnings in this process: each unused field
code and comment with its path, message, line and column, and what keeps one quiet
(``unused_ignores``). ``pipeline_unused_ignores_test.py`` checks the same through
``taskdaemon validate`` processes, which mutation testing cannot credit."""

from __future__ import annotations

from typing import Literal

from taskdaemon.pipeline.config import parse_pipeline
from taskdaemon.pipeline.unused_ignores import CODE
from taskdaemon.pipeline.validation_warnings import MAX_WARNINGS

Where = tuple[str, str, int | None, int | None]

FILE_UNUSED = (
    "secret-literal suppresses nothing: the file has no secret-literal warning (remove it)"
)
STAGE_UNUSED = "own-status suppresses nothing: this stage has no own-status warning (remove it)"


def unused(text: str, fmt: Literal["yaml", "json", "toml"] = "yaml") -> list[Where]:
    """The ``unused-ignore`` warnings of ``text``: path, message, line, column (each in
    ``p.yaml``, coded ``unused-ignore``)."""
    warnings: list = []
    parse_pipeline(text, fmt=fmt, source="p.yaml", warnings=warnings)
    assert {(w.code, w.file) for w in warnings if w.code == CODE} <= {(CODE, "p.yaml")}
    return [(w.path, w.message, w.line, w.column) for w in warnings if w.code == CODE]


def comment(what: str, line: int, column: int) -> Where:
    return (
        "ignore comment",
        f"{what} suppresses nothing on this line or its stage (remove it)",
        line,
        column,
    )


#: ``parked`` uses its ``constant-condition`` (its condition is constant) and not its
#: ``own-status``; ``b`` is written without any suppression.
YAML = """\
name: quiet
ignore_warnings: [secret-literal]
stages:
  - name: build  # taskdaemon: ignore[unknown-output]
    command: "true"  # taskdaemon: ignore
    triggers: [{manual: {}}]
  - name: parked
    ignore_warnings: [constant-condition, own-status]
    command: "true"
    triggers: [{on_condition: {expression: '1 > 2'}}]
"""


def test_each_unused_field_code_and_comment_is_said_at_its_place() -> None:
    assert unused(YAML) == [
        ("ignore_warnings[0]", FILE_UNUSED, 2, 1),
        ("stages[1].ignore_warnings[1]", STAGE_UNUSED, 8, 5),
        comment("unknown-output", 4, 18),
        comment("a bare ignore", 5, 22),
    ]


def test_comments_on_later_lines_and_one_line_are_placed_each() -> None:
    """Lines counted from the last comment, not from the file's start; two comments of one
    line at their own columns; codes listed with blanks and an empty one."""
    text = (
        "name: p  # taskdaemon: ignore[own-status]\n"
        "stages:\n"
        "  - name: a\n"
        "    command: 'true'  # taskdaemon: ignore[ unknown-output , , own-status ]"
        "  # taskdaemon: ignore\n"
        "    triggers: [{manual: {}}]\n"
        "\n"
        "# taskdaemon: ignore[secret-literal]\n"
    )
    assert unused(text) == [
        comment("own-status", 1, 10),
        comment("unknown-output, own-status", 4, 22),
        comment("a bare ignore", 4, 77),
        comment("secret-literal", 7, 1),
    ]


FIELDS_AND_BUILD = [
    ("ignore_warnings[0]", FILE_UNUSED, 2, 1),
    comment("unknown-output", 4, 18),
    comment("a bare ignore", 5, 22),
]


def test_a_comment_that_hides_a_warning_is_used() -> None:
    """A bare ignore and a coded one on a condition that is constant: each hid a warning; the
    coded one's other code did not."""
    text = YAML.replace(
        "[constant-condition, own-status]", "[own-status]  # taskdaemon: ignore[unused-ignore]"
    )
    bare = text.replace("'1 > 2'}}]", "'1 > 2'}}]  # taskdaemon: ignore")
    assert unused(bare) == FIELDS_AND_BUILD
    coded = text.replace(
        "'1 > 2'}}]", "'1 > 2'}}]  # taskdaemon: ignore[constant-condition, own-status]"
    )
    assert unused(coded) == [*FIELDS_AND_BUILD, comment("own-status", 10, 56)]


def test_naming_the_code_quiets_the_file_the_stage_or_the_comment() -> None:
    assert unused(YAML.replace("[secret-literal]", "[unused-ignore]")) == []
    stage = YAML.replace("[constant-condition, own-status]", "[own-status, unused-ignore]")
    assert unused(stage) == FIELDS_AND_BUILD
    comments = YAML.replace("ignore[unknown-output]", "ignore[unknown-output, unused-ignore]")
    assert unused(comments) == [
        ("ignore_warnings[0]", FILE_UNUSED, 2, 1),
        ("stages[1].ignore_warnings[1]", STAGE_UNUSED, 8, 5),
        comment("a bare ignore", 5, 22),
    ]


def test_other_formats_have_their_fields_checked_and_no_comments() -> None:
    """JSON has no comments: a string that reads like one is a string."""
    json_text = (
        '{"name": "p", "ignore_warnings": ["secret-literal"],\n'
        ' "stages": [{"name": "a", "command": "echo # taskdaemon: ignore it",'
        ' "triggers": [{"manual": {}}]}]}\n'
    )
    assert unused(json_text, "json") == [("ignore_warnings[0]", FILE_UNUSED, 1, 16)]


def test_comments_past_the_cap_are_not_said() -> None:
    lines = "# taskdaemon: ignore[own-status]\n" * (MAX_WARNINGS + 5)
    text = YAML.replace("[secret-literal]", "[secret-literal, own-status]") + lines
    found = unused(text)
    assert len(found) == MAX_WARNINGS
    assert found[-1] == comment("own-status", 10 + MAX_WARNINGS - 5, 1)


def test_a_stage_naming_the_code_leaves_the_next_stages_checked() -> None:
    text = YAML.replace(
        "name: build  #", "name: build\n    ignore_warnings: [own-status, unused-ignore]  #"
    )
    assert unused(text) == [
        ("ignore_warnings[0]", FILE_UNUSED, 2, 1),
        ("stages[1].ignore_warnings[1]", STAGE_UNUSED, 9, 5),
        comment("unknown-output", 5, 51),
        comment("a bare ignore", 6, 22),
    ]


def test_a_bare_ignore_that_hides_an_unused_field_code_is_used() -> None:
    """The field's own warning is hidden by the comment on its line, which is then used."""
    text = YAML.replace(
        "[constant-condition, own-status]", "[constant-condition, own-status]  # taskdaemon: ignore"
    )
    assert unused(text) == FIELDS_AND_BUILD


def test_lines_are_counted_from_the_first_character() -> None:
    assert unused("\n" + YAML) == [
        ("ignore_warnings[0]", FILE_UNUSED, 3, 1),
        ("stages[1].ignore_warnings[1]", STAGE_UNUSED, 9, 5),
        comment("unknown-output", 5, 18),
        comment("a bare ignore", 6, 22),
    ]


def test_a_file_that_met_the_cap_before_its_comments_hid_them_says_nothing() -> None:
    """Its warnings were counted to the cap, then every one hidden by its comment: the stages
    after the cap were never looked at, so no suppression is known unused."""
    stages = "".join(
        f"  - name: s{n}\n    command: 'true'\n"
        "    triggers: [{on_condition: {expression: '1 > 2'}}]"
        "  # taskdaemon: ignore[constant-condition]\n"
        for n in range(MAX_WARNINGS + 1)
    )
    text = f"name: p\nignore_warnings: [own-status]\nstages:\n{stages}"
    warnings: list = []
    parse_pipeline(text, source="p.yaml", warnings=warnings)
    assert warnings == []
