"""fork() waits for the span store's threads to leave SQLite (``tracking._fork_guard``)."""

from __future__ import annotations

import os
import sqlite3
import threading
from pathlib import Path

import pytest

from pipeline_tracking_support import make_provider
from taskdaemon.pipeline.tracking._fork_guard import forking, sqlite_section
from taskdaemon.pipeline.tracking.writer import SqliteSpanProcessor


@pytest.mark.filterwarnings("ignore:.*multi-threaded.*fork:DeprecationWarning")
def test_fork_waits_until_no_thread_is_inside_sqlite() -> None:
    """A fork started while a thread is inside a section happens only after that thread has
    left it, so the child never inherits a lock SQLite holds for that thread."""
    entered, go = threading.Event(), threading.Event()
    left: list[bool] = []
    seen_by_fork: list[bool] = []

    def inside_sqlite() -> None:
        with sqlite_section():
            entered.set()
            go.wait(30)
            left.append(True)

    def fork() -> None:
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        seen_by_fork.append(bool(left))
        os.waitpid(pid, 0)

    worker = threading.Thread(target=inside_sqlite)
    worker.start()
    assert entered.wait(30)
    forker = threading.Thread(target=fork)
    forker.start()
    while not forking() and forker.is_alive():  # the fork is now waiting for the section
        forker.join(0.001)
    go.set()
    worker.join(30)
    forker.join(30)
    assert (seen_by_fork, forking()) == ([True], False)


@pytest.mark.filterwarnings("ignore:.*multi-threaded.*fork:DeprecationWarning")
def test_after_a_fork_both_processes_can_enter_a_section() -> None:
    """The fork's hold ends on both sides: the child (where only the forking thread lives) and
    the parent each open a section at once."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            with sqlite_section():
                code = 0
        finally:
            os.write(write, bytes([code]))
            os._exit(code)
    os.close(write)
    _, status = os.waitpid(pid, 0)
    with os.fdopen(read, "rb") as pipe:
        reported = pipe.read()
    with sqlite_section():
        inside_after = True
    assert (os.waitstatus_to_exitcode(status), reported, inside_after) == (0, b"\x00", True)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:.*multi-threaded.*fork:DeprecationWarning")
def test_children_forked_while_writers_are_busy_store_their_spans(tmp_path: Path) -> None:
    """Forking while span writers are mid-write (a busy parent, as with a handler using
    multiprocessing) leaves every child able to store its span. Without the guard about one
    child in five hung in SQLite and lost it."""
    processors = [
        SqliteSpanProcessor(tmp_path / f"s{i}.db", flush_interval=0.001) for i in range(3)
    ]
    providers = [make_provider(p)[0] for p in processors]
    tracers = [provider.get_tracer("test") for provider in providers]
    stop = threading.Event()

    def keep_writing() -> None:
        while not stop.is_set():
            for tracer in tracers:
                tracer.start_span("parent").end()
            stop.wait(0.0005)

    busy = threading.Thread(target=keep_writing)
    busy.start()
    codes = []
    try:
        for _ in range(30):
            pid = os.fork()
            if pid == 0:
                code = 1
                try:
                    tracers[0].start_span("child").end()
                    code = 0 if processors[0].force_flush(5_000) else 2
                finally:
                    os._exit(code)
            codes.append(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
    finally:
        stop.set()
        busy.join()
        for provider in providers:
            provider.shutdown()
    with sqlite3.connect(tmp_path / "s0.db") as conn:
        children = conn.execute(
            "SELECT count(*) FROM spans_readable WHERE name = 'child'"
        ).fetchone()[0]
    assert (codes, children) == ([0] * 30, 30)
