"""Execution tracking rebuilt from spans: the embedded SQLite span store, the Tempo / Jaeger /
OTLP-JSON sources, run reconstruction and retention.

Writing: ``SqliteSpanProcessor(path)`` (or ``store_processor_for(settings)``) is an OTel span
processor; add it to the ``TracerProvider`` the CLI builds and every span lands in the store when
it starts and when it ends.

Reading: ``open_source(url)`` returns a ``SpanSource`` (``get_trace``, ``get_run``, ``search``,
``close``); ``reconstruct_run(spans)`` turns one trace's ``SpanRecord``s into a ``RunRecord``.
The same spans give the same record whichever source they came from.

The names are resolved lazily (PEP 562), each from its own module when first used: reading runs
(``open_source``, ``reconstruct_run``, the tables) never imports the OTel SDK, which only the
writer (``SqliteSpanProcessor``) needs, nor the HTTP client of the remote sources.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__all__ = [
    "SCHEMA_VERSION",
    "JaegerSource",
    "OtlpJsonSource",
    "RetentionPolicy",
    "RetentionResult",
    "SpanEventRecord",
    "SpanLinkRecord",
    "SpanRecord",
    "SpanSource",
    "SpanStore",
    "SqliteSpanProcessor",
    "TempoSource",
    "default_source_url",
    "encode_traces",
    "find_root",
    "open_source",
    "parse_traces",
    "reconstruct_run",
    "retention_from_env",
    "span_record_from_sdk",
    "store_processor_for",
    "summarize_run",
]

#: Where each public name lives (module of this package).
_HOMES: dict[str, str] = {
    "JaegerSource": "http_sources",
    "OtlpJsonSource": "sources",
    "RetentionPolicy": "store",
    "RetentionResult": "store",
    "SCHEMA_VERSION": "store",
    "SpanEventRecord": "spans",
    "SpanLinkRecord": "spans",
    "SpanRecord": "spans",
    "SpanSource": "sources",
    "SpanStore": "store",
    "SqliteSpanProcessor": "writer",
    "TempoSource": "http_sources",
    "default_source_url": "sources",
    "encode_traces": "otlp_json",
    "find_root": "reconstruct",
    "open_source": "sources",
    "parse_traces": "otlp_json",
    "reconstruct_run": "reconstruct",
    "retention_from_env": "store",
    "span_record_from_sdk": "spans",
    "store_processor_for": "store_processor",
    "summarize_run": "reconstruct",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f"{__name__}.{home}"), name)
    globals()[name] = value  # resolve once
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


if TYPE_CHECKING:  # let type checkers and IDEs see the real objects
    from taskdaemon.pipeline.tracking.http_sources import JaegerSource, TempoSource
    from taskdaemon.pipeline.tracking.otlp_json import encode_traces, parse_traces
    from taskdaemon.pipeline.tracking.reconstruct import find_root, reconstruct_run, summarize_run
    from taskdaemon.pipeline.tracking.sources import (
        OtlpJsonSource,
        SpanSource,
        default_source_url,
        open_source,
    )
    from taskdaemon.pipeline.tracking.spans import (
        SpanEventRecord,
        SpanLinkRecord,
        SpanRecord,
        span_record_from_sdk,
    )
    from taskdaemon.pipeline.tracking.store import (
        SCHEMA_VERSION,
        RetentionPolicy,
        RetentionResult,
        SpanStore,
        retention_from_env,
    )
    from taskdaemon.pipeline.tracking.store_processor import store_processor_for
    from taskdaemon.pipeline.tracking.writer import SqliteSpanProcessor
