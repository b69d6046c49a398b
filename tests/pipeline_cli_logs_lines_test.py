"""``taskdaemon logs RUN`` in-process (``cli/logs.py``): the lines and objects it prints, its
filters, what it says when nothing matches, and its exit codes, over a run stored by a real
``taskdaemon run``.

``pipeline_cli_logs_test.py`` runs the command mostly in subprocesses, which mutation testing
does not credit; these call ``main`` itself (the stored run is made once, by a subprocess)."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from cli_faults_support import killed_run
from cli_support import taskdaemon, write
from taskdaemon.pipeline.cli import logs as logs_command
from taskdaemon.pipeline.cli import main
from taskdaemon.pipeline.durations import log_time

TWO = """\
    name: two
    stages:
      - name: a
        command: "echo out é"
        triggers: [{manual: {approval_required: false}}]
      - name: b
        command: "echo err >&2; exit 3"
        triggers: [{on_completion: {stage: a}}]
      - name: c
        command: "echo never"
        triggers: [{on_completion: {stage: b}}]
    """


@pytest.fixture(scope="module")
def stored() -> Iterator[tuple[Path, str]]:
    """A home (short, under /tmp) holding one run of TWO (``b`` fails, ``c`` is skipped); the
    home and run id."""
    home = Path(tempfile.mkdtemp(prefix="td-", dir="/tmp"))
    try:
        pipeline = write(home / "two.yaml", TWO)
        ran = taskdaemon(home, "run", "-q", str(pipeline))
        assert 1 == ran.returncode, ran.stderr
        yield home, ran.stdout.strip()
    finally:
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def run_id(stored: tuple[Path, str], monkeypatch: pytest.MonkeyPatch) -> str:
    """The stored run's id, with its home as TASKDAEMON_HOME."""
    monkeypatch.setenv("TASKDAEMON_HOME", str(stored[0]))
    return stored[1]


def logs(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """``main(["logs", *args])``: its exit code, stdout and stderr."""
    code = main(["logs", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_text_lines_name_the_time_level_and_place_once(
    run_id: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each record's line: its time, its level in a column of 7, where it was logged
    (``stage.instance.attempt``, ``[stream]`` for output) unless the message names it already,
    then the message; the times are the JSON objects' ``ts_ns``."""
    code, out, err = logs(capsys, run_id[:8])
    lines = out.splitlines()
    assert (0, "") == (code, err)
    failed = "failure: command 'echo err >&2; exit 3' exited with code 3; stderr (last lines):"
    assert [
        f"INFO    run {run_id} of two started",
        "INFO    stage a.0.1 started (attempt 1)",
        "INFO    a.0.1 [stdout] out é",
        "INFO    stage a.0.1 finished: success",
        "INFO    stage b.0.1 started (attempt 1)",
        "INFO    b.0.1 [stderr] err",
        f"ERROR   stage b.0.1 finished: {failed}\\x0aerr",  # the line feed escaped
        f"INFO    stage c skipped: run failed: stage 'b' {failed}\\x0aerr",  # no instance
        f"ERROR   run {run_id} finished: failure: stage 'b' {failed}\\x0aerr",
    ] == [line.split(" ", 1)[1] for line in lines]
    _, json_out, _ = logs(capsys, run_id, "--json")
    times = [log_time(json.loads(line)["ts_ns"]) for line in json_out.splitlines()]
    assert times == [line.split(" ", 1)[0] for line in lines]


def test_json_objects_carry_every_id_and_keep_non_ascii(
    run_id: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--json``: one object a line, the JSON log line's keys and every id; text as it is,
    not escaped to ASCII."""
    code, out, _ = logs(capsys, run_id, "--json", "--stage", "a")
    assert '"msg": "out é"' in out
    records = [json.loads(line) for line in out.splitlines()]
    output = next(r for r in records if r.get("log.iostream") == "stdout")
    assert (0, "out é", "INFO", run_id, "two", "a", 0, 1) == (
        code,
        output["msg"],
        output["level"],
        output["run_id"],
        output["pipeline"],
        output["stage"],
        output["instance"],
        output["attempt"],
    )
    assert {"a"} == {r["stage"] for r in records}


def test_stage_and_level_keep_their_records(
    run_id: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--stage b`` keeps b's records, ``--level ERROR`` (any case) those at error and above."""
    code, out, _ = logs(capsys, run_id, "--stage", "b", "--level", "ERROR")
    assert (0, ["stage b.0.1 finished:"]) == (
        code,
        [" ".join(line.split()[2:5]) for line in out.splitlines()],
    )


@pytest.mark.parametrize(("alias", "name"), [("warn", "warning"), ("FATAL", "critical")])
def test_level_takes_the_aliases_log_level_takes(
    run_id: str, capsys: pytest.CaptureFixture[str], alias: str, name: str
) -> None:
    """``--level warn`` and ``--level fatal`` keep what ``warning`` and ``critical`` keep, and
    say it in their names: ``--log-level`` and ``TASKDAEMON_LOG_LEVEL`` took them, ``--level``
    refused them as invalid choices."""
    assert logs(capsys, run_id, "--level", name) == logs(capsys, run_id, "--level", alias)


def test_nothing_kept_is_said_on_stderr_only(
    run_id: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A filter that keeps no record: stdout empty, exit 0, one line on stderr naming the
    stage and the level."""
    said = f"taskdaemon logs: no records of stage 'a' at level error or above in run {run_id}\n"
    assert (0, "", said) == logs(capsys, run_id, "--stage", "a", "--level", "error")
    assert (0, "", said) == logs(capsys, run_id, "--stage", "a", "--level", "error", "-f")
    said = f"taskdaemon logs: no records at level critical or above in run {run_id}\n"
    assert (0, "", said) == logs(capsys, run_id, "--level", "critical")


def test_a_stage_the_run_lacks_and_an_unknown_run_are_exit_1(
    run_id: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A ``--stage`` the run lacks names the run, its pipeline and its stages; a run the store
    lacks is one line; nothing on stdout."""
    code, out, err = logs(capsys, run_id, "--stage", "d")
    assert (1, "", True) == (
        code,
        out,
        err.startswith(f"taskdaemon logs: run {run_id} of pipeline 'two' "),
    ), err
    code, out, err = logs(capsys, "ffffffff")
    assert (1, "", 1, True, True) == (
        code,
        out,
        len(err.splitlines()),
        err.startswith("taskdaemon logs: "),
        "ffffffff" in err,
    ), err


def test_follow_of_an_ended_run_prints_it_and_ends(
    run_id: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--follow`` of a run that has ended: every record once, as without it, then exit 0."""
    code, out, err = logs(capsys, run_id, "-f", "--interval", "0.05")
    assert (0, "", logs(capsys, run_id)[1]) == (code, err, out)


def test_follow_waits_for_a_whole_id_then_says_how_long(
    run_id: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--follow`` of a whole id the store lacks waits for it, then exit 1 saying so."""
    monkeypatch.setattr(logs_command, "APPEAR_TIMEOUT", 0.05)
    missing = "f" * 32
    code, out, err = logs(capsys, missing, "-f", "--interval", "0.05")
    assert (1, "", True) == (code, out, err.rstrip().endswith("(waited 0.05 s for it)")), err


def test_a_source_other_than_the_store_or_a_dump_is_exit_2(
    run_id: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An OTLP JSON file holds no run logs: exit 2, one line."""
    spans = write(tmp_path / "spans.json", '{"resourceSpans": []}')
    code, out, err = logs(capsys, run_id, "--source", f"otlp-json://{spans}")
    said = (
        "taskdaemon logs: run logs are kept in the embedded store (a sqlite:/// source) and "
        "in debug dumps (dump:///)\n"
    )
    assert (2, "", said) == (code, out, err)


def test_a_source_that_cannot_be_opened_is_exit_1_and_its_reason(
    run_id: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A store or a dump that is not there: exit 1, one line naming the command and the
    path."""
    missing = tmp_path / "nowhere"
    said = [
        logs(capsys, run_id, "--source", source)
        for source in (f"sqlite:///{missing}/spans.db", f"dump://{missing}/run.tar.gz")
    ]
    assert [
        (1, "", f"taskdaemon logs: {missing}/spans.db: no span store here\n"),
        (1, "", f"taskdaemon logs: {missing}/run.tar.gz: no such file\n"),
    ] == said


def test_a_home_without_a_store_or_with_a_broken_one_is_exit_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A whole id in a home where no run was made yet (no store): no such run there; a store
    that is not SQLite: the store's error. Each one line, exit 1."""
    whole = "f" * 32
    said = []
    for name, content in (("empty", None), ("broken", "not a database " * 100)):
        home = tmp_path / name
        home.mkdir()
        if content is not None:
            (home / "spans.db").write_text(content)
        monkeypatch.setenv("TASKDAEMON_HOME", str(home))
        said.append(logs(capsys, whole))
    empty, broken = tmp_path / "empty" / "spans.db", tmp_path / "broken" / "spans.db"
    assert [
        (1, "", f"taskdaemon logs: no run {whole} in {empty}\n"),
        (1, "", f"taskdaemon logs: {broken}: cannot open span store: file is not a database\n"),
    ] == said


def test_a_dump_prints_what_the_store_prints_with_the_filters(
    run_id: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--source dump://``: the store's lines, with ``--stage`` and ``--level``; a stage the
    run lacks is exit 1; nothing kept is said."""
    dump = tmp_path / "run.tar.gz"
    assert 0 == main(["dump", run_id, "-o", str(dump)])
    capsys.readouterr()
    source = ("--source", f"dump://{dump}")
    for options in ([], ["--stage", "b"], ["--level", "error"]):
        assert logs(capsys, run_id, *options) == logs(capsys, run_id[:8], *options, *source)
    # OTLP JSON has no null: the dump's objects lack the fields null in the store's.
    stored, dumped = (
        [
            {key: value for key, value in json.loads(line).items() if value is not None}
            for line in logs(capsys, run_id, "--json", *where)[1].splitlines()
        ]
        for where in ((), source)
    )
    assert (9, stored) == (len(dumped), dumped)
    lacking = logs(capsys, run_id, "--stage", "d")
    assert (1, lacking) == (lacking[0], logs(capsys, run_id, "--stage", "d", *source))
    said = f"taskdaemon logs: no records of stage 'a' at level error or above in run {run_id}\n"
    assert (0, "", said) == logs(capsys, run_id, "--stage", "a", "--level", "error", *source)


@pytest.mark.slow
def test_follow_of_a_killed_run_ends_without_its_last_record(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--follow`` of a run whose process was killed (no writer will end it, and its end
    record never comes): its records, then exit 0, not a wait for ever; stderr says the run
    was interrupted, as a reason for the records missing at its end."""
    run_id = killed_run(home, tmp_path)
    monkeypatch.setenv("TASKDAEMON_HOME", str(home))
    code, out, err = logs(capsys, run_id, "-f", "--interval", "0.05")
    said = f"taskdaemon logs: run {run_id} was interrupted: its process ended before it"
    assert (0, said, True) == (code, err[: len(said)], "stage wait.0.1 started" in out), out


def test_the_help_says_what_is_printed_each_option_and_the_exit_codes(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``logs --help``: what is printed, in which order, the exit codes (the contract a script
    relies on), each option's line, and the command's line in ``taskdaemon --help``."""
    monkeypatch.setenv("COLUMNS", "1000")  # one line a paragraph
    with pytest.raises(SystemExit) as done:
        main(["logs", "--help"])
    lines = capsys.readouterr().out.splitlines()
    usage = "usage: taskdaemon logs [-h] [--stage STAGE] [--attempt N] [--level "
    assert (0, usage) == (done.value.code, lines[0][: len(usage)])
    assert [
        "Print a run's log records from the embedded store (or a debug dump): lifecycle "
        "records, engine decisions, command output and handlers' own logging, in order. Exit "
        "codes: 0 ok, 1 the run (or its --stage or --attempt) was not found or the store cannot "
        "answer, 2 invalid arguments, 130 interrupted.",
        "  RUN                 run id, or a unique prefix (4+ hex)",
        "  --stage STAGE       only this stage's records",
        "  --attempt N         with --stage: only the records of its attempt N (1 is the first "
        "try)",
        "  --level LEVEL       trace, debug, info, warning (warn), error or critical (fatal): this "
        "level and above (default: every level stored)",
        "  --follow, -f        poll until the run ends",
        "  --json              one JSON object a line",
        "  --source URL        span source: sqlite:///PATH or dump:///PATH.tar.gz (default "
        "TASKDAEMON_SPAN_SOURCE, else the embedded store, $TASKDAEMON_HOME/spans.db)",
    ] == [lines[2], lines[5], lines[9], lines[10], lines[11], lines[12], lines[13], lines[15]]
    with pytest.raises(SystemExit):
        main(["--help"])
    said = "    logs      print a run's log records (lifecycle, decisions, command output)"
    assert said in capsys.readouterr().out.splitlines()
