"""A stage that a stop of its run (``taskdaemon cancel``, a failure elsewhere, the debugger's
``quit``) caught before it started reads the same in ``run``'s summary and progress, in its
live record (``run --watch`` on a pipe) and in ``runs show``, for each kind: paused at a start
breakpoint, queued for a worker slot, waiting for an approval, pending (docs/run-state.md,
"Rules"); one paused says why it was cancelled alike in the summary, ``runs show`` (table and
JSON), the web page and ``replay --step``."""

from __future__ import annotations

import io
import json
import signal
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from cli_support import Served, taskdaemon
from taskdaemon.pipeline.cli._step_prompt import StepPrompt
from taskdaemon.pipeline.http_security import server_user
from taskdaemon.pipeline.replay.walk import RecordedWalk
from taskdaemon.pipeline.terminal_text import one_line
from taskdaemon.pipeline.tracking.store import SpanStore
from taskdaemon.pipeline.visualization import dag_snapshot
from taskdaemon.pipeline.web._views import run_state

pytestmark = pytest.mark.slow


def _pipeline(home: Path, concurrency: int, b: str) -> Path:
    """Entry stage ``a``, which holds the run until the file ``go`` exists, then fails, and
    stage ``b`` (``b``: its trigger line)."""
    path = home / "p.yaml"
    hold = f"while [ ! -e {home / 'go'} ]; do sleep 0.05; done; exit 3"
    text = f"""\
        name: stops
        concurrency: {concurrency}
        stages:
          - name: a
            command: "{hold}"
            triggers: [{{manual: {{approval_required: false}}}}]
          - name: b
            command: "echo '{{}}'"
            {b}
    """
    path.write_text(textwrap.dedent(text))
    return path


ENTRY = "triggers: [{manual: {approval_required: false}}]"
APPROVAL = "triggers: [{manual: {approval_required: true}}]"
AFTER_A = "triggers: [{on_completion: {stage: a}}]"


def _summary(stdout: str, stage: str) -> tuple[str, str]:
    """(status, error) of ``stage``'s row in ``run``'s summary table."""
    row = next(line for line in stdout.splitlines() if line.startswith(f"{stage} "))
    cells = row.split(None, 6)
    return cells[1], cells[6] if len(cells) > 6 else ""


def _live(stderr: str, stage: str) -> tuple[str, str]:
    """(status, detail) of ``stage``'s last line from ``run --watch`` on a pipe."""
    line = [line for line in stderr.splitlines() if line.startswith(f"{stage}: ")][-1]
    status, _, rest = line.removeprefix(f"{stage}: ").partition(", ")
    return status, rest


def _stored(home: Path, run_id: str, stage: str) -> dict[str, Any]:
    """``stage`` in ``runs show --json``."""
    shown = taskdaemon(home, "runs", "show", run_id, "--json")
    assert shown.returncode == 0, shown.stderr
    stages = json.loads(shown.stdout)["stages"]
    found: dict[str, Any] = next(s for s in stages if s["name"] == stage)
    return found


def _stop(home: Path, served: Served, how: str) -> None:
    if how == "cancel":
        done = taskdaemon(home, "cancel", served.run_id, "--by", "alice")
        assert done.returncode == 0, done.stderr
    else:
        (home / "go").touch()  # ``a`` fails: error_strategy fail stops the run


Start = Callable[..., Served]


def _run(home: Path, serve: Start, pipeline: Path, until: str, how: str, *extra: str) -> Any:
    """Run ``pipeline`` with ``--watch`` on a pipe, stop it (``how``) once ``until`` is on
    stderr; answer the three views of ``b``: summary, live, stored."""
    served = serve(str(pipeline), "--watch", *extra)
    served.wait_for_line(until)
    _stop(home, served, how)
    code, stdout, stderr = served.finish()
    assert code == 1, stderr
    return _summary(stdout, "b"), _live(stderr, "b"), _stored(home, served.run_id, "b")


@pytest.mark.parametrize("how", ["cancel", "failure"])
def test_a_stage_paused_at_a_start_breakpoint_is_cancelled_in_every_view(
    home: Path, serve: Start, how: str
) -> None:
    """Paused before its start when the run stops, ``b`` was reached: ``cancelled`` in the
    summary, live and in ``runs show``, with no attempt (it never started)."""
    pipeline = _pipeline(home, 2, ENTRY)
    summary, live, stored = _run(home, serve, pipeline, "b: paused", how, "--break", "b")
    assert ("cancelled", "cancelled", "cancelled", []) == (
        summary[0],
        live[0],
        stored["status"],
        stored["attempts"],
    )


def _shown(home: Path, run_id: str, stage: str) -> str:
    """The ERROR cell of ``stage``'s row in ``runs show``'s table."""
    shown = taskdaemon(home, "runs", "show", run_id)
    assert shown.returncode == 0, shown.stderr
    row = next(line for line in shown.stdout.splitlines() if line.startswith(f"{stage} "))
    return row.split(None, 9)[9]


def _web_and_replay(home: Path, run_id: str, stage: str) -> tuple[str, str]:
    """``stage``'s error (a skipped one's reason) in the web page's stage table (its live
    update document) and its line in ``replay --step``'s ``where`` at the run's end, both from
    the stored spans."""
    with SpanStore(home / "spans.db") as store:
        record, spans = store.get_run(run_id), store.get_trace(run_id)
    page = run_state(dag_snapshot(None, record), now=record.end or 0.0, can_control=False)
    node = next(node for node in page["nodes"] if node["name"] == stage)
    web = node["error"] or node["skip_reason"]
    out = io.StringIO()
    StepPrompt(RecordedWalk(spans), stdin=io.StringIO("goto 1h\nwhere\nquit\n"), stdout=out).run()
    where = [line.strip() for line in out.getvalue().splitlines() if line.startswith(f"  {stage} ")]
    return web, where[-1]


def _run_error(home: Path, run_id: str) -> tuple[str, str, str]:
    """The run's own error in ``runs show`` (its table's ``error`` line, its JSON) and on the
    web page (its live update document), from the stored spans."""
    table = taskdaemon(home, "runs", "show", run_id).stdout.splitlines()
    shown = json.loads(taskdaemon(home, "runs", "show", run_id, "--json").stdout)
    with SpanStore(home / "spans.db") as store:
        record = store.get_run(run_id)
    page = run_state(dag_snapshot(None, record), now=record.end or 0.0, can_control=False)
    line = next(line for line in table if line.startswith("error "))
    return line.split(None, 1)[1], shown["error"], page["run"]["error"]


def _stopped_while_b_paused(
    home: Path, serve: Start, how: str
) -> tuple[str, str, tuple[str, str] | None]:
    """Run ``_pipeline`` with a breakpoint before ``b`` and stop the run while ``b`` is paused
    there: ``taskdaemon cancel``, ``a`` failing, or ``quit`` at ``taskdaemon debug``'s prompt.
    Answers the run id, the command's stdout (its summary) and ``b``'s last live line (``run
    --watch`` on a pipe; None for ``debug``, which has no ``--watch``)."""
    pipeline = str(_pipeline(home, 2, ENTRY))
    if how == "quit":
        done = taskdaemon(home, "debug", pipeline, "--break", "b", stdin="quit\n")
        assert 1 == done.returncode, done.stdout + done.stderr
        listed = taskdaemon(home, "runs", "list", "--json")
        (run,) = json.loads(listed.stdout)
        return run["run_id"], done.stdout, None
    served = serve(pipeline, "--watch", "--break", "b")
    served.wait_for_line("b: paused")
    _stop(home, served, how)
    code, stdout, stderr = served.finish()
    assert code == 1, stderr
    return served.run_id, stdout, _live(stderr, "b")


@pytest.mark.parametrize(
    ("how", "why", "by"),
    [
        ("cancel", "run cancelled by alice", "alice"),
        ("failure", "stage 'a' failed (error_strategy: fail)", "engine"),
        ("quit", "run cancelled by cli debug", "cli debug"),
    ],
)
def test_a_stage_a_stop_caught_paused_says_why_in_every_view(
    home: Path, serve: Start, how: str, why: str, by: str
) -> None:
    """Paused at a start breakpoint when the run stops, ``b`` never started (no span of its
    own): the run span's ``breakpoint.resumed`` event keeps why, so ``runs show`` (table and
    JSON), the web page and ``replay --step`` say ``cancelled: <why>`` as the summary of
    ``run`` (or ``debug``) does, and ``run --watch`` too; its log record says who resumed it:
    who cancelled, or the engine for a failure's stop."""
    run_id, stdout, live = _stopped_while_b_paused(home, serve, how)
    error = f"cancelled: {why}"
    stored = _stored(home, run_id, "b")
    web, where = _web_and_replay(home, run_id, "b")
    logs = taskdaemon(home, "logs", run_id, "--stage", "b").stdout.splitlines()
    resumed = [line.split(None, 2)[2].partition(" after ")[0] for line in logs if "resum" in line]
    assert [f"stage b.0.1 resumed: cancel by {by}"] == resumed
    assert [("cancelled", error)] * 3 == [
        _summary(stdout, "b"),
        ("cancelled", _shown(home, run_id, "b")),
        live or ("cancelled", error),
    ]
    assert (why, "a" if how == "failure" else None) == (
        stored["cancel_reason"],
        stored["cancel_cause"],
    )
    assert (error, f"b  cancelled  ({error})") == (web, where)


@pytest.mark.parametrize("how", ["cancel", "failure"])
def test_a_stage_queued_for_a_worker_slot_is_not_reached_in_every_view(
    home: Path, serve: Start, how: str
) -> None:
    """Queued behind ``a`` for the one worker slot when the run stops, ``b`` never started and
    no span says it was queued: ``skipped``, ``not reached: the run ended (<status>)`` in the
    summary, live and in ``runs show``."""
    status = "cancelled" if how == "cancel" else "failure"
    reason = f"not reached: the run ended ({status})"
    summary, live, stored = _run(home, serve, _pipeline(home, 1, ENTRY), "b: queued", how)
    assert [("skipped", reason)] * 3 == [
        summary,
        live,
        (stored["status"], stored["skip_reason"]),
    ]


def test_the_progress_line_of_a_stage_caught_queued_says_not_reached(
    home: Path, serve: Start
) -> None:
    """``run``'s progress lines say a stage the stop caught queued was skipped, not reached,
    as the summary does, and never that it was cancelled."""
    served = serve(str(_pipeline(home, 1, ENTRY)))
    served.wait_for_line("running")
    _stop(home, served, "failure")
    code, _, stderr = served.finish()
    assert code == 1, stderr
    said = [line.split(None, 2)[2] for line in stderr.splitlines() if line.split()[1:2] == ["b"]]
    assert ["skipped: not reached: the run ended (failure)"] == said


@pytest.mark.parametrize(
    ("how", "triggers", "until"),
    [
        ("cancel", APPROVAL, "b: waiting"),
        ("failure", APPROVAL, "b: waiting"),
        ("cancel", AFTER_A, "a: running"),
        ("failure", AFTER_A, "a: running"),
    ],
)
def test_a_stage_waiting_or_pending_is_skipped_for_the_stop_in_every_view(
    home: Path, serve: Start, how: str, triggers: str, until: str
) -> None:
    """Waiting for an approval, or pending behind ``a``, when the run stops, ``b`` is skipped
    with the stop as its reason in the summary, live and in ``runs show``."""
    summary, live, stored = _run(home, serve, _pipeline(home, 2, triggers), until, how)
    reason = "run cancelled by alice" if how == "cancel" else "run failed: stage 'a' failure: "
    reason_stored = stored["skip_reason"]
    assert summary[0] == live[0] == stored["status"] == "skipped"
    assert (one_line(reason_stored, 70), reason_stored) == (summary[1], live[1])
    assert reason_stored.startswith(reason)


def _who_views(home: Path, run_id: str, stdout: str, stderr: str) -> tuple[Any, ...]:
    """After a cancel that skipped ``b``: ``b`` in the command's summary and progress lines,
    its log record, ``runs show`` (table and JSON), the web page and ``replay --step``; and the
    run's own last log record and its error in ``runs show`` and on the web page."""
    progress = [line.split(None, 2)[1:] for line in stderr.splitlines()]
    logs = taskdaemon(home, "logs", run_id).stdout.splitlines()
    stored = _stored(home, run_id, "b")
    return (
        _summary(stdout, "b"),
        [words for words in progress if words[:1] == ["b"]],
        [line.split(None, 2)[2] for line in logs if " stage b " in line],
        _shown(home, run_id, "b"),
        (stored["status"], stored["skip_reason"], stored["cancel_reason"]),
        _web_and_replay(home, run_id, "b"),
        logs[-1].split(None, 2)[2],
        _run_error(home, run_id),
    )


def _who(run_id: str, why: str) -> tuple[Any, ...]:
    """What :func:`_who_views` answers when the cancel's reason is ``why``."""
    return (
        ("skipped", why),
        [["b", f"skipped: {why}"]],
        [f"stage b skipped: {why}"],
        why,
        ("skipped", why, why),
        (why, f"b  skipped  ({why})"),
        f"run {run_id} finished: cancelled: {why}",
        (why, why, why),
    )


def test_a_stage_skipped_for_a_quit_says_who_cancelled_in_every_view(home: Path) -> None:
    """``quit`` at ``a``'s start breakpoint cancels the run for the prompt's user, and ``b``,
    pending behind ``a``, is skipped for that cancel: it says who, as the run's error does (it
    read ``run cancelled``, as if nobody had asked), in ``debug``'s summary and progress, its
    log record, ``runs show`` (table and JSON), the web page and ``replay --step``."""
    pipeline = str(_pipeline(home, 2, AFTER_A))
    done = taskdaemon(home, "debug", pipeline, "--break", "a", stdin="quit\n")
    assert 1 == done.returncode, done.stdout + done.stderr
    run_id = done.stdout.split()[2]
    assert _who(run_id, "run cancelled by cli debug") == _who_views(
        home, run_id, done.stdout, done.stderr
    )


@pytest.mark.parametrize("by", [["--by", "alice"], []])
def test_a_stage_skipped_for_taskdaemon_cancel_says_who_cancelled(
    home: Path, serve: Start, by: list[str]
) -> None:
    """``taskdaemon cancel RUN`` sends who cancels (``--by``, else the user's name) over the
    control socket: ``b``, pending behind ``a``, and the run say who in every view, as after
    the debugger's ``quit`` (they read ``run cancelled``)."""
    served = serve(str(_pipeline(home, 2, AFTER_A)))
    served.wait_for_line("running")
    done = taskdaemon(home, "cancel", served.run_id, *by)
    assert 0 == done.returncode, done.stderr
    who = done.stdout.removeprefix("cancel requested (by ").removesuffix(")\n")
    code, stdout, stderr = served.finish()
    assert (1, "alice" if by else who) == (code, who)
    views = _who_views(home, served.run_id, stdout, stderr)
    assert _who(served.run_id, f"run cancelled by {who}") == views


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_stage_skipped_for_a_signal_says_which_signal_cancelled(
    home: Path, serve: Start, signum: signal.Signals
) -> None:
    """SIGINT or SIGTERM to ``run`` cancels the run for that signal: ``b`` and the run name it
    in every view (they read ``run cancelled``, as if nobody had asked)."""
    served = serve(str(_pipeline(home, 2, AFTER_A)))
    served.wait_for_line("running")
    served.process.send_signal(signum)
    code, stdout, stderr = served.finish()
    assert 128 + signum == code, stderr
    views = _who_views(home, served.run_id, stdout, stderr)
    assert _who(served.run_id, f"run cancelled by {signum.name}") == views


def test_a_stage_skipped_for_a_cancel_through_the_api_says_who_cancelled(
    home: Path, serve: Start
) -> None:
    """``POST /api/runs/RUN/cancel`` to ``run --serve`` cancels for the token's principal (the
    server's user here), named as its approvals name it: ``b`` and the run say so in every
    view; the token is in none."""
    served = serve(str(_pipeline(home, 2, AFTER_A)), "--serve", "127.0.0.1:0")
    url = served.wait_for_line("API: ").split("API: ")[1].split()[0].rstrip("/")
    served.wait_for_line("running")
    token = (home / "api-token").read_text().strip()
    answer = httpx.post(
        f"{url}/api/runs/{served.run_id}/cancel",
        json={},
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    code, stdout, stderr = served.finish()
    assert (202, 1) == (answer.status_code, code), stderr
    views = _who_views(home, served.run_id, stdout, stderr)
    assert _who(served.run_id, f"run cancelled by {server_user()}") == views
    assert (
        token not in repr(views) + taskdaemon(home, "runs", "show", served.run_id, "--json").stdout
    )
