"""Reaching a run served by another process: approvals, events and cancellation over a socket.

``taskdaemon run`` (and ``serve``, each run it schedules) serves its run on a Unix socket
``$TASKDAEMON_HOME/control/<run_id>.sock``
(home defaults to ``./.taskdaemon``) for as long as the run is open, and removes it at exit. A
process killed outright (``kill -9``) leaves its socket behind: stale, told from a live one by a
refused connection, skipped when runs are listed and removed (:func:`served_runs`).
The protocol is JSON lines: one request object per line, one response object per line.

Requests (``op`` plus fields)::

    {"op": "approve", "stage": "release", "by": "alice", "comment": "..."}
    {"op": "reject",  "stage": "release", "by": "alice", "reason": "...", "comment": "..."}
    {"op": "publish", "type": "spec.ready", "payload": {...}}
    {"op": "cancel", "by": "alice"}
    {"op": "status"}
    {"op": "debug", "action": "state", ...}   (see ``debug_ops.py``)

``comment`` and ``reason`` are optional text of at most 4,096 characters; a decision the run
accepted is logged on ``taskdaemon.audit`` as the HTTP API logs it (``approval_audit.py``).
``by`` (text of the same bound, one check for a decision and a cancel) names who decided, and
who cancelled in the run's error and its skipped stages' reason, ``run cancelled by alice``; a
client that sends none (one older than ``by``) is named ``control socket``.

Responses: ``{"ok": true, ...}`` (``status`` adds ``"status": {...}``) or
``{"ok": false, "error": "one line"}``, which quotes what it refuses as every error does,
redacted and cut (``quoting.quote_value``), never at length. The server never raises into
the run: a bad request is answered with an error and the connection stays usable.

What a client can make the run hold is bounded: a request line is at most 1 MiB (a longer one
closes the connection); a socket serves at most 32 connections at once: one more cuts the
connection that has waited longest for a request line (``connection_slots``: what that one
sent of a line is dropped, and so is what it had not taken of an earlier answer), or, when
every connection has a request in progress, is answered ``{"ok": false, ...}`` and closed; a
connection must send a complete request line within 10 s of connecting or of its last answer,
and take its answer within 10 s, or it is closed. Every client of the CLI sends one request on
a connection of its own at once, so the bounds only meet clients that connect and wait,
trickle or stop reading, which would otherwise each hold a connection (a file descriptor the
run's stages need) and up to a mebibyte of its line for as long as they liked, and refuse
every other client meanwhile.

The client side (:func:`send_request` and its wrappers) is synchronous, for the CLI. A run id
may be abbreviated to any prefix that names exactly one served run.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import itertools
import json
import os
import socket
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from taskdaemon.pipeline.approval_audit import log_approved, log_rejected, note_field
from taskdaemon.pipeline.bounded import BoundedInputError, loads_bounded
from taskdaemon.pipeline.connection_slots import longest_idle, stop_accepting
from taskdaemon.pipeline.control_sockets import (
    control_dir,
    listened_on,
    resolve_run,
    served_runs,
    shown_control_dir,
    socket_path,
)
from taskdaemon.pipeline.errors import PipelineError, RunNotFoundError
from taskdaemon.pipeline.private_file import make_private_dirs
from taskdaemon.pipeline.quoting import quote_value

__all__ = [
    "ControlServer",
    "ControlTarget",
    "approve",
    "cancel",
    "control_dir",
    "handle_status",
    "publish",
    "reject",
    "send_request",
    "served_runs",
    "shown_control_dir",
    "socket_path",
    "status",
]


#: Connections a run's socket queues before accepting them (asyncio's default).
_BACKLOG = 100

#: Unix socket paths are limited to about 107 bytes (sun_path) on Linux.
_MAX_SOCKET_PATH = 107
_MAX_LINE = 1 << 20
#: Connections a run's socket serves at once, and seconds a connection may take to send a
#: request line or to take its answer (the module docstring).
_MAX_CONNECTIONS = 32
_IDLE_TIMEOUT = 10.0


class ControlTarget(Protocol):
    """What the control server drives: a run handle (sync or async methods both work)."""

    def approve(self, stage: str, *, by: str = ...) -> Any:
        """Grant the approval a stage waits for."""

    def reject(self, stage: str, *, by: str = ...) -> Any:
        """Refuse the approval a stage waits for."""

    def publish(self, event_type: str, payload: Mapping[str, Any]) -> Any:
        """Publish an event into the run."""

    def cancel(self, *, by: str = ...) -> Any:
        """Cancel the run for ``by``."""


#: Numbers the staging names of this process's sockets (``ControlServer.start``).
_staged = itertools.count()


def handle_status(handle: Any) -> dict[str, Any]:
    """The ``status`` answer for a run handle (``RunHandle``): its id, pipeline, status and
    each stage's status, as ``taskdaemon status`` prints them."""
    snapshot = handle.snapshot()
    return {
        "run_id": snapshot.run_id,
        "pipeline": snapshot.pipeline,
        "status": str(snapshot.status),
        "stages": {name: str(status) for name, status in snapshot.stage_status.items()},
    }


@dataclass(slots=True)
class _Connection:
    """A connection the control server serves: since when it has waited for a request line
    (None while one is handled and answered: busy), and whether it was cut to make room."""

    transport: asyncio.WriteTransport
    idle_since: float | None = None
    evicted: bool = False


class ControlServer:
    """Serves one run on its control socket. ``async with ControlServer(...)`` or
    ``start()`` / ``aclose()`` (both safe to call twice).

    ``status`` returns a JSON-able mapping describing the run (the CLI's live view of it).
    """

    def __init__(
        self,
        run_id: str,
        target: ControlTarget,
        *,
        status: Callable[[], Mapping[str, Any]] = dict,
        home: str | os.PathLike[str] | None = None,
        extra_ops: Mapping[str, Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]]
        | None = None,
        max_connections: int = _MAX_CONNECTIONS,
        idle_timeout: float = _IDLE_TIMEOUT,
    ) -> None:
        self.run_id = run_id
        self.max_connections = max_connections
        self.idle_timeout = idle_timeout
        # More ops (``debug``): each answers the whole request with a response mapping.
        self._extra = dict(extra_ops or {})
        self.path = socket_path(run_id, home)
        self._target = target
        self._status = status
        self._server: asyncio.Server | None = None
        self._connections: dict[asyncio.Task[Any], _Connection] = {}

    async def start(self) -> None:
        """Create the socket (and its directory, private to the user)."""
        if self._server is not None:
            return
        if len(os.fsencode(self.path.absolute())) > _MAX_SOCKET_PATH:
            raise PipelineError(
                f"control socket path too long ({self.path.absolute()}): "
                "set TASKDAEMON_HOME to a shorter directory"
            )
        # TASKDAEMON_HOME too, when it is created here: it holds the span store (private).
        make_private_dirs(self.path.parent)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()  # a stale socket of a crashed process with the same run id
        # Bound under a name of its own, made 0600, then renamed into place: the socket is
        # never at its path with the umask's mode, not even for the moment before a chmod.
        # (short: a run's socket path may be near the limit of 107 bytes, and its name is longer).
        staging = self.path.with_name(f".{os.getpid()}-{next(_staged)}")
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            with contextlib.suppress(FileNotFoundError):
                staging.unlink()
            listener.bind(str(staging))
            os.chmod(staging, 0o600)
            # Listening before it is at its path: a listing (``served_runs``) that found it
            # there refusing connections would take it for a stale socket and remove it.
            listener.listen(_BACKLOG)
            os.replace(staging, self.path)
        except BaseException:
            listener.close()
            with contextlib.suppress(FileNotFoundError):
                staging.unlink()
            raise
        self._server = await asyncio.start_unix_server(
            self._serve, sock=listener, limit=_MAX_LINE, backlog=_BACKLOG
        )

    async def aclose(self) -> None:
        """Stop serving, remove the socket and end every connection: a request still in
        progress after a grace second is not answered (its client is told the connection
        closed)."""
        server, self._server = self._server, None
        if server is None:
            return
        await stop_accepting(server)
        server.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        if self._connections:
            # Let connections whose client left finish closing, and a request in progress be
            # answered: a connection task still open when the loop ends is cancelled there, and
            # logged with a traceback by asyncio.
            await asyncio.wait(set(self._connections), timeout=1.0)
        # Then end the others (a client that stays connected, a debug ``wait`` in progress)
        # here: cut, which frees a ``wait_closed`` at once, and cancelled (``_serve``).
        for task, connection in self._connections.items():
            connection.transport.abort()
            task.cancel()
        if self._connections:
            await asyncio.wait(set(self._connections))
        await server.wait_closed()

    async def __aenter__(self) -> ControlServer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Serve one connection, and end quietly when cancelled (``aclose``): Python 3.11's
        stream server logs a traceback for a connection task that ends cancelled."""
        with contextlib.suppress(asyncio.CancelledError):
            await self._converse(reader, writer)

    async def _converse(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None  # a stream server serves each connection in a task of its own
        loop = asyncio.get_running_loop()
        connection = _Connection(writer.transport)
        self._connections[task] = connection
        task.add_done_callback(self._forget)
        try:
            if self._held() > self.max_connections and not self._make_room(connection):
                refusal = (
                    f"run {self.run_id} is serving {self.max_connections} connections, its most"
                )
                writer.write(json.dumps({"ok": False, "error": refusal}).encode() + b"\n")
                return
            while True:
                connection.idle_since = loop.time()
                async with asyncio.timeout(self.idle_timeout):
                    line = await reader.readline()
                connection.idle_since = None
                if not line or connection.evicted:
                    break
                response = await self.handle(line)
                writer.write(json.dumps(response, default=str).encode() + b"\n")
                async with asyncio.timeout(self.idle_timeout):
                    await writer.drain()
        except TimeoutError:
            # Slow to send its request or to take its answer: closing would wait for the answer
            # to be taken, so the connection is cut.
            writer.transport.abort()
        except (ConnectionError, ValueError):
            pass  # the client went away, or sent an over-long line: nothing to answer
        finally:
            connection.idle_since = None
            writer.close()
            try:
                # Closing waits for the client to take what is left of its last answer: a
                # client that ended its side and never reads would hold the slot for ever.
                async with asyncio.timeout(self.idle_timeout):
                    await writer.wait_closed()
            except TimeoutError:
                writer.transport.abort()
            except ConnectionError:
                pass  # the client went away

    def _held(self) -> int:
        """The slots taken: every connection served but those cut to make room (ending)."""
        return sum(not connection.evicted for connection in self._connections.values())

    def _make_room(self, newcomer: _Connection) -> bool:
        """Cut the connection that has waited longest for a request line (``connection_slots``),
        which frees its slot at once; False when every other connection has a request in
        progress."""
        others = (c for c in self._connections.values() if c is not newcomer)
        victim = longest_idle(others, lambda c: c.idle_since)
        if victim is None:
            return False
        victim.evicted = True  # what it sent of a line, or a line not read yet, is not served
        victim.idle_since = None
        victim.transport.abort()  # close() would wait for the client to take what is left
        return True

    def _forget(self, task: asyncio.Task[Any]) -> None:
        self._connections.pop(task, None)

    async def handle(self, line: bytes) -> dict[str, Any]:
        """Answer one request line (exposed for tests and other transports)."""
        try:
            request = loads_bounded(line)  # json recurses: a deep line would kill the handler
        except BoundedInputError as exc:
            return {"ok": False, "error": str(exc)}
        if not isinstance(request, dict):
            return {"ok": False, "error": "a request is a JSON object with an 'op'"}
        op = request.get("op")
        try:
            if op == "status":
                return {"ok": True, "run_id": self.run_id, "status": dict(self._status())}
            if op in ("approve", "reject"):
                stage = request.get("stage")
                if not isinstance(stage, str) or not stage:
                    return {"ok": False, "error": f"{op} needs a 'stage'"}
                return await self._decide(op, stage, request)
            if op == "publish":
                event_type = request.get("type")
                payload = request.get("payload", {})
                if not isinstance(event_type, str) or not event_type:
                    return {"ok": False, "error": "publish needs a 'type'"}
                if not isinstance(payload, dict):
                    return {"ok": False, "error": "publish needs a JSON object as 'payload'"}
                await _maybe_await(self._target.publish(event_type, payload))
                return {"ok": True}
            if op == "cancel":
                try:
                    by = _by(request)
                except ValueError as exc:
                    return {"ok": False, "error": str(exc)}
                await _maybe_await(self._target.cancel(by=by))
                return {"ok": True}
            if isinstance(op, str) and op in self._extra:
                return await self._extra[op](request)
        except Exception as exc:  # the run refused (not waiting, closed run...): say why
            return {"ok": False, "error": str(exc) or type(exc).__name__}
        return {
            "ok": False,
            "error": f"unknown op {quote_value(op)} (approve, reject, publish, cancel, status)",
        }

    async def _decide(self, op: str, stage: str, request: dict[str, Any]) -> dict[str, Any]:
        """Approve or reject, then log the audit record the HTTP API logs for it."""
        try:
            by = _by(request)
            comment = note_field(request, "comment")
            reason = note_field(request, "reason")
        except ValueError as exc:
            return {"ok": False, "error": str(exc)}
        if op == "approve":
            if reason:
                return {"ok": False, "error": "a reason is for reject only"}
            await _maybe_await(self._target.approve(stage, by=by))
            log_approved(self.run_id, stage, by=by, comment=comment)
        else:
            await _maybe_await(self._target.reject(stage, by=by))
            log_rejected(self.run_id, stage, by=by, reason=reason, comment=comment)
        return {"ok": True}


def _by(request: Mapping[str, Any]) -> str:
    """Who ``request`` names: its ``by``, bounded by ``note_field`` (a decision's and a cancel's
    alike: a name reaches the run's error, spans and audit record), else ``control socket``."""
    return note_field(request, "by") or "control socket"


async def _maybe_await(value: object) -> None:
    if inspect.isawaitable(value):
        await value


def send_request(
    run_id: str,
    request: Mapping[str, Any],
    *,
    home: str | os.PathLike[str] | None = None,
    timeout: float = 10.0,
    max_bytes: int = _MAX_LINE,
) -> dict[str, Any]:
    """Send one request to the process serving ``run_id`` and return its response.

    Raises RunNotFoundError when no process serves that run (no socket, or a stale one), and
    PipelineError when the run answers with an error, does not answer within ``timeout``
    seconds, or answers anything but one JSON object on a line of at most ``max_bytes`` (1 MiB
    unless told; an answer is never read further).
    """
    path = resolve_run(run_id, home)
    data = json.dumps(dict(request)).encode() + b"\n"
    if len(data) > _MAX_LINE:  # the run reads no longer line: it would close the connection
        raise PipelineError(
            f"a request of {len(data):,} bytes is over the control socket's bound of "
            f"{_MAX_LINE:,} bytes"
        )
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.settimeout(timeout)
        try:
            client.connect(str(path))
        except (ConnectionRefusedError, FileNotFoundError):
            listened_on(path)  # probed again: a stale socket of ours is removed
            raise RunNotFoundError(
                f"run {path.stem!r} is not served any more (stale socket {path}): "
                "its 'taskdaemon run' (or 'serve') process has ended"
            ) from None
        except OSError as exc:  # another user's socket (EACCES), not a socket...
            raise RunNotFoundError(
                f"cannot reach run {path.stem!r} at {path}: {exc.strerror or exc}"
            ) from None
        try:
            client.sendall(data)
            with client.makefile("rb") as stream:
                line = stream.readline(max_bytes)
        except TimeoutError:  # its loop is blocked, or it is stopped (SIGSTOP, a debugger)
            raise PipelineError(f"run {path.stem!r} did not answer within {timeout:g} s") from None
        except OSError as exc:  # it closed the connection mid-request (it ended, say)
            raise PipelineError(
                f"run {path.stem!r} closed the connection: {exc.strerror or exc}"
            ) from None
    if not line:
        raise PipelineError(f"run {path.stem!r} closed the connection without answering")
    if len(line) == max_bytes and not line.endswith(b"\n"):
        raise PipelineError(
            f"run {path.stem!r} answered with more than {max_bytes >> 20} MiB: not read"
        )
    try:
        response = json.loads(line)
    except (ValueError, RecursionError):  # not JSON, or nested past what json decodes
        response = None
    if not isinstance(response, dict):
        raise PipelineError(f"run {path.stem!r} answered with something other than a JSON object")
    if not response.get("ok"):
        raise PipelineError(str(response.get("error", "request refused")))
    return response


def approve(
    run_id: str, stage: str, *, by: str = "", comment: str = "", home: str | None = None
) -> None:
    """Grant the approval ``stage`` of run ``run_id`` waits for."""
    request = {"op": "approve", "stage": stage, "by": by, "comment": comment}
    send_request(run_id, request, home=home)


def reject(
    run_id: str,
    stage: str,
    *,
    by: str = "",
    reason: str = "",
    comment: str = "",
    home: str | None = None,
) -> None:
    """Refuse the approval ``stage`` of run ``run_id`` waits for."""
    request = {"op": "reject", "stage": stage, "by": by, "reason": reason, "comment": comment}
    send_request(run_id, request, home=home)


def publish(
    run_id: str, event_type: str, payload: Mapping[str, Any], *, home: str | None = None
) -> None:
    """Publish an event into run ``run_id``."""
    send_request(run_id, {"op": "publish", "type": event_type, "payload": dict(payload)}, home=home)


def cancel(run_id: str, *, by: str = "", home: str | None = None) -> None:
    """Cancel run ``run_id`` for ``by``."""
    send_request(run_id, {"op": "cancel", "by": by}, home=home)


def status(run_id: str, *, home: str | None = None) -> dict[str, Any]:
    """The status mapping the serving process reports for run ``run_id``."""
    result: dict[str, Any] = send_request(run_id, {"op": "status"}, home=home)["status"]
    return result
