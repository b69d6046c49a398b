"""``--input`` and ``--input-file``: the request a run gets (``cli/inputs.py``), and the one line
a pair without a key or a value is refused with (through ``taskdaemon run``, end to end)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli_support import ONE_STAGE_PIPELINE, taskdaemon, write
from taskdaemon.pipeline.cli.inputs import parse_inputs


def test_parse_inputs_json_or_text(tmp_path: Path) -> None:
    """--input values are JSON when they parse, text otherwise; --input wins over the file."""
    (tmp_path / "r.json").write_text('{"a": 1, "b": "file"}')
    expected = {"a": 1, "b": "cli", "n": 3, "flags": [1, 2], "text": "hello world", "empty": ""}
    actual = parse_inputs(
        ["b=cli", "n=3", "flags=[1,2]", "text=hello world", "empty="], str(tmp_path / "r.json")
    )
    assert expected == actual


def test_parse_inputs_reads_a_json_file_by_jsons_rules(tmp_path: Path) -> None:
    """A ``.json`` input file's ``1e3`` is a number, as ``--input n=1e3`` is (YAML 1.1 would
    read it as text)."""
    (tmp_path / "r.json").write_text('{"n": 1e3}')
    assert {"n": 1000.0, "m": 1000.0} == parse_inputs(["m=1e3"], str(tmp_path / "r.json"))


def test_parse_inputs_names_a_json_files_syntax_error(tmp_path: Path) -> None:
    """A ``.json`` input file that is not JSON is one line naming the file and JSON's reason."""
    path = tmp_path / "r.json"
    path.write_text('{"n": 1,}')
    with pytest.raises(ValueError, match="not JSON") as caught:
        parse_inputs([], str(path))
    assert str(caught.value).startswith(f"--input-file {path}: not JSON: Expecting property")


def test_parse_inputs_rejects_pairs_without_equals() -> None:
    """A --input without '=' is refused with its text."""
    with pytest.raises(ValueError, match="--input 'oops' has no '=': expected KEY=VALUE"):
        parse_inputs(["oops"])


@pytest.mark.parametrize(
    ("pair", "reason"),
    [
        ("password", "--input 'password' has no '=': expected KEY=VALUE"),
        ("token", "--input 'token' has no '=': expected KEY=VALUE"),
        ("=hunter2", "--input has no key before its '=': expected KEY=VALUE"),
    ],
)
def test_a_secret_s_name_without_a_value_keeps_its_reason(
    home: Path, tmp_path: Path, pair: str, reason: str
) -> None:
    """``run -i password`` (the value forgotten) says what is wrong: the line goes through
    redaction on its way out, and ``'password': expected KEY=VALUE`` read as a secret's key and
    value, so the user saw ``--input 'password': [REDACTED] KEY=VALUE``. A value with no key is
    not echoed (it may be the secret)."""
    path = write(tmp_path / "one.yaml", ONE_STAGE_PIPELINE)
    ran = taskdaemon(home, "run", str(path), "-i", pair)
    assert (2, f"taskdaemon run: {reason}\n") == (ran.returncode, ran.stderr)


#: ``first`` starts with the run and ``second`` on its completion: both certainly run and read
#: ``request.goal`` and ``request.token``; ``guarded`` runs only when its condition holds.
NEEDS_INPUTS_PIPELINE = """\
    name: needs
    stages:
      - name: first
        command: "true"
        triggers: [{manual: {approval_required: false}}]
        inputs:
          goal: {from: request.goal, required: true}
          note: {from: request.note, required: false}
      - name: second
        command: "true"
        triggers: [{on_completion: {stage: first}}]
        inputs: {token: request.token, again: request.goal}
      - name: guarded
        command: "true"
        triggers: [{on_condition: {expression: "has(request.extra)"}}]
        inputs: {extra: request.extra}
"""


@pytest.mark.parametrize("command", ["run", "debug", "serve"])
def test_a_missing_request_input_is_refused_at_the_start(
    home: Path, tmp_path: Path, command: str
) -> None:
    """A required input read from a request key the run lacks is refused before the run starts,
    in one line naming the option that passes it, not when its stage runs (``no such key``):
    every key a certainly run stage reads, each once; not ``request.note`` (optional) nor
    ``request.extra`` (its stage may never run). The key ``token`` is named whole, though its
    name is a secret's. ``serve --pipeline`` served on and started a failing run on every
    tick of its schedule."""
    path = str(write(tmp_path / "needs.yaml", NEEDS_INPUTS_PIPELINE))
    args = ["--pipeline", path, "--port", "0"] if command == "serve" else [path, "-q"]
    ran = taskdaemon(home, command, *args)
    expected = (
        f"taskdaemon {command}: the request lacks 'goal' (stage 'first'), 'token' (stage "
        "'second'): pass --input goal=VALUE --input token=VALUE\n"
    )
    assert (2, expected, "") == (ran.returncode, ran.stderr, ran.stdout)


def test_a_request_with_the_certain_inputs_runs(home: Path, tmp_path: Path) -> None:
    """Given the keys the certain stages read, the run starts and succeeds, the optional and the
    guarded stage's keys left out."""
    path = write(tmp_path / "needs.yaml", NEEDS_INPUTS_PIPELINE)
    ran = taskdaemon(home, "run", str(path), "-q", "-i", "goal=g", "-i", "token=t")
    assert (0, "") == (ran.returncode, ran.stderr)
