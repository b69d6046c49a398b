"""``taskdaemon runs list|show`` and ``taskdaemon retention`` over a real store, and runs played
through the real PipelineMonitor rebuilt from the store."""

from __future__ import annotations

import functools
import itertools
import json
import re
import resource
import signal
import sqlite3
import subprocess
from datetime import datetime
from pathlib import Path

import pytest

from cli_support import TASKDAEMON, environment, taskdaemon
from pipeline_monitor_support import Feed, Telemetry, example_pipeline, play_example_run
from pipeline_tracking_support import T0, S, make_provider, write_example_run
from taskdaemon.pipeline.cli import main
from taskdaemon.pipeline.errors import RunNotFoundError
from taskdaemon.pipeline.tracking import (
    RetentionPolicy,
    SpanStore,
    SqliteSpanProcessor,
    reconstruct_run,
    span_record_from_sdk,
)
from taskdaemon.pipeline.tracking._schema import connect


@pytest.fixture
def store_url(tmp_path: Path) -> tuple[str, list[str]]:
    """A store with two finished runs (one failed) and one running run."""
    db = tmp_path / "spans.db"
    processor = SqliteSpanProcessor(db, retention=RetentionPolicy())
    provider, _ = make_provider(processor)
    ids = [
        write_example_run(provider, pipeline="alpha", t0=T0),
        write_example_run(provider, pipeline="beta", t0=T0 + 10 * S, result="failure"),
    ]
    processor.shutdown()
    return f"sqlite:///{db}", ids


def test_runs_list_prints_an_aligned_table(
    store_url: tuple[str, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    """The table has a header and one row per run, newest first, columns aligned."""
    url, ids = store_url
    assert main(["runs", "list", "--source", url]) == 0
    lines = capsys.readouterr().out.splitlines()
    zone = datetime.fromtimestamp(T0 / 1e9).astimezone().strftime("%z")
    assert lines[0].split() == [
        "RUN",
        "ID",
        "PIPELINE",
        "STATUS",
        "START",
        f"(UTC{zone[:3]}:{zone[3:]})",
        "DURATION",
        "STAGES",
        "FAILED",
    ]
    assert [line.split()[:3] for line in lines[1:]] == [
        [ids[1], "beta", "failure"],
        [ids[0], "alpha", "success"],
    ]
    assert lines[1].index("beta") == lines[0].index("PIPELINE")


def test_runs_list_filters_and_json(
    store_url: tuple[str, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    """--status and --json give the matching runs as JSON objects."""
    url, ids = store_url
    assert main(["runs", "list", "--source", url, "--status", "failure", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["run_id"], r["pipeline"], r["duration"]) for r in rows] == [(ids[1], "beta", 7.0)]


def test_runs_list_since_excludes_older_runs(
    store_url: tuple[str, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    """--since 1h leaves out runs that started in 2023."""
    url, _ = store_url
    assert main(["runs", "list", "--source", url, "--since", "1h"]) == 0
    assert capsys.readouterr().out.strip() == "no runs"


@pytest.mark.slow
def test_a_pipeline_the_source_never_ran_is_refused_with_what_was_meant(
    store_url: tuple[str, list[str]], home: Path
) -> None:
    """``runs list`` and ``report`` of a pipeline with a typo printed "no run of pipeline
    'alpa' is known to this source" (or an empty JSON list) and exited 0, as a filter that
    matched nothing does: a script could not tell a typo from a quiet week. Now every output
    form is refused in one line on stderr, with the stored name it is close to, nothing on
    stdout and no file written, exit 1; a name close to none gets no hint."""
    url, _ = store_url
    out = home / "report.json"
    said = []
    for command in (
        ["runs", "list", "-p", "alpa"],
        ["runs", "list", "--json", "-p", "alpa"],
        ["report", "-p", "alpa"],
        ["report", "-f", "json", "-o", str(out), "-p", "alpa"],
        ["runs", "list", "-p", "zzzz"],
    ):
        done = taskdaemon(home, *command, "--source", url)
        said.append((done.returncode, done.stdout, done.stderr))
    meant = "; did you mean 'alpha'?"
    line = "no run of pipeline '{}' is known to this source{}\n"
    assert [
        (1, "", "taskdaemon runs list: " + line.format("alpa", meant)),
        (1, "", "taskdaemon runs list: " + line.format("alpa", meant)),
        (1, "", "taskdaemon report: " + line.format("alpa", meant)),
        (1, "", "taskdaemon report: " + line.format("alpa", meant)),
        (1, "", "taskdaemon runs list: " + line.format("zzzz", "")),
    ] == said
    assert not out.exists()


@pytest.mark.slow
def test_a_pipeline_with_runs_none_matching_keeps_exit_0(
    store_url: tuple[str, list[str]], home: Path
) -> None:
    """A known pipeline filtered to nothing (by ``--status``, or a window before its runs) is
    no typo: its empty list and report exit 0, with nothing on stderr."""
    url, _ = store_url
    listed = taskdaemon(home, "runs", "list", "-p", "alpha", "--status", "failure", "--source", url)
    reported = taskdaemon(
        home, "report", "-p", "alpha", "--since", "2020-01-01", "--until", "2020-02-01",
        "--source", url,
    )  # fmt: skip
    assert (0, "no runs\n", "") == (listed.returncode, listed.stdout, listed.stderr)
    assert (0, "") == (reported.returncode, reported.stderr)
    assert "no ended runs in this window" == reported.stdout.splitlines()[1]


def test_runs_show_prints_the_stage_table(
    store_url: tuple[str, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    """show lists every stage with status, attempts, cpu, memory and error."""
    url, ids = store_url
    assert main(["runs", "show", ids[0], "--source", url]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line.split() for line in out.split("\n\n")[1].splitlines()[1:]}
    assert (rows["plan"][1], rows["build"][1], rows["deploy"][1]) == (
        "success",
        "success",
        "skipped",
    )
    assert "STAGE" in out
    assert "11.8MiB" in rows["plan"]


def test_runs_show_json_round_trips(
    store_url: tuple[str, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    """--json gives the whole record, edges included."""
    url, ids = store_url
    assert main(["runs", "show", ids[1], "--json", "--source", url]) == 0
    data = json.loads(capsys.readouterr().out)
    assert (data["status"], len(data["stages"]), data["edges"][0]) == (
        "failure",
        4,
        {"source": "plan", "target": "build", "label": "on completion"},
    )


def test_runs_show_unknown_run_exits_1(
    store_url: tuple[str, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    """An unknown run id is reported on stderr with exit status 1."""
    url, _ = store_url
    assert main(["runs", "show", "0" * 32, "--source", url]) == 1
    assert "no run" in capsys.readouterr().err


def test_runs_show_takes_a_unique_prefix_of_the_run_id(
    store_url: tuple[str, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    """As git does with commits, the first digits of a run id do when only one run has them;
    too few digits, or a prefix no run has, exit 1 with the reason."""
    url, ids = store_url
    assert main(["runs", "show", ids[1][:8].upper(), "--json", "--source", url]) == 0
    shown = json.loads(capsys.readouterr().out)["run_id"]
    assert main(["runs", "show", "abc", "--source", url]) == 1
    too_short = capsys.readouterr().err
    unknown = next(p for p in ("0000", "ffff", "1234") if not any(i.startswith(p) for i in ids))
    assert main(["runs", "show", unknown, "--source", url]) == 1
    missing = capsys.readouterr().err
    assert (
        shown,
        "prefix of at least 4" in too_short,
        f"no run starting with {unknown}" in missing,
    ) == (
        ids[1],
        True,
        True,
    )


def test_ambiguous_run_id_prefix_lists_the_candidates(tmp_path: Path) -> None:
    """A prefix that several stored runs share is refused with those runs listed."""
    db = tmp_path / "spans.db"
    connect(db).close()  # creates the schema, as a writer does
    with sqlite3.connect(db) as conn:
        conn.executemany(
            "INSERT INTO traces (trace_id, first_ns) VALUES (?, 0)",
            [("abcd" + "0" * 28,), ("abcd" + "1" * 28,), ("abce" + "0" * 28,)],
        )
    with SpanStore(db, retention=RetentionPolicy()) as store:
        with pytest.raises(RunNotFoundError) as ambiguous:
            store.resolve_run_id("ABCD")
        unique = store.resolve_run_id("abce")
    assert (str(ambiguous.value), unique) == (
        f"run id prefix abcd is ambiguous: abcd{'0' * 28}, abcd{'1' * 28}",
        "abce" + "0" * 28,
    )


def test_retention_command_deletes_beyond_keep(
    store_url: tuple[str, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    """retention --keep 0 deletes every finished run and says how many."""
    url, _ = store_url
    assert main(["retention", "--keep", "0", "--source", url]) == 0
    assert capsys.readouterr().out.strip() == "deleted 2 runs (14 spans)"


def test_retention_command_says_one_run_in_the_singular(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """retention that deletes the one run says ``1 run``, not ``1 runs``."""
    processor = SqliteSpanProcessor(tmp_path / "spans.db", retention=RetentionPolicy())
    write_example_run(make_provider(processor)[0], pipeline="alpha", t0=T0)
    processor.shutdown()
    assert main(["retention", "--keep", "0", "--source", f"sqlite:///{tmp_path}/spans.db"]) == 0
    assert capsys.readouterr().out.strip() == "deleted 1 run (7 spans)"


def test_retention_command_vacuums_the_file(
    store_url: tuple[str, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    """retention --keep 0 --vacuum deletes the runs, compacts the file and says both."""
    url, _ = store_url
    assert main(["retention", "--keep", "0", "--vacuum", "--source", url]) == 0
    deleted, vacuumed = capsys.readouterr().out.strip().splitlines()
    assert (deleted, vacuumed.startswith("vacuumed "), "MiB -> " in vacuumed) == (
        "deleted 2 runs (14 spans)",
        True,
        True,
    )


def test_retention_vacuum_alone_says_only_the_vacuum(
    store_url: tuple[str, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    """retention --vacuum with no --max-age nor --keep compacts the file and keeps every run;
    it said ``deleted 0 runs (0 spans)`` first, of a deletion nobody asked for."""
    url, _ = store_url
    assert main(["retention", "--vacuum", "--source", url]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert main(["runs", "list", "--json", "--source", url]) == 0
    kept = len(json.loads(capsys.readouterr().out))
    assert ([True], 2) == ([line.startswith("vacuumed ") for line in lines], kept)


def _files_up_to(size: int) -> None:
    """In a child, before it runs: no file written past ``size`` bytes (``EFBIG``, SIGXFSZ
    ignored), as on a device that fills up."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))


@pytest.mark.slow
def test_a_vacuum_that_fails_says_so_after_the_deletion_in_one_log(tmp_path: Path) -> None:
    """``retention --vacuum > log 2>&1`` whose vacuum fails (it writes the whole file again,
    here past what the process may write): the log says the runs were deleted, then why the
    vacuum failed, exit 1. The block-buffered "deleted" line came after the error."""
    db = tmp_path / "spans.db"
    processor = SqliteSpanProcessor(db, retention=RetentionPolicy())
    provider, _ = make_provider(processor)
    for index in range(40):
        write_example_run(provider, pipeline="alpha", t0=T0 + index * S)
    processor.shutdown()
    done = subprocess.run(
        [TASKDAEMON, "retention", "--keep", "39", "--vacuum", "--source", f"sqlite:///{db}"],
        env=environment(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=60,
        check=False,
        preexec_fn=functools.partial(_files_up_to, db.stat().st_size // 2),
    )
    assert (1, ["deleted 1 run (7 spans)", f"taskdaemon retention: {db}: disk I/O error"]) == (
        done.returncode,
        done.stdout.splitlines(),
    )


def test_retention_on_a_damaged_store_names_the_damage_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """retention on an embedded store that is not a database says so, without claiming the
    store is not the embedded one: exit 1, a source that cannot answer, as in every reader."""
    db = tmp_path / "spans.db"
    db.write_bytes(b"not a database" * 512)
    assert main(["retention", "--keep", "1", "--source", f"sqlite:///{db}"]) == 1
    expected = f"taskdaemon retention: {db}: cannot open span store: file is not a database\n"
    assert expected == capsys.readouterr().err


def test_bad_source_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    """An unknown source scheme is a usage error, told while the arguments are parsed."""
    with pytest.raises(SystemExit) as exited:
        main(["runs", "list", "--source", "nope://x"])
    assert exited.value.code == 2
    assert "unknown span source" in capsys.readouterr().err


def test_monitored_run_rebuilds_from_the_store(tmp_path: Path) -> None:
    """A run played through the real PipelineMonitor reads back from the store exactly as its
    exported spans reconstruct, with every stage of the example pipeline."""
    db = tmp_path / "spans.db"
    telemetry = Telemetry()
    processor = SqliteSpanProcessor(db)
    telemetry.tracer_provider.add_span_processor(processor)
    feed = Feed(telemetry, example_pipeline())
    play_example_run(feed)
    processor.force_flush()
    expected = reconstruct_run([span_record_from_sdk(s) for s in telemetry.spans()])
    with SpanStore(db) as store:
        stored = store.get_run(feed.run_id)
        (summary,) = store.search()
    telemetry.shutdown()
    assert stored == expected
    assert (stored.status, [s.name for s in stored.stages]) == (
        "success",
        ["planning", "specification", "implementation", "release"],
    )
    assert len(stored.stage("implementation").attempts) == 2
    assert (summary.stage_count, summary.failed_stages) == (4, 0)
    assert {"planning": "any", "release": "all"} == {
        name: stored.stage(name).trigger_mode for name in ("planning", "release")
    }


def _table(out: str) -> dict[str, dict[str, str]]:
    """The stage table of ``out`` (headed ``STAGE``): each stage's cells by column, the columns
    parted by two spaces or more."""
    lines = out.splitlines()
    at = next(n for n, line in enumerate(lines) if line.startswith("STAGE "))
    header = re.split(r"\s{2,}", lines[at])
    rows = (re.split(r"\s{2,}", line) for line in itertools.takewhile(bool, lines[at + 1 :]))
    return {row[0]: dict(zip(header, row, strict=True)) for row in rows}


def test_runs_show_and_the_report_write_memory_alike_and_name_their_cpu(
    store_url: tuple[str, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    """Over one run, ``runs show``'s MEMORY and the report's PEAK MEM are one peak written one
    way (they were ``11.8MiB`` and ``11.8 MiB``); the report's CPU is a mean per execution and
    says so (CPU/EXEC), ``runs show``'s the stage's total (CPU)."""
    url, ids = store_url
    assert 0 == main(["runs", "show", ids[0], "--source", url])
    shown = _table(capsys.readouterr().out)["plan"]
    assert 0 == main(["report", "-p", "alpha", "--since", "36500d", "--source", url])
    reported = _table(capsys.readouterr().out)["plan"]
    expected = ("11.8MiB", "11.8MiB", True, False, True)
    actual = (
        shown["MEMORY"],
        reported["PEAK MEM"],
        "CPU" in shown,
        "CPU" in reported,
        "CPU/EXEC" in reported,
    )
    assert expected == actual, (shown, reported)
