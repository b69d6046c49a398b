"""The early ``writers`` row's heartbeat (``tracking/early_heartbeat.py``): renewed until the
span writer takes the row over, then never again; a take-over waits for a beat under way
instead of meeting it in SQLite."""

from __future__ import annotations

import logging
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from pipeline_monitor_support import chain_pipeline
from taskdaemon.pipeline.tracking import early_heartbeat
from taskdaemon.pipeline.tracking.early_heartbeat import THREAD_NAME, Heartbeat
from taskdaemon.pipeline.tracking.run_start import (
    adopted_writer,
    keep_alive,
    started_early,
    withdraw_run_start,
    write_run_start,
)

RUN_ID = "0123456789abcdef0123456789abcdef"


@pytest.fixture(autouse=True)
def _quick_beats(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(early_heartbeat, "BEAT_EVERY", 0.02)


def _beat_ns(store: Path) -> int:
    with sqlite3.connect(store) as conn:
        (beat,) = conn.execute("SELECT heartbeat_ns FROM writers").fetchone()
    return int(beat)


def _renewed(store: Path, after: int) -> int:
    """The row's heartbeat once it is later than ``after`` (within 60 s)."""
    deadline = time.monotonic() + 60
    while (beat := _beat_ns(store)) <= after:
        assert time.monotonic() < deadline, "the heartbeat was never renewed"
        time.sleep(0.01)
    return beat


def _heartbeat_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name == THREAD_NAME]


def test_the_row_is_renewed_until_the_writer_takes_it_over(tmp_path: Path) -> None:
    """Kept alive, the row's heartbeat moves on; taken over, the heartbeat's thread ends and
    the row is the writer's alone: its heartbeat moves no more."""
    store = tmp_path / "spans.db"
    assert write_run_start(store, RUN_ID, chain_pipeline(), time.time()) is not None
    keep_alive(store)
    try:
        _renewed(store, _renewed(store, _beat_ns(store)))
    finally:
        threads = _heartbeat_threads()
        assert adopted_writer(store) is not None
        assert started_early(RUN_ID)
    assert len(threads) == 1
    threads[0].join(60)
    assert not threads[0].is_alive()
    last = _beat_ns(store)
    assert last == _beat_ns(store)


def test_a_row_registered_after_the_heartbeat_started_is_renewed_then_withdrawn(
    tmp_path: Path,
) -> None:
    """The load may begin before the run is named: the heartbeat renews the row written later;
    a withdrawn start stops it."""
    store = tmp_path / "spans.db"
    keep_alive(store)
    assert write_run_start(store, RUN_ID, chain_pipeline(), time.time()) is not None
    _renewed(store, _beat_ns(store))
    threads = _heartbeat_threads()
    withdraw_run_start(store, RUN_ID)
    assert len(threads) == 1
    threads[0].join(60)
    assert not threads[0].is_alive()


def test_a_stop_waits_for_the_beat_under_way(tmp_path: Path) -> None:
    """A take-over that comes during a beat returns only once that beat is done: the two never
    write the row at once, and none writes after the stop."""
    store = tmp_path / "spans.db"
    assert write_run_start(store, RUN_ID, chain_pipeline(), time.time()) is not None
    writer_id = adopted_writer(store)
    assert writer_id is not None
    beating, go_on, said = threading.Event(), threading.Event(), []

    def row() -> int:
        said.append("beat")
        beating.set()
        go_on.wait(60)
        return writer_id

    heartbeat = Heartbeat(store, row)
    heartbeat.start()
    assert beating.wait(60)

    def stop() -> None:
        heartbeat.stop()
        said.append("stopped")

    stopper = threading.Thread(target=stop)
    stopper.start()
    try:
        stopper.join(1.5)
        assert stopper.is_alive()  # the beat under way holds it, however long it takes
    finally:
        go_on.set()
        stopper.join(60)
        heartbeat.stop(timeout=60)
        withdraw_run_start(store, RUN_ID)
    assert ["beat", "stopped"] == said


def test_the_run_s_end_does_not_wait_for_a_beat_that_hangs(tmp_path: Path) -> None:
    """A beat that never ends (a hung file system): a stop with a timeout returns after it."""
    release = threading.Event()
    entered = threading.Event()

    def row() -> None:
        entered.set()
        release.wait(60)

    heartbeat = Heartbeat(tmp_path / "spans.db", row)
    heartbeat.start()
    try:
        assert entered.wait(60)
        began = time.monotonic()
        heartbeat.stop(timeout=0.1)
        assert time.monotonic() - began < 30
    finally:
        release.set()
        heartbeat.stop(timeout=60)


def _skips(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if "early writer heartbeat skipped" in record.getMessage()
    ]


def _first_skip(caplog: pytest.LogCaptureFixture) -> str:
    deadline = time.monotonic() + 60
    while not (skips := _skips(caplog)):
        assert time.monotonic() < deadline, "no beat was skipped"
        time.sleep(0.01)
    return skips[0]


def test_a_beat_skipped_on_a_busy_store_is_said_and_the_next_one_renews(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Another process holding the store's write lock: a beat waits ``BUSY_WAIT`` for it, not
    the store's usual 30 s (the take-over waits for the beat under way), says in the debug log
    which store and why it was skipped, and the beat after the lock is released renews the row.
    A stop with a timeout returns once the thread has ended."""
    caplog.set_level(logging.DEBUG, logger="taskdaemon.tracking")
    store = tmp_path / "spans.db"
    assert write_run_start(store, RUN_ID, chain_pipeline(), time.time()) is not None
    writer_id = adopted_writer(store)
    assert writer_id is not None
    other = sqlite3.connect(store, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    heartbeat = Heartbeat(store, lambda: writer_id)
    try:
        began = time.monotonic()
        heartbeat.start()
        skipped = _first_skip(caplog)
        assert time.monotonic() - began < 20
        assert skipped == f"{store}: early writer heartbeat skipped: database is locked"
        before = _beat_ns(store)
        other.execute("ROLLBACK")
        _renewed(store, before)
    finally:
        other.close()
        heartbeat.stop(timeout=60)
        withdraw_run_start(store, RUN_ID)
    assert not _heartbeat_threads()


def test_a_beat_never_makes_a_store_again(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A store removed while its run starts (the row's file gone) is not made again, empty, by
    the heartbeat: the beat is skipped and said."""
    caplog.set_level(logging.DEBUG, logger="taskdaemon.tracking")
    store = tmp_path / "spans.db"
    heartbeat = Heartbeat(store, lambda: 1)
    heartbeat.start()
    try:
        assert str(store) in _first_skip(caplog)
    finally:
        heartbeat.stop(timeout=60)
    assert not store.exists()
    assert not _heartbeat_threads()


@pytest.mark.slow
def test_a_process_that_ends_without_a_stop_does_not_wait_for_the_beats(tmp_path: Path) -> None:
    """The heartbeat's thread is a daemon: a process that ends by another way than the run's
    end (its start never stopped) exits at once, not after beats that never stop."""
    script = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from taskdaemon.pipeline.tracking.early_heartbeat import Heartbeat\n"
        "Heartbeat(Path(sys.argv[1]), lambda: None).start()\n"
        "time.sleep(0.1)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "spans.db")], timeout=60, check=False
    )
    assert done.returncode == 0
