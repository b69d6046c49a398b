"""Trace and span ids chosen before the tracer exists: a run named while telemetry was still
loading, and a stage span whose ``TRACEPARENT`` a stage read meanwhile.

A run's id *is* its run span's trace id (docs/architecture.md, "Telemetry schema"). When
``taskdaemon run`` starts its pipeline before the OTel SDK is loaded (``cli/deferred.py``), the
run id is drawn first and the run span is started later; :class:`PresetIdGenerator` (the tracer
provider's id generator) gives that span the drawn id when it is started inside
:func:`preset_trace_id`, and random ids (the SDK's) otherwise. A stage that reads its
``TRACEPARENT`` before then is answered with a span id drawn the same way, which its stage span
takes when started inside :func:`preset_span_id`.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator

from opentelemetry.sdk.trace.id_generator import RandomIdGenerator

__all__ = ["PresetIdGenerator", "preset_span_id", "preset_trace_id"]

_PRESET: contextvars.ContextVar[int | None] = contextvars.ContextVar("td_preset_trace_id")
_PRESET_SPAN: contextvars.ContextVar[int | None] = contextvars.ContextVar("td_preset_span_id")


@contextlib.contextmanager
def preset_trace_id(run_id: str) -> Iterator[None]:
    """The next trace ids drawn inside the block, on this thread, are ``run_id`` (32 hex)."""
    token = _PRESET.set(int(run_id, 16))
    try:
        yield
    finally:
        _PRESET.reset(token)


@contextlib.contextmanager
def preset_span_id(span_id: str) -> Iterator[None]:
    """The next span id drawn inside the block, on this thread, is ``span_id`` (16 hex); the
    ones after it are random: one span takes it, so no two spans share it."""
    token = _PRESET_SPAN.set(int(span_id, 16))
    try:
        yield
    finally:
        _PRESET_SPAN.reset(token)


class PresetIdGenerator(RandomIdGenerator):
    """The preset ids inside :func:`preset_trace_id` and :func:`preset_span_id`, else random."""

    def generate_trace_id(self) -> int:
        """The preset id if one is set (and valid), else a random one."""
        preset = _PRESET.get(None)
        if preset:
            return preset
        return super().generate_trace_id()

    def generate_span_id(self) -> int:
        """The preset id if one is set (and valid), taken once, else a random one."""
        preset = _PRESET_SPAN.get(None)
        if preset:
            _PRESET_SPAN.set(None)
            return preset
        return super().generate_span_id()
