"""Span sources: one query interface over the SQLite store, Tempo, Jaeger and OTLP-JSON files.

``open_source(url)`` picks the source from its URL (default ``TASKDAEMON_SPAN_SOURCE``, else
``sqlite:///$TASKDAEMON_HOME/spans.db``):

=============================== ==========================================================
``sqlite:///PATH``              the embedded store (``SpanStore``)
``tempo+http://HOST:PORT``      Grafana Tempo: ``/api/v2/traces/<id>`` (falls back to
                                ``/api/traces/<id>`` on 404), ``/api/search`` with TraceQL
``jaeger+http://HOST:PORT``     Jaeger v2 API v3: ``/api/v3/traces/<id>``, ``/api/v3/traces``
                                (``?service=NAME`` picks the service, default
                                ``OTEL_SERVICE_NAME`` or ``taskdaemon``)
``otlp-json:///PATH``           OTLP JSON lines (collector file exporter), a file or directory
``dump:///PATH.tar.gz``         a debug dump (``tracking/dump_source.py``)
=============================== ==========================================================

``+https`` works for both backends. Every source returns the same ``SpanRecord``s, so
``reconstruct_run`` gives equal ``RunRecord``s for the same spans.

Here: the interface, the OTLP-JSON file source and the choice of a source by URL. Tempo and
Jaeger, their requests, retries and bounds, are ``tracking.http_sources``, loaded only when a
remote source is opened.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, runtime_checkable
from urllib.parse import parse_qs

from taskdaemon.pipeline.bounded import BoundedInputError, NotJSONError, loads_bounded
from taskdaemon.pipeline.errors import (
    RunNotFoundError,
    SpanSourceError,
    SpanSourceURLError,
    SpanStoreError,
)
from taskdaemon.pipeline.home import home_directory
from taskdaemon.pipeline.http_url import http_url
from taskdaemon.pipeline.records import RunRecord, RunSummary
from taskdaemon.pipeline.settings import SPAN_SOURCE_USAGE
from taskdaemon.pipeline.tracking._remote import RemoteLimits, display_url
from taskdaemon.pipeline.tracking._schema import MissingStoreError, file_in_the_way
from taskdaemon.pipeline.tracking.otlp_json import (
    Skipped,
    iter_json_lines,
    may_hold_trace,
    parse_traces,
)
from taskdaemon.pipeline.tracking.reconstruct import reconstruct_run
from taskdaemon.pipeline.tracking.run_filter import filter_summaries, group_by_trace, whole_run_id
from taskdaemon.pipeline.tracking.source_urls import (
    file_path,
    lost_slash_hint,
    scheme_of,
    sqlite_path,
)
from taskdaemon.pipeline.tracking.spans import SpanRecord
from taskdaemon.pipeline.tracking.store import SpanStore
from taskdaemon.pipeline.variables import variable

__all__ = [
    "OtlpJsonSource",
    "SpanSource",
    "default_source_url",
    "open_source",
]

logger = logging.getLogger(__name__)


@runtime_checkable
class SpanSource(Protocol):
    """Where stored spans are read from."""

    def get_trace(self, run_id: str) -> list[SpanRecord]:
        """Every span of the run; ``RunNotFoundError`` when the source has none."""
        ...

    def get_run(self, run_id: str) -> RunRecord:
        """The run rebuilt from its spans."""
        ...

    def search(
        self,
        pipeline: str | None = None,
        status: str | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int = 100,
    ) -> list[RunSummary]:
        """Runs, newest first, by pipeline, status and start time (epoch seconds)."""
        ...

    def close(self) -> None:
        """Release connections and files; safe to call twice."""
        ...


class OtlpJsonSource:
    """OTLP JSON lines (one ``{"resourceSpans": …}`` object per line, as the collector's file
    exporter writes them), from one regular file or every non-hidden one of a directory (a fifo
    or a device, ``/dev/zero``, is refused: reading it may never end). A file holding one
    (pretty-printed) JSON document is read too. Files are re-read on every query, so a file
    still being appended to is seen as it grows."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        try:
            status = self.path.stat()
        except (FileNotFoundError, NotADirectoryError):
            raise SpanSourceError(f"{self.path}: no such file or directory") from None
        except OSError as exc:  # a name too long, a loop of links: a traceback from ``exists``
            raise SpanSourceError(f"{self.path}: cannot read: {exc.strerror or exc}") from None
        if not (stat.S_ISREG(status.st_mode) or stat.S_ISDIR(status.st_mode)):
            raise SpanSourceError(f"{self.path}: not a regular file or a directory")  # a fifo

    def _files(self) -> list[Path]:
        if self.path.is_dir():
            return sorted(
                p for p in self.path.rglob("*") if p.is_file() and not p.name.startswith(".")
            )
        return [self.path]

    def _spans(self, keep: Callable[[str], bool] | None = None) -> list[SpanRecord]:
        """The spans of every file; in a JSON-lines file, only of the lines ``keep`` accepts
        (lines passed over are not decoded, so they are not warned about either)."""
        spans: list[SpanRecord] = []
        for file in self._files():
            try:
                spans.extend(_file_spans(file, keep))
            except (OSError, UnicodeDecodeError) as exc:
                raise SpanSourceError(f"{file}: cannot read: {exc}") from exc
        return spans

    def get_trace(self, run_id: str) -> list[SpanRecord]:
        """Every span of the run found in the files.

        Decision: the lines of a JSON-lines file that cannot hold the run are passed over
        without decoding (``may_hold_trace``), so one run is read from a file of thousands in
        a fraction of the time; a bad line among them is not warned about here, since the run
        shown is whole without it (``runs list`` reads every line, and warns).
        """
        trace_id = whole_run_id(run_id)
        spans = [s for s in self._spans(may_hold_trace(trace_id)) if s.trace_id == trace_id]
        if not spans:
            raise RunNotFoundError(f"no run {trace_id} in {self.path}")
        return spans

    def get_run(self, run_id: str) -> RunRecord:
        """The run rebuilt from its spans."""
        return reconstruct_run(self.get_trace(run_id))

    def search(
        self,
        pipeline: str | None = None,
        status: str | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int = 100,
    ) -> list[RunSummary]:
        """Runs found in the files, newest first."""
        return filter_summaries(
            group_by_trace(self._spans()),
            pipeline=pipeline,
            status=status,
            since=since,
            until=until,
            limit=limit,
        )

    def close(self) -> None:
        """Nothing to release (files are opened per query)."""


def _one_document(file: Path) -> bool:
    """Whether ``file`` reads as one (pretty-printed) JSON document rather than JSON lines: its
    first non-blank line starts with ``{`` and no later line does. Read line by line, and
    decided at a JSON-lines file's second line."""
    first_seen = False
    with file.open(encoding="utf-8") as handle:
        for line in handle:
            if first_seen:
                if line.startswith("{"):
                    return False
            elif line.strip():
                if not line.lstrip().startswith("{"):
                    return False
                first_seen = True
    return first_seen


def _file_spans(file: Path, keep: Callable[[str], bool] | None) -> list[SpanRecord]:
    """The spans of one OTLP-JSON file (see ``OtlpJsonSource``). A JSON-lines file is read a
    line at a time, so memory holds one line, not the file twice over; its lines end at line
    feeds only, not at the other characters ``str.splitlines`` ends lines at (U+0085, U+2028),
    which JSON allows raw in a string."""
    if _one_document(file):
        try:
            return parse_traces(loads_bounded(file.read_text(encoding="utf-8")), where=str(file))
        except NotJSONError:
            pass
        except BoundedInputError as exc:
            raise SpanSourceError(f"{file}: {exc}") from None
    spans: list[SpanRecord] = []
    other = Skipped()
    with file.open(encoding="utf-8") as handle:
        for number, document in iter_json_lines(handle, where=str(file), keep=keep):
            try:
                spans.extend(parse_traces(document, where=f"{file}:{number}"))
            except SpanSourceError as exc:
                other.add(f"line {number}: {exc}")
    other.warn(
        logger, str(file), "line that is not an OTLP trace", "lines that are not an OTLP trace"
    )
    return spans


# --- choosing a source -----------------------------------------------------------------------


def home_store() -> Path:
    """The home's own store, ``$TASKDAEMON_HOME/spans.db`` (home defaulting to
    ``./.taskdaemon``)."""
    return home_directory() / "spans.db"


def default_source_url() -> str:
    """``TASKDAEMON_SPAN_SOURCE``, else ``sqlite:///$TASKDAEMON_HOME/spans.db``."""
    url = (variable("TASKDAEMON_SPAN_SOURCE") or "").strip()
    if url:
        return url
    return f"sqlite:///{home_store().as_posix()}"


def open_source(
    url: str | None = None, *, missing_ok: bool | None = None, **options: Any
) -> SpanSource:
    """The span source named by ``url`` (see the module docstring); ``SpanSourceError`` for
    an unknown scheme or a bad URL. ``options`` go to the source's constructor.

    No source is created by reading it. An embedded store whose file is missing is an error
    naming the path (``MissingStoreError``: a mistyped ``--source`` must not become an empty
    store), except the home's own store (:func:`home_store`, however it was named), which
    reads as a store without runs until the first run of the home creates it: a fresh home has
    no runs yet, and that is not a mistake. ``missing_ok`` decides for any path instead (the
    web page, whose command checked the path when it started)."""
    url = (url or default_source_url()).strip()
    # The remote bounds are settings of every source: wrong ones are refused here (exit 2)
    # whatever the source, rather than taken silently until a remote query reads them.
    remote_limits = RemoteLimits.from_env()
    scheme = scheme_of(url)
    if scheme == "sqlite":
        path = sqlite_path(url, warn=False)  # a missing store's error says it (below)
        if missing_ok is None:
            missing_ok = os.path.abspath(path) == os.path.abspath(home_store())
        if missing_ok and (blocker := file_in_the_way(Path(path))) is not None:
            # A home that is a file can hold no store: "no runs" would hide the mistake.
            raise SpanStoreError(f"{blocker}: not a directory, so no span store can be in it")
        try:
            return SpanStore(path, missing_ok=missing_ok, **options)
        except MissingStoreError as error:
            hint = lost_slash_hint(str(path))
            if hint is None:
                raise
            raise MissingStoreError(f"{error} ({hint})") from error
    if scheme == "otlp-json":
        return OtlpJsonSource(file_path(url))
    if scheme == "dump":
        from taskdaemon.pipeline.tracking.dump_source import DumpSource  # noqa: PLC0415

        return DumpSource(file_path(url))
    if scheme in ("tempo+http", "tempo+https", "jaeger+http", "jaeger+https"):
        try:  # a bad host, as the resolver would find it at the first query, or port
            parts = http_url(url, (scheme,))
        except ValueError as exc:
            raise SpanSourceURLError(f"bad span source URL: {exc}") from None
        from taskdaemon.pipeline.tracking.http_sources import (  # noqa: PLC0415 - remote only
            JaegerSource,
            TempoSource,
        )

        backend, transport = scheme.split("+")
        base = f"{transport}://{parts.netloc}{parts.path.rstrip('/')}"
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        options = {"limits": remote_limits, **options}
        if backend == "tempo":
            headers = {"X-Scope-OrgID": query["org"]} if "org" in query else None
            return TempoSource(base, headers=headers, **options)
        return JaegerSource(base, service=query.get("service"), **options)
    from taskdaemon.pipeline.quoting import quoted  # noqa: PLC0415 - a refusal only

    raise SpanSourceURLError(
        f"unknown span source {quoted(display_url(url))}: use {SPAN_SOURCE_USAGE}"
    )
