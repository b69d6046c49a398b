"""``taskdaemon run`` on a span store it cannot open: the run runs, and the run id it prints
does not pretend to be found (docs/architecture.md, "Span sources": why it runs rather than
refuses); nor do ``replay``'s and ``debug FILE``'s. The in-process side, a telemetry load that
failed, is ``pipeline_cli_deferred_test.py``'s."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli_support import ONE_STAGE_PIPELINE, ONE_STREAM, taskdaemon, write


@pytest.mark.slow
@pytest.mark.parametrize("serve", [(), ("--serve", "127.0.0.1:0")], ids=["deferred", "serve"])
def test_a_run_on_a_store_that_cannot_open_says_its_id_is_not_stored(
    home: Path, tmp_path: Path, serve: tuple[str, ...]
) -> None:
    """A store that opens: the run id printed is found and nothing more is said. A damaged
    one: the run still succeeds (exit 0) and prints its id, one line says the store cannot
    open, and one at the end that this run is not stored, as ``runs show`` of it confirms.
    Before, the id was printed as if any view would find it."""
    path = write(tmp_path / "one.yaml", ONE_STAGE_PIPELINE)
    first = taskdaemon(home, "run", "-q", *serve, str(path), TASKDAEMON_LOG_LEVEL="warning")
    assert (0, "") == (first.returncode, first.stderr)
    shown = taskdaemon(home, "runs", "show", first.stdout.strip(), "--json")
    assert "success" == json.loads(shown.stdout)["status"], shown.stderr
    store = home / "spans.db"
    for suffix in ("", "-wal", "-shm"):
        store.with_name(store.name + suffix).unlink(missing_ok=True)
    store.write_text("not a store\n")
    done = taskdaemon(home, "run", "-q", *serve, str(path), TASKDAEMON_LOG_LEVEL="warning")
    assert 0 == done.returncode, done.stderr
    run_id = done.stdout.strip()
    said = [line.split(": ", 1)[1] for line in done.stderr.splitlines()]
    assert [
        f"span store unavailable, spans are not stored: {store}: cannot open span store: file "
        "is not a database",
        f"run {run_id} is not stored (the span store could not be opened): runs show will not "
        "find it",
    ] == said, done.stderr
    missing = taskdaemon(home, "runs", "show", run_id)
    assert 1 == missing.returncode
    assert [f"{store}: cannot open span store: file is not a database"] == [
        line.split(": ", 1)[1] for line in missing.stderr.splitlines()
    ]


def _damaged(home: Path) -> Path:
    """Replace the home's span store by a file that is no database; the store's path."""
    store = home / "spans.db"
    for suffix in ("", "-wal", "-shm"):
        store.with_name(store.name + suffix).unlink(missing_ok=True)
    store.write_text("not a store\n")
    return store


@pytest.mark.slow
def test_replay_and_debug_on_a_store_that_cannot_open_say_their_id_is_not_stored(
    home: Path, tmp_path: Path
) -> None:
    """``replay`` (of a run read from its dump) and ``debug FILE`` (its input at an end) make
    new runs, whose ids they print in their summaries: on a damaged store they end, as ``run``
    does, with one line saying the run is not stored; they used to say nothing. ``replay``'s
    stdout and stderr go to one pipe, as ``replay ... > log 2>&1`` puts them in one file: the
    line comes after the run id (``-q``), where its buffered stdout had the summary come last."""
    path = write(tmp_path / "one.yaml", ONE_STAGE_PIPELINE)
    original = taskdaemon(home, "run", "-q", str(path)).stdout.strip()
    dump = tmp_path / "one.tar.gz"
    assert 0 == taskdaemon(home, "dump", original, "-o", str(dump)).returncode
    _damaged(home)
    quiet = {"TASKDAEMON_LOG_LEVEL": "warning"}
    replay = taskdaemon(
        home, "replay", original, "--source", f"dump://{dump}", "-q", launcher=ONE_STREAM, **quiet
    )
    debug = taskdaemon(home, "debug", str(path), "-q", stdin="", **quiet)
    new = replay.stdout.splitlines()[-2]  # -q: the id alone, before the line saying it is lost
    debugged = next(
        line for line in debug.stdout.splitlines() if line.startswith("debugging run ")
    ).split()[2]
    assert debugged == debug.stdout.splitlines()[-1], debug.stdout  # -q: the id, last
    ended = [line for line in debug.stderr.splitlines() if "is not stored" in line]
    assert (0, 0) == (replay.returncode, debug.returncode), replay.stdout + debug.stderr
    assert [
        f"taskdaemon replay: run {new} is not stored (the span store could not be opened): "
        "runs show will not find it",
        f"taskdaemon debug: run {debugged} is not stored (the span store could not be opened): "
        "runs show will not find it",
    ] == [replay.stdout.splitlines()[-1], *ended], replay.stdout + debug.stderr
    assert [1, 1] == [taskdaemon(home, "runs", "show", r).returncode for r in (new, debugged)]


@pytest.mark.slow
@pytest.mark.parametrize("serve", [(), ("--serve", "127.0.0.1:0")], ids=["deferred", "serve"])
def test_a_run_with_the_sdk_disabled_says_its_id_is_not_stored(
    home: Path, tmp_path: Path, serve: tuple[str, ...]
) -> None:
    """``OTEL_SDK_DISABLED=true`` turns the SDK off, as the specification says: no span is made,
    so the run's store has nothing of it. The run runs (exit 0) and ends, as on a store that
    cannot open, with one line saying its id will not be found; before, it printed the id and
    said nothing, and every view then answered "no run" for it."""
    path = write(tmp_path / "one.yaml", ONE_STAGE_PIPELINE)
    done = taskdaemon(
        home,
        "run",
        "-q",
        *serve,
        str(path),
        OTEL_SDK_DISABLED=" True",
        TASKDAEMON_LOG_LEVEL="warning",
    )
    run_id = done.stdout.strip()
    said = f"taskdaemon run: run {run_id} is not stored (OTEL_SDK_DISABLED is true): runs show"
    assert (0, [f"{said} will not find it"]) == (done.returncode, done.stderr.splitlines())
    assert 1 == taskdaemon(home, "runs", "show", run_id).returncode
