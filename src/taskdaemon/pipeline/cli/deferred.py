"""``taskdaemon run`` starts its pipeline while telemetry loads on a thread.

Loading the OTel SDK, the span store and the monitor takes longer than everything else
``run`` does before its first stage starts (``benchmarks/README.md``, "CLI start-up"). Without
``--serve``, and but for progress lines at ``--log-level debug`` or ``trace`` (whose records
go beside them: ``cli/run_progress.py``), ``run`` therefore configures the console logging at
once and builds the rest (``cli/monitoring.build_monitor``) on a thread, once the run's first
stage has started (``cli/deferred_start.py``). :class:`DeferredMonitor` stands in for the
monitor meanwhile.

* **When loading begins.** A thread shares the interpreter (the GIL) with the run, so loading
  beside the engine's start would still delay the first stage by its share. The thread
  therefore waits until the first stage has started (the loop's turn after ``StageStarted``,
  so the stage's own start goes first), until something needs the monitor (below, and the
  end of the run), or at most ``deferred_start.LOAD_DELAY`` (a run whose first stage waits for
  an approval or an event still reaches the span store at once).

* **Nothing is lost.** Engine events are kept, in order, and handed to the monitor, before any
  later one, as soon as it exists; span times come from the events, so the spans are the ones
  an early monitor would have made. ``RunFinished`` waits for the monitor (a finished run's
  telemetry is complete when the run returns, as always), and so does an event that finds
  100,000 kept, or a published event that finds ``MAX_KEPT_PAYLOADS`` kept with a payload:
  memory stays bounded, also when a stage publishes large payloads faster than telemetry
  loads (docs/span-store.md, "Payloads waiting to be recorded").
* **The run is on record before its first stage**: its start is stored (``cli/run_start.py``).
* **The run id is still the trace id.** Asked for a run id before the monitor exists, the
  stand-in draws one and the run span is later started with it as its trace id
  (``cli/run_ids.py``).
* **A stage's ``TRACEPARENT`` is answered at once** (``stage_environment``: read by command
  stages before they spawn, and by ``logs.ContextFilter`` for each record a stage logs, so
  every record carries its span): its trace id is the run id drawn here, its span id is drawn
  here too and the stage span is later started with it (``cli/run_ids.py``: the preset is set
  just around that one ``StageStarted``'s handling, and the stage span is the one span that
  handling starts), its flags ``03`` (sampled, random trace id), as the monitor's own answer
  would be. Only when that answer is foreseen (``span_context_foreseen``: the SDK on; the
  provider samples every span) and the run id was drawn here; else, and once the monitor has
  begun taking the kept events, it is the monitor's answer, which waits for it. So a command stage
  spawns, and a stage logs, without waiting for telemetry. (Should loading then fail, the
  ``TRACEPARENT`` handed out names a span that is never recorded, as every span of that run.)
* **What needs the spans waits for them**: ``flush`` and a debug dump (the payload capture,
  which a dump reads, is made at once), a flush of the run-log slot (the debugger's ``logs``
  reads the store after it: below), and a ``TRACEPARENT`` not foreseen (above).
* **Run logs land in their place**: the store's log handler and writer are attached to a
  ``cli/pending_logs.PendingLogHandler``, installed on the root logger and among the output sinks
  (``stage_output``) at once. A record that belongs to a run, or a command's output batch,
  offered to it before the monitor has every kept event is kept among those events, in
  arrival order (up to 10,000; more are counted and dropped), and written when the handover
  reaches it: after the rows the run log makes of the events before it, before those of the
  events after it, a batch with its stream as the writer takes it from a command. So the store
  gets the rows in the order an early monitor would have written them. Decision: the order is
  made here, by the writer's input, not by ``taskdaemon logs`` sorting on (time, row id):
  ``logs --follow`` and the web tail read rows after the last id they saw, so a row
  written late with an early time would be missed or printed out of place there.
* **Records nobody will want are not built.** The engine asks before it builds a
  ``StageWaiting`` or ``StageQueued`` (``events.OPTIONAL_RECORDS``). The monitor declines them
  when its one hook, the run log, writes nothing for them at its loggers' levels; those levels
  are set before the run starts, so the stand-in gives the same answer
  (``run_log_scope.wants``) without waiting for the monitor. Should the monitor it gets want a
  kind it declined, it says so once.
* **Monitoring never stops the pipeline**: if loading fails, one warning says why, the run goes
  on, and the end says how many engine events were not recorded. A load that never ends (an
  import left blocked: a signal raised in the main thread inside importlib's unprotected window
  can leave the global import lock held for ever; a hung network file system) is abandoned
  once a wait for it has lasted ``LOAD_TIMEOUTS`` times ``TASKDAEMON_EXPORT_TIMEOUT`` (60 s by
  default: a load takes well under a second, tens on a loaded machine): every wait returns,
  the kept events count as lost, and the one warning at the end says the load did not finish
  in time. A monitor that loads after that is closed unused (``started`` refuses it), never
  handed events half-way. The bound is on the load only: a handover under way is CPU work
  that ends, and is waited for. The signals the CLI raises as exceptions stay out of that
  window (``cli/sigterm.py``); the bound holds whatever else leaves the load stuck.

One caveat, from the OTel API: spans a stage handler starts *without* a parent from its
``TRACEPARENT`` before the global tracer provider is set (the first few tens of milliseconds)
are non-recording, as with any provider set after use.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
from collections.abc import Callable, Mapping
from logging import LogRecord
from typing import TYPE_CHECKING, Any, ClassVar

from taskdaemon.pipeline.cli.pending_logs import PendingLogHandler
from taskdaemon.pipeline.cli.run_start import RunStart
from taskdaemon.pipeline.events import (
    OPTIONAL_RECORDS,
    EngineEvent,
    EventPublished,
    RunFinished,
    RunStarted,
    StageFinished,
    StageStarted,
)
from taskdaemon.pipeline.model import Pipeline
from taskdaemon.pipeline.payloads import PayloadCapture
from taskdaemon.pipeline.settings import Settings

if TYPE_CHECKING:
    from taskdaemon.pipeline.monitor import PipelineMonitor
    from taskdaemon.pipeline.output_sinks import OutputBatch, OutputSink

__all__ = ["DeferredMonitor", "span_context_foreseen"]

_log = logging.getLogger("taskdaemon.run")

#: Engine events kept while the monitor loads; one more waits for it.
MAX_KEPT_EVENTS = 100_000
#: Published events with a payload kept while the monitor loads; one more waits for it.
MAX_KEPT_PAYLOADS = 32
#: Run log records kept while the span store opens; more are counted and dropped.
MAX_KEPT_RECORDS = 10_000
#: A wait for the load longer than this many ``TASKDAEMON_EXPORT_TIMEOUT`` abandons it.
LOAD_TIMEOUTS = 12
#: The kept events that may write an early stage row (``cli/run_start.RunStart.stage``).
_STAGE_BOUNDS = (StageStarted, StageFinished)

Preset = Callable[[str], contextlib.AbstractContextManager[None]]
#: A run's record or output batch kept until the monitor has the events before it: how many
#: events were kept before it, the item, and for a batch the output sinks it went to then.
_KeptLog = tuple[int, "LogRecord | OutputBatch", "tuple[OutputSink, ...] | None"]


def span_context_foreseen(environ: Mapping[str, str]) -> bool:
    """Whether a stage span's context is known before it is started, given the process's
    environment: the tracer provider samples every span (``cli/telemetry.py``: whatever
    ``OTEL_TRACES_SAMPLER`` says), so a stage span, a child of the run span (a root: its trace
    id drawn at random), is sampled, with the random trace id flag (``03``) and no trace state;
    unless the SDK is disabled, when no span starts at all."""
    return environ.get("OTEL_SDK_DISABLED", "").strip().lower() != "true"


class DeferredMonitor:
    """The engine observer standing in for the :class:`PipelineMonitor` while it loads (see the
    module docstring). Its entry points never raise."""

    #: Auto-instrumentation (``instrumentation.py``) leaves an engine with one of these alone,
    #: as it does one with a PipelineMonitor: a run is traced once.
    is_pipeline_monitor: ClassVar[bool] = True
    #: ``on_event`` and ``wants_record`` never raise (each catches and logs what fails), so the
    #: engine calls them directly when this is its only observer (``engine/_observers``).
    guards_itself: ClassVar[bool] = True

    def __init__(
        self,
        capture: PayloadCapture,
        hooks_want: Callable[[type], bool] | None = None,
        *,
        load_timeout: float | None = None,
    ) -> None:
        #: The monitor's payload capture, made before it (a debug dump reads it).
        self.capture = capture
        #: Seconds a wait for the load lasts before the load is abandoned (module docstring);
        #: by default the default settings' bound, made here, not when the module is imported
        #: (``taskdaemon run`` imports it at start-up and passes its own).
        self.load_timeout = (
            LOAD_TIMEOUTS * Settings().export_timeout if load_timeout is None else load_timeout
        )
        # What the monitor's hooks will answer for an optional record (None: not known, so
        # every record is kept until the monitor answers itself).
        self._hooks_want = hooks_want
        self._declined: set[type] = set()  # optional kinds declined before the monitor existed
        self._lock = threading.Lock()
        self._loaded = threading.Event()  # set when the monitor exists, or loading failed
        # ``_loaded.is_set()`` as a plain attribute, for ``on_event``, which reads it under the
        # lock for every event kept (a Python frame each): set under the lock, with it.
        self._over = False
        self._begin = threading.Event()  # set when loading may begin (see the module docstring)
        # A stage started and ``_begin`` is set from the loop's next turn: later starts need not
        # ask ``_begin.is_set()`` (a Python frame a stage) while events are kept.
        self._begin_asked = False
        self._failed_kinds: set[type] = set()  # record types an entry point failed on (logged)
        self._monitor: PipelineMonitor | None = None
        self._preset: Preset | None = None
        self._preset_span: Preset | None = None
        self._kept: list[EngineEvent] = []
        self._kept_payloads = 0  # published events in ``_kept`` with a payload
        # Run records and output batches kept, each with its place: how many events were kept
        # before it.
        self._kept_logs: list[_KeptLog] = []
        #: Where the run's records and its commands' output wait for the store (module doc).
        self.slot = PendingLogHandler(self.keep, self.wait)
        self._replaying: int | None = None  # the thread handing kept events to the monitor
        self._named: set[str] = set()  # run ids drawn here (their span takes them as trace id)
        # Span ids drawn here, by (run id, task run id): each execution's stage span takes its.
        self._span_ids: dict[tuple[str, str], str] = {}
        self._presets_spans = span_context_foreseen(os.environ)
        self._failure: str | None = None
        #: Why the loaded telemetry's store holds no run (``span_losses.unstored_cause``).
        self.store_cause: str | None = None
        #: Writes a run's start before its first stage, when set (``cli/run_start.py``).
        self.run_start: RunStart | None = None
        # Set once the monitor has every kept event: from then on events go straight to it,
        # without the lock and the two Event calls of the hand-over (a few µs an event, on the
        # engine's loop, while telemetry is live).
        self._live = False
        self.lost = 0  # engine events never recorded (loading failed)
        self.abandoned = False  # the load did not end in time (``abandon``)

    # --- what the loading thread calls ---------------------------------------------------------

    def started(self, monitor: PipelineMonitor, preset: Preset, preset_span: Preset) -> bool:
        """The monitor exists: hand it the kept events, in order, with the kept records and
        output batches in their places, then every new one. False, and nothing handed over,
        when the load was abandoned (``abandon``): the caller closes the monitor.

        The kept events are taken in swaps and handed over outside the lock, so the engine
        keeps running (and keeping) meanwhile instead of waiting for the whole replay; the
        handover ends, and events go straight to the monitor, once a swap finds nothing new.
        Only this thread forwards until then, so the order holds; records this thread logs
        meanwhile (the run log's, through ``logging``) are written at once, in their place."""
        with self._lock:
            if self._over:
                return False
            self._monitor, self._preset, self._preset_span = monitor, preset, preset_span
        self._replaying = threading.get_ident()
        wanted = sorted(kind.__name__ for kind in self._declined if monitor.wants_record(kind))
        if wanted:
            _log.warning("%s records were not built before telemetry loaded", ", ".join(wanted))
        while True:
            with self._lock:
                kept, self._kept = self._kept, []
                logs, self._kept_logs = self._kept_logs, []
                self._kept_payloads = 0
                if not kept and not logs:
                    self._over = True
                    self._loaded.set()
                    self._live = True
                    self._replaying = None
                    return True
            self._forward_all(kept, logs)

    def failed(self, reason: str) -> bool:
        """Loading failed: count the kept events as lost; the run goes on without telemetry.
        False when the load was abandoned before (that said why already)."""
        with self._lock:
            if self._over:
                return False
            self._give_up(reason)
            return True

    def abandon(self) -> bool:
        """Give up a load that has not ended (module docstring): its kept events count as lost,
        as when loading fails. False when the monitor came (or loading failed) first."""
        with self._lock:
            if self._monitor is not None or self._over:
                return False
            self.abandoned = True
            self._give_up(
                f"it did not load within {self.load_timeout:g}s,"
                f" {LOAD_TIMEOUTS} x TASKDAEMON_EXPORT_TIMEOUT"
            )
            return True

    def _give_up(self, reason: str) -> None:
        """Count what is kept as lost and end the wait for the monitor (the lock held)."""
        self._failure = reason
        self.lost += len(self._kept)
        self._kept.clear()
        self.slot.dropped += len(self._kept_logs)
        self._kept_logs.clear()
        self._kept_payloads = 0
        self._over = True
        self._loaded.set()

    def wait_to_begin(self, timeout: float) -> None:
        """Return once loading may begin, or after ``timeout`` seconds (the loading thread)."""
        self._begin.wait(timeout)

    def begin(self) -> None:
        """Let loading begin now (the first stage started, or something needs the monitor)."""
        self._begin.set()

    def _begin_after_this_turn(self) -> None:
        # Set from the loop's next turn: the callbacks already queued (the first stage's own
        # start) run before the loading thread wakes to compete with them for the GIL.
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # not on an event loop: nothing to let go first
            self._begin.set()
        else:
            loop.call_soon(self._begin.set)

    @property
    def may_load(self) -> bool:
        """Whether loading may begin (see the module docstring)."""
        return self._begin.is_set()

    def wait(self) -> PipelineMonitor | None:
        """The monitor once loaded; None if loading failed, or did not end within
        ``load_timeout`` (then it is abandoned)."""
        self._begin.set()
        if not self._loaded.wait(self.load_timeout) and self.abandon():
            return None
        self._loaded.wait()  # the monitor came: its handover is under way
        return self._monitor

    # --- observer protocol ---------------------------------------------------------------------

    def on_event(self, event: EngineEvent) -> None:
        """Keep ``event`` until the monitor exists, or hand it over (see the module docstring).

        Whether loading is over is read from ``_over``, not ``_loaded.is_set()`` (a frame an
        event): the flag is set under the lock together with each ``_loaded.set()``, and read
        here under the same lock, so both give the same answer. Never raises: a failure is
        logged once per record type and the event counted as lost."""
        try:
            if self._live:  # only the engine's thread emits: nothing kept can be left to pass
                self._forward(event)
                return
            published = isinstance(event, EventPublished) and bool(event.payload)
            with self._lock:
                waits = (
                    isinstance(event, RunFinished)
                    or len(self._kept) >= MAX_KEPT_EVENTS
                    or (published and self._kept_payloads >= MAX_KEPT_PAYLOADS)
                )
                kept = not self._over and not waits  # ``_loaded.is_set()``, read as its flag
                if kept:
                    self._kept.append(event)
                    self._kept_payloads += published
                    if isinstance(event, StageStarted) and not self._begin_asked:
                        self._begin_asked = True
                        self._begin_after_this_turn()
            if kept:
                if self.run_start is not None and isinstance(event, _STAGE_BOUNDS):
                    self.run_start.stage(event, self._early_span_id)
                return
            # Only the engine's thread emits, so nothing can pass this event while it waits.
            self.wait()
            self._forward(event)
        except Exception:
            self.lost += 1
            self._log_failure(type(event), "recording")

    def _early_span_id(self, event: StageStarted) -> str | None:
        """The span id the stage span of a kept ``StageStarted`` will take, drawn now if not
        yet (``stage_environment``, or its early row: ``cli/run_start.py``, which asks only for
        a row it writes: a stage start with a drawn id is handed over alone, under its preset);
        None when that id is not drawn here: the run was not named here, or the monitor has it.
        """
        key = (event.run_id, event.task_run_id)
        if self._presets_spans and event.run_id in self._named:
            with self._lock:  # no event is handed over before ``started`` sets ``_monitor``
                if self._monitor is None and not self._over:
                    # As ``allocate_run_id`` draws; a span id is never all zeros.
                    return self._span_ids.setdefault(
                        key, format(int.from_bytes(os.urandom(8)) or 1, "016x")
                    )
        return None

    def wants_record(self, kind: type) -> bool:
        """The monitor's answer once it exists (``PipelineMonitor.wants_record``). Before, the
        answer its hooks will give for an optional record (module docstring); every other
        record, or every record when that answer is not known, is kept. Never raises: a
        failure is logged once per record type and answers True."""
        try:
            monitor = self._monitor
            if monitor is not None:
                return monitor.wants_record(kind)
            hooks_want = self._hooks_want
            if hooks_want is None or kind not in OPTIONAL_RECORDS or hooks_want(kind):
                return True
            self._declined.add(kind)
            return False
        except Exception:
            self._log_failure(kind, "asking for")
            return True

    def _log_failure(self, kind: type, what: str) -> None:
        """Log the failure being handled, once per record type."""
        if kind not in self._failed_kinds:
            self._failed_kinds.add(kind)
            _log.warning(
                "telemetry failed %s a %s record (ignored)", what, kind.__name__, exc_info=True
            )

    def allocate_run_id(
        self, pipeline: Pipeline, request: Mapping[str, Any], *, at: float | None = None
    ) -> str | None:
        """The monitor's answer once it exists (its run span starts at ``at``, the run's
        start); before, a random id its run span will take."""
        if self._loaded.is_set():
            monitor = self._monitor
            if monitor is None:
                return None
            return monitor.allocate_run_id(pipeline, request, at=at)
        # secrets.randbits(128), without importing secrets (random, hmac) before the first stage;
        # a trace id is never all zeros.
        run_id = format(int.from_bytes(os.urandom(16)) or 1, "032x")
        self._named.add(run_id)
        if self.run_start is not None:
            self.run_start.write(run_id, pipeline, at)
        return run_id

    def keep(self, item: LogRecord | OutputBatch) -> bool:
        """Keep a run's record or output batch in its place among the kept events, until the
        monitor has them (``slot``'s question; see the module docstring): False once events go
        straight to the monitor, or from the thread handing them over. Past
        ``MAX_KEPT_RECORDS`` kept, it is counted in ``slot.dropped`` instead."""
        if self._over or self._replaying == threading.get_ident():
            return False  # the first test unlocked: every record of the run asks
        with self._lock:
            if self._over:
                return False
            if len(self._kept_logs) < MAX_KEPT_RECORDS:
                sinks = None
                if not isinstance(item, LogRecord):  # a batch: output_sinks delivers it
                    from taskdaemon.pipeline.output_sinks import output_sinks  # noqa: PLC0415

                    sinks = output_sinks()
                self._kept_logs.append((len(self._kept), item, sinks))
            else:
                self.slot.dropped += 1
            return True

    def stage_environment(self, event: StageStarted) -> Mapping[str, str]:
        """The execution's ``TRACEPARENT``. While its ``StageStarted`` is kept and the answer is
        foreseen (``span_context_foreseen``, a run id drawn here), at once: a span id drawn
        here, which its stage span is later started with (``_preset_for``). Else the monitor's,
        waiting for it; empty if it failed."""
        span_id = self._span_ids.get((event.run_id, event.task_run_id))
        if span_id is None:
            span_id = self._early_span_id(event)
        if span_id is not None:
            return {"TRACEPARENT": f"00-{event.run_id}-{span_id}-03"}
        monitor = self.wait()
        return monitor.stage_environment(event) if monitor is not None else {}

    def flush(self) -> None:
        """Wait for the monitor and handle everything queued (a debug dump asks first)."""
        monitor = self.wait()
        if monitor is not None:
            monitor.flush()

    def _forward_all(self, events: list[EngineEvent], logs: list[_KeptLog]) -> None:
        """Hand ``events`` to the monitor in order, each kept record or batch of ``logs`` to
        the store's writer in its place among them (module docstring, "Run logs")."""
        done = 0
        for place, item, sinks_then in logs:
            self._forward_events(events[done:place])
            self.slot.pass_on(item, sinks_then)
            done = place
        self._forward_events(events[done:] if done else events)

    def _forward_events(self, events: list[EngineEvent]) -> None:
        """Hand ``events`` to the monitor in order, in batches (``PipelineMonitor.on_events``:
        one lock a slice, not one a record); a start whose id was drawn here goes alone, under
        its preset (``_forward``). The loading thread has no running loop: every event is
        handled at once, as ``on_event`` handles it there."""
        monitor = self._monitor
        if monitor is None:
            self.lost += len(events)
            return
        start = 0
        span_ids = self._span_ids
        for index, event in enumerate(events):
            # ``_preset_for``'s first test inline: one run start among a run's records, and a
            # stage start only while a stage's span id was drawn here.
            if (
                isinstance(event, RunStarted) or (span_ids and isinstance(event, StageStarted))
            ) and self._preset_for(event) is not None:
                monitor.on_events(events[start:index])
                self._forward(event)
                start = index + 1
        monitor.on_events(events[start:] if start else events)

    def _forward(self, event: EngineEvent) -> None:
        monitor = self._monitor
        if monitor is None:
            self.lost += 1
        elif (preset := self._preset_for(event)) is not None:
            with preset:
                monitor.on_event(event)
        else:
            monitor.on_event(event)

    def _preset_for(self, event: EngineEvent) -> contextlib.AbstractContextManager[None] | None:
        """The preset to record ``event`` under (``cli/run_ids.py``): a run start whose id this
        stand-in drew, so that the id becomes its span's trace id; a stage start whose span id
        it drew (``stage_environment``), so that its stage span, the one span handling it
        starts, takes that id; else None."""
        preset: Preset | None = None
        value: str | None = None
        if isinstance(event, RunStarted) and event.run_id in self._named:
            preset, value = self._preset, event.run_id
        elif isinstance(event, StageStarted) and self._span_ids:
            preset, value = self._preset_span, self._span_ids.get((event.run_id, event.task_run_id))
        return preset(value) if preset is not None and value is not None else None

    @property
    def loading(self) -> bool:
        """Whether the load is still under way: a wait for the monitor now (``flush``, and a
        debug dump, which says so first: ``cli/_dump_hook.py``) lasts until it ends, up to
        ``load_timeout``."""
        return not self._loaded.is_set()

    @property
    def not_loaded(self) -> str | None:
        """Why telemetry did not load (it failed, or the load was abandoned), once that is
        known; None while it loads and once it has. A debug dump asks, after ``flush``: the
        run then has no spans, and an abandoned load may hold the locks of the modules it
        was importing (``cli/_dump_hook.py``)."""
        return self._failure

    def unstored(self) -> str | None:
        """Why the run is in no span store, once the loading is over (its own line said the
        details): telemetry did not load, or its store could not be opened; None else."""
        if self._failure is not None:
            return "telemetry failed to start"
        return self.store_cause

    def report(self) -> None:
        """One warning if events were lost (after the run)."""
        if self.lost:
            _log.warning(
                "%d engine events were not recorded: telemetry failed to start (%s)",
                self.lost,
                self._failure,
            )
