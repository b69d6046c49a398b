"""``stage_output`` in-process: the sink registry and its fallback to stdlib logging, the capture
of one stage execution fed chunk by chunk (ids, the marker, stderr's tail), ``communicate`` with
stand-in processes, and private keys cut across reads. The byte and line bounds, line by line,
are ``pipeline_stage_output_bounds_test.py``."""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline_stage_output_support import TRACEPARENT, Sink, captured_in_reads, new_capture
from taskdaemon.pipeline import output_sinks, stage_output
from taskdaemon.pipeline.redaction import redact_lines
from taskdaemon.pipeline.secret_values import remember_secrets
from taskdaemon.pipeline.stage_output import (
    STDERR_TAIL_LINES,
    CaptureLimits,
    OutputBatch,
    OutputCapture,
    communicate,
)


class FailingSink:
    """An output sink that raises on every batch."""

    def write_output(self, batch: OutputBatch) -> None:
        raise RuntimeError("sink down")


@pytest.fixture
def output_records() -> Iterator[list[logging.LogRecord]]:
    """The records of ``taskdaemon.run.output`` (INFO and up) while no sink is registered."""
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    logger = logging.getLogger("taskdaemon.run.output")
    handler = Keep()
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield records
    finally:
        logger.removeHandler(handler)
        logger.setLevel(logging.NOTSET)


def _batch(*texts: str, **more: Any) -> OutputBatch:
    return OutputBatch("r" * 32, "p", "build", 2, 3, "t" * 32, "s" * 16, "stdout", texts, **more)


# -- the registry ----------------------------------------------------------------------------


def test_removing_a_sink_keeps_the_others(sink: Sink, captures: list[OutputCapture]) -> None:
    """After one of two sinks is removed, the other one still receives every batch."""
    other = Sink()
    output_sinks.add_output_sink(other)
    output_sinks.remove_output_sink(other)
    new_capture(captures).feed("stdout", b"kept\n")
    assert (["kept"], []) == (sink.lines(), other.lines())


def test_a_sink_added_twice_receives_each_batch_once(
    sink: Sink, captures: list[OutputCapture]
) -> None:
    """Adding a registered sink again does not make it receive batches twice."""
    output_sinks.add_output_sink(sink)
    new_capture(captures).feed("stdout", b"once\n")
    assert ["once"] == sink.lines()


def test_a_failing_sink_is_reported_once_and_the_others_still_receive(
    sink: Sink, captures: list[OutputCapture], caplog: pytest.LogCaptureFixture
) -> None:
    """A sink that raises is logged once, with its exception, however often it fails, and the
    sinks after it still get every batch."""
    failing = FailingSink()
    output_sinks.remove_output_sink(sink)
    output_sinks.add_output_sink(failing)
    output_sinks.add_output_sink(sink)
    try:
        with caplog.at_level(logging.WARNING, logger="taskdaemon.pipeline.stage_output"):
            capture = new_capture(captures)
            capture.feed("stdout", b"one\n")
            capture.feed("stdout", b"two\n")
    finally:
        output_sinks.remove_output_sink(failing)
    reports = [
        (r.getMessage(), type(r.exc_info[1]) if r.exc_info else None)
        for r in caplog.records
        if r.name == "taskdaemon.pipeline.stage_output"
    ]
    expected = [(f"output sink {failing!r} failed; its batches are lost", RuntimeError)]
    assert (expected, ["one", "two"]) == (reports, sink.lines())


def test_a_sink_removed_and_added_again_is_reported_again(
    captures: list[OutputCapture], caplog: pytest.LogCaptureFixture
) -> None:
    """Removing a failing sink forgets that it failed: added again, its next failure is
    logged again."""
    failing = FailingSink()
    with caplog.at_level(logging.WARNING, logger="taskdaemon.pipeline.stage_output"):
        for _ in range(2):
            output_sinks.add_output_sink(failing)
            try:
                new_capture(captures).feed("stdout", b"line\n")
            finally:
                output_sinks.remove_output_sink(failing)
    failures = [r for r in caplog.records if r.name == "taskdaemon.pipeline.stage_output"]
    assert 2 == len(failures)


def test_set_capture_limits_returns_the_previous_bound(sink: Sink) -> None:
    """``set_capture_limits`` answers the bound it replaced, and ``capture_limits`` the new one."""
    first = CaptureLimits(5, 50)
    output_sinks.set_capture_limits(first)
    second = CaptureLimits(6, 60)
    assert (first, second) == (
        output_sinks.set_capture_limits(second),
        output_sinks.capture_limits(),
    )


def test_a_capture_without_limits_takes_the_process_bound(
    sink: Sink, captures: list[OutputCapture]
) -> None:
    """A capture made without limits applies the bound set for the process when it started."""
    output_sinks.set_capture_limits(CaptureLimits(max_lines=2, max_bytes=1000))
    capture = new_capture(captures)
    capture.feed("stdout", b"a\nb\nc\n")
    assert (["a", "b"], 1) == (sink.lines(), capture.dropped_lines)


# -- the fallback: stdlib logging -------------------------------------------------------------


def test_without_a_sink_each_line_is_an_info_record_with_the_ids(
    output_records: list[logging.LogRecord], captures: list[OutputCapture]
) -> None:
    """With no sink registered, each line is one INFO record of ``taskdaemon.run.output``
    carrying the execution's ids and its stream."""
    capture = new_capture(captures, environment={"TRACEPARENT": TRACEPARENT})
    capture.feed("stderr", b"50% done\n")
    record = output_records[0]
    names = ("run_id", "pipeline", "stage", "instance", "attempt", "trace_id", "span_id", "stream")
    expected = ("r" * 32, "p", "build", 2, 3, TRACEPARENT[3:35], TRACEPARENT[36:52], "stderr")
    assert [(logging.INFO, "50% done", expected)] == [
        (r.levelno, r.getMessage(), tuple(getattr(r, name) for name in names))
        for r in output_records
    ]
    assert "taskdaemon.run.output" == record.name


def test_without_a_sink_a_line_holding_a_secret_is_logged_redacted(
    output_records: list[logging.LogRecord], captures: list[OutputCapture]
) -> None:
    """The fallback is an output like the sinks: a secret's value known to the process and a
    secret of a known shape reach a library user's handlers as ``[REDACTED]``."""
    remember_secrets({"api_key": "fallback-s3cr3t-value"})
    capture = new_capture(captures)
    capture.feed("stdout", b"using fallback-s3cr3t-value\npassword=hunter22 ok\n")
    messages = [r.getMessage() for r in output_records]
    assert ["using [REDACTED]", "password=[REDACTED] ok"] == messages


def test_without_a_sink_the_marker_is_a_warning_even_when_info_is_off(
    output_records: list[logging.LogRecord], captures: list[OutputCapture]
) -> None:
    """The end-of-capture marker is a WARNING record with the execution's ids, logged even
    when the output logger lets only warnings through."""
    logging.getLogger("taskdaemon.run.output").setLevel(logging.WARNING)
    capture = new_capture(captures, CaptureLimits(max_lines=1, max_bytes=1000))
    capture.feed("stdout", b"a\nbc\n")
    capture.close()
    expected = (
        "[taskdaemon] 1 output lines (2 bytes) dropped past the capture bound of "
        "1 lines / 1000 bytes per stage"
    )
    assert [(logging.WARNING, expected, "stderr", "r" * 32)] == [
        (r.levelno, r.getMessage(), r.stream, r.run_id)  # type: ignore[attr-defined]
        for r in output_records
    ]


def test_without_a_sink_lines_are_not_logged_when_info_is_off(
    output_records: list[logging.LogRecord], captures: list[OutputCapture]
) -> None:
    """Lines are INFO records: a logger at WARNING gets none of them."""
    logging.getLogger("taskdaemon.run.output").setLevel(logging.WARNING)
    new_capture(captures).feed("stdout", b"quiet\n")
    assert [] == output_records


# -- the batch ---------------------------------------------------------------------------------


def test_the_marker_text_names_the_drops_and_the_bound() -> None:
    """The marker's message gives the lines and bytes dropped and the bound that dropped them."""
    batch = _batch(dropped_lines=7, dropped_bytes=70, limits=CaptureLimits(3, 30))
    expected = (
        "[taskdaemon] 7 output lines (70 bytes) dropped past the capture bound of "
        "3 lines / 30 bytes per stage"
    )
    assert expected == batch.marker_text()


def test_the_marker_text_without_limits_names_the_default_bound() -> None:
    """A marker batch without limits names the default bound."""
    batch = _batch(dropped_lines=1, dropped_bytes=2)
    expected = (
        "[taskdaemon] 1 output lines (2 bytes) dropped past the capture bound of "
        "10000 lines / 1048576 bytes per stage"
    )
    assert expected == batch.marker_text()


def test_a_batchs_lines_pair_each_text_with_the_read_time() -> None:
    """``lines`` gives every text with the batch's time, in order."""
    batch = _batch("a", "b", time_ns=42)
    assert ((42, "a"), (42, "b")) == batch.lines


# -- the capture -------------------------------------------------------------------------------


def test_a_batch_carries_the_execution_ids_and_the_traceparents_ids(
    sink: Sink, captures: list[OutputCapture]
) -> None:
    """Each batch names its run, pipeline, stage, instance, attempt, stream, bound, and the
    trace and span of the ``TRACEPARENT`` the command was given."""
    limits = CaptureLimits(100, 1000)
    new_capture(captures, limits, environment={"TRACEPARENT": TRACEPARENT}).feed("stderr", b"x\n")
    batch = sink.batches[0]
    expected = ("r" * 32, "p", "build", 2, 3, TRACEPARENT[3:35], TRACEPARENT[36:52], "stderr")
    assert (expected, limits) == (
        (
            batch.run_id,
            batch.pipeline,
            batch.stage,
            batch.instance,
            batch.attempt,
            batch.trace_id,
            batch.span_id,
            batch.stream,
        ),
        batch.limits,
    )


@pytest.mark.parametrize(
    "environment",
    [None, {}, {"TRACEPARENT": "not-a-traceparent"}, {"TRACEPARENT": TRACEPARENT.upper()}],
)
def test_a_batch_without_a_valid_traceparent_has_no_trace_ids(
    sink: Sink, captures: list[OutputCapture], environment: dict[str, str] | None
) -> None:
    """Without a well-formed ``TRACEPARENT`` the batches carry neither a trace nor a span id."""
    new_capture(captures, environment=environment).feed("stdout", b"x\n")
    assert (None, None) == (sink.batches[0].trace_id, sink.batches[0].span_id)


def test_the_marker_is_sent_once_on_stderr_with_what_was_dropped(
    sink: Sink, captures: list[OutputCapture]
) -> None:
    """Closing a capture that dropped lines sends one marker batch (on stderr) with the lines
    and bytes dropped, however often it is closed."""
    capture = new_capture(captures, CaptureLimits(max_lines=1, max_bytes=1000))
    capture.feed("stdout", b"kept\nfour\nfive5\n")
    capture.close()
    capture.close()
    markers = [
        (b.stream, b.dropped_lines, b.dropped_bytes, b.texts)
        for b in sink.batches
        if b.dropped_lines
    ]
    assert [("stderr", 2, 9, ())] == markers


def test_closing_a_capture_that_dropped_nothing_sends_no_marker(
    sink: Sink, captures: list[OutputCapture]
) -> None:
    """A capture within its bound ends with no marker batch."""
    capture = new_capture(captures)
    capture.feed("stdout", b"all\n")
    capture.close()
    assert [("all",)] == [tuple(b.texts) for b in sink.batches]


def test_a_capture_stopped_early_still_delivers_its_partial_lines(
    sink: Sink, captures: list[OutputCapture]
) -> None:
    """``read_pipes`` stopped before the pipes end still delivers each stream's unfinished
    last line, and closes every pipe end."""
    capture = new_capture(captures)
    capture.feed("stdout", b"out-partial")
    capture.feed("stderr", b"err-partial")
    stop = threading.Event()
    stop.set()
    capture.read_pipes(stop)
    assert ([("stdout", "out-partial"), ("stderr", "err-partial")], "err-partial") == (
        [(b.stream, text) for b in sink.batches for text in b.texts],
        capture.stderr_tail,
    )


def test_stderr_tail_keeps_the_last_lines_without_carriage_returns(
    sink: Sink, captures: list[OutputCapture]
) -> None:
    """``stderr_tail`` is the last ``STDERR_TAIL_LINES`` stderr lines, ``\\r`` dropped and bad
    UTF-8 replaced, whether they came within the bound or past it."""
    capture = new_capture(captures, CaptureLimits(max_lines=3, max_bytes=1000))
    lines = [f"e{n} X\r".encode() for n in range(30)] + [b"bad \xff"]
    capture.feed("stderr", b"\n".join(lines) + b"\n")
    expected = [f"e{n} X" for n in range(30 - STDERR_TAIL_LINES + 1, 30)] + ["bad \ufffd"]
    assert expected == capture.stderr_tail.split("\n")


# -- communicate -------------------------------------------------------------------------------


class StandInWriter:
    """A process's stdin whose ``drain`` or ``close`` raises what the test says."""

    def __init__(self, raises: BaseException | None = None, where: str = "") -> None:
        self.raises = raises
        self.where = where
        self.written = b""
        self.closed = False

    def write(self, data: bytes) -> None:
        self.written += data

    async def drain(self) -> None:
        if self.where == "drain" and self.raises is not None:
            raise self.raises

    def close(self) -> None:
        if self.where == "close" and self.raises is not None:
            raise self.raises
        self.closed = True

    async def wait_closed(self) -> None:
        if self.raises is not None:
            raise self.raises


class StandInProcess:
    """What ``communicate`` uses of an ``asyncio.subprocess.Process``: stdin and ``wait``."""

    def __init__(self, stdin: StandInWriter | None) -> None:
        self.stdin = stdin
        self.exited = asyncio.Event()
        self.exited.set()

    async def wait(self) -> int:
        await self.exited.wait()
        return 0


async def test_communicate_feeds_stdin_and_captures_stdout(
    sink: Sink, captures: list[OutputCapture]
) -> None:
    """``communicate`` writes stdin to the command and captures what it prints, whole and as
    lines."""
    capture = new_capture(captures)
    process = await asyncio.create_subprocess_exec(
        "cat",
        stdin=asyncio.subprocess.PIPE,
        stdout=capture.child_stdout,
        stderr=capture.child_stderr,
    )
    capture.spawned()
    await communicate(process, b"in 1\nin 2\n", capture)
    assert (b"in 1\nin 2\n", ["in 1", "in 2"]) == (bytes(capture.stdout), sink.lines())


async def test_communicate_with_a_process_without_stdin_writes_nothing(
    sink: Sink, captures: list[OutputCapture]
) -> None:
    """A process made without a stdin pipe is waited for; the data meant for it is ignored."""
    capture = new_capture(captures)
    capture.spawned()
    await communicate(StandInProcess(None), b"ignored", capture)  # type: ignore[arg-type]
    assert [] == sink.batches


@pytest.mark.parametrize("where", ["drain", "close"])
@pytest.mark.parametrize("error", [BrokenPipeError, ConnectionResetError])
async def test_a_command_that_does_not_read_its_stdin_is_not_an_error(
    sink: Sink, captures: list[OutputCapture], where: str, error: type[OSError]
) -> None:
    """A stdin pipe the command closed (broken, or reset) while it was written or closed is
    ignored, as ``Process.communicate`` does."""
    capture = new_capture(captures)
    capture.spawned()
    stdin = StandInWriter(error(), where)
    await communicate(StandInProcess(stdin), b"data", capture)  # type: ignore[arg-type]
    assert (b"data", where == "drain") == (stdin.written, stdin.closed)


class WatchedFuture(asyncio.futures._PyFuture):  # type: ignore[name-defined,misc]
    """A future that tells when its outcome is read: asyncio's Python future, whose outcome a
    task reads through ``result``, where it reads a C future's within C."""

    def __init__(self) -> None:
        super().__init__()
        self.read = asyncio.Event()

    def result(self) -> None:
        self.read.set()
        return super().result()

    def exception(self) -> BaseException | None:
        self.read.set()
        return super().exception()


async def test_the_error_of_a_stdin_the_command_left_unread_is_read(
    sink: Sink, captures: list[OutputCapture]
) -> None:
    """The broken pipe of a command that exits with its stdin unread is read where asyncio
    keeps it (the future its stdin's ``wait_closed`` awaits), so no Python logs it as a
    "Future exception was never retrieved" with a traceback (3.11.2 does, not 3.11.7)."""
    capture = new_capture(captures)
    process = await asyncio.create_subprocess_exec(  # it exits with most of the data unread
        "head",
        "-c",
        "1",
        stdin=asyncio.subprocess.PIPE,
        stdout=capture.child_stdout,
        stderr=capture.child_stderr,
    )
    capture.spawned()
    watched = WatchedFuture()
    process._protocol._stdin_closed = watched  # type: ignore[attr-defined]
    await communicate(process, b"x" * (1 << 20), capture)
    await asyncio.wait_for(watched.read.wait(), 10)
    assert isinstance(watched.exception(), BrokenPipeError | ConnectionResetError)


def test_a_reader_ending_after_its_loop_closed_raises_nothing(
    captures: list[OutputCapture], monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the stage is cancelled and its loop closed before the reader thread ends, the
    reader ends quietly (no exception in the thread)."""
    failures: list[BaseException | None] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: failures.append(args.exc_value))
    loop = asyncio.new_event_loop()
    entered: asyncio.Future[None] = loop.create_future()
    release = threading.Event()

    class Blocking:
        def write_output(self, batch: OutputBatch) -> None:
            loop.call_soon_threadsafe(entered.set_result, None)
            release.wait()

    blocking = Blocking()
    output_sinks.add_output_sink(blocking)
    try:
        capture = new_capture(captures)
        os.write(capture.child_stdout, b"line\n")
        process = StandInProcess(None)
        process.exited.clear()  # a command that runs until the stage is cancelled
        task = loop.create_task(communicate(process, b"", capture))  # type: ignore[arg-type]
        loop.run_until_complete(entered)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            loop.run_until_complete(task)
        loop.close()
        reader = next(t for t in threading.enumerate() if t.name == "taskdaemon-output")
        release.set()
        reader.join()
    finally:
        release.set()
        output_sinks.remove_output_sink(blocking)
        if not loop.is_closed():
            loop.close()
    assert [] == failures


async def test_the_reader_is_a_daemon_thread_named_for_the_output(
    captures: list[OutputCapture],
) -> None:
    """Sinks are called on a daemon thread called ``taskdaemon-output`` (a stuck command never
    keeps the process alive, and the thread guard knows it)."""
    seen: list[tuple[str, bool]] = []

    class Where:
        def write_output(self, batch: OutputBatch) -> None:
            thread = threading.current_thread()
            seen.append((thread.name, thread.daemon))

    where = Where()
    output_sinks.add_output_sink(where)
    try:
        capture = new_capture(captures)
        os.write(capture.child_stdout, b"line\n")
        capture.spawned()
        await communicate(StandInProcess(None), b"", capture)  # type: ignore[arg-type]
    finally:
        output_sinks.remove_output_sink(where)
    assert [("taskdaemon-output", True)] == seen


# -- a private key across reads ----------------------------------------------------------------

_BEGIN, _END = "-----BEGIN RSA PRIVATE KEY-----", "-----END RSA PRIVATE KEY-----"
_BODY = ("MIIBOgIBAAJBAKj34GkxFhD90vcNLYLInFEX6Ppy", "1tPf9Cnzj4p4WGeKLs1Pt8QuKUpRKfFLfRYC9AIK")


def test_a_private_key_cut_between_two_reads_is_delivered_in_one_batch(
    sink: Sink, captures: list[OutputCapture]
) -> None:
    """A key whose BEGIN line came in one read and its END line in the next is held back and
    delivered whole with the next read's lines; the lines before it are not held."""
    capture = new_capture(captures)
    capture.feed("stdout", f"before\n{_BEGIN}\n{_BODY[0]}\n".encode())
    capture.feed("stdout", f"{_BODY[1]}\n{_END}\nafter\n".encode())
    assert [("before",), (_BEGIN, *_BODY, _END, "after")] == [tuple(b.texts) for b in sink.batches]


def test_a_key_left_open_at_the_streams_end_is_delivered(
    sink: Sink, captures: list[OutputCapture]
) -> None:
    """A key the command never closes is delivered when its stream ends, at its read's time."""
    capture = new_capture(captures)
    capture.feed("stderr", f"{_BEGIN}\n{_BODY[0]}\n".encode())
    held_at = time.time_ns()
    stop = threading.Event()
    stop.set()
    capture.read_pipes(stop)
    batch = sink.batches[0]
    assert ((_BEGIN, _BODY[0]), "stderr", True) == (
        tuple(batch.texts),
        batch.stream,
        batch.time_ns <= held_at,
    )


def test_a_key_open_past_the_hold_bound_is_delivered_at_once(
    sink: Sink, captures: list[OutputCapture]
) -> None:
    """Lines of an open key past ``KEY_HOLD_CHARS`` are not held: the capture's memory stays
    bounded whatever a command prints after a BEGIN line."""
    capture = new_capture(captures)
    body = ["A" * 1000] * (stage_output.KEY_HOLD_CHARS // 1000 + 1)
    capture.feed("stdout", "\n".join([_BEGIN, *body, ""]).encode())
    assert [(_BEGIN, *body)] == [tuple(b.texts) for b in sink.batches]


def test_lines_after_a_closed_key_are_delivered_with_it(
    sink: Sink, captures: list[OutputCapture]
) -> None:
    """A read holding a whole key, or a BEGIN line followed by other text, is delivered at
    once: nothing is held unless a key is left open."""
    capture = new_capture(captures)
    capture.feed("stdout", f"{_BEGIN}\n{_BODY[0]}\n{_END}\n".encode())
    capture.feed("stdout", f"{_BEGIN}\nnot a key (really)\n".encode())
    assert [(_BEGIN, _BODY[0], _END), (_BEGIN, "not a key (really)")] == [
        tuple(b.texts) for b in sink.batches
    ]


@settings(max_examples=200, deadline=None)
@given(
    before=st.lists(st.sampled_from(["ok", "step 2 of 3.", "", "x = 1"]), max_size=3),
    after=st.lists(st.sampled_from(["done", "", "exit 0."]), max_size=3),
    cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=6),
)
def test_a_private_key_is_redacted_whole_wherever_the_reads_cut_it(
    before: list[str], after: list[str], cuts: list[int]
) -> None:
    """Whatever the pipe's reads cut (even inside a line), the batches a capture delivers,
    each redacted as the sinks do (``redact_lines``), hold no part of a private key's body."""
    data = "\n".join([*before, _BEGIN, *_BODY, _END, *after, ""]).encode()
    batches = captured_in_reads(data, cuts)
    shown = "\n".join(line for b in batches for line in redact_lines(list(b.texts)))
    assert [] == [part for part in _BODY if part[:12] in shown or part[-12:] in shown]
