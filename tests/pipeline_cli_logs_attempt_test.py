"""``taskdaemon logs RUN --stage S --attempt N``: a retried stage's logs one try at a time, read
by the real command from a real run's store."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # a real run and real `logs` processes, a second or more each

TASKDAEMON = str(Path(sys.executable).with_name("taskdaemon"))

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
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, str], str]:
    """The environment of a home holding one run whose stage succeeded at its third try,
    and that run's id."""
    root = tmp_path_factory.mktemp("attempts")
    (root / "flaky.yaml").write_text(PIPELINE)
    env = {
        **os.environ,
        "TASKDAEMON_HOME": str(root / "home"),
        "OTEL_TRACES_EXPORTER": "none",
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_LOGS_EXPORTER": "none",
    }
    done = subprocess.run(
        [TASKDAEMON, "run", "-q", "flaky.yaml"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return env, done.stdout.strip()


def _logs(store: tuple[dict[str, str], str], *options: str) -> subprocess.CompletedProcess[str]:
    env, run_id = store
    return subprocess.run(
        [TASKDAEMON, "logs", run_id, *options],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_attempt_keeps_that_try_alone(store: tuple[dict[str, str], str]) -> None:
    """``--attempt 2`` prints the second try's start, output and failure, and no other try's."""
    done = _logs(store, "--stage", "fetch", "--attempt", "2")
    assert (0, "") == (done.returncode, done.stderr)
    lines = done.stdout.splitlines()
    assert {"fetch.0.2"} == set(re.findall(r"\bfetch\.\d+\.\d+\b", done.stdout))
    assert any(line.endswith("fetch.0.2 [stdout] try 2") for line in lines)
    assert any("stage fetch.0.2 finished: failure" in line for line in lines)
    assert not any("try 1" in line or "try 3" in line for line in lines)


def test_attempt_never_made_is_refused(store: tuple[dict[str, str], str]) -> None:
    """An attempt the stage never made is an error naming those it made, not an empty list."""
    done = _logs(store, "--stage", "fetch", "--attempt", "4")
    assert 1 == done.returncode
    assert "" == done.stdout
    assert done.stderr.startswith("taskdaemon logs: stage 'fetch' of run ")
    assert done.stderr.endswith(" has no attempt 4 (its attempts: 1, 2, 3)\n")


def test_attempt_without_stage_is_an_argument_error(store: tuple[dict[str, str], str]) -> None:
    """``--attempt`` alone is refused in one line, exit 2: which stage's try is not said."""
    done = _logs(store, "--attempt", "1")
    assert (2, "") == (done.returncode, done.stdout)
    assert "taskdaemon logs: --attempt needs --stage: which stage's attempt\n" == done.stderr
