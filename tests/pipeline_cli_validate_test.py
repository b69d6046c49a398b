"""``taskdaemon validate`` (``cli/validate.py``), end to end: a subprocess of the console script."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli_support import taskdaemon, write


def test_validate_reports_each_file(home: Path, tmp_path: Path) -> None:
    """validate prints OK for valid files, the issues of invalid ones, and exits 2 if any."""
    bad = write(tmp_path / "bad.yaml", "name: Bad Name\nstages: []\n")
    done = taskdaemon(home, "validate", "examples/feature_delivery.yaml", str(bad))
    assert 2 == done.returncode
    lines = done.stdout.splitlines()
    assert "OK examples/feature_delivery.yaml (5 stages)" == lines[0]
    assert all(line.startswith(f"{bad}:") for line in lines[1:])
    assert len(lines) > 1
    assert "Traceback" not in done.stderr


def test_validate_ok_exits_0(home: Path) -> None:
    """validate exits 0 when every file is valid."""
    done = taskdaemon(home, "validate", "examples/feature_delivery.yaml")
    assert (0, "OK examples/feature_delivery.yaml (5 stages)\n") == (done.returncode, done.stdout)


def test_an_unknown_stage_and_an_over_long_condition_are_quoted_as_every_refusal(
    home: Path, tmp_path: Path
) -> None:
    """``validate`` quotes an unknown stage and a condition over the length limit as every
    other refusal does (``quoting.quote``: 40 characters); they were cut at 60."""
    path = write(
        tmp_path / "quoted.yaml",
        f"""\
        name: quoted
        stages:
          - name: a
            command: "true"
            triggers: [{{on_completion: {{stage: {"b" * 50}}}}}]
          - name: c
            command: "true"
            triggers: [{{on_condition: {{expression: '{"x" * 9000}'}}}}]
        """,
    )
    done = taskdaemon(home, "validate", str(path))
    expected = [
        f"{path}:5: stages[0].triggers[0].on_completion.stage: unknown stage '{'b' * 39}…' "
        "(the stages: 'a', 'c')",
        f"{path}:8: stages[1].triggers[0].on_condition.expression: '{'x' * 39}…': "
        "expression is 9000 characters long (the limit is 8192)",
    ]
    assert (2, expected) == (done.returncode, done.stdout.splitlines()), done.stderr


@pytest.mark.parametrize("command", ["validate", "dag", "run"])
def test_a_file_s_issues_are_printed_escaped_and_redacted(
    home: Path, tmp_path: Path, command: str
) -> None:
    """A pipeline file's issues quote its name and its keys as written: their control
    characters are escaped and a key shaped like a token is masked, by each command that
    loads the file (``validate`` printed both raw, ``dag`` both, ``run`` the escapes)."""
    token = "ghp_" + "a1" * 18
    path = write(
        tmp_path / "x\x1b]0;title\x07.yaml",
        f'name: ok\n"k\\e[2J\\u202e": 1\n"{token}": 2\nstages: []\n',
    )
    done = taskdaemon(home, command, str(path))
    printed = done.stdout if command == "validate" else done.stderr
    named = f"{tmp_path}/x\\x1b]0;title\\x07.yaml"
    expected = [
        f"{named}:2: k\\x1b[2J\\u202e: unknown key",
        f"{named}:3: [REDACTED]: unknown key",
        f"{named}:4: stages: must not be empty",
    ]
    issues = [line.split(" (")[0] for line in printed.splitlines()]
    assert (2, expected) == (done.returncode, issues)


def test_a_newcomer_s_handler_mistakes_say_what_was_meant_and_where(
    home: Path, tmp_path: Path
) -> None:
    """A misspelt handler function or module gets a "did you mean" (the keys of the file had
    one, the handlers none), a module that raises as it is imported names the line that
    raised, and a module missing from a package that was found is not blamed on the current
    directory."""
    package = tmp_path / "steps"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "build.py").write_text(
        "def fetch(ctx):\n    return {}\n\n\nclass Tool:\n    def run(self, ctx):\n        pass\n"
    )
    (package / "broken.py").write_text("import json\n\nSETTINGS = json.loads('{')\n")
    entry = "triggers: [{manual: {approval_required: false}}]"
    write(
        tmp_path / "first.yaml",
        f"""\
        name: first
        stages:
          - {{name: a, handler: "steps.build:fecth", {entry}}}
          - {{name: b, handler: "steps.biuld:fetch", {entry}}}
          - {{name: c, handler: "steps.broken:fetch", {entry}}}
          - {{name: d, handler: "steps.build:Tool.rn", {entry}}}
        """,
    )
    done = taskdaemon(home, "validate", "first.yaml", cwd=tmp_path)
    assert 2 == done.returncode
    assert [
        "first.yaml:3: stages[0].handler: loop type 'python': handler 'steps.build:fecth': "
        "module 'steps.build' has no attribute 'fecth' (did you mean 'fetch'?)",
        "first.yaml:4: stages[1].handler: cannot import module 'steps.biuld': "
        "ModuleNotFoundError: No module named 'steps.biuld' (did you mean 'steps.build'?)",
        "first.yaml:5: stages[2].handler: cannot import module 'steps.broken': JSONDecodeError: "
        "Expecting property name enclosed in double quotes: line 1 column 2 (char 1) "
        "(raised at steps/broken.py:3)",
        "first.yaml:6: stages[3].handler: loop type 'python': handler 'steps.build:Tool.rn': "
        "module 'steps.build' has no attribute 'Tool.rn' (did you mean 'Tool.run'?)",
    ] == done.stdout.splitlines()


def test_a_handler_that_cannot_take_the_stage_context_is_refused_before_a_run(
    home: Path, tmp_path: Path
) -> None:
    """A ``def fetch():`` (or one of two required arguments, or a method named through its
    class) failed its stage at every run though ``validate`` said OK; handlers that can be
    called with one argument (a default, ``*args``, a class method, a bound method)
    stay valid."""
    (tmp_path / "handlers.py").write_text(
        "def bare():\n    pass\n\n\ndef two(ctx, other):\n    pass\n\n\n"
        "def optional(ctx, other=1):\n    pass\n\n\ndef star(*args):\n    pass\n\n\n"
        "class Tool:\n    def method(self, ctx):\n        pass\n\n"
        "    @classmethod\n    def build(cls, ctx):\n        pass\n\n\nTOOL = Tool()\n"
    )
    targets = [
        "bare",
        "two",
        "optional",
        "star",
        "Tool.method",
        "Tool.build",
        "TOOL.method",
        "Tool",
    ]
    stages = "".join(
        f'  - {{name: s{at}, handler: "handlers:{target}", '
        "triggers: [{manual: {approval_required: false}}]}\n"
        for at, target in enumerate(targets)
    )
    write(tmp_path / "first.yaml", f"name: first\nstages:\n{stages}")
    done = taskdaemon(home, "validate", "first.yaml", cwd=tmp_path)
    called = "a handler is called with one argument, the stage context (def handler(ctx): ...)"
    assert (
        2,
        [
            "first.yaml:3: stages[0].handler: loop type 'python': handler 'handlers:bare': "
            f"'bare' takes no argument: {called}",
            "first.yaml:4: stages[1].handler: loop type 'python': handler 'handlers:two': "
            f"'two' takes 2 arguments: {called}",
            "first.yaml:7: stages[4].handler: loop type 'python': handler 'handlers:Tool.method': "
            f"'Tool.method' takes 2 arguments: {called}",
        ],
    ) == (done.returncode, done.stdout.splitlines())
    run = taskdaemon(home, "run", "first.yaml", cwd=tmp_path)
    assert (2, done.stdout) == (run.returncode, run.stderr)


def test_toml_and_json_syntax_errors_give_their_line_and_column(home: Path, tmp_path: Path) -> None:
    """As YAML's do: JSON's column was dropped, and a TOML error at the end of the file (a value
    left out) had neither line nor column."""
    toml = write(tmp_path / "p.toml", 'name = "p"\nconcurrency = ')
    json = write(tmp_path / "p.json", '{"name": "p",\n "stages": [],}\n')
    done = taskdaemon(home, "validate", str(toml), str(json))
    expected = [
        f"{toml}:2: invalid toml: invalid value at the end of the file (column 15)",
        f"{json}:2: invalid json: expecting property name enclosed in double quotes at column 15 "
        "(JSON has no comma after the last item)",
    ]
    assert (2, expected) == (done.returncode, done.stdout.splitlines()), done.stderr


def test_a_bare_yaml_boolean_where_a_string_belongs_says_to_quote_it(
    home: Path, tmp_path: Path
) -> None:
    """A stage named ``off`` (a boolean in YAML 1.1) is refused with the line to write; a JSON
    file's ``true`` gets no word about YAML."""
    path = write(
        tmp_path / "off.yaml",
        """\
        name: p
        stages:
          - name: off
            command: "true"
            triggers: [{manual: {approval_required: false}}]
        """,
    )
    as_json = write(
        tmp_path / "off.json",
        '{"name": "p", "stages": [{"name": true, "command": "true", '
        '"triggers": [{"manual": {"approval_required": false}}]}]}',
    )
    done = taskdaemon(home, "validate", str(path), str(as_json))
    assert 2 == done.returncode, done.stderr
    assert [
        f"{path}:3: stages[0].name: expected a string, got boolean (quote it: YAML reads a bare "
        "yes, no, on, off, true or false as a boolean)",
        f"{as_json}:1: stages[0].name: expected a string, got boolean",
    ] == done.stdout.splitlines()
