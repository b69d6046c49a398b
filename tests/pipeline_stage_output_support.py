"""A command's output as the tests of its capture see it: a sink that keeps every batch the
capture hands over (``conftest.sink`` registers one for a test), and a traceparent to hand a
command."""

from __future__ import annotations

import threading

from taskdaemon.pipeline.stage_output import OutputBatch

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
