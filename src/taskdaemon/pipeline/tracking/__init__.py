"""Execution tracking rebuilt from spans: the embedded SQLite span store, the Tempo / Jaeger /
OTLP-JSON / debug dump sources, run logs in the store, run reconstruction and retention.

Writing: ``SqliteSpanProcessor(path)`` (or ``store_processor_for(settings)``) is an OTel span
processor; add it to the ``TracerProvider`` the CLI builds and every span lands in the store when
it starts and when it ends.

Reading: ``open_source(url)`` returns a ``SpanSource`` (``get_trace``, ``get_run``, ``search``,
``close``); ``reconstruct_run(spans)`` turns one trace's ``SpanRecord``s into a ``RunRecord``.
The same spans give the same record whichever source they came from.

The names are resolved lazily (PEP 562), each from its own module when first used: reading runs
(``open_source``, ``reconstruct_run``, the tables) never imports the OTel SDK, which only the
writer (``SqliteSpanProcessor``) needs, nor the HTTP client of the remote sources.

Modules:

* ``spans``: ``SpanRecord``, the normalized span every source yields and reconstruction reads.
* ``store_processor``: ``store_processor_for(settings)``, the writing side's entry point.
* ``writer``: ``SqliteSpanProcessor``, the OTel span processor that writes the store.
* ``_span_queue``: the writer's queue: spans in, batches out, one wake-up per batch.
* ``_span_batches``: one batch of spans written as rows in one transaction (the processor's
  base class).
* ``_bodies``: an SDK span's attributes, events and links read in place, and its ``body``
  column's JSON text.
* ``_row_inserts``: rows inserted by multi-row ``INSERT`` statements, not one statement a row.
* ``_run_tally``: the writer's ``runs`` rows: a run's row at its start, its summary at its end.
* ``_health``: the writer's health, for ``/readyz``, and the count of spans it lost.
* ``_checkpoint``: WAL checkpoints, on their own thread and connection.
* ``_fork_guard``: ``fork()`` kept out of a thread's time inside SQLite.
* ``unavailable``: the store's stand-in when it cannot be opened; the pipeline runs on.
* ``run_start``: a run's start written before its telemetry loads, which the writer takes
  over.
* ``early_heartbeat``: the heartbeat of that early ``writers`` row until the writer takes it.
* ``log_writer``: runs' log records written into the ``logs`` table beside their spans.
* ``_output_rows``: captured output lines as ``logs`` rows, one row per batch of lines.
* ``_remask``: a run's stored rows masked again for values that became secrets after them.
* ``_schema``: the store file opened: created, migrated, or refused when it is not one.
* ``_store_file``: the store's file and its file system apart from SQLite: why this process
  cannot write it, whether anyone can, the file created private, its identity while written.
* ``_tables``: the tables this version makes (``SCHEMA_VERSION``).
* ``_migrations``: a file of an older taskdaemon brought to ``SCHEMA_VERSION``.
* ``_trace_read``: one trace's span rows read from the file and decoded.
* ``_rows``: stored span rows decoded, refusing those that are not what the writer writes.
* ``store``: ``SpanStore``, the reading side: runs, traces and retention over the file.
* ``_retention``: retention's pass: the runs a policy dooms, and their rows deleted.
* ``log_read``: runs' log records read from the store.
* ``otlp_logs``: runs' log records written as OTLP JSON logs, the collector file exporter's
  format.
* ``aggregates``: the report aggregates, written as runs end and read by ``taskdaemon
  report``.
* ``_aggregates_schema``: the aggregates' tables (schema versions 5 and 7).
* ``_kept_runs``: what the writer keeps of a run's ended stage spans for its aggregates.
* ``_run_rows``: one ended run's aggregate rows, from a rebuilt run or from the kept spans,
  by the same arithmetic.
* ``_day_totals``: per-day totals and histograms of the aggregates.
* ``_ranked_column``: exact percentiles of a window's rows, read by rank.
* ``sources``: ``SpanSource`` and ``open_source(url)``, one interface over every backend.
* ``source_urls``: span source URLs read as text: their scheme and the files they name.
* ``run_filter``: runs found among loose spans, summarised and filtered alike by the sources
  without an index, and the whole run id they need.
* ``otlp_json``: OTLP JSON read (and written) in every shape the backends produce.
* ``http_sources``: the HTTP sources, Grafana Tempo and Jaeger.
* ``_jaeger``: what the Jaeger source asks Jaeger's query API v3, and how it reads the
  answers.
* ``_remote``: the remote sources' bounds: no credential in a message, a deadline per query,
  a cap on a response's bytes.
* ``_deadline_io``: a remote query's deadline on every socket read and write.
* ``_item_flood``: an answer holding far more attributes, events or links than its spans
  keep, decoded without them.
* ``dump_source``: a debug dump (``dump:///PATH.tar.gz``) read as a span source.
* ``dump_logs``: a debug dump's log records read back as ``StoredLog`` objects.
* ``reconstruct``: ``reconstruct_run(spans)``, a ``RunRecord`` rebuilt from one trace's spans.
* ``_run_events``: what a run span's events say of its stages: approvals, trigger evaluations,
  pauses, executions a stop halted.
* ``_attribute_values``: span attribute values read as numbers, texts and lists, bounded to
  what a row holds.
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
