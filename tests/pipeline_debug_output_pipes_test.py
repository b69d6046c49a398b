"""The cheap output capture: large pipes read at a cadence without stalling the command, lines
decoded per chunk (the same records as line by line), batches stored by one statement, and the
edges: a pipe filled faster than the cadence, a partial last line, both streams busy, a stage
cancelled mid-output, a refused pipe enlargement."""

from __future__ import annotations

import asyncio
import fcntl
import os
import random
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from pipeline_stage_output_support import TRACEPARENT, Sink
from taskdaemon.pipeline import output_pipes, output_sinks
from taskdaemon.pipeline.command_loop import _parse_stdout, _sample_peaks
from taskdaemon.pipeline.log_rows import LogRow
from taskdaemon.pipeline.loops import CommandFailedError, StageContext, command_handler
from taskdaemon.pipeline.redaction import redact_lines, redact_text
from taskdaemon.pipeline.stage_output import CaptureLimits, OutputBatch, OutputCapture
from taskdaemon.pipeline.tracking import log_writer
from taskdaemon.pipeline.tracking.log_read import read_logs, run_log_records
from taskdaemon.pipeline.tracking.log_writer import SqliteLogWriter
from taskdaemon.pipeline.web._logs import stage_log_tail

RUN = "c" * 32


def _ctx(command: str) -> StageContext:
    return StageContext(
        run_id=RUN,
        pipeline="p",
        stage="build",
        loop="command",
        instance=0,
        attempt=1,
        inputs={},
        publish=lambda *a: None,
        report_process=lambda pid: None,
        environment={"TRACEPARENT": TRACEPARENT},
        command=command,
    )


def _open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


# -- the pipes and their reader --------------------------------------------------------------


def test_pipes_are_enlarged_when_the_system_allows_it() -> None:
    """A capture's pipes hold 256 KiB where Linux lets an unprivileged process ask for it."""
    limit = int(Path("/proc/sys/fs/pipe-max-size").read_text())
    read_end, write_end, capacity = output_pipes.make_pipe()
    try:
        assert capacity == fcntl.fcntl(write_end, fcntl.F_GETPIPE_SZ)
        assert capacity == min(output_pipes.PIPE_BYTES, max(limit, 65_536))
    finally:
        os.close(read_end)
        os.close(write_end)


async def test_a_refused_enlargement_keeps_the_pipe_and_captures_everything(
    sink: Sink, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the kernel refuses a larger pipe (the user's pipe quota spent), the capture keeps
    the pipe's own size, says nothing, and still reads every byte the command wrote."""
    real = fcntl.fcntl

    def refuse(fd: int, command: int, arg: int = 0) -> object:
        if command == fcntl.F_SETPIPE_SZ:
            raise PermissionError(1, "Operation not permitted")
        return real(fd, command, arg)

    monkeypatch.setattr(fcntl, "fcntl", refuse)
    output_sinks.set_capture_limits(CaptureLimits(1_000_000, 1 << 30))
    result = await command_handler()(_ctx("seq 1 200000"))
    expected = [str(n) for n in range(1, 200_001)]
    assert expected == result["stdout"].split("\n")
    assert expected == sink.lines("stdout")


class _Sleeps(threading.Event):
    """A stop event that records how long the reader asked to sleep."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: list[float] = []

    def wait(self, timeout: float | None = None) -> bool:
        self.asked.append(timeout or 0.0)
        return super().wait(0)  # the writer below never pauses: no need to really sleep


def test_a_pipe_filled_faster_than_the_cadence_is_read_again_at_once() -> None:
    """A writer filling a small pipe faster than the reader's cadence is never left waiting a
    whole cadence per pipeful: reads that return a full pipe are followed by another read at
    once, and shorter ones by a sleep scaled to the rate just seen."""
    read_end, write_end = os.pipe()
    try:
        capacity = fcntl.fcntl(write_end, fcntl.F_SETPIPE_SZ, 65_536)
    except OSError:  # the user's pipe quota is spent: the pipe is smaller still
        capacity = fcntl.fcntl(write_end, fcntl.F_GETPIPE_SZ)
    total = 64 * capacity  # 64 pipefuls: 64 cadences, 1.3 s, if each read were followed by one
    data = bytes(random.Random(3).randrange(256) for _ in range(4096)) * (total // 4096)
    received = bytearray()

    def write() -> None:
        with os.fdopen(write_end, "wb", buffering=0) as pipe:
            view = memoryview(data)
            while view:
                view = view[pipe.write(view) :]

    writer = threading.Thread(target=write)
    writer.start()
    stop = _Sleeps()
    try:
        output_pipes.drain(
            {"stdout": (read_end, capacity)},
            lambda _, chunk: received.extend(chunk),
            lambda _: None,
            stop,
        )
    finally:
        writer.join()
        os.close(read_end)
    assert data == bytes(received)
    assert sum(stop.asked) < 16 * output_pipes.CADENCE_SECONDS


async def test_both_streams_busy_keep_their_own_order_and_the_stderr_tail(sink: Sink) -> None:
    """A command writing to stdout and stderr in turn, fast, has every line of each stream
    captured in its order, and its failure shows stderr's last 20 lines."""
    output_sinks.set_capture_limits(CaptureLimits(100_000, 1 << 30))
    script = (
        'i=0; while [ $i -lt 5000 ]; do echo "out $i"; echo "err $i" >&2; i=$((i+1)); done; exit 3'
    )
    with pytest.raises(CommandFailedError) as caught:
        await command_handler()(_ctx(script))
    assert [f"out {i}" for i in range(5000)] == sink.lines("stdout")
    assert [f"err {i}" for i in range(5000)] == sink.lines("stderr")
    assert "\n".join(f"err {i}" for i in range(4980, 5000)) == caught.value.stderr_tail


async def test_a_partial_last_line_is_captured_after_a_large_output(sink: Sink) -> None:
    """The last line, with no newline after it, is a record of its own once the command
    ends, after every complete line, and is the last line of a failure's stderr tail."""
    output_sinks.set_capture_limits(CaptureLimits(100_000, 1 << 30))
    with pytest.raises(CommandFailedError) as caught:
        await command_handler()(
            _ctx("seq 1 30000; printf 'no newline'; printf 'x\\ny' >&2; exit 1")
        )
    assert [*(str(n) for n in range(1, 30_001)), "no newline"] == sink.lines("stdout")
    assert ["x", "y"] == sink.lines("stderr")
    assert "x\ny" == caught.value.stderr_tail


async def test_a_stage_cancelled_mid_output_ends_its_capture(sink: Sink) -> None:
    """Cancelling a stage whose command is still printing stops the reader, closes every pipe
    and leaves only whole lines captured, with the drop marker when the bound was passed."""
    output_sinks.set_capture_limits(CaptureLimits(1000, 1 << 30))
    before = _open_fds()
    task = asyncio.ensure_future(command_handler(kill_grace=5.0)(_ctx("yes 'a line'")))
    arrived = await asyncio.to_thread(sink.arrived.wait, 30)
    assert arrived
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    for thread in threading.enumerate():  # told to stop, the reader ends within 0.1 s
        if thread.name == "taskdaemon-output":
            thread.join(10)
            assert not thread.is_alive()
    assert before == _open_fds()
    assert ["a line"] * 1000 == sink.lines()
    marker = sink.batches[-1]  # a cut last line counts as one, with the bytes it had
    assert marker.dropped_lines > 0
    assert 6 * (marker.dropped_lines - 1) <= marker.dropped_bytes <= 6 * marker.dropped_lines


class _BlockedSample:
    """A process-tree sample that runs until the test releases it."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.release = threading.Event()
        self.finished = threading.Event()

    def sample(self) -> None:
        self.started.set()
        self.release.wait(30)
        self.finished.set()


async def test_a_cancelled_sampler_ends_only_after_its_sample_in_progress() -> None:
    """Cancelling a stage's process-tree sampler while a sample runs on a worker thread waits
    for that sample, so no thread still reads /proc (the cause of the flaky fd check above)."""
    peaks = _BlockedSample()
    task = asyncio.ensure_future(_sample_peaks(peaks.sample, 0.01))
    try:
        assert await asyncio.to_thread(peaks.started.wait, 30)
        task.cancel()
        for _ in range(20):  # a cancellation of a task that does not wait is seen in one step
            await asyncio.sleep(0)
        assert not task.done()
    finally:
        peaks.release.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert peaks.finished.is_set()


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        (b"hello\nworld\n\n", {"stdout": "hello\nworld", "exit_code": 0}),
        (b"x" + b"\n" * 100, {"stdout": "x", "exit_code": 0}),
        (b"\n" * 100, {"stdout": "", "exit_code": 0}),
        (b"a\r\n", {"stdout": "a\r", "exit_code": 0}),
        (b"caf\xc3\n\n", {"stdout": "caf\ufffd", "exit_code": 0}),
        ('\u00a0\n {"a": 1}\n\u2028'.encode(), {"a": 1}),
        (b'{"a": 1} and text\n', {"stdout": '{"a": 1} and text', "exit_code": 0}),
        (b"  [1, 2]\n", {"stdout": "  [1, 2]", "exit_code": 0}),
    ],
)
def test_stdout_becomes_the_result_decoded_once(output: bytes, expected: object) -> None:
    """A command's stdout, decoded from a view without its trailing newlines (however many), is
    the text a whole decode and strip would give, or the JSON object it prints."""
    assert expected == _parse_stdout(bytearray(output))


# -- lines decoded per chunk ------------------------------------------------------------------


def _capture(limits: CaptureLimits) -> OutputCapture:
    return OutputCapture(run_id=RUN, pipeline="p", stage="s", instance=0, attempt=1, limits=limits)


def test_chunk_decoding_gives_the_records_of_line_by_line_decoding(
    sink: Sink, monkeypatch: pytest.MonkeyPatch
) -> None:
    """For output cut anywhere (inside UTF-8 sequences, between \\r and \\n, inside long
    lines), with invalid bytes and bounds falling anywhere, the chunk path stores the same
    lines, counts the same drops and keeps the same stderr tail as the line-by-line path."""
    rng = random.Random(11)
    parts = [b"plain", "é€😀".encode(), b"\xff\xfe", b"\xe2\x82", b"cr\r", b"", b"\r"]
    lines = []
    for _ in range(3000):
        if rng.random() < 0.02:
            lines.append(rng.choice([b"x", "€".encode()]) * rng.randint(4000, 40_000))
        else:
            lines.append(b" ".join(rng.choice(parts) for _ in range(rng.randint(0, 6))))
    data = b"\n".join(lines)
    cuts = sorted(rng.sample(range(1, len(data)), 300))
    chunks = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]
    bounds = (
        CaptureLimits(1 << 30, 1 << 40),
        CaptureLimits(700, 1 << 40),
        CaptureLimits(1 << 30, 400_000),
    )
    for limits in bounds:
        seen = []
        for chunked in (True, False):
            if not chunked:
                monkeypatch.setattr(OutputCapture, "_feed_lines", lambda *a: False)
            sink.batches.clear()
            capture = _capture(limits)
            tails = []
            for chunk in chunks:
                capture.feed("stderr", chunk)
                tails.append(capture.stderr_tail)
            capture.abandon()
            for stream in ("stdout", "stderr"):  # what the reader does at the pipes' ends
                capture._finish(stream)
            seen.append(
                (
                    sink.lines(),
                    capture.captured_lines,
                    capture.dropped_lines,
                    capture.dropped_bytes,
                    capture.stderr_tail,
                    tails,
                )
            )
            monkeypatch.undo()
        assert seen[0] == seen[1]
        assert len(seen[0][0]) > 300


# -- storing batches ---------------------------------------------------------------------------

AWKWARD = [
    "plain",
    "nul \x00 inside",
    "é€ and 😀",
    'quotes " and \\ backslash',
    "\x1b[31mcolour\x1b[0m\ttab",
    "",
    "token=abcdefghijklmnop1234",
    "Authorization: Bearer abcdef0123456789abcdef",
    "\u2028 separator",
]


def _batch(texts: list[str], stream: str = "stdout") -> OutputBatch:
    return OutputBatch(RUN, "p", "s", 0, 1, RUN, "b7ad6b7169203331", stream, texts, time.time_ns())


def _log_row(body: str) -> LogRow:
    return LogRow(RUN, time.time_ns(), 9, "INFO", "p", "s", 0, 1, None, "run", body, {})


def test_stored_lines_are_the_redacted_texts_in_order(tmp_path: Path) -> None:
    """Batches stored as one row each come back line for line, in order, redacted, with their
    stream, whatever the characters (a NUL, an empty line, a Unicode line separator)."""
    db = tmp_path / "spans.db"
    writer = SqliteLogWriter(db)
    many = [f"line {i}" for i in range(5000)]
    try:
        writer.write_output(_batch(many))
        writer.write_output(_batch(AWKWARD, "stderr"))
        writer.write_output(_batch(AWKWARD[:1] + AWKWARD[2:]))
    finally:
        writer.close()
    rows = run_log_records(db, RUN)
    expected = [*many, *AWKWARD, *AWKWARD[:1], *AWKWARD[2:]]
    assert [redact_text(text) for text in expected] == [row.body for row in rows]
    assert "abcdefghijklmnop1234" not in repr([row.body for row in rows])
    streams = [row.attributes["log.iostream"] for row in rows]
    assert ["stdout"] * 5000 + ["stderr"] * 9 + ["stdout"] * 8 == streams
    assert writer.written == len(expected)


def test_a_batch_over_the_pending_bound_is_cut_and_counted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A writer with room for fewer rows than a batch holds keeps the batch's first lines and
    counts the others as dropped."""
    monkeypatch.setattr(log_writer, "MAX_PENDING", 5)
    db = tmp_path / "spans.db"
    writer = SqliteLogWriter(db, linger=60.0)
    try:
        writer.write_output(_batch([str(n) for n in range(8)]))
        assert writer.flush(10)
    finally:
        writer.close()
    assert ["0", "1", "2", "3", "4"] == [row.body for row in run_log_records(db, RUN)]
    assert (5, 3) == (writer.written, writer.dropped)


def test_redacting_many_lines_redacts_each_line_with_a_secret() -> None:
    """``redact_lines`` gives what ``redact_text`` gives line by line, and the list itself
    when no line holds a secret."""
    clean = [f"compiling module {n}" for n in range(100)]
    assert redact_lines(clean) is clean
    mixed = [*clean, *AWKWARD]
    assert [redact_text(line) for line in mixed] == redact_lines(mixed)
    assert redact_lines(mixed) != mixed


def test_a_batch_is_one_row_read_back_as_one_record_per_line(tmp_path: Path) -> None:
    """A batch is stored as one row whose lines come back as records with consecutive ids of
    their own, interleaved in order with other rows, so ``after`` and ``limit`` cut anywhere,
    inside a batch too, as they would cut rows of one line each."""
    db = tmp_path / "spans.db"
    writer = SqliteLogWriter(db)
    try:
        writer.write_output(_batch(["a1", "a2", "a3"]))
        writer.write_row(_log_row("between"))
        writer.write_output(_batch(["b1", "", "b3", "b4"], "stderr"))
        writer.write_output(_batch(["c1"]))
    finally:
        writer.close()
    with sqlite3.connect(db) as conn:
        assert 4 == conn.execute("SELECT count(*) FROM logs").fetchone()[0]
    rows = read_logs(db, RUN)
    assert ["a1", "a2", "a3", "between", "b1", "", "b3", "b4", "c1"] == [r.body for r in rows]
    assert list(range(1, 10)) == [row.id for row in rows]
    assert [{"log.iostream": "stderr"}] * 4 == [row.attributes for row in rows[4:8]]
    for after in range(10):
        for limit in (1, 2, 5, None):
            expected = [row for row in rows if row.id > after][:limit]
            assert expected == read_logs(db, RUN, after=after, limit=limit)


def test_the_web_tail_counts_and_shows_the_lines_of_batch_rows(tmp_path: Path) -> None:
    """The stage panel's tail counts each line of a batch row as a record and shows the last
    ``TAIL`` lines, a batch cut where the tail begins."""
    db = tmp_path / "spans.db"
    writer = SqliteLogWriter(db)
    try:
        writer.write_output(_batch([f"line {n}" for n in range(250)]))
        writer.write_row(_log_row("done"))
    finally:
        writer.close()
    tail = stage_log_tail(db, RUN, "s")
    assert (251, 51) == (tail["total"], tail["hidden"])
    expected = [*(f"line {n}" for n in range(51, 250)), "done"]
    assert expected == [record["body"] for record in tail["records"]]
    assert list(range(52, 252)) == [record["id"] for record in tail["records"]]


def test_a_row_whose_body_does_not_split_into_its_lines_is_kept_whole(tmp_path: Path) -> None:
    """An output row announcing more lines than its body holds (a damaged or foreign file) is
    read as the one record it is, never split at the wrong places."""
    db = tmp_path / "spans.db"
    writer = SqliteLogWriter(db)
    try:
        writer.write_output(_batch(["x", "y"]))
    finally:
        writer.close()
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE logs SET body = 'x'")
    assert [(2, "x")] == [(row.id, row.body) for row in read_logs(db, RUN)]
