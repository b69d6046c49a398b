"""``validation``: a required input that reads a stage which is not upstream of its own, through
``taskdaemon validate`` and ``run``."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli_support import taskdaemon, write

#: ``report`` starts with the run, as ``fetch`` does, and reads what ``fetch`` returns: it
#: failed at run time (``no such key 'count'``) or not, by a race, after ``validate`` passed.
_RACE = """\
    name: race
    stages:
      - name: fetch
        command: printf '{"count":5}' && touch {marker}
        triggers: [{manual: {}}]
      - name: report
        command: echo $TASKDAEMON_INPUT_N
        triggers: [{manual: {}}]
        inputs:
          n: stages.fetch.outputs.count
    """


@pytest.mark.slow
@pytest.mark.parametrize("command", ["validate", "run"])
def test_an_input_read_from_a_stage_not_upstream_is_refused_before_any_stage_runs(
    home: Path, tmp_path: Path, command: str
) -> None:
    marker = tmp_path / "fetch-ran"
    path = write(tmp_path / "race.yaml", _RACE.replace("{marker}", str(marker)))
    done = taskdaemon(home, command, str(path))
    expected = (
        f"{path}:10: stages[1].inputs.n.from: reads stage 'fetch', which is not upstream of "
        "'report': it may start first and fail (wait for it, triggers: [{on_completion: "
        "{stage: 'fetch'}}], or make the input required: false)"
    )
    assert (2, [expected]) == (done.returncode, (done.stdout + done.stderr).splitlines())
    assert not marker.exists()


@pytest.mark.slow
def test_an_input_that_cannot_race_is_not_judged(home: Path, tmp_path: Path) -> None:
    """Upstream (directly or not), optional, guarded by ``has``, a stage waiting on a
    condition or an approval: each reads ``fetch`` without an issue."""
    path = write(
        tmp_path / "fine.yaml",
        """\
        name: fine
        stages:
          - {name: fetch, command: "true", triggers: [{manual: {}}]}
          - name: middle
            command: "true"
            triggers: [{on_completion: {stage: fetch}}]
            inputs: {n: stages.fetch.outputs.count}
          - name: later
            command: "true"
            triggers: [{on_completion: {stage: middle}}]
            inputs: {n: stages.fetch.outputs.count}
          - name: optional
            command: "true"
            triggers: [{manual: {}}]
            inputs: {n: {from: stages.fetch.outputs.count, required: false}}
          - name: guarded
            command: "true"
            triggers: [{manual: {}}]
            inputs: {n: "has(stages.fetch.outputs.count) ? stages.fetch.outputs.count : 0"}
          - name: waiting
            command: "true"
            triggers: [{on_condition: {expression: "stages.fetch.status == 'success'"}}]
            inputs: {n: stages.fetch.outputs.count}
          - name: approved
            command: "true"
            triggers: [{manual: {approval_required: true}}]
            inputs: {n: stages.fetch.outputs.count}
          - name: status
            command: "true"
            triggers: [{manual: {}}]
            inputs: {s: stages.fetch.status}
        """,
    )
    done = taskdaemon(home, "validate", str(path))
    assert (0, f"OK {path} (8 stages)\n") == (done.returncode, done.stdout), done.stderr


@pytest.mark.slow
def test_an_input_read_from_the_stage_s_own_outputs_is_refused(home: Path, tmp_path: Path) -> None:
    """Its own outputs exist only once it ended: waiting for itself would be a cycle."""
    path = write(
        tmp_path / "self.yaml",
        """\
        name: itself
        stages:
          - {name: a, command: "true", triggers: [{manual: {}}], inputs: {n: stages.a.outputs.n}}
        """,
    )
    done = taskdaemon(home, "validate", str(path))
    expected = (
        f"{path}:3: stages[0].inputs.n.from: reads the stage's own outputs, which it has only "
        "once it ended (what the handler returns is result, in outputs:)"
    )
    assert (2, [expected]) == (done.returncode, done.stdout.splitlines()), done.stderr
