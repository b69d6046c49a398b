"""How a replay's fed stages end: in the order the record ended them, and each as the record
saw it end, a cancellation too, or not at all. Real ``taskdaemon run``, ``cancel`` and
``replay`` processes, each replay then replayed in turn: a replay of a replay tells the same."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cli_support import taskdaemon, write
from taskdaemon.pipeline.tracking import SpanStore
from taskdaemon.pipeline.visualization import dag_snapshot
from taskdaemon.pipeline.web._views import run_state

#: ``b`` fails first, ``a`` after it, though ``a`` starts first: ``a`` waits for the file of
#: ``e``, a stage ``b``'s end fires, so the record ends ``b`` before ``a`` however slow the
#: machine (a fixed sleep after ``b``'s own file was not always long enough for the engine to
#: end ``b``'s span first).
_CONTINUED = """\
    name: continued
    error_strategy: continue
    stages:
      - name: a
        command: "until [ -f b.ended ]; do sleep 0.02; done; exit 3"
        triggers: [{manual: {approval_required: false}}]
      - name: b
        command: "exit 5"
        triggers: [{manual: {approval_required: false}}]
      - name: e
        command: "touch b.ended"
        triggers: [{on_completion: {stage: b, success_only: false}}]
      - name: c
        command: "true"
        trigger_mode: all
        triggers:
          - on_completion: {stage: a, success_only: false}
          - on_completion: {stage: b, success_only: false}
"""


#: ``d`` fails first, ``b`` after it, though ``b`` starts first: ``d`` is fired by the end of
#: ``a``, and its stand-in comes late: after its input is evaluated in the CEL worker, many
#: turns of the loop (``_WORKED_INPUT``), or after its approval, which the replay gives a turn
#: after it is asked, as recorded (``_APPROVED``). ``b`` waits for ``e``, fired by ``d``'s end.
_FIRED_LATE = """\
    name: fired
    error_strategy: continue
    stages:
      - name: c
        command: "true"
        trigger_mode: all
        triggers:
          - on_completion: {stage: b, success_only: false}
          - on_completion: {stage: d, success_only: false}
      - {name: a, command: "true", triggers: [{manual: {approval_required: false}}]}
      - name: b
        command: "until [ -f d.ended ]; do sleep 0.02; done; exit 3"
        triggers: [{manual: {approval_required: false}}]
      - name: d
        command: "exit 5"
        %s
        triggers: [{on_completion: {stage: a}}%s]
      - name: e
        command: "touch d.ended"
        triggers: [{on_completion: {stage: d, success_only: false}}]
"""
_WORKED_INPUT = _FIRED_LATE % ('inputs: {names: {from: "request.map(k, k)", required: true}}', "")
_APPROVED = _FIRED_LATE % ("trigger_mode: all", ", {manual: {approval_required: true}}")


def _replayed(home: Path, run_id: str, said: list[str] | None = None) -> tuple[str, str]:
    """``replay RUN --from c``: the replay's id and its exit line (``error: ...``); its
    output is appended to ``said``, the evidence a failed assertion shows."""
    replay = taskdaemon(home, "replay", run_id, "--from", "c")
    if said is not None:
        said.append(f"replay {run_id}: {replay.stdout}{replay.stderr}")
    lines = replay.stdout.splitlines()
    new = next(line for line in lines if line.startswith("run ")).split()[1]
    return new, next((line for line in lines if line.startswith("error: ")), "")


def _stages(home: Path, run_id: str) -> str:
    """A run's error and each attempt's status, end and error, in the order the store tells
    them, one per line: what a failed assertion shows of which ending came first."""
    shown = json.loads(taskdaemon(home, "runs", "show", run_id, "--json").stdout)
    lines = [f"run {run_id}: {shown['status']} {shown['error_type']}: {shown['error']}"]
    lines += [
        f"  {a['task_run_id']} {a['status']} ended {a['end']}: {a['error_type']}: {a['error']}"
        for stage in shown["stages"]
        for a in stage["attempts"]
    ]
    return "\n".join(lines)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("definition", "error"),
    [
        (_CONTINUED, "stage 'b' failure: command 'exit 5' exited with code 5"),
        (_WORKED_INPUT, "stage 'd' failure: command 'exit 5' exited with code 5"),
        (_APPROVED, "stage 'd' failure: command 'exit 5' exited with code 5"),
    ],
    ids=["started-later", "fired-with-a-worked-input", "fired-by-an-approval"],
)
def test_a_replay_s_first_failure_is_the_record_s(
    home: Path, tmp_path: Path, definition: str, error: str
) -> None:
    """Fed stages ended in the order they started, so the replay's first failure, its error,
    type and exit line, was ``a``'s where the record's was ``b``'s. They now end in the order
    the record ended them, and a replay of the replay tells ``b`` first too. A fed stage
    fired by a fed end waited for no stand-in that was still on its way, one whose input the
    CEL worker evaluates, or one an approval fires (``_FIRED_LATE``): ``b`` ended before
    ``d``, which the record ended first."""
    path = str(write(tmp_path / "pipeline.yaml", definition))
    run = taskdaemon(home, "run", path, "--auto-approve", "-q")
    old = run.stdout.strip()
    evidence = [f"run: {run.stdout}{run.stderr}"]
    new, said = _replayed(home, old, evidence)
    newer, said_again = _replayed(home, new, evidence)

    def first_failure(run_id: str) -> tuple[Any, Any]:
        shown = json.loads(taskdaemon(home, "runs", "show", run_id, "--json").stdout)
        return shown["error"], shown["error_type"]

    # On a failure, what each process said and each run's stages: a rare failure under load
    # (flaky58) left only pytest's summary line, so no one could tell which ending came first.
    evidence += [_stages(home, run_id) for run_id in (old, new, newer)]
    assert (error, "CommandFailedError") == first_failure(old), "\n".join(evidence)
    assert first_failure(old) == first_failure(new) == first_failure(newer), "\n".join(evidence)
    assert [f"error: {error}"] * 2 == [said, said_again], "\n".join(evidence)


#: ``b`` runs until cancelled: by a user, or (``stopped``) by the failure of ``a``, which waits
#: for ``b`` to start, under ``error_strategy: fail``.
_CANCELLED = """\
    name: cancelled
    stages:
      - name: b
        command: "touch b.on; sleep 30"
        triggers: [{manual: {approval_required: false}}]
      - name: a
        command: "%s"
        triggers: [{manual: {approval_required: false}}]
      - name: c
        command: "true"
        trigger_mode: all
        triggers:
          - on_completion: {stage: a, success_only: false}
          - on_completion: {stage: b, success_only: false}
"""


@pytest.mark.slow
@pytest.mark.parametrize(
    ("command", "error"),
    [
        ("true", "run cancelled by alice"),
        (
            "until [ -f b.on ]; do sleep 0.02; done; exit 4",
            "stage 'a' failure: command 'until [ -f b.on ]; do sleep 0.02; done; exit 4' "
            "exited with code 4",
        ),
    ],
    ids=["cancelled-by-a-user", "stopped-by-a-failure"],
)
def test_a_fed_stage_the_record_saw_cancelled_ends_cancelled(
    home: Path, tmp_path: Path, serve: Any, command: str, error: str
) -> None:
    """A fed stage the record saw cancelled ended ``failure`` (``recorded as cancelled in the
    original run``), and with it the replay's run, which a user had cancelled. Fed, it now
    stops its run as the record's was stopped, for the recorded reason, unless the fed failure
    that stopped the original (under ``error_strategy: fail``) stops it first: the run's
    status and error, and each stage's error, cancel reason and cause, are the original's, in
    a replay of the replay too."""
    served = serve(str(write(tmp_path / "cancelled.yaml", _CANCELLED % command)))
    served.wait_for_line(" started ")
    served.wait_for_line("b                        running")
    if command == "true":
        assert 0 == taskdaemon(home, "cancel", served.run_id, "--by", "alice").returncode
    assert 1 == served.finish()[0]
    new, _said = _replayed(home, served.run_id)
    newer, _said = _replayed(home, new)

    def said(run_id: str) -> tuple[Any, ...]:
        shown = json.loads(taskdaemon(home, "runs", "show", run_id, "--json").stdout)
        return (
            shown["status"],
            shown["error"],
            {
                stage["name"]: [
                    (a["error"], a["cancel_reason"], a["cancel_cause"]) for a in stage["attempts"]
                ]
                for stage in shown["stages"]
            },
        )

    status = "cancelled" if command == "true" else "failure"
    assert (status, error) == said(served.run_id)[:2]
    assert said(served.run_id) == said(new) == said(newer)


#: One worker slot: ``b`` runs while ``a`` waits to retry, so the record ends ``b`` first; the
#: replay feeds ``a`` in one attempt, which holds the slot and fails, so ``b`` is left queued.
_QUEUED = """\
    name: queued
    concurrency: 1
    error_strategy: retry
    retry: {max_attempts: 2, backoff: {initial: 0.05, factor: 1, max: 0.05}}
    stages:
      - name: a
        command: "exit 3"
        triggers: [{manual: {approval_required: false}}]
      - name: b
        command: "true"
        triggers: [{manual: {approval_required: false}}]
      - name: c
        command: "true"
        trigger_mode: all
        triggers:
          - on_completion: {stage: a, success_only: false}
          - on_completion: {stage: b, success_only: false}
"""


@pytest.mark.slow
def test_a_fed_stage_the_replay_never_started_is_skipped_in_every_view(
    home: Path, tmp_path: Path
) -> None:
    """``b`` ran in the original but the replay's stop caught it queued, so it never started:
    the replay's summary said ``replayed`` for it, ``runs show``, the DAG and the web page
    ``skipped``, not reached. The summary now says what they say."""
    run = taskdaemon(home, "run", str(write(tmp_path / "queued.yaml", _QUEUED)), "-q")
    old = run.stdout.strip()
    replay = taskdaemon(home, "replay", old, "--from", "c")
    new = next(line for line in replay.stdout.splitlines() if line.startswith("run ")).split()[1]
    summary = {
        line.split()[0]: (line.split()[1], line.split(maxsplit=6)[-1])
        for line in replay.stdout.splitlines()[1:4]
    }
    shown = json.loads(taskdaemon(home, "runs", "show", new, "--json").stdout)
    drawn = json.loads(taskdaemon(home, "dag", "--run", new, "--format", "json").stdout)
    with SpanStore(home / "spans.db") as store:
        page = run_state(dag_snapshot(None, store.get_run(new)), now=0.0, can_control=False)
    reason = "not reached: the run ended (failure)"
    assert ("success", ("replayed", "skipped")) == (
        json.loads(taskdaemon(home, "runs", "show", old, "--json").stdout)["stages"][1]["status"],
        (summary["a"][0], summary["b"][0]),
    ), run.stderr + replay.stdout + replay.stderr
    assert summary["b"][1] == reason
    assert [("a", "replayed"), ("b", "skipped")] * 3 == [
        *[(stage["name"], stage["status"]) for stage in shown["stages"][:2]],
        *[(node["name"], node["state"]) for node in drawn["nodes"][:2]],
        *[(node["name"], node["state"]) for node in page["nodes"][:2]],
    ]


#: Two worker slots, both held by ``a`` and ``b`` from the start: ``a`` starts first and waits
#: for the file of ``e``, which ``b``'s end fires and its freed slot runs, so the record ends
#: ``b`` before ``a``, each a success, however slow the machine (``a`` waiting on ``b``'s own
#: file ended the two at once, in either order); ``e`` ends before or after ``a``.
_TWO_SLOTS = """\
    name: slots
    concurrency: 2
    stages:
      - name: a
        command: "until [ -f b.ended ]; do sleep 0.02; done"
        triggers: [{manual: {approval_required: false}}]
      - name: b
        command: "true"
        triggers: [{manual: {approval_required: false}}]
      - name: e
        command: "touch b.ended"
        triggers: [{on_completion: {stage: b}}]
      - name: c
        command: "true"
        trigger_mode: all
        triggers: [{on_completion: {stage: a}}, {on_completion: {stage: b}}]
"""


@pytest.mark.slow
def test_two_fed_stages_in_two_slots_are_reported_in_the_record_s_order(
    home: Path, tmp_path: Path
) -> None:
    """With concurrency 2, the fed ``a`` and ``b`` hold both slots at once; the record ended
    ``b`` first though ``a`` started first, and ``e``, in the slot ``b`` freed, before or
    after ``a``. The replay, and a replay of it, report them in the record's order: in their
    progress lines, in their run logs, and by their spans' ends (``runs show``)."""
    path = str(write(tmp_path / "slots.yaml", _TWO_SLOTS))
    old = taskdaemon(home, "run", path, "-q").stdout.strip()
    evidence = [_stages(home, old)]

    def by_end(run_id: str) -> list[str]:
        shown = json.loads(taskdaemon(home, "runs", "show", run_id, "--json").stdout)
        attempts = [
            (a["end"], stage["name"]) for stage in shown["stages"] for a in stage["attempts"]
        ]
        return [name for _end, name in sorted(attempts) if name != "c"]

    recorded = by_end(old)

    def reported(run_id: str) -> tuple[str, list[str], list[str], list[str]]:
        replay = taskdaemon(home, "replay", run_id, "--from", "c")
        evidence.append(f"replay {run_id}: {replay.stdout}{replay.stderr}")
        new = next(line for line in replay.stdout.splitlines() if line.startswith("run "))
        new_id = new.split()[1]
        progress = [line.split()[1] for line in replay.stderr.splitlines() if " replayed" in line]
        logged = [
            line.split("stage ")[1].split(".")[0]
            for line in taskdaemon(home, "logs", new_id).stdout.splitlines()
            if " replayed from run " in line
        ]
        evidence.append(_stages(home, new_id))
        return new_id, progress, logged, by_end(new_id)

    new, *first = reported(old)
    _newer, *second = reported(new)
    assert recorded.index("b") < recorded.index("a"), "\n".join(evidence)
    assert [recorded] * 3 == first == second, "\n".join(evidence)
