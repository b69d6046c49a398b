"""A stage span's id chosen before the span starts, so a command's ``TRACEPARENT`` is known
without waiting for the monitor's queue.

A command stage's environment names its execution's span (``stage_environment``). That span is
started by the monitor's worker when it handles the stage's ``StageStarted``, queued behind the
records of the stages before it, and the environment used to settle the whole queue on the
engine's loop first: a previous stage's huge result (a handler returning a million keys, its
capture redacted and serialised) was paid for inside the next stage's attempt and timeout
(``echo`` with ``timeout: 5s`` timed out).

Now the first of the two to reach a stage's entry in :class:`ChosenSpanIds` decides: the
environment, asked on the engine's loop before the worker got to the stage, chooses the span
id (from the tracer's own id generator) and builds ``TRACEPARENT`` from the run span's trace
id, flags and state, which a child span of the default, parent-based samplers has; the worker
then starts the span with that id (:func:`span_id_chosen`). When the worker got there first
(it took the record in the moment between), the environment settles the queue as it always did;
when the record was handled already, it reads the started span under the queue's lock, a wait
for at most the record being handled. Every span, link, event and metric is what it was; only
who picked the span id's random bits changes. The flags and state ``TRACEPARENT`` carries are
the run span's: what the stage span gets from the SDK's parent-based samplers (the default).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Final

__all__ = ["STARTED", "ChosenSpanIds", "span_id_chosen"]

#: What the worker leaves in a stage's entry when it reached the stage first.
STARTED: Final = 0


class ChosenSpanIds:
    """Stage span ids by ``(run id, task run id)``: an id the environment chose, or
    :data:`STARTED`. ``dict.setdefault`` decides who came first, atomically under the GIL."""

    def __init__(self) -> None:
        self._ids: dict[tuple[str, str], int] = {}

    def claim(self, run_id: str, task_run_id: str, span_id: int) -> int:
        """``span_id`` when it is now the stage's, else what was there (:data:`STARTED`)."""
        return self._ids.setdefault((run_id, task_run_id), span_id)

    def drop(self, run_id: str, task_run_id: str) -> None:
        """Forget a stage's entry (its span ended)."""
        self._ids.pop((run_id, task_run_id), None)

    def drop_run(self, run_id: str) -> None:
        """Forget a run's entries (a stage whose environment was read after its span ended)."""
        for key in [key for key in self._ids if key[0] == run_id]:
            del self._ids[key]

    def __bool__(self) -> bool:
        return bool(self._ids)


class _Chosen:
    """An id generator that answers ``span_id`` once, on the thread that set it."""

    def __init__(self, inner: Any, span_id: int) -> None:
        self.inner = inner
        self.span_id = span_id
        self.thread = threading.get_ident()

    def generate_span_id(self) -> int:
        span_id = self.span_id
        if span_id and self.thread == threading.get_ident():
            self.span_id = 0
            return span_id
        return int(self.inner.generate_span_id())

    def generate_trace_id(self) -> int:
        return int(self.inner.generate_trace_id())


@contextmanager
def span_id_chosen(tracer: Any, span_id: int) -> Iterator[None]:
    """While in the block, the SDK ``tracer`` gives its next span started on this thread the id
    ``span_id``. The provider shares the tracer between its users: any other thread's span, or
    a second span, gets an id of the tracer's own generator."""
    inner = getattr(tracer, "id_generator", None)
    if inner is None:  # not the SDK's tracer: its spans have no id of ours to take
        yield
        return
    tracer.id_generator = _Chosen(inner, span_id)
    try:
        yield
    finally:
        tracer.id_generator = inner
