"""Reliability of the HTTP API against hostile clients, over real sockets to a real server.

Each test starts :class:`MonitorServer` (its own thread and loop) on a free loopback port,
usually over a real engine, and stops it in teardown. Attacks reproduced: another local user
(``nobody``) driving a root run, DNS rebinding and browser "simple" requests, huge bodies, event
floods, slowloris, connection floods, a non-loopback bind without a token.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry

import server_support
from taskdaemon.pipeline.config import parse_pipeline
from taskdaemon.pipeline.engine import Engine
from taskdaemon.pipeline.errors import SettingsError
from taskdaemon.pipeline.events import (
    ApprovalRequested,
    ApprovalResolved,
    EngineEvent,
    StageStarted,
)
from taskdaemon.pipeline.http_limits import HttpLimits
from taskdaemon.pipeline.http_security import ApiAuth
from taskdaemon.pipeline.loops import StageContext
from taskdaemon.pipeline.model import Pipeline, Stage
from taskdaemon.pipeline.server import LoopLagMonitor, MonitorServer, create_app
from taskdaemon.pipeline.token_files import publish_token

ROOT = Path(__file__).resolve().parent.parent
TASKDAEMON = str(Path(sys.executable).parent / "taskdaemon")
TOKEN = "reliability-token-0123456789abcdef"
NOBODY = 65534

PIPELINE = """
name: gated
timeout: 60s
external_events: [note.posted]
loops: {work: {handler: "unused:unused"}}
stages:
  - name: build
    loop: work
    triggers: [{manual: {approval_required: false}}]
  - name: deploy
    loop: work
    trigger_mode: all
    triggers:
      - on_completion: {stage: build}
      - manual: {approval_required: true}
  - name: notify
    loop: work
    triggers:
      - on_event: {type: note.posted}
"""

pytestmark = pytest.mark.slow


class Resolver:
    """``build`` returns at once; ``notify`` instances hold until :attr:`release` is set."""

    def __init__(self) -> None:
        self.release = asyncio.Event()

    def resolve(self, pipeline: Pipeline, stage: Stage) -> Any:
        async def handler(ctx: StageContext) -> Mapping[str, Any]:
            if stage.name == "notify":
                await self.release.wait()
            return {"stage": stage.name}

        return handler


class Recorder:
    """Records approval resolutions and wakes the test when an approval is requested."""

    def __init__(self) -> None:
        self.approval = asyncio.Event()
        self.started = asyncio.Event()
        self.resolved: list[ApprovalResolved] = []

    def on_event(self, event: EngineEvent) -> None:
        if isinstance(event, ApprovalRequested):
            self.approval.set()
        elif isinstance(event, ApprovalResolved):
            self.resolved.append(event)
        elif isinstance(event, StageStarted):
            self.started.set()


def serving(engine: Any = None, **options: Any) -> AbstractAsyncContextManager[MonitorServer]:
    """:func:`server_support.serving` with this file's token, unless the test brings its own
    ``auth``."""
    options.setdefault("auth", ApiAuth.configured(TOKEN, principal="operator"))
    return server_support.serving(engine, **options)


@contextlib.asynccontextmanager
async def gated_run(*, limits: HttpLimits | None = None) -> AsyncIterator[tuple[Any, Any, Any]]:
    """An engine with a run waiting for the deploy approval, served; yields (server, run,
    recorder)."""
    recorder, resolver = Recorder(), Resolver()
    async with (
        Engine(resolver=resolver, observers=[recorder]) as engine,
        serving(engine, limits=limits) as server,
    ):
        handle = await engine.start_run(parse_pipeline(PIPELINE), {})
        await recorder.approval.wait()
        try:
            yield server, handle, recorder
        finally:
            resolver.release.set()
            handle.cancel()


def bearer(token: str = TOKEN) -> dict[str, str]:
    """The Authorization header for ``token``."""
    return {"authorization": f"Bearer {token}"}


async def raw_exchange(port: int, request: bytes, *, within: float = 10.0) -> bytes:
    """Send ``request`` bytes on a fresh connection and read until the server closes it."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), within)
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


def status_of(response: bytes) -> int:
    """The status code of a raw HTTP response."""
    return int(response.split(b" ", 2)[1])


# --- the token ----------------------------------------------------------------------------------


async def test_api_requires_the_token_and_probes_stay_open() -> None:
    """/api answers 401 without a valid token, 200 with Bearer or 'token'; probes need none."""
    async with serving(registry=CollectorRegistry()) as server, httpx.AsyncClient() as client:
        url = server.url
        statuses = [
            (await client.get(f"{url}/api/runs")).status_code,
            (await client.get(f"{url}/api/runs", headers=bearer("wrong" * 8))).status_code,
            (await client.get(f"{url}/nosuchpage")).status_code,
            (await client.get(f"{url}/api/runs", headers=bearer())).status_code,
            (
                await client.get(f"{url}/api/runs", headers={"authorization": f"token {TOKEN}"})
            ).status_code,
            (await client.get(f"{url}/metrics")).status_code,
            (await client.get(f"{url}/healthz")).status_code,
            (await client.get(f"{url}/readyz")).status_code,
        ]
        challenge = (await client.get(f"{url}/api/runs")).headers.get("www-authenticate")
    # 503 with the token: this server has no engine; what matters is that it got past auth
    assert ([401, 401, 401, 503, 503, 200, 200, 200], "Bearer") == (
        statuses,
        (challenge or "").split()[0],
    )


async def test_browser_signs_in_with_the_token_once_then_uses_the_cookie() -> None:
    """GET /?token= sets an HttpOnly SameSite=Strict cookie and redirects; the cookie then
    authenticates; a forged cookie does not."""
    async with serving() as server, httpx.AsyncClient() as client:
        first = await client.get(f"{server.url}/?token={TOKEN}")
        cookie = first.headers["set-cookie"]
        name, _, rest = cookie.partition("=")
        value = rest.split(";", 1)[0]
        page = await client.get(f"{server.url}/", headers={"cookie": f"{name}={value}"})
        flipped = value[:-1] + ("1" if value.endswith("0") else "0")  # never the real cookie
        forged = await client.get(f"{server.url}/", headers={"cookie": f"{name}={flipped}"})
    attributes = {part.strip().lower() for part in cookie.split(";")[1:]}
    expected = (303, "/", {"path=/", "httponly", "samesite=strict"}, 200, "taskdaemon", 401)
    assert expected == (
        first.status_code,
        first.headers["location"],
        attributes,
        page.status_code,
        "taskdaemon" if 'data-page="runs"' in page.text else page.text,
        forged.status_code,
    )


# --- Host, Origin, content type ------------------------------------------------------------------


async def test_dns_rebinding_and_simple_requests_are_refused() -> None:
    """The issue's request (attacker Host and Origin, text/plain) is 403; a foreign Origin is 403
    even with the token; a simple content type is 415 even with the token; loopback spellings
    pass."""
    async with gated_run() as (server, handle, _recorder):
        port = server.port
        path = f"/api/runs/{handle.run_id}/events"
        body = b'{"type": "note.posted", "payload": {}}'

        def post(host: str, *, extra: str = "", content_type: str = "application/json") -> bytes:
            return (
                f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: {content_type}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n{extra}\r\n"
            ).encode() + body

        rebinding = await raw_exchange(
            port,
            post(
                "attacker.example:80",
                extra="Origin: http://attacker.example\r\n",
                content_type="text/plain",
            ),
        )
        rebinding_with_token = await raw_exchange(
            port, post("attacker.example", extra=f"Authorization: Bearer {TOKEN}\r\n")
        )
        foreign_origin = await raw_exchange(
            port,
            post(
                f"127.0.0.1:{port}",
                extra=f"Authorization: Bearer {TOKEN}\r\nOrigin: https://evil.example\r\n",
            ),
        )
        simple = await raw_exchange(
            port,
            post(
                f"127.0.0.1:{port}",
                extra=f"Authorization: Bearer {TOKEN}\r\n",
                content_type="text/plain",
            ),
        )
        shorthand = await raw_exchange(
            port, post(f"127.1:{port}", extra=f"Authorization: Bearer {TOKEN}\r\n")
        )
        mapped = await raw_exchange(
            port, post(f"[::ffff:127.0.0.1]:{port}", extra=f"Authorization: Bearer {TOKEN}\r\n")
        )
        backlog = handle.backlog
    expected = (403, 403, 403, 415, 202, 202, 2)
    assert expected == (
        status_of(rebinding),
        status_of(rebinding_with_token),
        status_of(foreign_origin),
        status_of(simple),
        status_of(shorthand),
        status_of(mapped),
        backlog,
    )


# --- another local user --------------------------------------------------------------------------

_INTRUDER = r"""
import json, sys, urllib.error, urllib.request
url, token_file = sys.argv[1], sys.argv[2]
found = {}
try:
    open(token_file).read()
    found["read"] = "ok"
except PermissionError:
    found["read"] = "denied"
except FileNotFoundError:
    found["read"] = "missing"
def post(headers, body):
    request = urllib.request.Request(url, data=body, method="POST", headers=headers)
    try:
        return urllib.request.urlopen(request, timeout=10).status
    except urllib.error.HTTPError as error:
        return error.code
json_type = {"content-type": "application/json"}
found["no_token"] = post(json_type, b'{"by": "admin"}')
found["guessed"] = post({**json_type, "authorization": "Bearer " + "0" * 48}, b"{}")
found["simple"] = post({"content-type": "text/plain"}, b"{}")
print(json.dumps(found))
"""


@pytest.fixture
def shared_home() -> Iterator[Path]:
    """A TASKDAEMON_HOME others may traverse (0755), so only the token file's mode protects it."""
    path = Path(tempfile.mkdtemp(prefix="td-http-", dir="/tmp"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.mark.skipif(os.geteuid() != 0, reason="switching to nobody needs root")
@pytest.mark.parametrize("token_file", [True, False], ids=["generated-token", "configured-token"])
async def test_another_local_user_cannot_drive_a_run(shared_home: Path, token_file: bool) -> None:
    """'nobody' cannot read the 0600 token file (or finds none) and gets 401 for the approval;
    the gate stays closed."""
    python = shutil.which("python3", path="/usr/bin:/bin") or sys.executable
    recorder, resolver = Recorder(), Resolver()
    async with Engine(resolver=resolver, observers=[recorder]) as engine:
        auth = ApiAuth.generate() if token_file else ApiAuth.configured(TOKEN)
        path = shared_home / "api-token"
        files = publish_token(shared_home, auth.token, path.name, 9) if token_file else None
        async with serving(engine, auth=auth) as server:
            handle = await engine.start_run(parse_pipeline(PIPELINE), {})
            await recorder.approval.wait()
            child = await asyncio.create_subprocess_exec(
                python,
                "-c",
                _INTRUDER,
                f"{server.url}/api/runs/{handle.run_id}/approve/deploy",
                str(path),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                user=NOBODY,
                group=NOBODY,
                extra_groups=[],
            )
            out, err = await asyncio.wait_for(child.communicate(), 60)
            still_waiting = str(handle.snapshot().stage_status["deploy"])
            resolved = list(recorder.resolved)
            handle.cancel()
        if files is not None:
            files.remove()
    found = json.loads(out or b"{}") if child.returncode == 0 else err.decode()
    expected = {
        "read": "denied" if token_file else "missing",
        "no_token": 401,
        "guessed": 401,
        "simple": 401,
    }
    assert (expected, [], "waiting") == (found, resolved, still_waiting)


# --- the approver --------------------------------------------------------------------------------


async def test_the_approver_is_the_authenticated_principal() -> None:
    """An approval records the token's principal; a body naming someone else is refused."""
    async with gated_run() as (server, handle, recorder), httpx.AsyncClient() as client:
        url = f"{server.url}/api/runs/{handle.run_id}/approve/deploy"
        impersonating = await client.post(url, json={"by": "admin"}, headers=bearer())
        granted = await client.post(url, json={"comment": "ship it"}, headers=bearer())
        result = await handle.wait()
    expected = (400, 202, ["operator"], "success")
    assert expected == (
        impersonating.status_code,
        granted.status_code,
        [event.by for event in recorder.resolved],
        str(result.status),
    )


async def test_the_principal_has_one_name_when_it_approves_and_when_it_cancels() -> None:
    """The token's principal approves and cancels one run under one name, ``operator``, in the
    approval's record and in the run's error (the cancel said ``operator (api)``: one
    principal under two names in one run's records). ``notify`` holds the run open."""
    async with gated_run() as (server, handle, recorder), httpx.AsyncClient() as client:
        base = f"{server.url}/api/runs/{handle.run_id}"
        held = await client.post(f"{base}/events", json={"type": "note.posted"}, headers=bearer())
        granted = await client.post(f"{base}/approve/deploy", json={}, headers=bearer())
        cancelled = await client.post(f"{base}/cancel", json={}, headers=bearer())
        result = await handle.wait()
    expected = (202, 202, 202, ["operator"], "run cancelled by operator")
    assert expected == (
        held.status_code,
        granted.status_code,
        cancelled.status_code,
        [event.by for event in recorder.resolved],
        result.error,
    )


async def test_each_broken_decision_body_is_a_400_saying_what_is_wrong() -> None:
    """A body that is not JSON, not an object, names an approver, or holds a note that is not
    a string or is too long: each a 400 whose one line says which, and the run still waits."""
    bodies = [
        ("approve", b'{"x": ', "body is not JSON: Expecting value: line 1 column 7 (char 6)"),
        ("approve", b"\xff{}", "body is not UTF-8 (invalid byte at offset 0)"),
        ("approve", b"[1]", "body must be a JSON object"),
        (
            "approve",
            b'{"by": "admin"}',
            '"by" is not accepted: the approver is the authenticated principal; '
            'put notes in "comment"',
        ),
        ("approve", b'{"comment": 3}', "comment must be a string"),
        ("reject", b'{"reason": "%s"}' % (b"x" * 4097), "reason is longer than 4096 characters"),
    ]
    async with gated_run() as (server, handle, recorder), httpx.AsyncClient() as client:
        answers = [
            await client.post(
                f"{server.url}/api/runs/{handle.run_id}/{op}/deploy",
                content=body,
                headers={**bearer(), "content-type": "application/json"},
            )
            for op, body, _ in bodies
        ]
        resolved = list(recorder.resolved)
        still_waiting = str(handle.snapshot().stage_status["deploy"])
    expected = [(400, {"error": error}) for _, _, error in bodies]
    assert (expected, [], "waiting") == (
        [(answer.status_code, answer.json()) for answer in answers],
        resolved,
        still_waiting,
    )


async def test_reject_of_an_unknown_run_logs_no_audit_record(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A refused reject writes no 'rejected by' record; an accepted one writes one, after."""
    async with gated_run() as (server, handle, _recorder), httpx.AsyncClient() as client:
        with caplog.at_level("INFO", logger="taskdaemon.audit"):
            unknown = await client.post(
                f"{server.url}/api/runs/{'0' * 32}/reject/deploy",
                json={"reason": "x\nforged"},
                headers=bearer(),
            )
            known = await client.post(
                f"{server.url}/api/runs/{handle.run_id}/reject/deploy",
                json={"reason": "not today"},
                headers=bearer(),
            )
            await handle.wait()
    audit = [r for r in caplog.records if r.name == "taskdaemon.audit"]
    expected = (404, 202, [(handle.run_id, "operator", "not today")])
    assert expected == (
        unknown.status_code,
        known.status_code,
        [
            (getattr(r, "run_id", None), getattr(r, "by", None), getattr(r, "reason", None))
            for r in audit
        ],
    )


# --- bounded requests ----------------------------------------------------------------------------


async def test_oversized_bodies_are_refused_before_and_while_streaming() -> None:
    """A declared 300 MB body is 413 at once; a chunked body crossing the limit is 413 too."""
    limits = HttpLimits(max_body_bytes=1024)
    async with serving(limits=limits) as server:
        declared = await raw_exchange(
            server.port,
            (
                f"POST /api/runs/x/events HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                f"Authorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {300 * 1024 * 1024}\r\n\r\n"
            ).encode(),
        )
        chunk = b"x" * 600
        streamed = await raw_exchange(
            server.port,
            (
                f"POST /api/runs/x/events HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                f"Authorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\n"
                f"Transfer-Encoding: chunked\r\n\r\n"
            ).encode()
            + (b"%x\r\n%s\r\n" % (len(chunk), chunk)) * 2,
        )
    assert (413, 413) == (status_of(declared), status_of(streamed))


async def test_events_beyond_the_per_run_cap_are_429() -> None:
    """With 3 events already pending in a run, the next publish is 429 and is not queued."""
    async with (
        gated_run(limits=HttpLimits(max_pending_events=3)) as (server, handle, _r),
        httpx.AsyncClient(headers=bearer()) as client,
    ):
        url = f"{server.url}/api/runs/{handle.run_id}/events"
        statuses = [
            (await client.post(url, json={"type": "note.posted"})).status_code for _ in range(5)
        ]
        backlog = handle.backlog
    assert ([202, 202, 202, 429, 429], 3) == (statuses, backlog)


async def test_a_connection_that_never_finishes_its_headers_is_closed() -> None:
    """Slowloris: a request head left unfinished is closed after the header timeout, even when
    the client keeps trickling bytes."""
    async with serving(limits=HttpLimits(header_timeout=0.3)) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        await writer.drain()
        for _ in range(3):  # trickle: each byte would re-arm an idle timer, not this one
            writer.write(b"X")
            await writer.drain()
        closed = await asyncio.wait_for(reader.read(), 10.0)
        await _close_all([(reader, writer)])
    assert closed == b""


async def test_at_the_connection_cap_idle_connections_make_room() -> None:
    """With the cap reached by idle connections, a new request is served and the oldest idle
    connection is closed; when every connection is busy, a new one gets 503."""
    limits = HttpLimits(max_connections=3, header_timeout=30.0)
    async with serving(limits=limits) as server:
        idle = [await asyncio.open_connection("127.0.0.1", server.port) for _ in range(3)]
        served = await raw_exchange(
            server.port, b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        )
        evicted = await asyncio.wait_for(idle[0][0].read(), 10.0)
        busy = [*idle[1:], await asyncio.open_connection("127.0.0.1", server.port)]
        for _reader, writer in busy:  # now mid-request: a body is promised, never sent
            writer.write(
                b"POST /api/runs/x/cancel HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b"Authorization: Bearer " + TOKEN.encode() + b"\r\n"
                b"Content-Type: application/json\r\nContent-Length: 10\r\n\r\n"
            )
            await writer.drain()
        await _connected_count(server, 3)
        refused = await raw_exchange(
            server.port, b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        )
        await _close_all([idle[0], *busy])
    assert (200, b"", 503) == (status_of(served), evicted, status_of(refused))


async def _close_all(connections: list[tuple[Any, asyncio.StreamWriter]]) -> None:
    """Close client connections and wait until they are closed."""
    for _reader, writer in connections:
        writer.close()
    for _reader, writer in connections:
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def _connected_count(server: MonitorServer, count: int) -> None:
    """Wait until the server holds ``count`` connections with a request started."""
    state = server._server.server_state if server._server else None
    assert state is not None
    deadline = time.monotonic() + 10.0
    # The state belongs to the server's thread, which offers nothing to await: poll it.
    while sum(1 for c in list(state.connections) if not c._waiting_for_request()) < count:
        assert time.monotonic() < deadline, "the server never saw the request heads"
        await asyncio.sleep(0.01)


async def test_accepted_sockets_have_tcp_nodelay() -> None:
    """The listening socket is TCP by protocol, so accepted sockets get TCP_NODELAY (no 40 ms
    Nagle/delayed-ACK stall per keep-alive response)."""
    async with serving() as server, httpx.AsyncClient() as client:
        await client.get(f"{server.url}/healthz")
        state = server._server.server_state if server._server else None
        assert state is not None
        flags = [
            c.transport.get_extra_info("socket").getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
            for c in list(state.connections)
        ]
    assert (True, True) == (bool(flags), all(flags))


async def test_probes_answer_while_the_engine_loop_is_blocked() -> None:
    """With the engine's loop blocked, /healthz and /metrics still answer: HTTP runs in its own
    thread (a blocking request from the engine's loop to its own server used to hang). The
    lag bound is a minute: the blocked loop does not tick, and on a loaded machine the
    requests could outlast the default second, when /healthz rightly answers 503."""
    lag = LoopLagMonitor(interval=0.05)
    async with serving(registry=CollectorRegistry(), lag=lag, max_lag=60.0) as server:
        await lag.next_tick()
        with httpx.Client(timeout=5.0) as blocking:  # blocks this loop: the engine's
            health = blocking.get(f"{server.url}/healthz").status_code  # noqa: ASYNC212
            metrics = blocking.get(f"{server.url}/metrics").status_code  # noqa: ASYNC212
            api = blocking.get(f"{server.url}/api/runs", headers=bearer()).status_code  # noqa: ASYNC212
    # the API needs the engine's loop: it says so (503) instead of hanging
    assert (200, 200, 503) == (health, metrics, api)


async def test_readyz_without_the_engine_loop_is_503_not_a_hang() -> None:
    """When the engine's loop cannot answer, /readyz reports the engine unavailable."""
    limits = HttpLimits(engine_timeout=0.2)
    async with serving(limits=limits) as server:
        with httpx.Client(timeout=5.0) as blocking:
            ready = blocking.get(f"{server.url}/readyz")  # noqa: ASYNC212 - blocks on purpose
    assert (503, ["engine"]) == (ready.status_code, list(ready.json()["components"]))


# --- binding -------------------------------------------------------------------------------------


async def test_binding_beyond_loopback_without_a_token_is_refused() -> None:
    """MonitorServer refuses 0.0.0.0 with a generated token and accepts it with a configured
    one."""
    with pytest.raises(SettingsError, match="TASKDAEMON_API_TOKEN"):
        await MonitorServer(create_app(), host="0.0.0.0", port=0).start()
    server = MonitorServer(create_app(auth=ApiAuth.configured(TOKEN)), host="0.0.0.0", port=0)
    await server.start()
    await server.aclose()


async def test_a_wildcard_bind_with_a_token_serves_clients_that_name_its_address() -> None:
    """Bound to 0.0.0.0 with a token, a client naming an IP address of the machine in Host is
    served (the Host check knows the bound address), and a foreign name is still 403."""
    app = create_app(auth=ApiAuth.configured(TOKEN))
    async with (
        MonitorServer(app, host="0.0.0.0", port=0) as server,
        httpx.AsyncClient(headers={"authorization": f"Bearer {TOKEN}"}) as client,
    ):
        url = f"http://127.0.0.1:{server.port}/api"
        remote = await client.get(url, headers={"host": f"192.0.2.10:{server.port}"})
        foreign = await client.get(url, headers={"host": "attacker.example"})
    assert (remote.status_code, foreign.status_code) == (200, 403)


def _taskdaemon(home: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "TASKDAEMON_HOME": str(home), **env}
    environment.pop("TASKDAEMON_API_TOKEN", None) if "TASKDAEMON_API_TOKEN" not in env else None
    return subprocess.run(
        [TASKDAEMON, *args],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (
            ("serve", "--host", "0.0.0.0", "--port", "0"),
            {},
            "TASKDAEMON_API_TOKEN: refusing to serve the run API on 0.0.0.0",
        ),
        (("serve", "--port", "0"), {"TASKDAEMON_METRICS_HOST": ""}, "TASKDAEMON_METRICS_HOST"),
    ],
    ids=["public-bind-without-token", "empty-metrics-host"],
)
def test_serve_refuses_unsafe_addresses_in_one_line(
    tmp_path: Path, args: tuple[str, ...], env: dict[str, str], message: str
) -> None:
    """`taskdaemon serve` exits 2 with the variable named, no traceback."""
    done = _taskdaemon(tmp_path, *args, **env)
    assert (2, True, False) == (
        done.returncode,
        message in done.stderr,
        "Traceback" in done.stderr,
    )
