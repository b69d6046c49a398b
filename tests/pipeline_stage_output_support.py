"""A command's output as the tests of its capture see it: a sink that keeps every batch the
capture hands over (``conftest.sink`` registers one for a test), a traceparent to hand a
command, a capture made for a test (``conftest.captures`` closes it), and a capture fed a
command's output in reads cut anywhere."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterable
from typing import Any

from taskdaemon.pipeline import output_sinks
from taskdaemon.pipeline.stage_output import CaptureLimits, OutputBatch, OutputCapture

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


class Sink:
    """An output sink keeping every batch, and telling a waiting test when lines arrived."""

    def __init__(self) -> None:
        self.batches: list[OutputBatch] = []
        self.arrived = threading.Event()

    def write_output(self, batch: OutputBatch) -> None:
        self.batches.append(batch)
        if batch.texts:
            self.arrived.set()

    def lines(self, stream: str | None = None) -> list[str]:
        """The texts of every batch (of ``stream`` alone when given), in order."""
        return [
            text
            for batch in self.batches
            if stream is None or batch.stream == stream
            for text in batch.texts
        ]


def captured_in_reads(data: bytes, cuts: Iterable[int]) -> list[OutputBatch]:
    """The batches a capture (default limits) delivers of ``data`` read in pieces cut at
    ``cuts`` (each at most ``len(data)``), its pipes then ended as at a stage's end."""
    sink = Sink()
    output_sinks.add_output_sink(sink)
    capture = OutputCapture(
        run_id="r", pipeline="p", stage="s", instance=0, attempt=1, limits=CaptureLimits()
    )
    try:
        edges = [0, *sorted({min(cut, len(data)) for cut in cuts}), len(data)]
        for start, end in itertools.pairwise(edges):
            capture.feed("stdout", data[start:end])
        stop = threading.Event()
        stop.set()
        capture.read_pipes(stop)
    finally:
        output_sinks.remove_output_sink(sink)
        capture.abandon()
    return sink.batches


def new_capture(
    made: list[OutputCapture], limits: CaptureLimits | None = None, **ids: Any
) -> OutputCapture:
    """A capture of execution ``build#2`` attempt 3 of run ``rrr…`` (``ids`` replacing any of
    them), added to ``made`` (``conftest.captures``) so that its pipes are closed."""
    fields: dict[str, Any] = {
        "run_id": "r" * 32,
        "pipeline": "p",
        "stage": "build",
        "instance": 2,
        "attempt": 3,
    }
    fields.update(ids)
    capture = OutputCapture(**fields, limits=limits)
    made.append(capture)
    return capture
