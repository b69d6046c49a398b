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

Decisions: a backend stores the run span only when it ends, so a remote search lists finished
runs only (``running`` / ``interrupted`` filters return nothing there). Remote searches fetch each
found trace (one request per run, ``limit`` bounds it) so that stage and failure counts are as
exact as the store's; a Tempo search fetches at most ``limit`` of the traces found, the newest.
HTTP: timeouts (3 s connect, 10 s read), three tries with backoff on connection errors and 5xx,
then ``SpanSourceError`` naming the URL and the reason. Every query has an overall deadline
(``TASKDAEMON_SOURCE_TIMEOUT``, 30 s) and each response a size cap
(``TASKDAEMON_SOURCE_MAX_BYTES``, 64 MiB); credentials in a source URL travel as HTTP basic auth
and are never shown (``tracking._remote``).
"""

from __future__ import annotations

import functools
import json
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ParamSpec, Protocol, TypeVar, runtime_checkable
from urllib.parse import parse_qs, urlsplit

from taskdaemon.pipeline import telemetry as t
from taskdaemon.pipeline.bounded import BoundedInputError, NotJSONError, loads_bounded
from taskdaemon.pipeline.ellipsis import quote
from taskdaemon.pipeline.errors import RunNotFoundError, SpanSourceError, SpanSourceURLError
from taskdaemon.pipeline.home import home_directory
from taskdaemon.pipeline.records import RunRecord, RunSummary
from taskdaemon.pipeline.run_id_form import run_id_problem
from taskdaemon.pipeline.run_state import OPEN_RUN_STATUSES
from taskdaemon.pipeline.settings import SPAN_SOURCE_USAGE
from taskdaemon.pipeline.state import RunStatus
from taskdaemon.pipeline.terminal_text import one_line
from taskdaemon.pipeline.tracking._jaeger import (
    error_body_message,
    error_message,
    nothing_found,
    search_params,
)
from taskdaemon.pipeline.tracking._remote import (
    RemoteLimits,
    display_url,
    read_bounded,
    split_credentials,
)
from taskdaemon.pipeline.tracking._schema import file_in_the_way
from taskdaemon.pipeline.tracking.otlp_json import (
    Skipped,
    iter_json_lines,
    may_hold_trace,
    normalize_id,
    parse_traces,
)
from taskdaemon.pipeline.tracking.reconstruct import reconstruct_run, summarize_run
from taskdaemon.pipeline.tracking.run_filter import filter_summaries, group_by_trace
from taskdaemon.pipeline.tracking.source_urls import file_path, scheme_of, sqlite_path
from taskdaemon.pipeline.tracking.spans import SpanRecord
from taskdaemon.pipeline.tracking.store import SpanStore
from taskdaemon.pipeline.variables import variable

if TYPE_CHECKING:  # imported where used: reading the store needs neither (start-up time)
    import httpx


__all__ = [
    "JaegerSource",
    "OtlpJsonSource",
    "SpanSource",
    "TempoSource",
    "default_source_url",
    "open_source",
]

logger = logging.getLogger(__name__)

DEFAULT_SEARCH_WINDOW = 7 * 86400.0  # Tempo's default max search duration is 168h
_SNIPPET_WIDTH = 200  # characters of a backend's own text in an error message


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


def _check_run_id(run_id: str) -> str:
    """``run_id`` as the 32 lower-case hex digits a backend is asked for (blanks around it
    forgiven); RunNotFoundError with ``run_id_form``'s rule and message otherwise, the
    server's and the store's words. Only the whole id: these sources resolve no prefix.

    Not ``otlp_json.normalize_id``'s forms, which read what a backend sends: a 16-digit id
    left-padded (Jaeger's 64-bit trace ids) and base64 (OTLP JSON). Typed by a user, 16
    digits are a prefix of a run id (the store resolves it), never a 64-bit id: padded, they
    named another run; and base64 is no spelling of a run id anywhere it is shown."""
    wanted = run_id.strip()
    if (problem := run_id_problem(wanted, full=True)) is not None:
        raise RunNotFoundError(problem)
    return wanted.lower()


# --- HTTP backends ---------------------------------------------------------------------------

_P = ParamSpec("_P")
_R = TypeVar("_R")


def _query(method: Callable[_P, _R]) -> Callable[_P, _R]:
    """Run a public query of an ``_HttpSource`` under one overall deadline (a query that calls
    another shares the outer one's)."""

    @functools.wraps(method)
    def bounded(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        source: Any = args[0]
        outer = source._deadline_at is None
        if outer:
            source._deadline_at = time.monotonic() + source.limits.deadline
        try:
            return method(*args, **kwargs)
        finally:
            if outer:
                source._deadline_at = None

    return bounded


class _HttpSource:
    """Shared HTTP plumbing: base URL, timeouts, retries with backoff, clear errors, and the
    bounds of ``tracking._remote`` (``limits``: None reads them from the environment)."""

    backend: str  # the product named in "no run" errors; each subclass sets it

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = 10.0,
        retries: int = 3,
        backoff: float = 0.2,
        headers: dict[str, str] | None = None,
        clock: Callable[[], float] = time.time,
        transport: httpx.BaseTransport | None = None,
        limits: RemoteLimits | None = None,
    ) -> None:
        url, credentials = split_credentials(base_url.rstrip("/"))
        self.base_url = url  # never holds a password: it is in messages
        self.limits = limits if limits is not None else RemoteLimits.from_env()
        self._timeout = timeout
        self._retries = max(1, retries)
        self._backoff = backoff
        self._clock = clock
        import httpx  # noqa: PLC0415 - only the remote sources need the HTTP client

        self._deadline_at: float | None = None
        self._client = httpx.Client(
            base_url=self.base_url,
            timeout=httpx.Timeout(timeout, connect=min(3.0, timeout)),
            headers={"Accept": "application/json", **(headers or {})},
            transport=transport,
            auth=credentials,
        )
        from taskdaemon.pipeline.tracking import _deadline_io  # noqa: PLC0415 - with httpx

        _deadline_io.bound(self._client)

    def close(self) -> None:
        """Close the HTTP client; safe to call twice."""
        self._client.close()

    def __enter__(self) -> _HttpSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _get(self, path: str, params: dict[str, Any] | None = None) -> httpx.Response:
        """GET with retries on transport errors and 5xx, within the query's deadline and the
        body size cap; 4xx responses are returned."""
        import httpx  # noqa: PLC0415 - loaded by __init__ already

        url = f"{self.base_url}{path}"
        deadline_at = self._deadline_at
        if deadline_at is None:  # a request outside a query: its own deadline
            deadline_at = time.monotonic() + self.limits.deadline
        last: str = ""
        for attempt in range(self._retries):
            pause = self._backoff * 2 ** (attempt - 1) if attempt else 0.0
            if time.monotonic() + pause >= deadline_at:
                break
            time.sleep(pause)
            try:
                response = read_bounded(
                    self._client,
                    path,
                    params,
                    read_timeout=self._timeout,
                    deadline_at=deadline_at,
                    max_bytes=self.limits.max_bytes,
                    shown=url,
                )
            except httpx.TransportError as exc:
                last = f"cannot reach {url}: {type(exc).__name__}: {exc}"
                continue
            if response.status_code >= 500:
                last = f"{url}: HTTP {response.status_code}: {_snippet(response)}"
                continue
            return response
        if time.monotonic() + self._backoff >= deadline_at:
            raise SpanSourceError(
                f"{url}: no complete answer within {self.limits.deadline:g} s "
                f"(TASKDAEMON_SOURCE_TIMEOUT){f'; last error: {last}' if last else ''}"
            )
        raise SpanSourceError(f"{last} (after {self._retries} tries)")

    def _json(self, response: httpx.Response) -> Any:
        if response.status_code >= 400:
            raise SpanSourceError(
                f"{_where(response)}: HTTP {response.status_code}: {_snippet(response)}"
            )
        if 300 <= response.status_code < 400:
            # Not followed: a backend's address is configured, and a redirect to a sign-in
            # page or another host is worth a clear line, not an empty or HTML "trace".
            target = one_line(display_url(response.headers.get("Location", "")), _SNIPPET_WIDTH)
            raise SpanSourceError(
                f"{_where(response)}: HTTP {response.status_code}, a redirect to "
                f"{target or 'nowhere'}: not followed"
            )
        try:
            # JSON is UTF-8 (RFC 8259), whatever charset the Content-Type names.
            text = response.content.decode()
        except UnicodeDecodeError as exc:
            raise SpanSourceError(
                f"{_where(response)}: malformed JSON body ({len(response.content)} bytes): "
                f"not UTF-8 ({exc.reason} at byte {exc.start})"
            ) from None
        try:
            return loads_bounded(text)
        except NotJSONError:
            # grpc-gateway streams one JSON object per line.
            objects = _json_lines(text)
            if objects:
                return objects
            raise SpanSourceError(
                f"{_where(response)}: malformed JSON body ({len(text)} bytes): {quote(text)}"
            ) from None
        except BoundedInputError as exc:
            raise SpanSourceError(f"{_where(response)}: JSON body {exc}") from None

    def _traces(self, body: Any, where: str) -> list[SpanRecord]:
        bodies = body if isinstance(body, list) else [body]
        spans: list[SpanRecord] = []
        for item in bodies:
            if isinstance(item, dict) and "error" in item and "result" not in item:
                text = error_message(item["error"]) or str(item["error"])
                error = one_line(text, _SNIPPET_WIDTH)
                raise SpanSourceError(f"{where}: backend error: {error}")
            spans.extend(parse_traces(item, where=where))
        return spans

    def _trace_spans(self, response: httpx.Response, trace_id: str) -> list[SpanRecord]:
        """The spans of ``trace_id`` in a trace-by-id answer; ``RunNotFoundError`` on 404 or
        when the answer holds none of them."""
        if response.status_code == 404:
            raise RunNotFoundError(f"no run {trace_id} in {self.backend} at {self.base_url}")
        where = _where(response)
        spans = [s for s in self._traces(self._json(response), where) if s.trace_id == trace_id]
        if not spans:
            raise RunNotFoundError(f"no run {trace_id} in {self.backend} at {self.base_url}")
        return spans

    @_query
    def get_run(self, run_id: str) -> RunRecord:
        """The run rebuilt from its spans (``running`` while the run span is missing)."""
        return reconstruct_run(self.get_trace(run_id))

    def get_trace(self, run_id: str) -> list[SpanRecord]:
        raise NotImplementedError


def _json_lines(text: str) -> list[Any] | None:
    """Every line of ``text`` decoded, blank lines left out; None at the first line that does
    not decode. Quietly: a body that is not JSON lines is one error for the caller, not a
    warning per line (a protobuf or HTML answer)."""
    objects = []
    for line in text.splitlines():
        if line.strip():
            try:
                objects.append(loads_bounded(line))
            except BoundedInputError:
                return None
    return objects


def _where(response: httpx.Response) -> str:
    """The URL a message names an answer by, in at most :data:`_SNIPPET_WIDTH` characters: its
    query holds what a client asked for (a 16 KiB ``pipeline`` filter of the web page's
    ``/api/runs/recent`` went into a 502's text whole)."""
    return one_line(str(response.request.url), _SNIPPET_WIDTH)


def _snippet(response: httpx.Response) -> str:
    """The start of an error answer's body (the message of Jaeger's JSON error) as one line:
    the backend chose that text, so its control characters (a terminal's escapes, line breaks)
    are shown escaped."""
    text = error_body_message(response.content)
    if text is None:
        text = response.content.decode(errors="replace")  # any charset it names may be wrong
    return one_line(text, _SNIPPET_WIDTH) or response.reason_phrase


class TempoSource(_HttpSource):
    """Grafana Tempo's HTTP API (``tempo+http://HOST:3200``)."""

    backend = "Tempo"
    _v2_missing = False  # set once v1 answered where v2 said 404: a Tempo older than 2.6

    @_query
    def get_trace(self, run_id: str) -> list[SpanRecord]:
        """``/api/v2/traces/<id>``, or ``/api/traces/<id>`` when v2 answers 404 (Tempo < 2.6;
        remembered, so a search over an old Tempo costs one request per run, not two)."""
        trace_id = _check_run_id(run_id)
        if self._v2_missing:
            return self._trace_spans(self._get(f"/api/traces/{trace_id}"), trace_id)
        response = self._get(f"/api/v2/traces/{trace_id}")
        if response.status_code == 404:
            response = self._get(f"/api/traces/{trace_id}")
            if response.status_code != 404:
                self._v2_missing = True
        return self._trace_spans(response, trace_id)

    @_query
    def search(
        self,
        pipeline: str | None = None,
        status: str | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int = 100,
    ) -> list[RunSummary]:
        """TraceQL over the run spans' ``cicd.pipeline.*`` attributes, then one fetch per run,
        for at most ``limit`` of the traces found (the newest: Tempo may answer more than it
        was asked for)."""
        if status in OPEN_RUN_STATUSES or status == RunStatus.PENDING:
            return []
        conditions = [f'span.{t.CICD_PIPELINE_ACTION_NAME} = "{t.RUN_ACTION}"']
        if pipeline is not None:
            conditions.append(f"span.{t.CICD_PIPELINE_NAME} = {json.dumps(pipeline)}")
        if status == "success":
            conditions.append(f'span.{t.CICD_PIPELINE_RESULT} = "{t.RESULT_SUCCESS}"')
        elif status == "failure":
            conditions.append(f'span.{t.CICD_PIPELINE_RESULT} =~ "failure|error|timeout"')
        elif status == "cancelled":
            conditions.append(f'span.{t.CICD_PIPELINE_RESULT} =~ "cancellation|skip"')
        end = until if until is not None else self._clock()
        start = since if since is not None else end - DEFAULT_SEARCH_WINDOW
        params = {
            "q": "{ " + " && ".join(conditions) + " }",
            "start": int(start),
            "end": int(end) + 1,
            "limit": limit,
        }
        response = self._get("/api/search", params)
        body = self._json(response)
        if not isinstance(body, dict) or not isinstance(body.get("traces", []), list):
            raise SpanSourceError(f"{_where(response)}: not a Tempo search response")
        trace_ids: list[tuple[int, str]] = []
        unusable = Skipped()  # one line for the answer: the list shown lacks these runs
        for found in body.get("traces") or []:
            try:
                trace_ids.append((_start_of(found), normalize_id(found["traceID"], 32, pad=True)))
            except (KeyError, TypeError, ValueError) as exc:
                unusable.add(one_line(str(exc), _SNIPPET_WIDTH))
        unusable.warn(
            logger,
            "Tempo search",
            "result without a usable traceID",
            "results without a usable traceID",
        )
        trace_ids.sort(reverse=True)
        out = []
        # Found by the search, then not there (Tempo had not written it yet, or it was
        # trimmed between the two reads) or no run in it: one line, as the list lacks them.
        gone = Skipped()
        for _, trace_id in trace_ids[: max(limit, 0)]:
            try:
                summary = summarize_run(self.get_run(trace_id))
            except RunNotFoundError as exc:
                gone.add(one_line(str(exc), _SNIPPET_WIDTH))
                continue
            if status is not None and summary.status != status:
                continue
            if (since is not None and summary.start < since) or (
                until is not None and summary.start > until
            ):
                continue
            out.append(summary)
        gone.warn(
            logger,
            "Tempo search",
            "run it found but could not read",
            "runs it found but could not read",
        )
        out.sort(key=lambda s: (-s.start, s.run_id))
        return out[:limit]


def _start_of(found: Any) -> int:
    """A Tempo search result's ``startTimeUnixNano`` (0 when missing or not a number, or when
    the result is not an object: its ``traceID`` look-up then skips it)."""
    if not isinstance(found, dict):
        return 0
    try:
        return int(found.get("startTimeUnixNano") or 0)
    except (TypeError, ValueError):
        return 0


class JaegerSource(_HttpSource):
    """Jaeger v2's query API v3 (``jaeger+http://HOST:16686``)."""

    backend = "Jaeger"

    def __init__(self, base_url: str, *, service: str | None = None, **kwargs: Any) -> None:
        super().__init__(base_url, **kwargs)
        self.service = service or os.environ.get("OTEL_SERVICE_NAME") or "taskdaemon"

    @_query
    def get_trace(self, run_id: str) -> list[SpanRecord]:
        """``/api/v3/traces/<id>`` → ``{"result": {"resourceSpans": …}}``."""
        trace_id = _check_run_id(run_id)
        response = self._get(f"/api/v3/traces/{trace_id}")
        if self._nothing_found(response):
            raise RunNotFoundError(f"no run {trace_id} in {self.backend} at {self.base_url}")
        return self._trace_spans(response, trace_id)

    def _nothing_found(self, response: httpx.Response) -> bool:
        """Whether ``response`` is Jaeger's "nothing found"; ``SpanSourceError`` for a 404
        that is not Jaeger's: no API v3 there (``tracking._jaeger``)."""
        found = nothing_found(response.status_code, response.content)
        if found is None:
            raise SpanSourceError(
                f"{_where(response)}: HTTP 404: {_snippet(response)}: "
                "not an answer of Jaeger's query API v3 (is the address right?)"
            )
        return found

    @_query
    def search(
        self,
        pipeline: str | None = None,
        status: str | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int = 100,
    ) -> list[RunSummary]:
        """``/api/v3/traces`` by service (and ``RUN {pipeline}`` operation); full traces come
        back, so summaries are computed locally."""
        end = until if until is not None else self._clock()
        start = since if since is not None else end - DEFAULT_SEARCH_WINDOW
        if start >= end + 1:
            return []  # an empty window, which Jaeger refuses (400) rather than searches
        operation = t.run_span_name(pipeline) if pipeline is not None else None
        params = search_params(self.service, operation, start, end + 1, limit)
        response = self._get("/api/v3/traces", params)
        if self._nothing_found(response):
            return []
        spans = self._traces(self._json(response), _where(response))
        return filter_summaries(
            group_by_trace(spans),
            pipeline=pipeline,
            status=status,
            since=since,
            until=until,
            limit=limit,
        )


# --- OTLP-JSON files -------------------------------------------------------------------------


class OtlpJsonSource:
    """OTLP JSON lines (one ``{"resourceSpans": …}`` object per line, as the collector's file
    exporter writes them), from one file or every non-hidden file of a directory. A file holding
    one (pretty-printed) JSON document is read too. Files are re-read on every query, so a file
    still being appended to is seen as it grows."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise SpanSourceError(f"{self.path}: no such file or directory")

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
        trace_id = _check_run_id(run_id)
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
        path = sqlite_path(url)
        if missing_ok is None:
            missing_ok = os.path.abspath(path) == os.path.abspath(home_store())
        if missing_ok and (blocker := file_in_the_way(Path(path))) is not None:
            # A home that is a file can hold no store: "no runs" would hide the mistake.
            raise SpanSourceError(f"{blocker}: not a directory, so no span store can be in it")
        return SpanStore(path, missing_ok=missing_ok, **options)
    if scheme == "otlp-json":
        return OtlpJsonSource(file_path(url))
    if scheme == "dump":
        from taskdaemon.pipeline.tracking.dump_source import DumpSource  # noqa: PLC0415

        return DumpSource(file_path(url))
    if scheme in ("tempo+http", "tempo+https", "jaeger+http", "jaeger+https"):
        try:
            parts = urlsplit(url)
            hostname = parts.hostname
            parts.port  # noqa: B018 - raises ValueError for a port out of range
        except ValueError as exc:  # a bad port or IPv6 literal
            raise SpanSourceURLError(f"bad span source URL {display_url(url)!r}: {exc}") from None
        if not hostname:
            raise SpanSourceURLError(f"bad span source URL {display_url(url)!r}: no host")
        backend, transport = scheme.split("+")
        base = f"{transport}://{parts.netloc}{parts.path.rstrip('/')}"
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        options = {"limits": remote_limits, **options}
        if backend == "tempo":
            headers = {"X-Scope-OrgID": query["org"]} if "org" in query else None
            return TempoSource(base, headers=headers, **options)
        return JaegerSource(base, service=query.get("service"), **options)
    raise SpanSourceURLError(f"unknown span source {display_url(url)!r}: use {SPAN_SOURCE_USAGE}")
