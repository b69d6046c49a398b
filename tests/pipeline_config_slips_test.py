"""Broken pipeline files a probe of 60 found wanting, each through ``taskdaemon validate`` and
``run`` (subprocesses of the console script): every one is a single line, on the right line,
exit 2. Before: a TOML or JSON file starting with a byte order mark was refused at a character
no editor shows (JSON's message told to "decode using utf-8-sig"); an empty or comments-only
TOML file was two lines of missing fields with no line; a TOML file's missing top-level key had
no line; a JSON key given twice had no line or path; a JSON string not closed read "invalid
control character at at column"; a JSON comma after the last item, or a comment, said only
what JSON expected there; a NUL in a YAML file, or a file not UTF-8, had no line; and a
directory named ``x.toml`` was told to give its ``*.yaml`` files."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli_support import taskdaemon

_STAGE_TOML = '[[stages]]\nname = "a"\ncommand = "echo"\ntriggers = [{manual = {}}]\n'
_DURATION = "stages[0].timeout: invalid duration 'soon' (expected seconds or 500ms, 30s, 10m, 2h)"
#: Each file's text (or bytes) and the line ``validate`` prints for it (after ``FILE:``).
_SLIPS: dict[str, tuple[str | bytes, str]] = {
    "bom.toml": ("\ufeffname = 'p'\n" + _STAGE_TOML + 'timeout = "soon"\n', f"6: {_DURATION}"),
    "bom.json": (
        '\ufeff{"name": "p",\n "stages": [\n  {"name": "a", "command": "echo",'
        ' "triggers": [{"manual": {}}],\n   "timeout": "soon"}]}\n',
        f"4: {_DURATION}",
    ),
    "empty.toml": ("", "1: the file is empty"),
    "comments.toml": ("# a pipeline, one day\n\n", "1: the file is empty"),
    "nostages.toml": ("# the demo\nname = 'p'\n", "2: stages: missing required field"),
    "twice.json": (
        '{"name": "p",\n "stages": [\n  {"name": "a",\n   "command": "echo",\n'
        '   "command": "ls",\n   "triggers": [{"manual": {}}]}]}\n',
        "5: stages[0].command: duplicate key",
    ),
    "open.json": (
        '{"name": "p",\n "stages": [\n  {"name": "a", "command": "echo,\n'
        '   "triggers": [{"manual": {}}]}]}\n',
        "3: invalid json: invalid control character at column 34 (a string is not closed on "
        "its line)",
    ),
    "open.toml": (
        'name = "p"\n[[stages]]\nname = "a"\ncommand = "echo\ntriggers = [{manual = {}}]\n',
        "4: invalid toml: illegal character '\\n' at column 16 (a string is not closed on its "
        "line)",
    ),
    "comma.json": (
        '{"name": "p",\n "stages": [\n  {"name": "a", "command": "echo", "triggers": '
        '[{"manual": {}}]},\n ]}\n',
        "4: invalid json: expecting value at column 2 (JSON has no comma after the last item)",
    ),
    "comment.json": (
        '{"name": "p", // the demo\n "stages": []}\n',
        "1: invalid json: expecting property name enclosed in double quotes at column 15 (JSON "
        "has no comments)",
    ),
    "nul.yaml": (
        "name: p\nstages:\n  - name: a\x00\n",
        "3: invalid yaml: a character YAML does not allow (U+0000) at column 12",
    ),
    "latin.yaml": (
        "name: p\ndescription: caf\xe9\n".encode("latin-1"),
        "2: not utf-8 text (byte 24: save the file as UTF-8)",
    ),
}


@pytest.mark.slow
def test_each_slip_is_one_line_on_its_line(home: Path, tmp_path: Path) -> None:
    """``validate`` of all the files at once, then ``run`` of each: the same line, exit 2."""
    for name, (text, _) in _SLIPS.items():
        data = text if isinstance(text, bytes) else text.encode()
        (tmp_path / name).write_bytes(data)
    expected = [f"{name}:{line}" for name, (_, line) in _SLIPS.items()]
    done = taskdaemon(home, "validate", *_SLIPS, cwd=tmp_path)
    assert (2, expected) == (done.returncode, done.stdout.splitlines())
    for name, line in zip(_SLIPS, expected, strict=True):
        run = taskdaemon(home, "run", name, cwd=tmp_path)
        assert (2, [line]) == (run.returncode, run.stderr.splitlines())


@pytest.mark.slow
def test_a_directory_is_told_to_give_its_files_of_its_own_suffix(home: Path) -> None:
    """A directory named ``flows.toml`` given as a file: its ``*.toml`` files are asked for."""
    (home / "flows.toml").mkdir()
    done = taskdaemon(home, "validate", "flows.toml", cwd=home)
    expected = "flows.toml: a directory, not a pipeline file (give its files: flows.toml/*.toml)"
    assert (2, [expected]) == (done.returncode, done.stdout.splitlines())
