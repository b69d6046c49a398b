"""Trace ids chosen before the tracer exists: a run named while telemetry was still loading.

A run's id *is* its run span's trace id (docs/architecture.md, "Telemetry schema"). When
``taskdaemon run`` starts its pipeline before the OTel SDK is loaded (``cli/deferred.py``), the
run id is drawn first and the run span is started later; :class:`PresetIdGenerator` (the tracer
provider's id generator) gives that span the drawn id when it is started inside
:func:`preset_trace_id`, and random ids (the SDK's) otherwise.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator

from opentelemetry.sdk.trace.id_generator import RandomIdGenerator

__all__ = ["PresetIdGenerator", "preset_trace_id"]

_PRESET: contextvars.ContextVar[int | None] = contextvars.ContextVar("td_preset_trace_id")


@contextlib.contextmanager
def preset_trace_id(run_id: str) -> Iterator[None]:
    """The next trace ids drawn inside the block, on this thread, are ``run_id`` (32 hex)."""
    token = _PRESET.set(int(run_id, 16))
    try:
        yield
    finally:
        _PRESET.reset(token)


class PresetIdGenerator(RandomIdGenerator):
    """Random span ids; the preset trace id inside :func:`preset_trace_id`, else random."""

    def generate_trace_id(self) -> int:
        """The preset id if one is set (and valid), else a random one."""
        preset = _PRESET.get(None)
        if preset:
            return preset
        return super().generate_trace_id()
