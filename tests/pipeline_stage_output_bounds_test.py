"""``stage_output``'s bounds, line by line: a capture's byte and line bounds met exactly, passed
by a line, a piece or an empty line, on stdout and stderr, and what the marker counts."""

from __future__ import annotations

import os
import threading
import time

import pytest

from pipeline_stage_output_support import Sink, new_capture
from taskdaemon.pipeline.stage_output import (
    CUT_LOOK_BYTES,
    MAX_LINE_BYTES,
    CaptureLimits,
    OutputCapture,
)


def _finish(capture: OutputCapture) -> None:
    """End the capture as a stage cancelled before its pipes ended: partial lines delivered."""
    stop = threading.Event()
    stop.set()
    capture.read_pipes(stop)


def test_a_last_line_that_fills_both_bounds_exactly_is_kept(
    sink: Sink, captures: list[OutputCapture]
) -> None:
    """A line that takes the last line and the last byte the bound allows is captured."""
    capture = new_capture(captures, CaptureLimits(max_lines=2, max_bytes=2))
    capture.feed("stderr", b"a\n")
    capture.feed("stderr", b"b")
    _finish(capture)
    assert (["a", "b"], 0) == (sink.lines(), capture.dropped_lines)


def test_past_the_byte_bound_even_an_empty_line_is_dropped(
    sink: Sink, captures: list[OutputCapture]
) -> None:
    """Once the byte bound is spent, an empty line is dropped like any other, with the
    pieces of a long line read in the same chunk."""
    capture = new_capture(captures, CaptureLimits(max_lines=10, max_bytes=3))
    capture.feed("stderr", b"abc\n")
    capture.feed("stderr", b"\n" + b"x" * (MAX_LINE_BYTES + CUT_LOOK_BYTES + 1))
    assert (["abc"], 2, MAX_LINE_BYTES) == (
        sink.lines(),
        capture.dropped_lines,
        capture.dropped_bytes,
    )


def test_a_line_of_exactly_max_line_bytes_is_one_line(
    sink: Sink, captures: list[OutputCapture]
) -> None:
    """A line of ``MAX_LINE_BYTES`` bytes that arrives without its newline is kept whole and
    becomes one line when the newline comes, not a piece and an empty line."""
    capture = new_capture(captures)
    capture.feed("stdout", b"y" * MAX_LINE_BYTES)
    capture.feed("stdout", b"\n")
    assert [MAX_LINE_BYTES] == [len(text) for text in sink.lines()]


def test_stderr_split_line_by_line_keeps_its_tail_as_written(
    sink: Sink, captures: list[OutputCapture]
) -> None:
    """Where the byte bound falls inside a chunk, stderr's tail still keeps each line as
    written, only a trailing ``\\r`` dropped."""
    capture = new_capture(captures, CaptureLimits(max_lines=100, max_bytes=5))
    capture.feed("stderr", b"abcdef\r\nfix XX\n")
    assert ("abcdef\nfix XX", 2) == (capture.stderr_tail, capture.dropped_lines)


def test_each_batch_is_stamped_with_the_time_its_lines_were_taken(
    sink: Sink, captures: list[OutputCapture]
) -> None:
    """A batch of complete lines and the batch of a last line without newline each carry the
    time they were taken."""
    capture = new_capture(captures)
    before = time.time_ns()
    capture.feed("stdout", b"line\nunfinished")
    _finish(capture)
    after = time.time_ns()
    assert [("line",), ("unfinished",)] == [tuple(b.texts) for b in sink.batches]
    assert [True, True] == [before <= batch.time_ns <= after for batch in sink.batches]


@pytest.mark.parametrize("stream", ["stdout", "stderr"])
def test_the_last_line_a_bound_allows_is_kept_from_a_chunk(
    sink: Sink, captures: list[OutputCapture], stream: str
) -> None:
    """A chunk whose line is the last line and byte the bound allows is captured."""
    capture = new_capture(captures, CaptureLimits(max_lines=3, max_bytes=3))
    for chunk in (b"a\n", b"b\n", b"c\n"):
        capture.feed(stream, chunk)
    assert (["a", "b", "c"], 3, 0) == (sink.lines(), capture.captured_lines, capture.dropped_lines)


def test_past_a_spent_byte_bound_empty_lines_are_dropped(
    sink: Sink, captures: list[OutputCapture]
) -> None:
    """Once the byte bound is spent, empty lines are dropped too, while lines remain."""
    capture = new_capture(captures, CaptureLimits(max_lines=10, max_bytes=3))
    capture.feed("stderr", b"abc\n")
    capture.feed("stderr", b"\n\n")
    assert (["abc"], 1, 2) == (sink.lines(), capture.captured_lines, capture.dropped_lines)


def test_a_long_line_past_the_line_bound_is_counted_in_pieces(
    sink: Sink, captures: list[OutputCapture]
) -> None:
    """A line longer than ``MAX_LINE_BYTES`` (spaces in it or not) past the line bound is
    dropped as the pieces it would have been cut into."""
    capture = new_capture(captures, CaptureLimits(max_lines=1, max_bytes=1 << 30))
    capture.feed("stderr", b"a\n" + b"x " * MAX_LINE_BYTES + b"\n")
    assert (["a"], 2, 2 * MAX_LINE_BYTES) == (
        sink.lines(),
        capture.dropped_lines,
        capture.dropped_bytes,
    )


def test_an_end_closed_elsewhere_does_not_stop_the_others_closing(
    captures: list[OutputCapture],
) -> None:
    """``spawned`` ignores a write end something else closed already and still closes the
    other one."""
    capture = new_capture(captures)
    stdout_end, stderr_end = capture.child_stdout, capture.child_stderr
    os.close(stdout_end)
    capture.spawned()
    with pytest.raises(OSError, match="Bad file descriptor"):
        os.fstat(stderr_end)


def test_stdout_past_the_bound_counts_a_line_of_exactly_max_line_bytes_once(
    sink: Sink, captures: list[OutputCapture]
) -> None:
    """Past the bound, a stdout line of ``MAX_LINE_BYTES`` whose newline comes in the next
    chunk is one dropped line, not a piece and an empty line."""
    capture = new_capture(captures, CaptureLimits(max_lines=0, max_bytes=0))
    capture.feed("stdout", b"y" * MAX_LINE_BYTES)
    capture.feed("stdout", b"\n")
    assert (1, MAX_LINE_BYTES) == (capture.dropped_lines, capture.dropped_bytes)


def test_the_marker_counts_the_pieces_of_a_long_stdout_line_past_the_bound(
    sink: Sink, captures: list[OutputCapture]
) -> None:
    """A stdout line with no newline past the bound is dropped in whole pieces, and the marker
    gives their number."""
    capture = new_capture(captures, CaptureLimits(max_lines=0, max_bytes=0))
    capture.feed("stdout", b"z" * (2 * MAX_LINE_BYTES + CUT_LOOK_BYTES + 1))
    capture.close()
    expected = (
        f"[taskdaemon] 2 output lines ({2 * MAX_LINE_BYTES} bytes) dropped past the capture "
        "bound of 0 lines / 0 bytes per stage"
    )
    assert [expected] == [batch.marker_text() for batch in sink.batches]
