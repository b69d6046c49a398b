"""``taskdaemon run``'s telemetry started without holding up its first stage: the console logging
configured at once, the run's log slot and output sink installed, the store's directory made,
the run's start put on record, and telemetry with the monitor loaded on a thread
(``cli/deferred.py`` says why and how the stand-in observer keeps what happens meanwhile).

:func:`start_deferred_monitoring` answers the stand-in (``DeferredMonitor``) and registers on
the caller's stack what ends it all: the wait for the load (abandoned past ``LOAD_TIMEOUTS``
times ``TASKDAEMON_EXPORT_TIMEOUT``), telemetry's shutdown, the slot's removal and the one line
each about what was not recorded.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from pathlib import Path
from typing import Any

from taskdaemon.pipeline.cli.deferred import LOAD_TIMEOUTS, DeferredMonitor, span_context_foreseen
from taskdaemon.pipeline.cli.load_again import built_despite_stage_code
from taskdaemon.pipeline.cli.run_start import RunStart, keep_alive, run_preset
from taskdaemon.pipeline.descriptor_reserve import keep_reserve, release_reserve
from taskdaemon.pipeline.logs import configure_logging
from taskdaemon.pipeline.payloads import PayloadCapture
from taskdaemon.pipeline.private_file import make_private_dirs
from taskdaemon.pipeline.run_log_scope import wants as run_log_wants
from taskdaemon.pipeline.settings import Settings

__all__ = ["LOAD_DELAY", "start_deferred_monitoring"]

_log = logging.getLogger("taskdaemon.run")

#: Seconds the loading waits for the first stage to start before it begins anyway.
LOAD_DELAY = 0.25


def _store_directory(store: Path) -> None:
    """Create the span store's directory 0700 now, as the store would (``tracking/_schema``'s
    ``create_private``), before the run's workspace under it is made with the default mode."""
    if not store.parent.exists():
        with contextlib.suppress(OSError):  # the store says why when it opens
            make_private_dirs(store.parent)


def start_deferred_monitoring(
    settings: Settings, stack: contextlib.AsyncExitStack
) -> DeferredMonitor:
    """Configure console logging now, load telemetry and the monitor on a thread, and answer
    the stand-in observer. ``stack`` waits for the loading, then shuts telemetry down (within
    ``TASKDAEMON_EXPORT_TIMEOUT``) when it closes."""
    configure_logging(settings)
    # Now, not with the run logging on the loading thread: a command stage that starts
    # before telemetry has loaded (or when it fails to) is bounded as configured too.
    from taskdaemon.pipeline.output_sinks import (  # noqa: PLC0415
        add_output_sink,
        bound_captures,
        remove_output_sink,
    )
    from taskdaemon.pipeline.secret_values import use_secret_key_patterns  # noqa: PLC0415

    bound_captures(settings, stack)
    stack.callback(use_secret_key_patterns, use_secret_key_patterns(settings.redact_patterns))
    capture = PayloadCapture(
        max_bytes=settings.capture_limit, redact_patterns=settings.redact_patterns
    )
    deferred = DeferredMonitor(
        capture, hooks_want=run_log_wants, load_timeout=LOAD_TIMEOUTS * settings.export_timeout
    )
    root = logging.getLogger()
    slot = deferred.slot
    # A sink even without a store: output goes to the store's writer or nowhere, as once
    # telemetry is loaded (the console drops it), not to ``output_sinks``' fallback records,
    # which the console would print before then.
    add_output_sink(slot)
    if settings.span_source.lower().startswith("sqlite:///"):  # the store keeps run logs
        root.addHandler(slot)
        store = Path(settings.span_source[len("sqlite:///") :])
        _store_directory(store)
        if span_context_foreseen(os.environ):  # spans are recorded
            deferred.run_start = RunStart(store)
    loaded = contextlib.ExitStack()

    def build() -> tuple[Any, Any, Any]:
        from taskdaemon.pipeline.cli.monitoring import build_monitor  # noqa: PLC0415
        from taskdaemon.pipeline.cli.run_ids import PresetIdGenerator  # noqa: PLC0415

        return build_monitor(
            settings,
            serve_metrics=False,
            stack=loaded,
            slot=slot,
            capture=capture,
            id_generator=PresetIdGenerator(),
        )

    def load() -> None:
        deferred.wait_to_begin(LOAD_DELAY)
        keep_alive(deferred.run_start)  # its writers row, until the writer takes it over
        try:  # stage code took what it needs: cli/load_again.py
            telemetry, monitor, _ = built_despite_stage_code(build, loaded.close)
            from taskdaemon.pipeline.cli.run_ids import preset_span_id, preset_trace_id  # noqa: PLC0415
            from taskdaemon.pipeline.cli.span_losses import unstored_cause  # noqa: PLC0415
        except Exception as error:  # monitoring never stops the pipeline
            if deferred.failed(f"{type(error).__name__}: {error}"):
                _log.warning("telemetry failed to start; the run goes on without it: %s", error)
                return
        else:
            release_reserve()  # loaded: the store keeps what it opened
            deferred.store_cause = unstored_cause(telemetry.span_processors)
            preset_run = run_preset(deferred.run_start, preset_trace_id, preset_span_id)
            if deferred.started(monitor, preset_run, preset_span_id):
                return
        loaded.close()  # abandoned: shut down unused (``close`` leaves it to this thread)

    thread = threading.Thread(target=load, name="taskdaemon-telemetry-load", daemon=True)

    def close() -> None:
        deferred.wait()  # a load that never ends is abandoned there
        try:
            if not deferred.abandoned:  # else the thread closes whatever it loads, unused
                thread.join()  # it ended, or ends once done handing over
                loaded.close()  # telemetry shutdown, then the lost-span report (start_monitoring)
        finally:
            if deferred.run_start is not None:  # taken back if no telemetry stored the rest
                deferred.run_start.end(stored=deferred.unstored() is None)
            remove_output_sink(slot)
            root.removeHandler(slot)
            slot.close()
            deferred.report()
            if slot.attached and slot.dropped:
                _log.warning("%d run log records were not stored", slot.dropped)

    stack.callback(close)
    keep_reserve()  # for the load, should stage code take every descriptor meanwhile
    stack.callback(release_reserve)
    thread.start()
    return deferred
