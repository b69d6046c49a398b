"""``exits_said`` (``cli/stage_exit.py``) in this process: stage code's ``os._exit`` is said in
one error line, what the process queued reaches the store, and the process ends with the code
asked for (0 read as 1); anyone else's ``os._exit`` goes straight through. The process's own
end is a stand-in here, put in place before the block as the real ``os._exit`` is, that records
its code and raises; ``reliability_process_exit_test.py`` runs the real one in a subprocess,
which mutation testing credits nothing.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any, NoReturn

import pytest

from pipeline_tracking_support import make_provider, write_example_run
from taskdaemon.pipeline.cli import stage_exit
from taskdaemon.pipeline.cli.stage_exit import exits_said
from taskdaemon.pipeline.execution import enter_execution, leave_execution
from taskdaemon.pipeline.tracking import SqliteSpanProcessor

LOGGER = "taskdaemon.pipeline.cli.stage_exit"


class Ended(BaseException):
    """The stand-in process end: ``os._exit`` never returns."""


class Monitor:
    """A monitor as ``run``'s observers hold it: it captures, and flushes its queue."""

    def __init__(self, flush: Any = None) -> None:
        self.flushed = 0
        self._flush = flush

    def capture(self) -> None:  # only its presence tells the monitor apart
        raise AssertionError

    def flush(self) -> None:
        self.flushed += 1
        if self._flush is not None:
            self._flush()


@pytest.fixture
def ends(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """The codes the process was ended with; ``os._exit`` is the stand-in during the test."""
    codes: list[object] = []

    def end(status: object) -> NoReturn:
        codes.append(status)
        raise Ended

    monkeypatch.setattr(os, "_exit", end)
    return codes


def _as_stage(stage: str = "load", run_id: str = "run-7") -> Any:
    return enter_execution(SimpleNamespace(stage=stage, run_id=run_id))  # type: ignore[arg-type]


def _stage_exits(status: object) -> None:
    token = _as_stage()
    try:
        os._exit(status)  # type: ignore[arg-type]
    finally:
        leave_execution(token)


def test_stage_code_s_exit_is_said_flushed_and_ends_with_its_code(
    ends: list[object], caplog: pytest.LogCaptureFixture
) -> None:
    monitor, other = Monitor(), SimpleNamespace(flush=lambda: pytest.fail("not the monitor"))
    with exits_said([other, monitor]), pytest.raises(Ended):
        _stage_exits(3)
    assert ends == [3]
    assert monitor.flushed == 1
    assert [(r.name, r.levelno, r.getMessage()) for r in caplog.records] == [
        (
            LOGGER,
            logging.ERROR,
            "stage 'load' ended taskdaemon's process (os._exit(3)): run run-7 is left "
            "interrupted, its end never stored",
        )
    ]


def test_an_exit_code_of_0_ends_with_1(ends: list[object]) -> None:
    """0 would read as a run that succeeded: the run did not end."""
    with exits_said([]), pytest.raises(Ended):
        _stage_exits(0)
    assert ends == [1]


def test_an_exit_outside_a_stage_or_with_a_wrong_code_goes_straight_through(
    ends: list[object], caplog: pytest.LogCaptureFixture
) -> None:
    """taskdaemon's own exits (no stage execution current) and a call Python would refuse (its
    TypeError as before) are not said and flush nothing."""
    monitor = Monitor()
    with exits_said([monitor]):
        with pytest.raises(Ended):
            os._exit(0)
        with pytest.raises(Ended):
            _stage_exits("2")
    assert ends == [0, "2"]
    assert (monitor.flushed, caplog.records) == (0, [])


def test_the_log_handlers_and_the_span_writer_are_flushed_first(
    ends: list[object], tmp_path: Path
) -> None:
    """What the process still had queued for the store: a log handler's buffer, and the spans
    a writer holds until its next batch (here an hour away) are in the store before the end."""
    flushed = threading.Event()
    handler = logging.Handler()
    handler.emit = lambda record: None  # type: ignore[method-assign]
    handler.flush = flushed.set  # type: ignore[method-assign]
    logging.getLogger().addHandler(handler)
    processor = SqliteSpanProcessor(tmp_path / "spans.db", flush_interval=3600)
    provider, _ = make_provider(processor)
    try:
        run_id = write_example_run(provider)
        with exits_said([Monitor()]), pytest.raises(Ended):
            _stage_exits(9)
        with contextlib.closing(sqlite3.connect(tmp_path / "spans.db")) as db:
            stored = db.execute("SELECT count(*) FROM spans").fetchone()[0]
    finally:
        logging.getLogger().removeHandler(handler)
        provider.shutdown()
    assert (ends, flushed.is_set(), stored) == ([9], True, 7), run_id


def test_a_flush_that_never_ends_does_not_keep_the_process(
    ends: list[object], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The thread that called ``os._exit`` may hold a lock the flush needs: the process ends
    after the bound all the same."""
    monkeypatch.setattr(stage_exit, "FLUSH_BOUND", 0.2)
    release = threading.Event()
    try:
        with exits_said([Monitor(release.wait)]), pytest.raises(Ended):
            _stage_exits(4)
    finally:
        release.set()
    assert ends == [4]


def test_a_flush_that_fails_still_ends_the_process_in_silence(
    ends: list[object], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A monitor whose flush raises: no traceback of the flush's thread, the end as asked."""
    failures: list[object] = []
    monkeypatch.setattr(threading, "excepthook", failures.append)

    def broken() -> None:
        raise RuntimeError("store gone")

    with exits_said([Monitor(broken)]), pytest.raises(Ended):
        _stage_exits(5)
    assert (ends, failures) == ([5], [])


def test_os_exit_is_the_process_s_own_again_after_the_block(ends: list[object]) -> None:
    """After the run, ``os._exit`` is what it was; one that something else put in place
    meanwhile is left alone."""
    before = os._exit
    with exits_said([]):
        assert os._exit is not before
    assert os._exit is before
    with exits_said([]):
        os._exit = len  # type: ignore[assignment]
    assert os._exit is len
