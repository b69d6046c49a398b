"""``taskdaemon dump RUN`` in-process (``cli/dump.py``): what it prints, where it writes, and
its exit codes, for a run stored in the embedded store.

``pipeline_debug_dump_test.py`` drives the command in subprocesses (served runs, SIGUSR1,
hostile archives), which mutation testing does not credit; these call ``main`` itself."""

from __future__ import annotations

import asyncio
import contextlib
import json
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cli_faults_support import killed_run, listening
from pipeline_engine_support import Resolver, after, fail, pipeline, stage
from pipeline_tracking_support import monitored_store, run_into_store
from taskdaemon.pipeline.cli import _dump_hook, main
from taskdaemon.pipeline.control import ControlServer
from taskdaemon.pipeline.debug_ops import DebugOps
from taskdaemon.pipeline.engine import Engine
from taskdaemon.pipeline.record_fields import replace
from taskdaemon.pipeline.tracking import SpanStore, encode_traces

DUMPED = pipeline(stage("a"), stage("b", *after("a", success_only=False)), name="dumped")


@pytest.fixture
def stored(home: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """DUMPED run (``a`` fails) into the home's embedded store; its run id."""
    monkeypatch.setenv("TASKDAEMON_HOME", str(home))
    return asyncio.run(run_into_store(home / "spans.db", DUMPED, Resolver({"a": fail})))


def manifest(path: Path) -> dict[str, Any]:
    """The dump's manifest."""
    with tarfile.open(path, "r:gz") as archive:
        member = archive.extractfile("manifest.json")
        assert member is not None
        return dict(json.loads(member.read()))


def test_a_prefix_dumps_the_stored_run_to_o_and_prints_the_path(
    stored: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``dump PREFIX -o FILE``: the file named, the whole run id in its manifest, its status
    read from the store; the path alone on stdout, nothing on stderr."""
    target = tmp_path / "out" / "run.tar.gz"
    code = main(["dump", stored[:8], "-o", str(target)])
    assert (0, f"{target}\n", "") == (code, *capsys.readouterr())
    got = manifest(target)
    assert (stored, "dumped", "failure") == (got["run_id"], got["pipeline"], got["status"])


def member(path: Path, name: str) -> Any:
    """The dump's JSON member ``name``."""
    with tarfile.open(path, "r:gz") as archive:
        data = archive.extractfile(name)
        assert data is not None
        return json.loads(data.read())


def test_the_settings_are_the_home_s_masked_by_its_own_patterns(
    stored: str, home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The environment member holds the home's settings, a value whose key matches a pattern of
    ``TASKDAEMON_REDACT_PATTERNS`` masked; the store's log records need no note (the source is
    the embedded store)."""
    monkeypatch.setenv("TASKDAEMON_REDACT_PATTERNS", "grafana")
    monkeypatch.setenv("TASKDAEMON_GRAFANA_URL", "http://grafana.example:3000")
    target = tmp_path / "run.tar.gz"
    assert 0 == main(["dump", stored, "-o", str(target)])
    settings = member(target, "environment.json")["settings"]
    assert (str(home), "[REDACTED]") == (settings["home"], settings["grafana_url"])
    notes = manifest(target)["notes"]
    assert [] == [note for note in notes if note.startswith("logs")]


def test_a_source_without_run_logs_is_noted_in_the_manifest(
    stored: str, home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--source`` an OTLP JSON file of the run's spans, its run span open: dumped, the run
    ``running`` (only the embedded store knows that no process writes it any more), and the
    manifest says why it holds no log records (the file has none)."""
    with SpanStore(home / "spans.db") as store:
        spans = store.get_trace(stored)
    open_run = [s if s.parent_span_id else replace(s, end_ns=None) for s in spans]
    source = tmp_path / "spans.json"
    source.write_text(json.dumps(encode_traces(open_run)))
    target = tmp_path / "run.tar.gz"
    code = main(["dump", stored, "-o", str(target), "--source", f"otlp-json://{source}"])
    assert (0, f"{target}\n", "") == (code, *capsys.readouterr())
    notes = manifest(target)["notes"]
    logs = [note.startswith("logs.otlp.json: no log records (") for note in notes if "logs" in note]
    assert ([True], "running") == (logs, manifest(target)["status"]), notes


@pytest.mark.slow
def test_a_killed_run_named_by_a_prefix_is_dumped_from_the_store_interrupted(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A run whose process was killed (``kill -9``: its socket left behind, stale), named by a
    prefix: dumped from the store, whose verdict (no writer will end it) makes it
    ``interrupted``, not ``running``."""
    run_id = killed_run(home, tmp_path)
    monkeypatch.setenv("TASKDAEMON_HOME", str(home))
    target = tmp_path / "run.tar.gz"
    code = main(["dump", run_id[:8], "-o", str(target)])
    assert (0, f"{target}\n", "") == (code, *capsys.readouterr())
    got = manifest(target)
    bodies = [
        record["body"]["stringValue"]
        for resource in member(target, "logs.otlp.json")["resourceLogs"]
        for scope in resource["scopeLogs"]
        for record in scope["logRecords"]
    ]
    started = f"run {run_id} of slow started"
    assert (run_id, "interrupted", True) == (got["run_id"], got["status"], started in bodies)


def test_a_run_whose_socket_refuses_the_request_is_dumped_from_the_store_to_o(
    stored: str, home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A socket listed as served (the listing's connection got in) whose process takes no
    request (its queue full: gone since, or stuck), named by a prefix: dumped from the store,
    the whole id and ``-o`` kept."""
    target = tmp_path / "run.tar.gz"
    with listening(home / "control", f"{stored}.sock", backlog=0):
        code = main(["dump", stored[:8], "-o", str(target)])
    assert (0, f"{target}\n", "") == (code, *capsys.readouterr())
    assert (stored, "failure") == (manifest(target)["run_id"], manifest(target)["status"])


def test_without_o_the_dump_goes_under_the_home_named_by_the_whole_id(
    stored: str, home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """No ``-o``: ``$TASKDAEMON_HOME/dumps/<run_id>-<time>.tar.gz``, the whole id even when a
    prefix named the run."""
    assert 0 == main(["dump", stored[:8]])
    written = Path(capsys.readouterr().out.strip())
    assert (home / "dumps", True) == (written.parent, written.name.startswith(f"{stored}-"))
    assert stored == manifest(written)["run_id"]


@pytest.mark.parametrize(
    ("args", "code", "said"),
    [
        (["ffffffff"], 1, "no run"),
        ([""], 1, "run id"),
        (["ffffffff", "--source", "sqlite:///nowhere/spans.db"], 1, "no span store"),
    ],
)
def test_a_run_or_source_that_cannot_be_dumped_is_one_line(
    stored: str,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    code: int,
    said: str,
) -> None:
    """No such run, an empty one, a store that is not there: exit 1, nothing on stdout, one
    line on stderr naming the command."""
    done = main(["dump", *args])
    out, err = capsys.readouterr()
    assert (code, "", 1, True, True) == (
        done,
        out,
        len(err.splitlines()),
        err.startswith("taskdaemon dump: "),
        said in err,
    ), err


def test_an_archive_it_cannot_write_is_one_line_naming_it(
    stored: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``-o`` below a regular file: exit 1, the file named with the reason, as ``dag -o``
    says it."""
    (tmp_path / "file").write_text("")
    target = tmp_path / "file" / "run.tar.gz"
    done = main(["dump", stored, "-o", str(target)])
    assert (1, "", f"taskdaemon dump: cannot write {target}: File exists\n") == (
        done,
        *capsys.readouterr(),
    )


def test_a_control_folder_that_cannot_be_listed_is_one_line_unless_a_source_is_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A home whose control folder cannot be listed (a name too long): exit 1 and the reason.
    With ``--source`` the control folder is not looked at: the run is dumped from there."""
    db = tmp_path / "spans.db"
    run_id = asyncio.run(run_into_store(db, DUMPED, Resolver({"a": fail})))
    home = tmp_path / ("h" * 300)
    monkeypatch.setenv("TASKDAEMON_HOME", str(home))
    refused = main(["dump", run_id, "-o", str(tmp_path / "refused.tar.gz")])
    out, err = capsys.readouterr()
    assert (1, "", f"taskdaemon dump: cannot list the runs served under {home}/control: ") == (
        refused,
        out,
        err[: err.index("control: ") + len("control: ")],
    )
    assert "File name too long\n" == err[err.index("control: ") + len("control: ") :]
    target = tmp_path / "run.tar.gz"
    done = main(["dump", run_id, "-o", str(target), "--source", f"sqlite:///{db}"])
    assert (0, f"{target}\n", "") == (done, *capsys.readouterr())


@contextlib.contextmanager
def served(home: Path, *, dumps: bool) -> Iterator[str]:
    """A run of DUMPED paused before ``a``, in a thread of its own, its control socket under
    ``home`` answering debug requests (dumps written by the real hook when ``dumps``, else
    refused, as by a process that cannot write them); its id. Cancelled and closed after."""
    started: list[str] = []
    ready, leave = threading.Event(), threading.Event()

    async def serve() -> None:
        tracer_provider, monitor = monitored_store(home / "spans.db")
        try:
            async with Engine(resolver=Resolver(), observers=[monitor]) as engine:
                engine.with_debug(True).set_breakpoint("a", None, "start")
                handle = await engine.start_run(DUMPED)
                writer = _dump_hook.dump_writer(engine, [monitor]) if dumps else None
                ops = DebugOps(engine, handle.run_id, dump=writer)
                server = ControlServer(handle.run_id, handle, home=home, extra_ops={"debug": ops})
                async with server:
                    started.append(handle.run_id)
                    ready.set()
                    await asyncio.get_running_loop().run_in_executor(None, leave.wait)
                engine.with_debug(False)
                handle.cancel()
                await handle.wait()
        finally:
            ready.set()
            monitor.close()
            tracer_provider.shutdown()

    thread = threading.Thread(target=asyncio.run, args=(serve(),))
    thread.start()
    try:
        ready.wait()
        assert started, "the served run did not start"
        yield started[0]
    finally:
        leave.set()
        thread.join()


def test_a_served_run_is_dumped_by_its_process_with_its_engine_state(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A run its process serves, named by a prefix: the process writes the dump (its engine
    state in it) to the absolute ``-o`` path, which is printed."""
    monkeypatch.setenv("TASKDAEMON_HOME", str(home))
    monkeypatch.chdir(tmp_path)
    with served(home, dumps=True) as run_id:
        code = main(["dump", run_id[:8], "-o", "run.tar.gz"])
    target = tmp_path / "run.tar.gz"
    assert (0, f"{target}\n", "") == (code, *capsys.readouterr())
    got = manifest(target)
    assert (run_id, True) == (got["run_id"], "engine.json" in got["files"])


def test_a_served_run_s_refusal_is_one_line(
    home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A process that cannot write dumps says so; the command exits 1 with its line."""
    monkeypatch.setenv("TASKDAEMON_HOME", str(home))
    with served(home, dumps=False) as run_id:
        code = main(["dump", run_id])
    assert (1, "", "taskdaemon dump: this process cannot write debug dumps\n") == (
        code,
        *capsys.readouterr(),
    )


def test_the_help_says_what_a_dump_holds_and_the_exit_codes(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``dump --help``: its usage, what a dump holds, where it goes, the exit codes (the
    contract a script relies on), and the command's line in ``taskdaemon --help``."""
    monkeypatch.setenv("COLUMNS", "1000")  # one line a paragraph
    with pytest.raises(SystemExit) as done:
        main(["dump", "--help"])
    lines = capsys.readouterr().out.splitlines()
    assert (0, "usage: taskdaemon dump [-h] [-o FILE] [--source URL] RUN") == (
        done.value.code,
        lines[0],
    )
    assert [
        "Write a debug dump (.tar.gz) of a run: its spans, record, definition, DAG, environment "
        "and, for a run still served by its process, its live engine state. The written path "
        "goes to stdout. Exit codes: 0 written, 1 no such run or the dump failed, 2 bad "
        "arguments.",
        "  RUN                   run id (a unique prefix is enough)",
        "                        the archive to write, or a directory to write it in, made if "
        "missing when its name ends with / (default: "
        "$TASKDAEMON_HOME/dumps/<run_id>-<time>.tar.gz)",
    ] == [lines[2], lines[5], lines[10]]
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "    dump      write a debug dump (.tar.gz) of a run" in capsys.readouterr().out
