"""The HTTP server in its own thread and event loop, and the bridge back to the engine's loop.

Rendering ``/metrics`` (hundreds of KB), parsing requests and writing responses used to run on
the engine's event loop: 200 scrapers pushed its lag past three seconds, so ``/healthz``
answered 503 and the engine slowed by half. Now :class:`MonitorServer` runs Uvicorn in a thread
of its own, and everything that touches the engine goes through a :class:`LoopBridge`
(``asyncio.run_coroutine_threadsafe``) onto the engine's loop, so engine state is only ever
touched by the engine's thread. ``/healthz`` reads the engine loop's lag monitor, which keeps
ticking on the engine's loop.

Sockets: the listening socket is created with ``IPPROTO_TCP`` (not ``proto=0``): asyncio only
sets ``TCP_NODELAY`` on accepted sockets whose protocol says TCP, and without it every
keep-alive response waited ~40 ms for Nagle and delayed ACKs to meet.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import inspect
import logging
import socket
import threading
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import Any, Final, Self

import uvicorn
from starlette.applications import Starlette

from taskdaemon.pipeline.connection_slots import stop_accepting
from taskdaemon.pipeline.errors import PipelineError
from taskdaemon.pipeline.http_limits import (
    HttpLimits,
    RateLimitFilter,
    bounded_protocol,
    rate_limited_exception_handler,
)
from taskdaemon.pipeline.http_security import ApiAuth, check_exposure

__all__ = ["EngineUnavailableError", "LoopBridge", "MonitorServer"]

_log = logging.getLogger("taskdaemon.http")


class EngineUnavailableError(PipelineError):
    """The engine's loop did not answer in time, or is gone."""


class LoopBridge:
    """Runs a call on the engine's event loop from the HTTP server's loop, with a timeout.

    Until :attr:`loop` is set (by :meth:`MonitorServer.start`), or when the caller already runs
    in that loop (tests driving the app in-process), calls run directly.
    """

    def __init__(self, *, timeout: float = 5.0) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None
        self.timeout = timeout

    async def call(self, fn: Callable[[], Any]) -> Any:
        """``fn()`` (awaited if it returns an awaitable) on the engine's loop."""
        target = self.loop
        if target is None or target is asyncio.get_running_loop():
            return await _invoke(fn)
        try:
            future = asyncio.run_coroutine_threadsafe(_invoke(fn), target)
        except RuntimeError:  # the engine's loop is closed
            raise EngineUnavailableError("the engine is shutting down") from None
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), self.timeout)
        except TimeoutError:
            future.cancel()
            raise EngineUnavailableError(
                f"the engine did not answer within {self.timeout:g}s"
            ) from None


async def _invoke(fn: Callable[[], Any]) -> Any:
    result = fn()
    if inspect.isawaitable(result):
        return await result
    return result


class _EmbeddedServer(uvicorn.Server):
    """Uvicorn without its signal handlers (the process owner decides what signals do), which
    stops as soon as :meth:`stop` asks.

    Uvicorn's own loop looks at ``should_exit`` every 0.1 s, then its shutdown sleeps 0.1 s
    and polls its connections and request tasks every 0.1 s until they are gone: every stop of
    a server (each ``run --serve``, ``ui`` and test) waited for those ticks, even with nothing
    left to wait for. Here :meth:`stop` wakes the loop, and the shutdown (Uvicorn's otherwise)
    polls every :data:`_CLOSE_POLL`: closing an idle connection takes a loop iteration or two.
    """

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self._woken: tuple[asyncio.AbstractEventLoop, asyncio.Event] | None = None

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    def stop(self) -> None:
        """Ask the server to stop, from any thread; it stops at once."""
        self.should_exit = True
        if self._woken is not None:
            loop, wake = self._woken
            with contextlib.suppress(RuntimeError):  # the server's loop is already closed
                loop.call_soon_threadsafe(wake.set)

    async def main_loop(self) -> None:
        wake = asyncio.Event()
        self._woken = (asyncio.get_running_loop(), wake)
        counter = 0
        # on_tick refreshes the Date header every tenth tick, and says whether to stop.
        while not await self.on_tick(counter):
            counter = (counter + 1) % 864000
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), 0.1)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for server in self.servers:
            await stop_accepting(server)
        for server in self.servers:
            server.close()
        for sock in sockets or []:
            sock.close()
        state = self.server_state
        for connection in list(state.connections):
            connection.shutdown()  # closes an idle one; a busy one after its response
        try:
            async with asyncio.timeout(self.config.timeout_graceful_shutdown):
                # No event says a connection closed; force_exit comes from aclose's thread.
                while (state.connections or state.tasks) and not self.force_exit:  # noqa: ASYNC110
                    await asyncio.sleep(_CLOSE_POLL)
                for server in self.servers:
                    await server.wait_closed()
        except TimeoutError:
            _log.error("cancelling %d request(s) still running after the grace", len(state.tasks))
            for task in state.tasks:
                task.cancel()
            if state.tasks:  # a cancelled request still answers 500, or closes its connection
                await asyncio.wait(list(state.tasks), timeout=_CANCEL_WAIT)
        await self._abort_connections()
        failures = getattr(getattr(self.config.app, "state", None), "token_failures", None)
        if failures is not None:  # no request is left to count: say the open windows
            failures.close()
        if not self.force_exit:
            await self.lifespan.shutdown()

    async def _abort_connections(self) -> None:
        """Abort the connections still open: a transport the loop does not close before the
        thread closes the loop keeps its socket open for ever (a cancelled answer waiting for
        a client that reads nothing, one left when ``force_exit`` cut the wait short)."""
        left = list(self.server_state.connections)
        for connection in left:
            connection.transport.abort()
        if left:
            await asyncio.sleep(0)  # abort closes the socket in a callback of the next iteration


#: How often a stopping server looks whether its connections and requests have ended.
_CLOSE_POLL: Final = 0.005

#: How long a stopping server waits for the requests it cancelled after the grace to end.
_CANCEL_WAIT: Final = 1.0


#: The error-log budget of the server whose thread (or one of its worker threads) logs.
_LOG_BUDGET: contextvars.ContextVar[RateLimitFilter | None] = contextvars.ContextVar(
    "taskdaemon_http_log_budget", default=None
)
_LOG_BUDGET_LOCK = threading.Lock()


def _server_log_budget(record: logging.LogRecord) -> bool:
    """A filter of the process-wide server loggers that charges a record to the budget of the
    server that logs it, so that one server's errors cannot use up another's, nor one
    server's limits apply to another; a record logged outside every server passes."""
    budget = _LOG_BUDGET.get()
    return budget is None or budget.filter(record)


def _install_log_budgets() -> None:
    """Puts :func:`_server_log_budget` on the server's loggers (``uvicorn.error``,
    ``taskdaemon.http``) once; the lock keeps two servers starting at once from adding it
    twice, which would charge every record twice."""
    with _LOG_BUDGET_LOCK:
        for name in ("uvicorn.error", "taskdaemon.http"):
            logging.getLogger(name).addFilter(_server_log_budget)  # a no-op when it is there


class MonitorServer:
    """Serves an app with Uvicorn in a thread of its own (see the module docstring).

    ``await start()`` (or :meth:`start_nowait` from synchronous code running in the engine's
    loop) binds ``host:port`` at once (port 0 picks a free one; see :attr:`port`), records the
    running loop as the engine's loop for the app's :class:`LoopBridge`, and starts the server
    thread; ``await aclose()`` stops accepting, lets in-flight requests finish (up to ``grace``
    seconds) and joins the thread; both are idempotent. ``async with`` does both. A lag monitor
    passed in ``lag`` is started and stopped with the server, on the engine's loop.

    Binding beyond loopback raises :class:`~taskdaemon.pipeline.errors.SettingsError` unless the
    app's :class:`~taskdaemon.pipeline.http_security.ApiAuth` token was configured.
    """

    def __init__(
        self,
        app: Starlette,
        *,
        host: str = "127.0.0.1",
        port: int = 9090,
        lag: Any = None,
        grace: float = 2.0,
        limits: HttpLimits | None = None,
    ) -> None:
        self.app = app
        self.host = host
        self.port = port
        self.lag = lag
        self.grace = grace
        self.limits = limits or getattr(app.state, "limits", None) or HttpLimits()
        self._server: _EmbeddedServer | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None

    @property
    def url(self) -> str:
        """``http://host:port`` of the bound server."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def auth(self) -> ApiAuth | None:
        """The app's credentials (None for an app without the API's security layer)."""
        auth = getattr(self.app.state, "auth", None)
        return auth if isinstance(auth, ApiAuth) else None

    async def start(self) -> None:
        """Bind and start serving; raises ``OSError`` when the address is taken."""
        self.start_nowait()

    def start_nowait(self) -> None:
        """:meth:`start` for synchronous code running inside the engine's event loop."""
        if self._thread is not None:
            return
        auth = self.auth
        check_exposure(self.host, token_configured=auth is not None and not auth.generated)
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.port))
            sock.listen(128)
        except OSError:
            sock.close()
            raise
        sock.setblocking(False)
        self._socket = sock
        self.port = sock.getsockname()[1]
        self.app.state.bind_host = self.host  # the Host allow-list names the bound address
        bridge = getattr(self.app.state, "bridge", None)
        if isinstance(bridge, LoopBridge):
            bridge.loop = asyncio.get_running_loop()
        limits = self.limits
        _install_log_budgets()
        budget = RateLimitFilter(burst=limits.log_burst, interval=limits.log_interval)
        config = uvicorn.Config(
            self.app,
            http=bounded_protocol(limits),
            lifespan="off",
            # The client and scheme are the socket's, never X-Forwarded-*: Uvicorn trusts those
            # from loopback by default, where any local user may send them (http_security,
            # "Behind a proxy ending TLS").
            proxy_headers=False,
            log_config=None,  # our handlers and format, not uvicorn's own
            log_level="warning",
            access_log=False,
            timeout_keep_alive=max(1, round(limits.keep_alive_timeout)),
            limit_concurrency=limits.connection_cap() + 1,  # the protocol caps first
            timeout_graceful_shutdown=int(max(1, self.grace)),
        )
        self._server = _EmbeddedServer(config)
        self._thread = threading.Thread(
            target=self._serve,
            args=(self._server, sock, budget),
            name="taskdaemon-http",
            daemon=True,
        )
        self._thread.start()
        if self.lag is not None:
            self.lag.start()
        # Debug: the command's own sign-in line (``cli.sign_in``) says the address once.
        _log.debug("serving /metrics, /healthz, /readyz and /api on %s", self.url)

    @staticmethod
    def _serve(server: _EmbeddedServer, sock: socket.socket, budget: RateLimitFilter) -> None:
        # Set before the Runner copies this thread's context, so that every callback, task
        # and asyncio.to_thread worker of the server's loop logs against its budget.
        _LOG_BUDGET.set(budget)
        # A Runner, like asyncio.run: on the way out it cancels and awaits the request tasks
        # Uvicorn gave up on after its grace period, so none is left on a closed loop.
        with asyncio.Runner() as runner:
            runner.get_loop().set_exception_handler(rate_limited_exception_handler(_log))
            try:
                runner.run(server.serve(sockets=[sock]))
            except BaseException:  # the thread's last words; nothing else would see them
                _log.exception("the HTTP server stopped with an error")

    async def aclose(self) -> None:
        """Stop serving and join the server thread (idempotent)."""
        thread, server = self._thread, self._server
        self._thread = self._server = None
        if self.lag is not None:
            await self.lag.aclose()
        try:
            if thread is None or server is None:
                return
            web = getattr(self.app.state, "web", None)
            if web is not None:  # end event streams now, not after the shutdown grace
                web.close()
            server.stop()
            await asyncio.to_thread(thread.join, self.grace + 1.0)
            if thread.is_alive():
                server.force_exit = True
                await asyncio.to_thread(thread.join, 5.0)
        finally:
            if self._socket is not None:
                self._socket.close()
                self._socket = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
