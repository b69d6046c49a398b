"""``taskdaemon replay`` of the shipped example, end to end: real subprocesses, each run and
replay in its own private workspace, a full replay and one resumed from a stage verifying clean.
"""

from __future__ import annotations

import json
import re
import shutil
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cli_support import Served, taskdaemon, write
from pipeline_replay_support import FED_NOTE, TWO_STAGES, replayed_from_b
from terminal_support import on_a_terminal_of
from watchdog_support import until

_ESCAPES = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


@pytest.mark.slow
def test_the_example_replays_and_resumes_from_a_stage_without_divergence(home: Path) -> None:
    """The example keeps files in its workspace and returns paths and its run id: replayed
    whole, and from ``verification`` (which checks the files the fed stages wrote), it verifies
    with no divergence, each replay in a private workspace of its own beside the original's,
    which the replays leave as it was."""
    done = taskdaemon(home, "run", "examples/feature_delivery.yaml", "--auto-approve", "-q")
    assert 0 == done.returncode, done.stderr
    original = done.stdout.strip()
    workspaces = home / "workspaces"
    files = sorted(str(p.relative_to(workspaces)) for p in (workspaces / original).rglob("*"))
    replays = [
        taskdaemon(home, "replay", original, "--verify"),
        taskdaemon(home, "replay", original, "--from", "verification", "--verify"),
    ]
    assert [(0, True)] * 2 == [
        (replay.returncode, replay.stdout.splitlines()[-1].startswith("verify: no divergence"))
        for replay in replays
    ], [replay.stdout + replay.stderr for replay in replays]
    folders = sorted(workspaces.iterdir())
    assert (3, {0o700}, files) == (
        len(folders),
        {stat.S_IMODE(folder.stat().st_mode) for folder in folders},
        sorted(str(p.relative_to(workspaces)) for p in (workspaces / original).rglob("*")),
    )


@pytest.mark.slow
def test_a_resumed_replay_says_when_the_recorded_workspace_is_gone(home: Path) -> None:
    """Resumed from a stage after the recorded run's workspace was removed, the replay says so
    in one line, and the stage that needed its files fails on its own (exit 1)."""
    done = taskdaemon(home, "run", "examples/feature_delivery.yaml", "--auto-approve", "-q")
    assert 0 == done.returncode, done.stderr
    original = done.stdout.strip()
    for path in sorted((home / "workspaces" / original).rglob("*"), reverse=True):
        path.rmdir() if path.is_dir() else path.unlink()
    (home / "workspaces" / original).rmdir()
    replay = taskdaemon(home, "replay", original, "--from", "verification", "-q")
    said = f"note: the recorded run's workspace {home}/workspaces/{original} is not there"
    notes = [line for line in replay.stderr.splitlines() if line.startswith("note:")]
    assert (1, [True], FED_NOTE) == (
        replay.returncode,
        [note.startswith(said) for note in notes[:-1]],
        notes[-1],
    ), replay.stderr


@pytest.mark.slow
def test_a_resumed_replay_says_once_that_its_fed_stages_files_are_not_read_again(
    home: Path, tmp_path: Path
) -> None:
    """``replay --from b`` feeds ``a``: the replay says once, in a note, the line its dry run
    ends with, that the files ``a`` read are not read again (before: only the dry run said
    it); a whole replay feeds nothing and says nothing of it."""
    run = taskdaemon(home, "run", str(write(tmp_path / "two.yaml", TWO_STAGES)), "-q")
    original = run.stdout.strip()
    dry = taskdaemon(home, "replay", original, "--from", "b", "--dry-run")
    trust = dry.stdout.splitlines()[-1]
    resumed = taskdaemon(home, "replay", original, "--from", "b", "-q")
    whole = taskdaemon(home, "replay", original, "-q")
    assert (FED_NOTE, 0, 0, 1, 0) == (
        f"note: {trust}",
        resumed.returncode,
        whole.returncode,
        resumed.stderr.splitlines().count(FED_NOTE),
        whole.stderr.count("a fed stage"),
    ), resumed.stderr + whole.stderr


@pytest.mark.slow
def test_a_run_read_from_another_home_s_store_finds_its_workspace_beside_it(home: Path) -> None:
    """Resumed from a stage of a run made in another home, read with ``--source`` naming that
    home's store: the replay takes the recorded workspace from beside that store, says so in
    one line, and verifies clean (before: it looked in this home only, and the stage that needed
    the files failed); with the folder gone, one line names both places it looked, exit 1."""
    other = Path(tempfile.mkdtemp(prefix="td-", dir="/tmp"))
    try:
        done = taskdaemon(other, "run", "examples/feature_delivery.yaml", "--auto-approve", "-q")
        assert 0 == done.returncode, done.stderr
        original = done.stdout.strip()
        source = f"sqlite:///{other}/spans.db"
        args = ("replay", original, "--source", source, "--from", "verification")
        found = taskdaemon(home, *args, "--verify")
        taken = f"note: the recorded run's workspace is taken from {other}/workspaces/{original}"
        notes = [line for line in found.stderr.splitlines() if "note:" in line]
        assert (0, [True], FED_NOTE, "verify: no divergence") == (
            found.returncode,
            [line.startswith(taken) for line in notes[:-1]],
            notes[-1],
            found.stdout.splitlines()[-1][:21],
        ), found.stdout + found.stderr
        shutil.rmtree(other / "workspaces" / original)
        lost = taskdaemon(home, *args)
        said = (
            f"note: the recorded run's workspace {home}/workspaces/{original} is not there nor "
            f"in {other}/workspaces: the stages run again start in an empty workspace"
        )
        notes = [line for line in lost.stderr.splitlines() if line.startswith("note:")]
        assert (1, [True], FED_NOTE) == (
            lost.returncode,
            [note.startswith(said) for note in notes[:-1]],
            notes[-1],
        ), lost.stderr
    finally:
        shutil.rmtree(other, ignore_errors=True)


@pytest.mark.slow
def test_a_run_made_in_another_workspace_is_resumed_with_the_same_workspace(
    home: Path, tmp_path: Path
) -> None:
    """A run made with ``--workspace DIR`` is resumed from a stage with the same ``--workspace
    DIR``: the replay finds the recorded files there and verifies clean; without it, the note
    says where it looked and how to name the folder."""
    folder = tmp_path / "elsewhere"
    done = taskdaemon(
        home,
        "run",
        "examples/feature_delivery.yaml",
        "--auto-approve",
        "-q",
        "--workspace",
        str(folder),
    )
    assert 0 == done.returncode, done.stderr
    original = done.stdout.strip()
    resume = ("replay", original, "--from", "verification", "--verify", "-q")
    found = taskdaemon(home, *resume, "--workspace", str(folder))
    lost = taskdaemon(home, *resume)
    assert (0, True) == (
        found.returncode,
        "(a run made with --workspace DIR is found with the same --workspace DIR)" in lost.stderr,
    ), found.stdout + found.stderr


#: A stage fed by events from outside; an approval holds the run open while one is published.
_OUTSIDE = """\
    name: outside
    external_events: [job]
    stages:
      - name: hold
        command: "true"
        triggers: [{manual: {approval_required: true}}]
      - name: worker
        command: "true"
        triggers: [{on_event: {type: job}}]
        inputs: {size: event.size}
"""


@pytest.mark.slow
def test_an_event_from_outside_with_a_redacted_payload_is_missing_not_dropped(
    home: Path, tmp_path: Path, serve: Callable[..., Served]
) -> None:
    """A run got an event from outside whose payload held an ``api_key`` (stored redacted).
    Its replay would publish it again at the start but cannot, so the plan names it missing
    and how to do without it (``--from`` a stage after its listener, which is then fed), as
    for a redacted request; the replay used to drop it silently and succeed with its listener
    ``skipped: no event arrived``. Replayed from after the listener, it needs no event."""
    served = serve(str(write(tmp_path / "outside.yaml", _OUTSIDE)))
    served.wait_for_line("waiting for approval")
    payload = '{"size": 1, "api_key": "abcd1234secretvalue"}'
    published = taskdaemon(home, "publish", served.run_id, "job", "--payload", payload)
    served.wait_for_line("success in")  # the worker's: hold waits for its approval
    taskdaemon(home, "approve", served.run_id, "hold")
    assert (0, 0) == (published.returncode, served.finish()[0])
    planned = taskdaemon(home, "replay", served.run_id, "--dry-run")
    resumed = taskdaemon(home, "replay", served.run_id, "--from", "hold", "--dry-run")
    missing = [line for line in planned.stdout.splitlines() if line.startswith("missing:")]
    expected = (
        2,
        [
            "missing: event job #1 from outside: redacted (api_key); supply it with --from a "
            "stage after worker (then fed from the record)"
        ],
        0,
    )
    assert expected == (planned.returncode, missing, resumed.returncode), resumed.stdout


_ONE = """\
    name: one
    stages:
      - name: a
        command: "true"
        triggers: [{manual: {approval_required: false}}]
"""


@pytest.mark.slow
def test_quiet_prints_only_the_replays_run_id(home: Path, tmp_path: Path) -> None:
    """``replay -q`` means what ``run -q`` means: the replay's run id alone on stdout (it
    printed the summary), no progress line on stderr; the id is the one the summary names."""
    path = write(tmp_path / "one.yaml", _ONE)
    original = taskdaemon(home, "run", str(path), "-q").stdout.strip()
    loud, quiet = (taskdaemon(home, "replay", original, *q) for q in ((), ("-q",)))
    shown = json.loads(taskdaemon(home, "runs", "show", quiet.stdout.strip(), "--json").stdout)
    assert (True, True, "", 1, original) == (
        loud.stdout.startswith("STAGE"),
        "success in" in loud.stderr,  # a's progress line
        quiet.stderr,
        len(quiet.stdout.splitlines()),
        shown["replay_of"],
    ), quiet.stdout + quiet.stderr


_TWO = TWO_STAGES

#: The ``dag`` formats that draw a node's label (JSON gives its figures instead).
_DRAWINGS = ("dot", "mermaid", "svg")


@pytest.mark.slow
def test_a_fed_stage_s_progress_line_says_replayed_as_the_summary_does(
    home: Path, tmp_path: Path
) -> None:
    """Resumed from ``b``, the fed ``a`` says ``replayed`` in one progress line, as the summary
    does: its stand-in handler's ``running`` and ``success in 0ms`` told of work nobody did.
    ``-q`` writes no progress line at all, only the note of what feeding ``a`` trusts."""
    original = taskdaemon(home, "run", str(write(tmp_path / "two.yaml", _TWO)), "-q")
    replay = taskdaemon(home, "replay", original.stdout.strip(), "--from", "b")
    quiet = taskdaemon(home, "replay", original.stdout.strip(), "--from", "b", "-q")
    said = replay.stderr.splitlines()
    lines = [line.split()[1:4] for line in said[1:]]
    summary = [line.split()[:2] for line in replay.stdout.splitlines()[1:3]]
    expected = [
        ["a", "replayed"],
        ["b", "running"],
        ["b", "success", "in"],
        ["run", "two", "success"],
    ]
    assert (0, FED_NOTE, expected) == (replay.returncode, said[0], lines), replay.stderr
    assert [["a", "replayed"], ["b", "success"]] == summary, replay.stdout
    assert (0, [FED_NOTE]) == (quiet.returncode, quiet.stderr.splitlines())


@pytest.mark.slow
def test_the_help_says_a_prefix_is_enough_and_when_verify_exits_3(
    home: Path, tmp_path: Path
) -> None:
    """RUN was "the recorded run's id" and ``--verify`` "compare with the record; exit 3", as
    if a verify always exited 3; a prefix of an id in the embedded store does, and the help
    now says both."""
    original = taskdaemon(home, "run", str(write(tmp_path / "two.yaml", _TWO)), "-q")
    dry = taskdaemon(home, "replay", original.stdout.strip()[:8], "--dry-run")
    shown = " ".join(taskdaemon(home, "replay", "--help", COLUMNS="200").stdout.split())
    assert (0, original.stdout.strip()) == (dry.returncode, dry.stdout.split()[3]), dry.stdout
    assert (
        "RUN the recorded run's id (in the embedded store, a unique prefix is enough)",
        True,
    ) == (
        shown[shown.index("RUN the") :].split(" FILE")[0],
        "--verify compare with the record (exit 3 when they differ)" in shown,
    )


@pytest.mark.slow
def test_a_file_that_differs_is_said_once(home: Path, tmp_path: Path) -> None:
    """Without ``--use-file``, a file that differs from the recorded definition is the error's
    missing definition alone: it was also a note before it, the same reason twice."""
    original = taskdaemon(home, "run", str(write(tmp_path / "one.yaml", _ONE)), "-q")
    changed = write(tmp_path / "two.yaml", _TWO.replace("name: two", "name: one", 1))
    replay = taskdaemon(home, "replay", original.stdout.strip(), str(changed))
    used = taskdaemon(home, "replay", original.stdout.strip(), str(changed), "--use-file")
    assert (2, 1, [0, 1]) == (
        replay.returncode,
        replay.stderr.count("the file differs"),
        [used.returncode, used.stderr.count("the file differs")],
    ), replay.stderr + used.stderr


_GOING = """\
name: going
loops:
  ok: {command: "true"}
  long: {command: "echo started; sleep 60"}
stages:
  - name: first
    loop: ok
    triggers: [{manual: {approval_required: false}}]
  - name: second
    loop: long
    triggers: [{on_completion: {stage: first}}]
"""


@pytest.mark.slow
def test_verify_refuses_a_run_whose_record_has_no_end(
    home: Path, tmp_path: Path, serve: Callable[..., Served]
) -> None:
    """``--verify`` of a run still going compared its replay with a record that stops where the
    run stood: ``second`` read as ``running → success`` and stages not reached yet as ``ran in
    the replay only``, divergences the code did not make. It is refused in one line, before
    anything runs; a replay without ``--verify`` of it is still planned."""
    served = serve(str(write(tmp_path / "going.yaml", _GOING)))
    served.wait_for_line("second")  # its progress line: first ended, second runs
    # The store has the run a little after its progress line (its writer's turn): until then a
    # replay finds no such run (exit 1), as it did once under load.
    until(
        lambda: 0 == taskdaemon(home, "runs", "show", served.run_id, "--json").returncode,
        "the running run in the store",
    )
    verified = taskdaemon(home, "replay", served.run_id, "--verify", "-q")
    planned = taskdaemon(home, "replay", served.run_id, "--dry-run")
    taskdaemon(home, "cancel", served.run_id)
    served.finish()
    assert (
        2,
        [
            f"taskdaemon replay: cannot verify against run {served.run_id}: it is still "
            "running (or was interrupted), so its record has no end; replay it without --verify"
        ],
        "",
        0,
        [
            f"note: run {served.run_id} is still running (or was interrupted): its record is "
            "incomplete"
        ],
    ) == (
        verified.returncode,
        verified.stderr.splitlines(),
        verified.stdout,
        planned.returncode,
        planned.stderr.splitlines(),
    )


@pytest.mark.slow
def test_a_fed_stage_s_log_records_say_it_was_replayed(home: Path, tmp_path: Path) -> None:
    """Resumed from ``b``, the fed ``a`` writes one run log record naming the run it was fed
    from, in place of a start and a finish that told of work nobody did; ``b``, run again,
    writes both. ``logs --json`` gives the record's ``event`` and ``replayed_from``."""
    original = taskdaemon(home, "run", str(write(tmp_path / "two.yaml", _TWO)), "-q")
    old = original.stdout.strip()
    replay = taskdaemon(home, "replay", old, "--from", "b", "-q")
    new = replay.stdout.strip()  # -q: the replay's run id alone
    text = taskdaemon(home, "logs", new)
    records = [
        json.loads(line) for line in taskdaemon(home, "logs", new, "--json").stdout.splitlines()
    ]
    assert (0, 0) == (replay.returncode, text.returncode), replay.stdout + text.stderr
    assert [
        f"run {new} of two started",
        f"stage a.0.1 replayed from run {old}: success",
        "stage b.0.1 started (attempt 1)",
        "stage b.0.1 finished: success",
        f"run {new} finished: success",
    ] == [line.split(maxsplit=2)[2] for line in text.stdout.splitlines()]
    assert [("stage.replayed", old, "success")] == [
        (r["event"], r.get("replayed_from"), r.get("status")) for r in records if r["stage"] == "a"
    ]


_RETRIED = """\
    name: retried
    error_strategy: retry
    retry: {max_attempts: 3, backoff: {initial: 0.05, factor: 1, max: 0.05}}
    stages:
      - name: a
        command: "%s"
        triggers: [{manual: {approval_required: false}}]
      - name: b
        command: "true"
        triggers: [{on_completion: {stage: a}}]
"""


@pytest.mark.slow
@pytest.mark.parametrize(
    ("command", "attempts", "status", "outcome"),
    [
        ("[ -f tried ] || { touch tried; exit 3; }", 2, "success", "success after 2 attempts"),
        ("exit 3", 3, "failure", "failure after 3 attempts: command 'exit 3' exited with code 3"),
    ],
    ids=["retried-then-succeeded", "failed-three-times"],
)
def test_a_fed_stage_s_record_tells_the_attempts_the_record_made(  # noqa: PLR0917
    home: Path, tmp_path: Path, command: str, attempts: int, status: str, outcome: str
) -> None:
    """A fed stage the record retried was said replayed with no word of its attempts, and
    one whose every attempt failed was retried by the replay itself: a record ``replayed``
    and a ``retried`` one per recorded attempt, each waiting its backoff. Now it is fed once,
    and its one record says how many attempts the record made."""
    pipeline = write(tmp_path / "retried.yaml", _RETRIED % command)
    old = taskdaemon(home, "run", str(pipeline), "-q").stdout.strip()
    replay = taskdaemon(home, "replay", old, "--from", "b", "-q")
    new = replay.stdout.strip()  # -q: the replay's run id alone
    logs = taskdaemon(home, "logs", new, "--stage", "a", "--json")
    records = [json.loads(line) for line in logs.stdout.splitlines()]
    assert [("stage.replayed", status, attempts)] == [
        (r["event"], r["status"], r.get("replayed_attempts")) for r in records
    ], logs.stdout + logs.stderr
    assert records[0]["msg"].startswith(f"stage a.0.1 replayed from run {old}: {outcome}")


@pytest.mark.slow
def test_a_fed_stage_s_attempts_are_the_record_s_in_every_view(home: Path, tmp_path: Path) -> None:
    """A fed stage the record retried once showed ATTEMPTS 1 in the replay's summary and in
    ``runs show``, and no attempt in ``replay --step``'s ``where``, as if the original had
    never retried it, while its run log record said ``success after 2 attempts``. Every view
    now counts the attempts the record made, and so does a replay of the replay."""
    pipeline = write(
        tmp_path / "retried.yaml", _RETRIED % "[ -f tried ] || { touch tried; exit 3; }"
    )
    old = taskdaemon(home, "run", str(pipeline), "-q").stdout.strip()
    replay = taskdaemon(home, "replay", old, "--from", "b")
    new = next(line for line in replay.stdout.splitlines() if line.startswith("run ")).split()[1]
    shown = taskdaemon(home, "runs", "show", new, "--wide").stdout
    step = taskdaemon(home, "replay", new, "--step", stdin="goto 1h\nwhere\n").stdout
    again = taskdaemon(home, "replay", new, "--from", "b").stdout  # a replay of the replay

    def row(text: str) -> list[str]:
        return next(line for line in text.splitlines() if line.startswith("a ")).split()

    assert (
        ["a", "replayed", "1", "2"],
        ["1", "2"],
        f"  a  replayed  (from run {old}; attempt 2)",
    ) == (
        row(replay.stdout)[:4],
        row(shown)[6:8],  # INSTANCES, ATTEMPTS after STAGE, STATUS, START's two, DURATION, QUEUE
        next(line for line in step.splitlines() if line.startswith("  a ")),
    ), replay.stdout + shown + step
    newer = next(line for line in again.splitlines() if line.startswith("run ")).split()[1]
    logs = taskdaemon(home, "logs", newer, "--stage", "a").stdout
    assert (
        ["a", "replayed", "1", "2"],
        [f"replayed from run {new}: success after 2 attempts"],
    ) == (
        row(again)[:4],
        [line.split(" a.0.1 ")[1] for line in logs.splitlines()],
    ), again + logs


_MAPPED = """\
    name: mapped
    stages:
      - name: a
        command: 'echo "{\\"n\\": 3}"'
        inputs: {k: "1"}
        outputs: {n: result.n}
        triggers: [{manual: {approval_required: false}}]
      - name: b
        command: "true"
        inputs: {n: stages.a.outputs.n}
        triggers: [{on_completion: {stage: a}}]
"""


@pytest.mark.slow
def test_a_fed_stage_s_debug_records_read_as_the_original_s(home: Path, tmp_path: Path) -> None:
    """At debug level a fed stage writes the decision records a live one does, with the
    original's values (its slot wait, its resolved inputs, its outputs), and one
    ``stage.replayed`` record for the start and end it did not make; the output its command
    never wrote again is not there. The slot wait's seconds are the replay's own."""
    pipeline = write(tmp_path / "mapped.yaml", _MAPPED)
    old = taskdaemon(home, "run", str(pipeline), "-q", "--log-level", "debug").stdout.strip()
    replay = taskdaemon(home, "replay", old, "--from", "b", "-q", "--log-level", "debug")
    new = replay.stdout.strip()  # -q: the replay's run id alone

    def records(run_id: str) -> list[tuple[str | None, str]]:
        logs = taskdaemon(home, "logs", run_id, "--stage", "a", "--level", "debug", "--json")
        return [
            (r.get("event"), re.sub(r"after [0-9.]+s", "after Ns", r["msg"]))
            for r in map(json.loads, logs.stdout.splitlines())
            if r.get("event") != "trigger.evaluated"
        ]

    assert [
        ("slot.waiting", "a.0.1 waits for a worker slot"),
        ("slot.acquired", "a.0.1 got a worker slot after Ns"),
        ("inputs.resolved", 'a.0.1 resolved inputs {"k": 1}'),
        ("outputs.mapped", 'a.0.1 mapped outputs {"n": 3}'),
        ("stage.replayed", f"stage a.0.1 replayed from run {old}: success"),
    ] == records(new)
    assert [
        ("slot.waiting", "a.0.1 waits for a worker slot"),
        ("slot.acquired", "a.0.1 got a worker slot after Ns"),
        ("inputs.resolved", 'a.0.1 resolved inputs {"k": 1}'),
        ("stage.started", "stage a.0.1 started (attempt 1)"),
        (None, '{"n": 3}'),  # its command's stdout
        ("outputs.mapped", 'a.0.1 mapped outputs {"n": 3}'),
        ("stage.finished", "stage a.0.1 finished: success"),
    ] == records(old)


@pytest.mark.slow
def test_log_level_debug_adds_the_engine_s_decisions(home: Path, tmp_path: Path) -> None:
    """``replay --log-level debug`` logs the engine's decisions (trigger evaluations, the
    resolved inputs) as ``run --log-level debug`` does; without it a replay logs none."""
    original = taskdaemon(home, "run", str(write(tmp_path / "two.yaml", _TWO)), "-q")
    old = original.stdout.strip()

    def decision_loggers(*options: str) -> set[str]:
        replay = taskdaemon(home, "replay", old, "-q", *options)
        assert 0 == replay.returncode, replay.stderr
        new = replay.stdout.strip()  # -q: the replay's run id alone
        logs = taskdaemon(home, "logs", new, "--json", "--level", "debug")
        return {json.loads(line)["logger"] for line in logs.stdout.splitlines()} & {
            "taskdaemon.run.decision"
        }

    assert (set(), {"taskdaemon.run.decision"}) == (
        decision_loggers(),
        decision_loggers("--log-level", "debug"),
    )


@pytest.mark.slow
def test_an_approval_the_record_never_decided_is_rejected_and_said(
    home: Path, tmp_path: Path
) -> None:
    """A file run with ``--use-file`` whose ``b`` now waits for an approval the record has no
    decision for: the replay rejects it (it never approves what nobody approved) and says why
    where a rejection is said, its progress line and its summary's row."""
    old = taskdaemon(home, "run", str(write(tmp_path / "two.yaml", _TWO)), "-q").stdout.strip()
    gated = write(
        tmp_path / "gated.yaml",
        _TWO.replace("on_completion: {stage: a}", "manual: {approval_required: true}"),
    )
    replay = taskdaemon(home, "replay", old, str(gated), "--use-file")
    said = "approval rejected by replay (no recorded decision)"
    assert (0, ["skipped", "-", "-", "-", "-", *said.split()]) == (
        replay.returncode,
        next(line for line in replay.stdout.splitlines() if line.startswith("b ")).split()[1:],
    ), replay.stdout
    assert "b                        rejected by replay (no recorded decision)" in replay.stderr


_ENDED = """\
    name: ended
    error_strategy: continue
    stages:
      - name: a
        command: "%s"
        timeout: 2
        triggers: [{manual: {approval_required: false}}]
      - name: b
        command: "true"
        triggers: [{on_completion: {stage: a, success_only: false}}]
"""


@pytest.mark.slow
@pytest.mark.parametrize(
    ("command", "error", "types", "ended"),
    [
        (
            "sleep 30",
            "stage 'a' timeout: timed out after 2s",
            ("TimeoutError", "timeout"),
            "timeout",
        ),
        (
            "exit 4",
            "stage 'a' failure: command 'exit 4' exited with code 4",
            ("CommandFailedError", "CommandFailedError"),
            "failure",
        ),
    ],
    ids=["timeout", "failure"],
)
def test_a_fed_stage_ends_as_the_original_did(  # noqa: PLR0917
    home: Path, tmp_path: Path, command: str, error: str, types: tuple[str, str], ended: str
) -> None:
    """A fed stage ended as ``ReplayedFailureError``, a recorded timeout as a plain failure:
    the replay's run error read ``stage 'a' failure``, its type and the stage's that class, and
    ``b``'s trigger ``a ended failure``. Fed, the stage now ends as the original did: the
    run's error and type, the stage's error type and the trigger's reason are the original's."""
    pipeline = write(tmp_path / "ended.yaml", _ENDED % command)
    old = taskdaemon(home, "run", str(pipeline), "-q").stdout.strip()
    replay = taskdaemon(home, "replay", old, "--from", "b", "-q", "--log-level", "debug")
    new = replay.stdout.strip()  # -q: the replay's run id alone

    def said(run_id: str) -> tuple[Any, ...]:
        shown = json.loads(taskdaemon(home, "runs", "show", run_id, "--json").stdout)
        (attempt,) = shown["stages"][0]["attempts"]
        return shown["error"], (shown["error_type"], attempt["error_type"])

    logs = taskdaemon(home, "logs", new, "--stage", "b", "--level", "debug").stdout
    assert (error, types) == said(old) == said(new)
    assert f"b trigger 0 (on completion of a (any result)): satisfied (a ended {ended})" in logs


@pytest.mark.slow
def test_a_fed_stage_has_no_duration_or_queue_of_its_own(home: Path, tmp_path: Path) -> None:
    """A fed stage's DURATION and QUEUE read ``-`` in the replay's summary and in ``runs show``,
    as its CPU and MEMORY do: they gave its stand-in's wait in the replay (``0ms``, a few ms
    of queue), which was neither the record's figure nor any work's. The stage run again has
    its own."""
    original = taskdaemon(home, "run", str(write(tmp_path / "two.yaml", _TWO)), "-q")
    replay = taskdaemon(home, "replay", original.stdout.strip(), "--from", "b")
    new = next(line for line in replay.stdout.splitlines() if line.startswith("run ")).split()[1]
    shown = taskdaemon(home, "runs", "show", new, "--wide").stdout

    def cells(text: str, stage: str, columns: slice) -> list[str]:
        return next(line for line in text.splitlines() if line.startswith(f"{stage} ")).split()[
            columns
        ]

    summary = [cells(replay.stdout, stage, slice(1, 6)) for stage in ("a", "b")]
    table = [cells(shown, stage, slice(4, 6)) for stage in ("a", "b")]  # DURATION, QUEUE
    assert (["replayed", "1", "1", "-", "-"], ["-", "-"]) == (summary[0], table[0]), (
        replay.stdout + shown
    )
    assert "-" not in summary[1][3:] + table[1], replay.stdout + shown


@pytest.mark.slow
def test_a_fed_stage_has_no_duration_in_the_dag(home: Path, tmp_path: Path) -> None:
    """Every ``dag --run`` format draws a fed stage as ``replayed`` with no duration, and JSON
    gives it none, as ``runs show`` reads ``-``: its label read ``replayed · 0ms``, its
    stand-in's wait. The stage run again keeps its own."""
    new, _ = replayed_from_b(home, tmp_path)
    drawn = {f: taskdaemon(home, "dag", "--run", new, "--format", f).stdout for f in _DRAWINGS}
    graph = json.loads(taskdaemon(home, "dag", "--run", new, "--format", "json").stdout)
    nodes = {node["name"]: node["timings"] for node in graph["nodes"]}
    # ``replayed · 0ms``, the dot as itself or as a character reference (``&#183;``)
    timed = {f: bool(re.search("replayed (·|#183;)", text)) for f, text in drawn.items()}
    assert dict.fromkeys(_DRAWINGS, False) == timed, drawn
    assert (None, None) == (nodes["a"]["duration"], nodes["a"]["queue_time"]), nodes
    assert nodes["b"]["duration"] is not None, nodes


def test_watch_gives_a_fed_stage_no_elapsed_time(home: Path, tmp_path: Path) -> None:
    """``watch`` of a ``replay --from`` on a terminal leaves the fed stage's ELAPSED blank, as
    ``runs show`` reads ``-``: it gave its stand-in's wait in the replay (``0ms``). The stage
    run again keeps its own."""
    new, _ = replayed_from_b(home, tmp_path)
    code, lines = on_a_terminal_of(80, home, "watch", new)
    screen = [_ESCAPES.sub("", line) for line in lines]
    last = max(i for i, line in enumerate(screen) if line.startswith("STAGE"))
    header = screen[last]
    elapsed = slice(header.index("STATE"), header.index("INST"))  # STATE and ELAPSED
    cells = {line.split()[0]: line[elapsed].split() for line in screen[last + 1 : last + 3]}
    assert (0, ["replayed"], "success") == (code, cells["a"], cells["b"][0]), screen
    assert re.fullmatch(r"\d+ms", cells["b"][1]), screen
    # A fed stage has ended as a stage that ran has: the summary counts both done.
    assert any(line.rstrip().endswith("2/2 stages done") for line in screen), screen
