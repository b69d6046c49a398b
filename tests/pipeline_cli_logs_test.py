"""``taskdaemon logs`` (``cli/logs.py``): when a follower stops; the ids of a run-level record;
``--json`` in a JSON log line's keys."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from cli_support import ONE_STAGE_PIPELINE, read_one_line, taskdaemon, write
from taskdaemon.pipeline.cli import logs as logs_command
from taskdaemon.pipeline.cli import main
from taskdaemon.pipeline.durations import log_time

_FINISHED = "SELECT * FROM logs WHERE json_extract(attributes, '$.event') = 'run.finished'"


@pytest.mark.slow
def test_follow_waits_for_the_runs_last_record_once_the_run_has_ended(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A run whose span says it ended while its last log record is not stored yet (the two
    are written by two threads) is followed until that record is printed, past a poll that
    found nothing."""
    pipeline = write(tmp_path / "one.yaml", ONE_STAGE_PIPELINE)
    run_id = taskdaemon(home, "run", "-q", str(pipeline)).stdout.strip()
    store = home / "spans.db"
    with sqlite3.connect(store) as conn:  # the log writer has not stored the run's end yet
        finished = conn.execute(_FINISHED).fetchone()
        conn.execute("DELETE FROM logs WHERE id = ?", (finished[0],))
    polls: list[float] = []

    def sleep(seconds: float) -> None:
        polls.append(seconds)
        if len(polls) == 2:  # the writer catches up after a poll that found nothing
            marks = ", ".join("?" * len(finished))
            with sqlite3.connect(store) as conn:
                conn.execute(f"INSERT INTO logs VALUES ({marks})", finished)

    clock = SimpleNamespace(**{**vars(time), "sleep": sleep})  # the module's time, but sleep
    monkeypatch.setattr(logs_command, "time", clock)
    monkeypatch.setenv("TASKDAEMON_HOME", str(home))
    code = main(["logs", run_id, "--follow", "--interval", "0.05"])
    last = capsys.readouterr().out.splitlines()[-1]
    assert (0, True) == (code, last.endswith(f"run {run_id} finished: success")), last


@pytest.mark.slow
def test_the_run_end_record_has_no_stage_after_a_published_event(
    home: Path, tmp_path: Path
) -> None:
    """The run's end record, after stages fired by an event a Python handler published, names
    no stage and carries the run span, as every run-level record does."""
    write(
        tmp_path / "publisher.py",
        """\
        def publish(ctx):
            ctx.publish("x.done", {"n": 1})

        def consume(ctx):
            return {}
        """,
    )
    pipeline = write(
        tmp_path / "events.yaml",
        """\
        name: events
        stages:
          - name: a
            handler: "publisher:publish"
            emits: [x.done]
            triggers: [{manual: {approval_required: false}}]
          - name: b
            handler: "publisher:consume"
            triggers: [{on_event: {type: x.done}}]
        """,
    )
    run_id = taskdaemon(home, "run", "-q", str(pipeline), cwd=tmp_path).stdout.strip()
    records = taskdaemon(home, "logs", run_id, "--json").stdout.splitlines()
    ends = [json.loads(line) for line in records if '"run.finished"' in line]
    started = next(json.loads(line) for line in records if '"run.started"' in line)
    expected = [(None, None, None, started["span_id"])]
    assert expected == [(r["stage"], r["instance"], r["attempt"], r["span_id"]) for r in ends]


def test_a_reader_that_stops_early_ends_logs_as_every_command(home: Path, tmp_path: Path) -> None:
    """``logs RUN | head -1`` of a run that printed 20,000 lines: exit 141, nothing on stderr,
    as ``runs list`` and the others end (docs/architecture.md, "Exit codes"); ``logs`` alone
    caught the closed pipe and said 0, as if it had written every record."""
    loud = write(tmp_path / "loud.yaml", ONE_STAGE_PIPELINE.replace('"true"', '"seq 20000"'))
    run_id = taskdaemon(home, "run", "-q", str(loud)).stdout.strip()
    first, code, stderr = read_one_line(home, "logs", run_id)
    assert (f"run {run_id} of one started", 141, "") == (
        first.split(maxsplit=2)[2].strip(),
        code,
        stderr,
    )


def test_json_records_read_as_the_json_log_lines_said_them(home: Path, tmp_path: Path) -> None:
    """A run's DEBUG records, written as JSON log lines on stderr (``TASKDAEMON_LOG_FORMAT=json``)
    and read back by ``logs --json``: every key of a line, ``ts`` first of all, has the line's
    value in the stored record, whose ``ts_ns`` is that same time in nanoseconds."""
    pipeline = write(tmp_path / "one.yaml", ONE_STAGE_PIPELINE)
    done = taskdaemon(
        home, "run", "--log-level", "debug", str(pipeline), TASKDAEMON_LOG_FORMAT="json"
    )
    said = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    run_id = said[0]["run_id"]
    stored = [
        json.loads(line) for line in taskdaemon(home, "logs", run_id, "--json").stdout.splitlines()
    ]
    by_message = {(record["msg"], record["span_id"]): record for record in stored}
    read_back, times = [], []
    for line in said:
        record = by_message.get((line["msg"], line["span_id"]), {})
        read_back.append({key: record.get(key) for key in line})
        times.append(log_time(record.get("ts_ns", 0)))
    assert (said, [line["ts"] for line in said]) == (read_back, times)


def test_json_records_escape_what_a_terminal_acts_on(home: Path, tmp_path: Path) -> None:
    """A command's line holding U+202E and the C1 control CSI (U+009B) is in the JSON log
    lines and ``logs --json`` as JSON escapes: JSON encoders leave both as they are, and
    printed they reverse or drive the terminal. A program reads the same line back."""
    said = "x\u202e\u009by"
    pipeline = write(
        tmp_path / "one.yaml",
        ONE_STAGE_PIPELINE.replace('command: "true"', "command: \"printf 'x\\u202e\\u009by'\""),
    )
    done = taskdaemon(
        home, "run", "-q", "--log-level", "debug", str(pipeline), TASKDAEMON_LOG_FORMAT="json"
    )
    run_id = done.stdout.strip()
    stored = taskdaemon(home, "logs", run_id, "--json").stdout
    messages = [json.loads(line)["msg"] for line in stored.splitlines()]
    assert (0, False, True) == (
        done.returncode,
        any(char in done.stderr + stored for char in "\u202e\u009b"),
        any(said in message for message in messages),
    ), stored


@pytest.mark.slow
def test_a_private_key_a_command_prints_in_two_writes_is_not_in_the_logs(
    home: Path, tmp_path: Path
) -> None:
    """A command stage printing a private key in two writes a pause apart (two reads of its
    pipe) leaves no line of the key's body in ``taskdaemon logs``; the lines around it stay."""
    first, second = "MIIBOgIBAAJBAKj34GkxFhD90vcNLYLInFEX6Ppy", "1tPf9Cnzj4p4WGeKLs1Pt8QuKUpRKf"
    script = write(
        tmp_path / "key.sh",
        f"""\
        echo before
        printf -- '-----BEGIN RSA PRIVATE KEY-----\\n{first}\\n'
        sleep 0.3
        printf -- '{second}\\n-----END RSA PRIVATE KEY-----\\nafter\\n'
        """,
    )
    pipeline = write(
        tmp_path / "key.yaml",
        f"""\
        name: key
        stages:
          - name: show
            command: "sh {script}"
            triggers: [{{manual: {{approval_required: false}}}}]
        """,
    )
    run_id = taskdaemon(home, "run", "-q", str(pipeline), cwd=tmp_path).stdout.strip()
    shown = taskdaemon(home, "logs", run_id).stdout
    assert (True, True, False, False) == (
        "before" in shown,
        "after" in shown,
        first in shown,
        second in shown,
    )


@pytest.mark.slow
def test_a_dump_prints_the_records_the_store_prints(home: Path, tmp_path: Path) -> None:
    """``logs RUN --source dump:///…`` prints what ``logs RUN`` prints from the store, the same
    lines with every filter (a prefix of the id, ``--stage``, ``--level``, ``--json``, whose
    objects lack the fields that are null in the store: OTLP JSON has no null); a stage the run
    lacks is exit 1, a run the dump lacks too."""
    pipeline = write(
        tmp_path / "two.yaml",
        """\
        name: two
        stages:
          - name: a
            command: "echo out; echo err >&2"
            triggers: [{manual: {approval_required: false}}]
          - name: b
            command: "exit 3"
            triggers: [{on_completion: {stage: a}}]
        """,
    )
    run_id = taskdaemon(home, "run", "-q", str(pipeline)).stdout.strip()
    dump = tmp_path / "run.tar.gz"
    assert 0 == taskdaemon(home, "dump", run_id, "-o", str(dump)).returncode
    source = f"dump://{dump}"
    for options in ([], ["--stage", "a"], ["--level", "warning"], ["--json"], ["-f"]):
        stored = taskdaemon(home, "logs", run_id[:6], *options)
        dumped = taskdaemon(home, "logs", run_id[:6], *options, "--source", source)
        assert (0, _lines(stored.stdout), "") == (
            dumped.returncode,
            _lines(dumped.stdout),
            dumped.stderr,
        )
        assert len(stored.stdout.splitlines()) >= 2, options
    wrong = [
        taskdaemon(home, "logs", run_id, "--stage", "c", "--source", source),
        taskdaemon(home, "logs", "ffff", "--source", source),
    ]
    assert [1, 1] == [done.returncode for done in wrong], [done.stderr for done in wrong]


def _lines(out: str) -> list[Any]:
    """Each line of ``logs`` output; a JSON object without its null fields."""
    if not out.startswith("{"):
        return out.splitlines()
    return [
        {key: value for key, value in json.loads(line).items() if value is not None}
        for line in out.splitlines()
    ]


def test_a_filter_that_keeps_no_record_is_said_on_stderr(home: Path, tmp_path: Path) -> None:
    """``logs RUN --stage b --level error`` of a stage skipped after ``a`` failed (its one
    record, the skip, is INFO) keeps nothing: stdout stays empty (exit 0, as for a script), and
    stderr says so in one line, from the store and from a dump, with ``-f`` or without. It
    printed nothing at all, which read as a command that did not work."""
    pipeline = write(
        tmp_path / "two.yaml",
        """\
        name: two
        stages:
          - name: a
            command: "exit 3"
            triggers: [{manual: {approval_required: false}}]
          - name: b
            command: "echo never"
            triggers: [{on_completion: {stage: a}}]
        """,
    )
    run_id = taskdaemon(home, "run", "-q", str(pipeline)).stdout.strip()
    dump = tmp_path / "run.tar.gz"
    assert 0 == taskdaemon(home, "dump", run_id, "-o", str(dump)).returncode
    said = f"taskdaemon logs: no records of stage 'b' at level error or above in run {run_id}\n"
    for source in ([], ["--source", f"dump://{dump}"]):
        for follow in ([], ["-f"]):
            options = ("--stage", "b", "--level", "error", *follow, *source)
            done = taskdaemon(home, "logs", run_id[:6], *options)
            assert (0, "", said) == (done.returncode, done.stdout, done.stderr)
    # Records printed: nothing more said.
    printed = taskdaemon(home, "logs", run_id, "--stage", "b")
    assert (0, "") == (printed.returncode, printed.stderr)
    assert "stage b skipped" in printed.stdout


def test_a_record_that_names_its_run_or_stage_is_not_headed_by_it_again(
    home: Path, tmp_path: Path
) -> None:
    """The engine's own records name their run or stage first: the where column of ``logs``
    is left out of them (it printed ``run run ID`` and ``a.0.1 stage a.0.1``), and kept for a
    stage's output."""
    pipeline = write(
        tmp_path / "echo.yaml",
        """\
        name: echo
        stages:
          - name: a
            command: "echo hi"
            triggers: [{manual: {approval_required: false}}]
        """,
    )
    run_id = taskdaemon(home, "run", "-q", str(pipeline)).stdout.strip()
    done = taskdaemon(home, "logs", run_id)
    assert [
        f"INFO    run {run_id} of echo started",
        "INFO    stage a.0.1 started (attempt 1)",
        "INFO    a.0.1 [stdout] hi",
        "INFO    stage a.0.1 finished: success",
        f"INFO    run {run_id} finished: success",
    ] == [line.split(" ", 1)[1] for line in done.stdout.splitlines()], done.stderr


def test_a_command_after_a_python_stage_logs_its_output_in_its_place(
    home: Path, tmp_path: Path
) -> None:
    """``run`` starts such a pipeline while telemetry loads (``cli/deferred.py``), yet the
    command's output is stored by the store's writer, with its stream, after its stage's start
    (``logs`` reads rows in the order they were written): a command spawned before the
    writer existed had its lines stored first, as plain records (``a.0.1 hi``)."""
    pipeline = write(
        tmp_path / "after.yaml",
        """\
        name: after
        loops:
          plan: {handler: "examples.loops:plan"}
        stages:
          - name: p
            loop: plan
            triggers: [{manual: {approval_required: false}}]
            inputs: {goal: {from: "'x'", required: true}}
          - name: a
            command: "echo hi"
            triggers: [{on_completion: {stage: p}}]
        """,
    )
    run_id = taskdaemon(home, "run", "-q", str(pipeline)).stdout.strip()
    done = taskdaemon(home, "logs", run_id)
    assert [
        f"INFO    run {run_id} of after started",
        "INFO    stage p.0.1 started (attempt 1)",
        "INFO    stage p.0.1 finished: success",
        "INFO    stage a.0.1 started (attempt 1)",
        "INFO    a.0.1 [stdout] hi",
        "INFO    stage a.0.1 finished: success",
        f"INFO    run {run_id} finished: success",
    ] == [line.split(" ", 1)[1] for line in done.stdout.splitlines()], done.stderr


@pytest.mark.slow
def test_without_level_every_stored_level_is_printed_as_the_help_says(
    home: Path, tmp_path: Path
) -> None:
    """``--level``'s help said no default: without it, a run made at ``--log-level debug``
    shows its DEBUG records (the engine's decisions) beside its INFO ones."""
    pipeline = write(tmp_path / "one.yaml", ONE_STAGE_PIPELINE)
    ran = taskdaemon(home, "run", "-q", "--log-level", "debug", str(pipeline))
    shown = taskdaemon(home, "logs", ran.stdout.strip())
    levels = {line.split()[1] for line in shown.stdout.splitlines()}
    helped = " ".join(taskdaemon(home, "logs", "--help").stdout.split())
    assert {"DEBUG", "INFO"} <= levels, shown.stdout
    assert "this level and above (default: every level stored)" in helped


@pytest.mark.slow
@pytest.mark.parametrize("stored", [True, False], ids=["stored-meanwhile", "never-stored"])
def test_follow_waits_for_a_run_not_stored_yet(
    home: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    stored: bool,
) -> None:
    """``logs -f ID`` of a run just started, whose store (or row) is not written yet, waits
    for it as ``watch`` does, and prints its records; after ``APPEAR_TIMEOUT`` without it,
    one line and exit 1. The store appears during the first poll's wait, so the command
    cannot have read it before."""
    pipeline = write(tmp_path / "one.yaml", ONE_STAGE_PIPELINE)
    run_id = taskdaemon(home, "run", "-q", str(pipeline)).stdout.strip()
    later = tmp_path / "later"
    later.mkdir(mode=0o700)
    polls: list[float] = []

    def sleep(seconds: float) -> None:
        polls.append(seconds)
        if stored and len(polls) == 1:  # the run's writer commits its first rows now
            source, copy = sqlite3.connect(home / "spans.db"), sqlite3.connect(later / "spans.db")
            try:
                source.backup(copy)
            finally:
                source.close()
                copy.close()
            (later / "spans.db").chmod(0o600)

    clock = SimpleNamespace(**{**vars(time), "sleep": sleep})  # the module's time, but sleep
    monkeypatch.setattr(logs_command, "time", clock)
    monkeypatch.setattr(logs_command, "APPEAR_TIMEOUT", 30.0 if stored else 0.0)
    monkeypatch.setenv("TASKDAEMON_HOME", str(later))
    code = main(["logs", run_id, "--follow", "--interval", "0.05"])
    out, err = capsys.readouterr()
    if stored:
        last = out.splitlines()[-1]
        assert (0, True) == (code, last.endswith(f"run {run_id} finished: success")), err
    else:
        assert (1, "", 1) == (code, out, err.count("\n")), err
        assert f"no run {run_id} in " in err, err
        assert "(waited 0 s for it)" in err, err
