"""``taskdaemon logs RUN --stage S --attempt N``: a retried stage's logs one try at a time, read
by the real command from a real run's store."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from cli_support import taskdaemon

pytestmark = pytest.mark.slow  # a real run and real `logs` processes, a second or more each

#: A command stage that prints its try and fails its first two, as a flaky source does.
PIPELINE = """
name: flaky-source
stages:
  - name: fetch
    command: "echo try $TASKDAEMON_ATTEMPT; test $TASKDAEMON_ATTEMPT -ge 3"
    retry: {max_attempts: 3, backoff: {initial: 10ms, factor: 1.0, max: 10ms}}
    triggers: [{manual: {approval_required: false}}]
"""


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A home holding one run whose stage succeeded at its third try, and that run's id."""
    root = tmp_path_factory.mktemp("attempts")
    (root / "flaky.yaml").write_text(PIPELINE)
    done = taskdaemon(root / "home", "run", "-q", "flaky.yaml", cwd=root)
    assert done.returncode == 0, done.stderr
    return root / "home", done.stdout.strip()


def _logs(store: tuple[Path, str], *options: str) -> subprocess.CompletedProcess[str]:
    home, run_id = store
    return taskdaemon(home, "logs", run_id, *options)


def test_attempt_keeps_that_try_alone(store: tuple[Path, str]) -> None:
    """``--attempt 2`` prints the second try's start, output and failure, and no other try's."""
    done = _logs(store, "--stage", "fetch", "--attempt", "2")
    assert (0, "") == (done.returncode, done.stderr)
    lines = done.stdout.splitlines()
    assert {"fetch.0.2"} == set(re.findall(r"\bfetch\.\d+\.\d+\b", done.stdout))
    assert any(line.endswith("fetch.0.2 [stdout] try 2") for line in lines)
    assert any("stage fetch.0.2 finished: failure" in line for line in lines)
    assert not any("try 1" in line or "try 3" in line for line in lines)


def test_attempt_never_made_is_refused(store: tuple[Path, str]) -> None:
    """An attempt the stage never made is an error naming those it made, not an empty list."""
    done = _logs(store, "--stage", "fetch", "--attempt", "4")
    assert 1 == done.returncode
    assert "" == done.stdout
    assert done.stderr.startswith("taskdaemon logs: stage 'fetch' of run ")
    assert done.stderr.endswith(" has no attempt 4 (its attempts: 1, 2, 3)\n")


def test_attempt_without_stage_is_an_argument_error(store: tuple[Path, str]) -> None:
    """``--attempt`` alone is refused in one line, exit 2: which stage's try is not said."""
    done = _logs(store, "--attempt", "1")
    assert (2, "") == (done.returncode, done.stdout)
    assert "taskdaemon logs: --attempt needs --stage: which stage's attempt\n" == done.stderr
