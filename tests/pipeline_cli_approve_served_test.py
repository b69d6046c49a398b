"""``taskdaemon approve | publish | cancel | status`` (``cli/approve.py``) on a run another
process serves, end to end: each command a real subprocess of the console script, the run a
``taskdaemon run`` the ``serve`` fixture started, all with one ``TASKDAEMON_HOME``."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path
from typing import Any

import pytest

from cli_support import ONE_STAGE_PIPELINE, taskdaemon, write
from taskdaemon.pipeline.control import send_request
from taskdaemon.pipeline.errors import PipelineError

APPROVAL_PIPELINE = """\
    name: gated
    external_events: [deploy.requested]
    stages:
      - name: build
        command: "echo built"
        triggers: [{manual: {approval_required: false}}]
      - name: deploy
        command: "echo deployed"
        triggers:
          - on_completion: {stage: build}
          - manual: {approval_required: true}
        trigger_mode: all
      - name: announce
        loop: command
        command: "printf %s \\"$TASKDAEMON_INPUT_TARGET\\""
        triggers: [{on_event: {type: deploy.requested}}]
        inputs:
          target: event.target
"""


@pytest.mark.slow
def test_approve_reaches_a_run_in_another_process(home: Path, tmp_path: Path, serve: Any) -> None:
    """`taskdaemon approve RUN STAGE` grants the approval a served run waits for."""
    path = write(tmp_path / "gated.yaml", APPROVAL_PIPELINE)
    served = serve(str(path))
    served.wait_for_line("deploy                   waiting for approval")
    status = taskdaemon(home, "status", served.run_id)
    assert 0 == status.returncode, status.stderr
    stages = json.loads(status.stdout)["stages"]
    assert "waiting" == stages["deploy"]
    assert ["build", "deploy", "announce"] == list(stages)  # the pipeline's order

    published = taskdaemon(
        home, "publish", served.run_id[:8], "deploy.requested", "--payload", '{"target": "prod"}'
    )
    assert 0 == published.returncode, published.stderr
    served.wait_for_line("announce#0               success")

    approved = taskdaemon(home, "approve", served.run_id, "deploy", "--by", "alice")
    assert 0 == approved.returncode, approved.stderr
    assert "approved deploy (by alice)\n" == approved.stdout
    code, stdout, stderr = served.finish()
    assert 0 == code, stderr
    assert "deploy                   approved by alice" in stderr
    rows = {line.split()[0]: line.split()[1] for line in stdout.splitlines()[1:4]}
    expected = {"build": "success", "deploy": "success", "announce": "success"}
    assert expected == rows
    assert not (home / "control" / f"{served.run_id}.sock").exists()


@pytest.mark.slow
def test_a_running_run_is_in_the_history_of_another_process(
    home: Path, tmp_path: Path, serve: Any
) -> None:
    """While a run waits for an approval, `runs list` and `runs show` in another process see
    it running, with the stages that already finished. The span writer commits a running run's
    rows within its flush interval (``tracking/writer.py``), which may end after the approval
    line is printed: the listing is asked again until the run is there (at most 30 s)."""
    path = write(tmp_path / "gated.yaml", APPROVAL_PIPELINE)
    served = serve(str(path))
    served.wait_for_line("deploy                   waiting for approval")
    deadline = time.monotonic() + 30
    listed = json.loads(taskdaemon(home, "runs", "list", "--json").stdout)
    while not listed and time.monotonic() < deadline:
        time.sleep(0.05)
        listed = json.loads(taskdaemon(home, "runs", "list", "--json").stdout)
    assert [(served.run_id, "gated", "running")] == [
        (row["run_id"], row["pipeline"], row["status"]) for row in listed
    ]
    shown = json.loads(taskdaemon(home, "runs", "show", served.run_id, "--json").stdout)
    assert "success" == {s["name"]: s["status"] for s in shown["stages"]}["build"]
    assert 0 == taskdaemon(home, "approve", served.run_id, "deploy").returncode
    assert 0 == served.finish()[0]


@pytest.mark.slow
def test_reject_skips_the_stage(home: Path, tmp_path: Path, serve: Any) -> None:
    """`taskdaemon approve --reject` refuses the approval: the stage is skipped."""
    text = APPROVAL_PIPELINE.split("      - name: announce", maxsplit=1)[0]
    path = write(tmp_path / "gated.yaml", text.replace("[deploy.requested]", "[]"))
    served = serve(str(path))
    served.wait_for_line("waiting for approval")
    rejected = taskdaemon(home, "approve", served.run_id, "deploy", "--reject", "--by", "bob")
    assert 0 == rejected.returncode, rejected.stderr
    code, stdout, stderr = served.finish()
    assert "deploy                   rejected by bob" in stderr
    assert "skipped" == stdout.splitlines()[2].split()[1]
    assert 0 == code


@pytest.mark.slow
def test_an_approver_s_name_is_bounded_as_a_canceller_s(
    home: Path, tmp_path: Path, serve: Any
) -> None:
    """A control socket client's ``by`` of 4,097 characters, or not text, is refused in one
    line, an approval's as a cancel's (an approval took any length, and ``str()`` of any
    value); the run goes on waiting, and a name of 4,096 characters decides."""
    text = APPROVAL_PIPELINE.split("      - name: announce", maxsplit=1)[0]
    served = serve(str(write(tmp_path / "gated.yaml", text.replace("[deploy.requested]", "[]"))))
    served.wait_for_line("waiting for approval")
    refusals = []
    for op in ("approve", "reject", "cancel"):
        for by in ("x" * 4097, ["alice"]):
            with pytest.raises(PipelineError) as refused:
                send_request(served.run_id, {"op": op, "stage": "deploy", "by": by}, home=home)
            refusals.append(str(refused.value))
    expected = ["by is longer than 4096 characters", "by must be a string"] * 3
    assert expected == refusals
    send_request(served.run_id, {"op": "approve", "stage": "deploy", "by": "y" * 4096}, home=home)
    code, _stdout, stderr = served.finish()
    assert (0, True) == (code, f"deploy                   approved by {'y' * 4096}" in stderr)


HOSTILE_TYPE_PIPELINE = """\
    name: hostile
    external_events: ["ping\\e[2J"]
    stages:
      - name: deploy
        command: "true"
        triggers: [{manual: {approval_required: true}}]
      - name: release
        command: "true"
        triggers: [{manual: {approval_required: true}}]
"""


@pytest.mark.slow
def test_what_a_command_did_repeats_the_caller_s_text_escaped(
    home: Path, tmp_path: Path, serve: Any
) -> None:
    """``approve --by``, ``publish TYPE`` and ``cancel --by`` say what they did in the caller's
    words: a name with ESC, BEL and a line break reached the terminal as it was (a window title
    set, the screen cleared, a line forged under the command's); it is escaped, as a refusal."""
    served = serve(str(write(tmp_path / "hostile.yaml", HOSTILE_TYPE_PIPELINE)))
    served.wait_for_line("waiting for approval")
    served.wait_for_line("waiting for approval")
    name = "\x1b]0;pwned\x07mallory\n\x1b[2Jroot"
    said = "\\x1b]0;pwned\\x07mallory\\x0a\\x1b[2Jroot"
    done = [
        taskdaemon(home, "publish", served.run_id, "ping\x1b[2J"),
        taskdaemon(home, "approve", served.run_id, "deploy", "--by", name),
        taskdaemon(home, "cancel", served.run_id, "--by", name),
    ]
    assert [
        (0, "published ping\\x1b[2J\n"),
        (0, f"approved deploy (by {said})\n"),
        (0, f"cancel requested (by {said})\n"),
    ] == [(command.returncode, command.stdout) for command in done]
    assert 1 == served.finish()[0]


@pytest.mark.slow
def test_approving_a_stage_not_waiting_is_refused(home: Path, tmp_path: Path, serve: Any) -> None:
    """Approving a stage that waits for no approval exits 1 with the run's reason."""
    path = write(tmp_path / "gated.yaml", APPROVAL_PIPELINE)
    served = serve(str(path))
    served.wait_for_line("waiting for approval")
    refused = taskdaemon(home, "approve", served.run_id, "build")
    assert 1 == refused.returncode
    assert refused.stderr.startswith("taskdaemon approve: ")
    assert "build" in refused.stderr
    assert 0 == taskdaemon(home, "cancel", served.run_id).returncode
    code, _stdout, _stderr = served.finish()
    assert 1 == code


def test_commands_on_an_unknown_run_exit_3(home: Path) -> None:
    """approve/publish/cancel for a run no process serves say so and exit 3."""
    done = taskdaemon(home, "approve", "0" * 32, "deploy")
    assert 3 == done.returncode
    expected = (
        f"taskdaemon approve: no run '{'0' * 32}' is served here (no socket under "
        f"{home / 'control'}): is its 'taskdaemon run' (or 'serve') still running, with "
        "the same TASKDAEMON_HOME?\n"
    )
    assert expected == done.stderr
    assert 3 == taskdaemon(home, "cancel", "abc").returncode


def test_stale_socket_is_reported(home: Path) -> None:
    """A socket file left by a crashed run is reported as not served any more."""
    (home / "control").mkdir()
    stale = home / "control" / f"{'a' * 32}.sock"
    with socket.socket(socket.AF_UNIX) as listener:
        listener.bind(str(stale))  # bound, never listening, then closed: a dead socket file
    done = taskdaemon(home, "cancel", "a" * 32)
    assert 3 == done.returncode
    assert "is not served any more" in done.stderr


def test_acting_on_a_run_that_has_ended_says_it_ended(home: Path, tmp_path: Path) -> None:
    """``approve`` (``publish``, ``cancel``, ``status``, ``debug attach|continue|step|skip``)
    of a run that ended asked whether its ``taskdaemon run`` was still running, with the same
    home: a user who just ran it could not tell. A run the home's store has as ended is now
    said to have ended; exit 3 still."""
    path = write(tmp_path / "p.yaml", ONE_STAGE_PIPELINE)
    run_id = taskdaemon(home, "run", str(path), "-q").stdout.split()[0]
    for args in (
        ("approve", run_id[:6], "only"),
        ("status", run_id),
        ("debug", "attach", run_id[:6]),
        ("debug", "step", run_id),
    ):
        done = taskdaemon(home, *args)
        said = f"taskdaemon {args[0]}: run {run_id} has ended (success): no process serves it"
        assert (done.returncode, done.stderr.startswith(said)) == (3, True), done.stderr
    unknown = taskdaemon(home, "cancel", "ffff")
    assert "no run 'ffff' is served here" in unknown.stderr
