"""The writing side's entry point: the span processor that fills the embedded store.

It lives apart from ``sources.py`` (the reading side) because the writer needs the OTel SDK:
reading runs (``open_source``, ``runs list``, ``runs show``) imports neither this module nor
``writer.py`` (``tests/pipeline_tracking_sources_test.py`` audits it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from taskdaemon.pipeline.tracking.source_urls import sqlite_path
from taskdaemon.pipeline.tracking.sources import default_source_url
from taskdaemon.pipeline.tracking.store import RetentionPolicy
from taskdaemon.pipeline.tracking.writer import SqliteSpanProcessor

if TYPE_CHECKING:
    from taskdaemon.pipeline.settings import Settings

__all__ = ["store_processor_for"]


def store_processor_for(
    settings_or_url: Settings | str | None = None,
    *,
    flush_interval: float = 0.1,
    max_batch: int = 4096,
    retention: RetentionPolicy | None = None,
) -> SqliteSpanProcessor | None:
    """The span processor that fills the embedded store, or None when the configured span source
    is not ``sqlite://`` (a remote backend is fed by an OTLP exporter instead).

    Takes the settings (their ``span_source``), a URL, or None (the environment); the keyword
    arguments are :class:`SqliteSpanProcessor`'s. ``SpanSourceError`` for a malformed URL.
    """
    if settings_or_url is None or isinstance(settings_or_url, str):
        url = settings_or_url or default_source_url()
    else:
        url = settings_or_url.span_source
    if not url.lower().startswith("sqlite://"):
        return None
    return SqliteSpanProcessor(
        sqlite_path(url), flush_interval=flush_interval, max_batch=max_batch, retention=retention
    )
