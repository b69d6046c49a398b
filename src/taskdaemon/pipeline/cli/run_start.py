"""``taskdaemon run``'s start on record before its telemetry loads.

The stand-in monitor (``cli/deferred.py``) names the run before its first stage starts, and
telemetry loads once that stage has started: a process killed in between (``kill -9``, the OOM
killer) left nothing of its run. :class:`RunStart` writes the run's start to the embedded store
as the run is named, on the engine's thread, before its first stage (``tracking/run_start.py``
says what it writes, and what that costs the first stage), and its first stage attempts' starts
and ends until the span writer takes over (``stage``); hands the span id of that row to the
run span when the monitor starts it (``preset``); keeps the process's ``writers`` row alive
until the span writer takes it over (:func:`keep_alive`, called by the loading thread as the
load begins: ``tracking/early_heartbeat.py``); and, at the run's end (``end``), stops that and
takes the rows back when telemetry never stored the rest (the run then reads as not stored,
as ``run`` says at its end).

Only for the embedded store (a remote backend has no rows to write) and only when spans are
recorded (``span_context_foreseen``: not under ``OTEL_SDK_DISABLED``). Never raises: a start it
cannot write is written by the loaded writer, as before.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from taskdaemon.pipeline.events import StageFinished, StageStarted

if TYPE_CHECKING:
    from taskdaemon.pipeline.model import Pipeline

__all__ = ["RunStart", "keep_alive", "run_preset"]

_log = logging.getLogger("taskdaemon.run")

Preset = Callable[[str], contextlib.AbstractContextManager[None]]


class RunStart:
    """The run starts written to the store at ``path`` by this process (module docstring)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._written: list[str] = []  # run ids whose start is in the store
        self._span_ids: dict[str, str] = {}  # their run span's id, until the span takes it
        self._stages: dict[str, str] = {}  # task run id -> span id of an early stage row open
        self._stages_over = False  # no more early stage rows (``stage``)

    def stage(
        self, event: StageStarted | StageFinished, draw: Callable[[StageStarted], str | None]
    ) -> None:
        """Write the start of a stage attempt of a run written here, with the span id ``draw``
        gives its stage span, or the end of one written (``tracking/run_start``'s
        ``write_stage_start``); until the first start it writes no row for (the span writer
        took over, the bound: nothing more is asked then, nor any id drawn)."""
        try:
            if isinstance(event, StageStarted):
                if self._stages_over:
                    return
                from taskdaemon.pipeline.tracking.run_start import (  # noqa: PLC0415
                    stage_rows_left,
                    write_stage_start,
                )

                if not stage_rows_left(self.path, event.run_id):
                    self._stages_over = True
                elif (span_id := draw(event)) is not None and write_stage_start(
                    self.path, event, span_id
                ):
                    self._stages[event.task_run_id] = span_id
            elif (written := self._stages.pop(event.task_run_id, None)) is not None:
                from taskdaemon.pipeline.tracking.run_start import write_stage_end  # noqa: PLC0415

                write_stage_end(self.path, event, written)
        except Exception:  # monitoring never stops the pipeline
            _log.debug("run %s: no early stage row", event.run_id, exc_info=True)

    def write(self, run_id: str, pipeline: Pipeline, at: float | None) -> None:
        """Write run ``run_id``'s start (``at``: its start, epoch seconds)."""
        try:
            from taskdaemon.pipeline.tracking.run_start import write_run_start  # noqa: PLC0415

            start = time.time() if at is None else at
            span_id = write_run_start(self.path, run_id, pipeline, start)
        except Exception:  # monitoring never stops the pipeline
            _log.debug("run %s: its start was not written before telemetry", run_id, exc_info=True)
            return
        if span_id is not None:
            self._written.append(run_id)
            self._span_ids[run_id] = span_id

    @contextlib.contextmanager
    def preset(self, run_id: str, preset_trace: Preset, preset_span: Preset) -> Iterator[None]:
        """``preset_trace(run_id)``, and, when the run's start row was written, ``preset_span``
        of that row's span id: the one span that handling its ``RunStarted`` starts is the run
        span (``cli/deferred.py``), whose rows then replace that one."""
        span_id = self._span_ids.pop(run_id, None)
        with preset_trace(run_id), preset_span(span_id) if span_id else contextlib.nullcontext():
            yield

    def end(self, *, stored: bool) -> None:
        """The run is over: stop the heartbeat of the ``writers`` row if no writer took it over
        (waiting ``END_WAIT`` at most for its thread); unless ``stored``, take back the starts
        written: telemetry did not store the runs (module docstring)."""
        from taskdaemon.pipeline.tracking.early_heartbeat import END_WAIT  # noqa: PLC0415
        from taskdaemon.pipeline.tracking.run_start import (  # noqa: PLC0415
            close_stage_rows,
            stop_heartbeat,
            withdraw_run_start,
        )

        close_stage_rows(self.path)
        stop_heartbeat(self.path, timeout=END_WAIT)
        if not stored:
            for run_id in self._written:
                withdraw_run_start(self.path, run_id)
            self._written.clear()


def keep_alive(run_start: RunStart | None) -> None:
    """Renew the heartbeat of the ``writers`` row ``run_start`` writes with a run's start (none
    when None), until the span writer takes it over or the run ends (``tracking/run_start``).
    Never raises."""
    if run_start is None:
        return
    try:
        from taskdaemon.pipeline.tracking.run_start import keep_alive as renew  # noqa: PLC0415

        renew(run_start.path)
    except Exception:  # monitoring never stops the pipeline
        _log.debug("%s: the early writers row is not kept alive", run_start.path, exc_info=True)


def run_preset(run_start: RunStart | None, preset_trace: Preset, preset_span: Preset) -> Preset:
    """What the stand-in monitor starts a run span under whose id it drew (its ``preset``):
    ``preset_trace`` (``cli/run_ids.preset_trace_id``), with ``run_start``'s span id too."""
    if run_start is None:
        return preset_trace
    return functools.partial(run_start.preset, preset_trace=preset_trace, preset_span=preset_span)
