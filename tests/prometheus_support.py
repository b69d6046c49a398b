"""A real Prometheus in tests: where its binary is, starting it, a free port, waiting for an
answer and stopping the process."""

from __future__ import annotations

import asyncio
import shutil
import signal
import socket
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import IO, Any

import httpx

# Found on PATH (scripts/setup.sh --dev installs it), not at a fixed place outside the repository.
PROMETHEUS = Path(shutil.which("prometheus") or "prometheus")


async def start_prometheus(
    config: Path, tmp_path: Path, port: int, log: IO[bytes]
) -> asyncio.subprocess.Process:
    """A real Prometheus reading ``config``, its TSDB in ``tmp_path/tsdb``, serving on
    127.0.0.1:``port``, its log to ``log``; stop it with :func:`stop`."""
    return await asyncio.create_subprocess_exec(
        str(PROMETHEUS),
        f"--config.file={config}",
        f"--storage.tsdb.path={tmp_path / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{port}",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=log,
    )


def free_port() -> int:
    """A TCP port free on the loopback interface right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def until(
    check: Callable[[], Awaitable[Any]], *, limit: float, what: str, interval: float = 0.25
) -> Any:
    """Poll an external process until ``check`` answers something truthy (servers offer no
    completion event to wait on)."""
    deadline = time.monotonic() + limit
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = await check()
        except httpx.HTTPError as error:
            last = error
        else:
            if last:
                return last
        await asyncio.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}; last answer: {last!r}")


async def stop(process: asyncio.subprocess.Process) -> None:
    """Stop a server process: SIGTERM, then SIGKILL after 15 s."""
    if process.returncode is None:
        process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), timeout=15)
        except TimeoutError:
            process.kill()
            await process.wait()
