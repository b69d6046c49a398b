"""Every command that loads a pipeline file says its warnings (``cli/validate.load_warned``):
``dag FILE``, ``serve --pipeline`` and ``replay RUN FILE`` as ``run`` does, once, on stderr,
and never in what the command writes on stdout."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli_support import taskdaemon, write
from schedule_support import scheduled_serve

#: A file with one warning (a stage parked by a condition that is never true).
_PARKED = """\
    name: parked
    stages:
      - name: first
        command: "true"
        triggers: [{manual: {}}]
      - name: parked
        command: "true"
        triggers:
          - on_condition: {expression: "1 > 2"}
    """


def _warning(path: Path) -> str:
    return (
        f"{path}:9:24: warning: stages[1].triggers[0].on_condition.expression: '1 > 2' reads "
        "no variable and is never true: the stage never starts [constant-condition]"
    )


@pytest.mark.slow
def test_dag_says_the_warnings_on_stderr_and_keeps_stdout_json(home: Path, tmp_path: Path) -> None:
    """``dag FILE --format json``: the warning alone on stderr, the JSON alone on stdout.
    Before, ``dag`` said nothing of the file's warnings."""
    path = write(tmp_path / "parked.yaml", _PARKED)
    done = taskdaemon(home, "dag", str(path), "--format", "json")
    assert (0, [_warning(path)]) == (done.returncode, done.stderr.splitlines()), done.stderr
    assert ["first", "parked"] == [node["name"] for node in json.loads(done.stdout)["nodes"]]


@pytest.mark.slow
def test_serve_says_the_warnings_once_not_at_each_run(home: Path, tmp_path: Path) -> None:
    """``serve --pipeline`` loads its file once: the warning is said once, before the first
    run, and not again at the second and third scheduled runs. Before, never."""
    path = write(tmp_path / "parked.yaml", _PARKED)
    with scheduled_serve(home, path, "--every", "0.1", "--max-runs", "3") as served:
        served.line(" started ")
        served.line(" started ")  # the third run: every warning a run would say is before it
        said = [line.rstrip("\n") for line in served.passed if "warning:" in line]
    assert [_warning(path)] == said


@pytest.mark.slow
def test_replay_with_a_file_says_its_warnings(home: Path, tmp_path: Path) -> None:
    """``replay RUN FILE`` loads FILE: its warning on stderr, as ``run`` said it. Before, only
    ``run`` did."""
    path = write(tmp_path / "parked.yaml", _PARKED)
    ran = taskdaemon(home, "run", "-q", str(path))
    assert (0, [_warning(path)]) == (ran.returncode, ran.stderr.splitlines()), ran.stderr
    done = taskdaemon(home, "replay", ran.stdout.strip(), str(path), "--dry-run")
    assert 0 == done.returncode, done.stderr
    assert [_warning(path)] == done.stderr.splitlines()
