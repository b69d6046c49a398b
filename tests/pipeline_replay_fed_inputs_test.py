"""A replay does not evaluate a fed stage's inputs again: the stage hands on what the record
says, its span keeps the recorded inputs, and recorded inputs that are not whole (a secret
redacted, a value cut at the capture cap) are said in one note. Real ``taskdaemon run`` and
``replay`` processes on the embedded store."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cli_support import taskdaemon, write

#: ``a`` doubles the request's ``n`` (its input); ``b`` after it.
_DOUBLED = """\
    name: doubled
    stages:
      - name: a
        command: "true"
        inputs:
          n: {from: "request.n * 2", required: true}
        triggers: [{manual: {approval_required: false}}]
      - name: b
        command: "true"
        triggers: [{on_completion: {stage: a}}]
"""


def _inputs(home: Path, run_id: str) -> dict[str, Any]:
    """Each attempt's recorded inputs (``runs show --json``), by its ``task_run_id``."""
    shown = json.loads(taskdaemon(home, "runs", "show", run_id, "--json").stdout)
    return {a["task_run_id"]: a["inputs"] for stage in shown["stages"] for a in stage["attempts"]}


def _replay_id(stdout: str) -> str:
    return next(line for line in stdout.splitlines() if line.startswith("run ")).split()[1]


@pytest.mark.slow
@pytest.mark.parametrize(
    "args",
    [
        pytest.param(("--input", "n=abc"), id="another-input"),
        pytest.param(("FILE", "--use-file"), id="a-file-that-changed-the-input"),
    ],
)
def test_a_fed_stage_s_inputs_are_the_recorded_ones(
    home: Path, tmp_path: Path, args: tuple[str, ...]
) -> None:
    """``replay --from b`` fed ``a`` but evaluated its input again: with ``--input n=abc``
    (``string * int``), or a file whose ``a`` reads a key the request lacks, the fed ``a``
    failed (``cannot evaluate required input``), where the record has it succeed, and ``b``
    was skipped. The fed ``a`` now succeeds as recorded, ``b`` runs, and the replay's span of
    ``a`` keeps the recorded inputs."""
    path = write(tmp_path / "doubled.yaml", _DOUBLED)
    original = taskdaemon(home, "run", str(path), "--input", "n=3", "-q")
    old = original.stdout.strip()
    changed = write(tmp_path / "changed.yaml", _DOUBLED.replace("request.n * 2", "request.m"))
    given = [str(changed) if arg == "FILE" else arg for arg in args]
    replay = taskdaemon(home, "replay", old, *given, "--from", "b")
    said = f"{original.stderr}{replay.stdout}{replay.stderr}"
    assert 0 == replay.returncode, said
    assert "input" not in replay.stdout.split("\nrun ")[0], said  # no stage's error names one
    new = _replay_id(replay.stdout)
    shown = json.loads(taskdaemon(home, "runs", "show", new, "--json").stdout)
    assert [("a", "replayed"), ("b", "success")] == [
        (stage["name"], stage["status"]) for stage in shown["stages"]
    ], said
    assert {"a.0.1": '{"n":6}', "b.0.1": "{}"} == _inputs(home, old) == _inputs(home, new)


#: ``a``'s inputs hold a secret (``api_key``) and a long text, recorded redacted and cut.
_SECRET = """\
    name: secret
    stages:
      - name: a
        command: "true"
        inputs:
          api_key: {from: "request.key", required: true}
          long: {from: "request.long", required: true}
        triggers: [{manual: {approval_required: false}}]
      - name: b
        command: "true"
        triggers: [{on_completion: {stage: a}}]
"""


@pytest.mark.slow
@pytest.mark.parametrize(
    ("cap", "problem"),
    [
        pytest.param("65536", "a.0.1 redacted (api_key)", id="redacted"),
        pytest.param("30", "a.0.1 truncated at capture (30 of ", id="cut-at-the-cap"),
    ],
)
def test_recorded_inputs_not_whole_are_said_in_one_line(
    home: Path, tmp_path: Path, cap: str, problem: str
) -> None:
    """A fed stage's recorded inputs that are not whole need not stop the replay (they are not
    evaluated again), but the replay's span keeps them as recorded: one note says so, before it
    runs and in the dry run, with no traceback and no secret in any output."""
    path = str(write(tmp_path / "secret.yaml", _SECRET))
    secret, long = "s3cr3t-value-1234", "x" * 40
    env = {"TASKDAEMON_CAPTURE_MAX_BYTES": cap}
    original = taskdaemon(home, "run", path, "--input", f"key={secret}", "--input", f"long={long}",
                          "-q", **env)  # fmt: skip
    old = original.stdout.strip()
    supplied = ("--input", "key=other", "--input", "long=y")
    outputs = tmp_path / "a.json"
    outputs.write_text("{}")
    replay_args = (old, path, "--from", "b", *supplied, "--stage-output", f"a={outputs}")
    dry = taskdaemon(home, "replay", *replay_args, "--dry-run", **env)
    replay = taskdaemon(home, "replay", *replay_args, **env)
    said = f"{original.stderr}{dry.stdout}{dry.stderr}{replay.stdout}{replay.stderr}"
    assert (0, 0) == (dry.returncode, replay.returncode), said
    for stderr in (dry.stderr, replay.stderr):
        notes = [line for line in stderr.splitlines() if "recorded inputs not whole" in line]
        assert 1 == len(notes), said
        assert notes[0].startswith(f"note: recorded inputs not whole: {problem}"), said
        assert notes[0].endswith("its span keeps them as recorded"), said
    assert "Traceback" not in said
    assert secret not in said
    new = _replay_id(replay.stdout)
    assert _inputs(home, old)["a.0.1"] == _inputs(home, new)["a.0.1"]
