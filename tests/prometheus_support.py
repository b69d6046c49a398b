"""A real Prometheus in tests: where its binary is, starting it, a free port, waiting for an
answer and stopping the process; and one scraping real `taskdaemon serve` processes."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import IO, Any

import httpx
import yaml

from cli_support import TASKDAEMON, environment, free_port, write

ROOT = Path(__file__).resolve().parent.parent

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


@contextlib.asynccontextmanager
async def scraped_serves(
    home: Path, tmp_path: Path, *pipelines: str
) -> AsyncIterator[httpx.AsyncClient]:
    """A real Prometheus that loads this repository's rules (evaluated every second) and scrapes
    one real `taskdaemon serve` per pipeline text, each running it every second, its spans and
    logs exported to a collector that is down; yields a client of Prometheus' API."""
    ports, dead_port = [free_port() for _ in pipelines], free_port()
    daemons = []
    async with rules_prometheus(tmp_path, [f"127.0.0.1:{port}" for port in ports]) as client:
        try:
            for index, (port, text) in enumerate(zip(ports, pipelines, strict=True)):
                pipeline = write(tmp_path / f"pipeline{index}.yaml", text)
                daemons.append(
                    await asyncio.create_subprocess_exec(
                        *(TASKDAEMON, "serve", "--port", str(port), "--pipeline", str(pipeline)),
                        *("--every", "1"),
                        env=exporting_environment(
                            home / str(index), f"http://127.0.0.1:{dead_port}"
                        ),
                        stdout=asyncio.subprocess.DEVNULL,
                        stderr=asyncio.subprocess.DEVNULL,
                    )
                )
            yield client
        finally:
            for daemon in daemons:
                await stop(daemon)


def exporting_environment(home: Path, collector: str) -> dict[str, str]:
    """A `taskdaemon` environment serving metrics to Prometheus and exporting its spans and
    log records over OTLP/HTTP to ``collector``, each batch 200 ms after its first record."""
    env = environment(
        home,
        OTEL_METRICS_EXPORTER="prometheus",
        OTEL_EXPORTER_OTLP_ENDPOINT=collector,
        OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
        OTEL_BSP_SCHEDULE_DELAY="200",
        OTEL_BLRP_SCHEDULE_DELAY="200",
    )
    env.pop("OTEL_TRACES_EXPORTER")
    env.pop("OTEL_LOGS_EXPORTER")
    return env


@contextlib.asynccontextmanager
async def rules_prometheus(tmp_path: Path, targets: list[str]) -> AsyncIterator[httpx.AsyncClient]:
    """A real Prometheus that loads this repository's rules (recording and alerts, evaluated
    every second) and scrapes ``targets`` (job ``taskdaemon``) every second; yields a client of
    its API, and stops it on exit."""
    rendered = tmp_path / "etc-prometheus"
    shutil.copytree(ROOT / "prometheus", rendered)
    config = rendered / "prometheus.yml"
    data = yaml.safe_load(config.read_text())
    data.pop("alerting")
    data["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
    data["scrape_configs"] = [{"job_name": "taskdaemon", "static_configs": [{"targets": targets}]}]
    config.write_text(yaml.safe_dump(data))
    recording = rendered / "rules" / "recording.yml"
    recording.write_text(recording.read_text().replace("interval: 30s", "interval: 1s"))
    port = free_port()
    with (tmp_path / "prometheus.log").open("wb") as log:
        prometheus = await start_prometheus(config, tmp_path, port, log)
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
                yield client
        finally:
            await stop(prometheus)


def alert_expression(name: str) -> str:
    """The PromQL expression of the alert ``name`` in ``prometheus/rules/alerts.yml``."""
    groups = yaml.safe_load((ROOT / "prometheus" / "rules" / "alerts.yml").read_text())["groups"]
    rules = [rule for group in groups for rule in group["rules"]]
    (expr,) = [rule["expr"] for rule in rules if rule.get("alert") == name]
    return str(expr)


async def answers(client: httpx.AsyncClient, expr: str) -> list[dict[str, Any]]:
    """The series a PromQL ``expr`` answers now (503 while Prometheus starts: raised, polled)."""
    response = await client.post("/api/v1/query", data={"query": expr})
    response.raise_for_status()
    answer: list[dict[str, Any]] = response.json()["data"]["result"]
    return answer


@contextlib.asynccontextmanager
async def serving(
    port: int, pipeline: Path, env: dict[str, str], *options: str
) -> AsyncIterator[asyncio.subprocess.Process]:
    """A real `taskdaemon serve --port PORT --pipeline PIPELINE OPTIONS` in ``env``, its output
    discarded; stopped on exit."""
    daemon = await asyncio.create_subprocess_exec(
        *(TASKDAEMON, "serve", "--port", str(port), "--pipeline", str(pipeline), *options),
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        yield daemon
    finally:
        await stop(daemon)


async def approve_the_run(home: Path, port: int, stage: str) -> None:
    """Approve ``stage`` of the one run the `serve` on ``port`` holds, through its API with the
    token it generated in ``home``."""
    token = (home / f"api-token.{port}").read_text().strip()
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {token}"}
    ) as api:
        (run,) = (await api.get("/api/runs")).json()["runs"]
        approved = await api.post(f"/api/runs/{run['run_id']}/approve/{stage}", json={})
    assert 202 == approved.status_code, approved.text


def gated(command: str) -> str:
    """The text of pipeline ``gated``: one stage, ``deploy``, running ``command`` once
    approved (a run of it waits for its approval, so Prometheus can scrape it running)."""
    return (
        "name: gated\nstages:\n  - name: deploy\n"
        f"    command: {command!r}\n"
        "    triggers: [{manual: {approval_required: true}}]\n"
    )


#: The PromQL that answers once a run of ``gated`` waits, scraped.
GATED_WAITING = 'pipeline_active_executions{pipeline="gated"} == 1'
