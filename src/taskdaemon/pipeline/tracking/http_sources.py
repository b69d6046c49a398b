"""The HTTP span sources, Grafana Tempo and Jaeger, which ``sources.open_source`` opens for
``tempo+http(s)://`` and ``jaeger+http(s)://`` URLs (the URL forms: ``tracking.sources``).

Decisions: a backend stores the run span only when it ends. Tempo's search asks for run spans,
so it lists finished runs only (``running`` / ``interrupted`` filters return nothing there);
Jaeger's, by service, also finds a run whose run span has not come, listed ``running`` with the
stages ended so far (by pipeline it asks for the run span's name, so finished runs only). Each
search reads afresh: a listing asked again shows such a run ended once its run span is in
(the runs page refreshes itself; ``runs list`` prints once). Remote searches fetch each
found trace (one request per run, ``limit`` bounds it) so that stage and failure counts are as
exact as the store's; a Tempo search fetches at most ``limit`` of the traces found, the newest.
HTTP: timeouts (3 s connect, 10 s read), three tries with backoff on connection errors and 5xx,
then ``SpanSourceError`` naming the URL and the reason. Every query has an overall deadline
(``TASKDAEMON_SOURCE_TIMEOUT``, 30 s) and each response a size cap
(``TASKDAEMON_SOURCE_MAX_BYTES``, 64 MiB); credentials in a source URL travel as HTTP basic auth
and are never shown (``tracking._remote``). Jaeger's request parameters and error answers are
``tracking._jaeger``'s.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from taskdaemon.pipeline import telemetry as t
from taskdaemon.pipeline.bounded import (
    FREE_VALUES,
    MIN_BYTES_PER_VALUE,
    BoundedInputError,
    LongNumber,
    NotJSONError,
    TooDenseError,
)
from taskdaemon.pipeline.errors import RunNotFoundError, SpanSourceError
from taskdaemon.pipeline.quoting import quote
from taskdaemon.pipeline.records import RunRecord, RunSummary
from taskdaemon.pipeline.state import RunStatus
from taskdaemon.pipeline.status_rules import OPEN_RUN_STATUSES
from taskdaemon.pipeline.terminal_text import one_line
from taskdaemon.pipeline.tracking._item_flood import loads_answer
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
from taskdaemon.pipeline.tracking.otlp_json import Skipped, normalize_id, parse_traces
from taskdaemon.pipeline.tracking.reconstruct import reconstruct_run, summarize_run
from taskdaemon.pipeline.tracking.run_filter import filter_summaries, group_by_trace, whole_run_id
from taskdaemon.pipeline.tracking.spans import SpanRecord

if TYPE_CHECKING:  # imported where used: reading the store needs neither (start-up time)
    import httpx


__all__ = ["DEFAULT_SEARCH_WINDOW", "JaegerSource", "TempoSource"]

logger = logging.getLogger(__name__)

DEFAULT_SEARCH_WINDOW = 7 * 86400.0  # Tempo's default max search duration is 168h
_SNIPPET_WIDTH = 200  # characters of a backend's own text in an error message

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
        else:  # every try made: the deadline is the reason only when it is (nearly) reached
            if time.monotonic() + self._backoff < deadline_at:
                raise SpanSourceError(f"{last} (after {self._retries} tries)")
        raise SpanSourceError(
            f"{url}: no complete answer within {self.limits.deadline:g} s "
            f"(TASKDAEMON_SOURCE_TIMEOUT){f'; last error: {last}' if last else ''}"
        )

    def _json(self, response: httpx.Response) -> Any:
        if response.status_code >= 400:
            raise SpanSourceError(
                f"{_where(response)}: HTTP {response.status_code}: {_snippet(response)}"
            )
        if 300 <= response.status_code < 400:
            # Not followed: a backend's address is configured, and a redirect to a sign-in
            # page or another host is worth a clear line, not an empty or HTML "trace".
            target = one_line(_redirect_target(response), _SNIPPET_WIDTH)
            raise SpanSourceError(
                f"{_where(response)}: HTTP {response.status_code}, a redirect not followed, "
                f"to {target or 'nowhere'}"
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
            # A number too long to read costs the hit or span holding it, not the answer; a
            # flood of attributes, events or links is left out while decoding
            # (tracking._item_flood).
            body = loads_answer(text, _where(response))
        except NotJSONError:
            # grpc-gateway streams one JSON object per line.
            try:
                objects = _json_lines(text, _where(response), lambda: self._in_time(response))
            except TooDenseError as exc:
                raise SpanSourceError(f"{_where(response)}: JSON lines body {exc}") from None
            if objects:
                return objects
            raise SpanSourceError(
                f"{_where(response)}: malformed JSON body ({len(text)} bytes): {quote(text)}"
            ) from None
        except BoundedInputError as exc:
            raise SpanSourceError(f"{_where(response)}: JSON body {exc}") from None
        self._in_time(response)
        return body

    def _in_time(self, response: httpx.Response) -> None:
        """``SpanSourceError`` once the query's deadline has passed while an answer already
        read is decoded and its spans read: CPU work that grows with the answer, which the
        bounds of the reads do not see. Decision: the decode of one JSON document is not cut
        short (the decoder is one C call, and decoding in pieces would cost every answer), so
        a query may end past its deadline by the decoding of the answer in hand; its spans are
        read in steps that stop at the deadline (``parse_traces``' ``check``)."""
        if self._deadline_at is not None and time.monotonic() > self._deadline_at:
            raise SpanSourceError(
                f"{_where(response)}: no complete answer within {self.limits.deadline:g} s "
                "(TASKDAEMON_SOURCE_TIMEOUT); its answer came and was still being read"
            )

    def _traces(self, body: Any, response: httpx.Response) -> list[SpanRecord]:
        where = _where(response)
        bodies = body if isinstance(body, list) else [body]
        spans: list[SpanRecord] = []
        for item in bodies:
            if isinstance(item, dict) and "error" in item and "result" not in item:
                text = error_message(item["error"]) or str(item["error"])
                error = one_line(text, _SNIPPET_WIDTH)
                raise SpanSourceError(f"{where}: backend error: {error}")
            spans.extend(parse_traces(item, where=where, check=lambda: self._in_time(response)))
        return spans

    def _trace_spans(self, response: httpx.Response, trace_id: str) -> list[SpanRecord]:
        """The spans of ``trace_id`` in a trace-by-id answer; ``RunNotFoundError`` on 404 or
        when the answer holds none of them. Spans that claim another trace are left out with
        one warning counting them: they are no part of this run, and the run shown lacks
        whatever the backend meant by them."""
        if response.status_code == 404:
            raise RunNotFoundError(f"no run {trace_id} in {self.backend} at {self.base_url}")
        spans: list[SpanRecord] = []
        others = Skipped()
        for span in self._traces(self._json(response), response):
            if span.trace_id == trace_id:
                spans.append(span)
            else:
                others.add(f"{span.span_id}, of trace {span.trace_id}")
        others.warn(logger, _where(response), "span of another trace", "spans of other traces")
        if not spans:
            raise RunNotFoundError(f"no run {trace_id} in {self.backend} at {self.base_url}")
        return spans

    @_query
    def get_run(self, run_id: str) -> RunRecord:
        """The run rebuilt from its spans (``running`` while the run span is missing)."""
        return reconstruct_run(self.get_trace(run_id))

    def get_trace(self, run_id: str) -> list[SpanRecord]:
        raise NotImplementedError


def _json_lines(text: str, where: str, check: Callable[[], None]) -> list[Any] | None:
    """Every line of ``text`` decoded, blank lines left out; None at the first line that does
    not decode to an object (a stream's chunk; a body of short scalars cost many times its size
    before the first was looked at). Quietly: a body that is not JSON lines is one error for
    the caller, not a warning per line (a protobuf or HTML answer). ``check`` is called before
    each line (it raises past the query's deadline).

    Lines end at ``\n`` only (a JSON string may hold U+2028, U+2029 or U+0085 raw, which
    ``splitlines`` broke a line at), and are cut from ``text`` one at a time: each line is a
    value, so ``TooDenseError`` (``bounded``'s density rule) for more than one a
    ``MIN_BYTES_PER_VALUE`` characters, before anything is cut (a body of short lines was once
    all cut at once, a string a line, many times its size; figures in ``benchmarks/README.md``,
    remote58)."""
    lines = text.count("\n") + 1
    if lines > max(FREE_VALUES, len(text) // MIN_BYTES_PER_VALUE):
        raise TooDenseError(
            f"holds {lines} lines in {len(text)} characters, more than one per "
            f"{MIN_BYTES_PER_VALUE} characters"
        )
    objects = []
    start = 0
    while start <= len(text):
        end = text.find("\n", start)
        if end < 0:
            end = len(text)
        line = text[start:end]
        start = end + 1
        if line.strip():
            check()
            try:
                value = loads_answer(line, where)
            except BoundedInputError:
                return None
            if not isinstance(value, dict):
                return None  # a stream's chunks are objects: not such a stream
            objects.append(value)
    return objects


def _where(response: httpx.Response) -> str:
    """The URL a message names an answer by, in at most :data:`_SNIPPET_WIDTH` characters: its
    query holds what a client asked for (a 16 KiB ``pipeline`` filter of the web page's
    ``/api/runs/recent`` went into a 502's text whole)."""
    return one_line(str(response.request.url), _SNIPPET_WIDTH)


def _redirect_target(response: httpx.Response) -> str:
    """Where a redirect points, as shown: its password hidden (``display_url``), and its query
    and fragment left out (``?…``). A sign-in page's redirect carries its state, a code or a
    session's token there under names no redaction knows, and which page it is reads from its
    host and path. The target ends the line: redaction took ``secret: not`` after a query
    value for a key and its value, and the line read "[REDACTED] followed"."""
    target = display_url(response.headers.get("Location", ""))
    cut = min((i for i in (target.find("?"), target.find("#")) if i >= 0), default=-1)
    return target if cut < 0 else f"{target[:cut]}?…"


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
        trace_id = whole_run_id(run_id)
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
        trace_ids: list[tuple[int, str]] = []
        unusable = Skipped()  # one line for the answer: the list shown lacks these runs
        for found in _search_hits(self._json(response), response):
            try:
                trace_ids.append((_start_of(found), normalize_id(found["traceID"], 32, pad=True)))
            except (KeyError, TypeError, ValueError) as exc:
                unusable.add(one_line(str(exc), _SNIPPET_WIDTH))
        unusable.warn(logger, "Tempo search", "unreadable result", "unreadable results")
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


def _search_hits(body: Any, response: httpx.Response) -> list[Any]:
    """The ``traces`` of a Tempo search answer; ``SpanSourceError`` for a body that is no such
    answer.

    Decision: Tempo writes its ``SearchResponse`` (``traces``, ``metrics``) with gogo's
    ``jsonpb`` and its defaults, which leave out an empty repeated field: a search that found
    nothing is ``{"metrics": {...}}``, without ``traces``. Its query frontend always sets
    ``metrics`` (an empty ``SearchMetrics`` at least, written ``{}``), so an object holding
    neither key is not Tempo's answer (a wrong address, another service's JSON, ``{}``) and is
    refused rather than read as no runs."""
    if isinstance(body, dict):
        if "traces" in body:
            if isinstance(body["traces"], list):
                return body["traces"]
        elif isinstance(body.get("metrics"), dict):
            return []
    raise SpanSourceError(
        f"{_where(response)}: not a Tempo search response "
        "(an object with a list of traces, or metrics when none was found)"
    )


def _start_of(found: Any) -> int:
    """A Tempo search result's ``startTimeUnixNano`` (0 when missing or not a number, infinite
    included, or when the result is not an object: its ``traceID`` look-up then skips it).
    ValueError for a number too long to read (``bounded.LongNumber``): the result is skipped,
    said in the answer's warning, where the whole answer was once refused for it."""
    if not isinstance(found, dict):
        return 0
    start = found.get("startTimeUnixNano")
    if isinstance(start, LongNumber):
        raise ValueError(f"startTimeUnixNano {start!r}")
    try:
        return int(start or 0)
    except (TypeError, ValueError, OverflowError):
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
        trace_id = whole_run_id(run_id)
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
        spans = self._traces(self._json(response), response)
        return filter_summaries(
            group_by_trace(spans),
            pipeline=pipeline,
            status=status,
            since=since,
            until=until,
            limit=limit,
        )
