"""``toml_lines``: the line of a TOML file's field paths, which ``tomllib`` does not give.
Before, every issue of a TOML file had no line (``FILE: PATH: REASON``)."""

from __future__ import annotations

import tomllib

from taskdaemon.pipeline.toml_lines import toml_lines

_TEXT = "\n".join(
    [
        'name = "p"  # [[stages]] in a comment',
        "[retry]",
        "max_attempts = 3",
        "[retry.backoff]",
        'initial = "1s"',
        "[loops.plan]",
        'handler = "a:b"',
        "",
        "[[stages]]",
        'name = "a"',
        'description = """a [ b',
        'handler = "not:a key"',
        "[[stages]]",
        '"""',
        "triggers = [",
        "  {manual = {}},",
        '  "x = [",',
        "]",
        '"quoted.key" = 1',
        'site . "dotted" = 2',
        "",
        "  [[ stages ]]",
        "name = 'b'  # ''' '",
        "command = 'echo \"[\" \\'",
        "[[stages.more]]",
        "x = 1",
        "[[stages]]",
        'handler = "c:d"',
        "",
    ]
)


def test_headers_keys_and_array_items_get_their_lines() -> None:
    """Each header, ``[[stages]]`` numbered as an item, and each key (quoted, dotted) under
    the header it follows; a multi-line string or array holds no header and no key."""
    assert tomllib.loads(_TEXT)["stages"][2]["handler"] == "c:d"
    wanted = [
        "name",
        "retry",
        "retry.max_attempts",
        "retry.backoff.initial",
        "loops",
        "loops.plan.handler",
        "stages",
        "stages[0]",
        "stages[0].handler",
        "stages[0].triggers",
        "stages[0].quoted.key",
        "stages[0].site.dotted",
        "stages[0].site",
        "stages[1].name",
        "stages[1].command",
        "stages[1].more[0].x",
        "stages[2].handler",
        "stages[3]",
    ]
    assert toml_lines(_TEXT, wanted) == {
        "name": 1,
        "retry": 2,
        "retry.max_attempts": 3,
        "retry.backoff.initial": 5,
        "loops": 6,
        "loops.plan.handler": 7,
        "stages": 9,
        "stages[0]": 9,
        "stages[0].triggers": 15,
        "stages[0].quoted.key": 19,
        "stages[0].site.dotted": 20,
        "stages[0].site": 20,
        "stages[1].name": 23,
        "stages[1].command": 24,
        "stages[1].more[0].x": 26,
        "stages[2].handler": 28,
    }


def test_lines_count_line_feeds_only() -> None:
    """tomllib counts lines at ``\\n``: a ``\\r\\n`` file's lines are the same, and a form
    feed inside a comment starts no line."""
    text = 'name = "p"  # \x0c\r\n[[stages]]\r\nname = "a"\r\n'
    assert toml_lines(text, ["stages[0].name"]) == {"stages[0].name": 3}
