"""Trigger wait on a retried stage: the first attempt's span holds it, later attempts' spans do
not (they waited for a backoff, not a trigger), and what readers rebuild from the spans
(``dag --run --format json``, ``runs show --json``) says the same, as the metric does."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cli_support import taskdaemon, write

# "flaky" fails twice, then succeeds; it can start only once "gate" has run for a while, so
# its first attempt has a trigger wait of at least that.
FLAKY = """\
name: flaky
error_strategy: retry
retry: {max_attempts: 3, backoff: {initial: 100ms}}
stages:
  - name: gate
    command: "sleep 0.2"
    triggers: [{manual: {}}]
  - name: flaky
    command: "test -e two || { test -e one && touch two; touch one; exit 1; }"
    triggers: [{on_completion: {stage: gate}}]
"""


def _waits(attempts: list[dict[str, Any]]) -> list[tuple[int, bool | None]]:
    """Each attempt's number, and whether its trigger wait is over 0.1 s (None: absent)."""
    return [
        (a["attempt"], None if a["trigger_wait"] is None else a["trigger_wait"] > 0.1)
        for a in attempts
    ]


@pytest.mark.slow
def test_only_a_stages_first_attempt_has_a_trigger_wait(home: Path, tmp_path: Path) -> None:
    """Three attempts of a stage that waited for its upstream: the first has its trigger wait,
    the two retries none, in the stored spans as `dag --run` and `runs show` read them."""
    ran = taskdaemon(home, "run", "-q", str(write(tmp_path / "flaky.yaml", FLAKY)))
    assert 0 == ran.returncode, ran.stderr
    (run_id,) = [
        row["run_id"] for row in json.loads(taskdaemon(home, "runs", "list", "--json").stdout)
    ]
    drawn = json.loads(taskdaemon(home, "dag", "--run", run_id, "--format", "json").stdout)
    (node,) = [node for node in drawn["nodes"] if node["name"] == "flaky"]
    shown = json.loads(taskdaemon(home, "runs", "show", run_id, "--json").stdout)
    (stage,) = [stage for stage in shown["stages"] if stage["name"] == "flaky"]
    assert ([(1, True), (2, None), (3, None)], [(1, True), (2, None), (3, None)]) == (
        _waits(node["attempts"]),
        _waits(stage["attempts"]),
    )
