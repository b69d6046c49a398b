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


def test_the_root_is_the_first_line_that_is_not_blank_or_a_comment() -> None:
    """The file's root (``""``) is where its first key or header is, as a YAML file's is:
    blank lines, blanks alone and comments before it are no line of the root."""
    text = '\n# a comment\n   \n  # another\nname = "p"\n[retry]\nmax_attempts = 3\n'
    assert {"": 5, "name": 5} == toml_lines(text, ["", "name"])
    assert {"": 1} == toml_lines("[retry]\nmax_attempts = 3\n", [""])
    assert {} == toml_lines('name = "p"\n', ["retry"])


def test_a_header_of_three_parts_under_an_array_item_names_its_table() -> None:
    """``[stages.retry.backoff]`` after a ``[[stages]]`` is a table of the last item: its keys'
    paths hold each part once, in order, with the item's index."""
    text = '[[stages]]\nname = "a"\n[[stages]]\nname = "b"\n[stages.retry.backoff]\nfactor = 2\n'
    assert tomllib.loads(text)["stages"][1]["retry"]["backoff"] == {"factor": 2}
    wanted = ["stages[1].retry.backoff.factor", "stages[1].retry", "stages[0].retry"]
    assert {"stages[1].retry.backoff.factor": 6, "stages[1].retry": 5} == toml_lines(text, wanted)
