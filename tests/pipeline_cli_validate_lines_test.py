"""A handler that does not resolve, and a newcomer's usual slips, each on one line that names
its line in the file: ``taskdaemon validate`` and ``run`` end to end, subprocesses of the
console script, on YAML and TOML files. Before, a handler's problem named no line (``FILE:
stage 'a': ...``), and a TOML file's issues none at all; then it named a line and no field
path, where every other issue names both (``FILE:LINE: stages[0].handler: ...``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli_support import taskdaemon, write

_HANDLERS = {
    "count.py": "def count(ctx):\n    return {}\n\n\ndef two(a, b):\n    pass\n\n\nVALUE = 3\n",
    "broken.py": "def f(ctx)\n    return 1\n",
}
_YAML = """\
name: handlers
loops:
  plan: {handler: "count:plann"}
stages:
  - name: a
    handler: "count:cuont"
    triggers: [{manual: {}}]
  - name: b
    handler: "count:two"
    triggers: [{manual: {}}]
  - name: c
    handler: "no_such_module_lines:f"
    triggers: [{manual: {}}]
  - name: d
    handler: "broken:f"
    triggers: [{manual: {}}]
  - name: e
    handler: "count:VALUE"
    triggers: [{manual: {}}]
  - name: f
    loop: plan
    triggers: [{manual: {}}]
  - name: g
    handler: "no_such_module_lines:g"
    triggers: [{manual: {}}]
"""
_TOML = """\
name = "handlers"

[loops.plan]
handler = "count:plann"

[[stages]]
name = "a"
handler = "count:cuont"
triggers = [{manual = {}}]

[[stages]]
name = "b"
handler = "count:two"
triggers = [{manual = {}}]

[[stages]]
name = "c"
handler = "no_such_module_lines:f"
triggers = [{manual = {}}]

[[stages]]
name = "d"
handler = "broken:f"
triggers = [{manual = {}}]

[[stages]]
name = "e"
handler = "count:VALUE"
triggers = [{manual = {}}]

[[stages]]
name = "f"
loop = "plan"
triggers = [{manual = {}}]

[[stages]]
name = "g"
handler = "no_such_module_lines:g"
triggers = [{manual = {}}]
"""
_PROBLEMS = [
    "stages[0].handler: loop type 'python': handler 'count:cuont': module 'count' has no "
    "attribute 'cuont' (did you mean 'count'?)",
    "stages[1].handler: loop type 'python': handler 'count:two': 'two' takes 2 arguments: a "
    "handler is called with one argument, the stage context (def handler(ctx): ...)",
    "stages[2].handler: stages 'c', 'g': cannot import module 'no_such_module_lines': "
    "ModuleNotFoundError: No module named 'no_such_module_lines' (handler modules are imported "
    "from the current directory, {cwd}, and PYTHONPATH)",
    "stages[3].handler: cannot import module 'broken': SyntaxError: expected ':' (broken.py, "
    "line 1)",
    "stages[4].handler: loop type 'python': handler 'count:VALUE': 'VALUE' is not callable",
    "loops.plan.handler: stage 'f': loop type 'plan': handler 'count:plann': module 'count' has "
    "no attribute 'plann'",
]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "text", "lines"),
    [
        ("first.yaml", _YAML, [6, 9, 12, 15, 18, 3]),
        ("first.toml", _TOML, [8, 13, 18, 23, 28, 4]),
    ],
)
def test_a_handler_that_does_not_resolve_names_its_line(
    home: Path, tmp_path: Path, name: str, text: str, lines: list[int]
) -> None:
    """Each problem found when the handlers are resolved (an attribute missing, a signature,
    a module missing or failing to compile, not callable) is on the line of its first stage's
    ``handler`` (a loop type's: its declaration under ``loops``), for ``validate`` and
    ``run``; stages sharing a problem share the line."""
    for module, source in _HANDLERS.items():
        (tmp_path / module).write_text(source)
    write(tmp_path / name, text)
    expected = [
        f"{name}:{line}: {problem.format(cwd=tmp_path)}"
        for line, problem in zip(lines, _PROBLEMS, strict=True)
    ]
    done = taskdaemon(home, "validate", name, cwd=tmp_path)
    assert (2, expected) == (done.returncode, done.stdout.splitlines())
    run = taskdaemon(home, "run", name, cwd=tmp_path)
    assert (2, expected) == (run.returncode, run.stderr.splitlines())


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        (
            "typo.yaml",
            "name: p\nstages:\n  - nme: a\n    command: echo\n    trigers: [{manual: {}}]\n",
            [
                "3: stages[0].nme: unknown key (did you mean 'name'?)",
                "5: stages[0].trigers: unknown key (did you mean 'triggers'?)",
            ],
        ),
        (
            "typo.toml",
            'nmae = "p"\n[[stages]]\nname = "a"\ncommand = "echo"\ntriger = []\n',
            [
                "1: nmae: unknown key (did you mean 'name'?)",
                "5: stages[0].triger: unknown key (did you mean 'triggers'?)",
            ],
        ),
        (
            "cycle.toml",
            'name = "p"\n[[stages]]\nname = "a"\ncommand = "echo"\n'
            'triggers = [{on_completion = {stage = "b"}}]\n'
            '[[stages]]\nname = "b"\ncommand = "echo"\n'
            'triggers = [{on_completion = {stage = "a"}}]\n',
            [
                "2: stages: no entry stage (a stage with no upstream stages and a manual, "
                "on_condition or external on_event trigger: give the first stage triggers = "
                "[{manual = {}}])",
                "5: stages[0].triggers[0].on_completion.stage: cycle: a -> b -> a (none of "
                "them can start: 'a' waits for 'b' here; remove this trigger)",
            ],
        ),
        (
            # an entry stage that also waits for the last stage: "no entry stage" said to give
            # it the manual trigger it has
            "entry_cycle.yaml",
            "name: p\nstages:\n  - name: a\n    command: echo\n"
            "    triggers: [{manual: {}}, {on_completion: {stage: b}}]\n"
            "  - name: b\n    command: echo\n    triggers: [{on_completion: {stage: a}}]\n",
            [
                "5: stages[0].triggers[1].on_completion.stage: cycle: a -> b -> a (none of "
                "them can start: 'a' waits for 'b' here; remove this trigger)",
            ],
        ),
        (
            "twice.yaml",
            "name: p\nstages:\n  - name: a\n    command: echo\n    triggers: [{manual: {}}]\n"
            "  - name: a\n    command: echo\n    triggers: [{manual: {}}]\n",
            ["6: stages[1].name: duplicate stage name 'a' (first at stages[0]: rename one)"],
        ),
        (
            "unknown.toml",
            'name = "p"\n[[stages]]\nname = "a"\ncommand = "echo"\n'
            'triggers = [{manual = {}},\n  {on_completion = {stage = "b"}}]\n',
            # the item's own line, not its key's (``toml_values``)
            ["6: stages[0].triggers[1].on_completion.stage: unknown stage 'b' (the stages: 'a')"],
        ),
        (
            "word.toml",
            "name = demo\n",
            [
                "1: invalid toml: invalid value at column 8 (a string is quoted in TOML: "
                "write 'demo')"
            ],
        ),
        (
            "colon.toml",
            'name = "p"\n[[stages]]\nname = "a"\ntriggers = [{manual: {}}]\n',
            [
                "4: invalid toml: expected '=' after a key in a key/value pair at column 20 "
                "(TOML writes key = value, in an inline table too)"
            ],
        ),
        (
            "twice.toml",
            'name = "p"\n[[stages]]\nname = "a"\nname = "b"\n',
            [
                "4: invalid toml: cannot overwrite a value at column 11 ('name' is given twice: "
                "a key is written once in its table)"
            ],
        ),
    ],
)
def test_a_newcomer_s_slip_is_one_line_that_says_what_to_write(
    home: Path, tmp_path: Path, name: str, text: str, expected: list[str]
) -> None:
    """A misspelt required key is its "did you mean" alone (it was also "missing required
    field", with a hint about entry stages that misled); a cycle says which trigger to remove
    (and no more "no entry stage" when removing it leaves one);
    a stage named twice says to rename one; an entry stage that also waits for an unknown
    stage is that stage's issue alone (it was also "no entry stage"); TOML's YAML habits (a
    bare word, ``key: value``, a key twice) say what to write; each on its line."""
    write(tmp_path / name, text)
    done = taskdaemon(home, "validate", name, cwd=tmp_path)
    assert (2, [f"{name}:{issue}" for issue in expected]) == (
        done.returncode,
        done.stdout.splitlines(),
    )
