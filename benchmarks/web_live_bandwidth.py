"""What one viewer of a big live run costs: event-stream bytes a second, and DAG drawings.

    .venv/bin/python benchmarks/web_live_bandwidth.py [--chains 40] [--length 50] [--seconds 20]
        [--work 0.08] [--baseline SRC] [--browser]

A pipeline of a root stage and ``--chains`` chains of ``--length`` stages (2,001 by default),
each sleeping ``--work`` seconds, 8 at a time, runs under ``taskdaemon run --serve`` in a
subprocess with a fresh home. One client reads the run's event stream (``/api/runs/ID/stream``)
for ``--seconds`` and counts its bytes and events. With ``--browser``, Debian's headless
chromium opens the run page instead, for as long, and counts the DAG drawings it asks for
(``?format=svg``, each a ``dot`` run on the server) and their bytes. With ``--baseline SRC``
(a tree's ``src``, e.g. from ``git archive COMMIT src``) the same runs first with that code,
then with this tree's, one after the other. Counts, not timings, are what to compare.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

TOKEN = "web-bandwidth-benchmark-token-0123"
HERE_SRC = str(Path(__file__).resolve().parent.parent / "src")


def write_pipeline(where: Path, chains: int, length: int, work: float) -> Path:
    """The pipeline file and its handler module in ``where``; returns the file."""
    (where / "bandwidth_loops.py").write_text(
        f"import asyncio\n\n\nasync def work(ctx):\n    await asyncio.sleep({work})\n"
    )
    lines = [
        "name: bandwidth",
        "concurrency: 8",
        "loops:",
        '  work: {handler: "bandwidth_loops:work"}',
        "stages:",
        "  - {name: root, loop: work, triggers: [{manual: {approval_required: false}}]}",
    ]
    for chain in range(chains):
        before = "root"
        for step in range(length):
            name = f"c{chain:03d}_{step:03d}"
            trigger = f"[{{on_completion: {{stage: {before}}}}}]"
            lines.append(f"  - {{name: {name}, loop: work, triggers: {trigger}}}")
            before = name
    path = where / "bandwidth.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def first_run(url: str) -> str:
    """The id of the server's run, once it is listed."""
    headers = {"authorization": f"Bearer {TOKEN}"}
    for _ in range(1200):
        try:
            runs = httpx.get(f"{url}/api/runs/recent", headers=headers).json()["runs"]
        except httpx.HTTPError:
            runs = []
        if runs:
            return str(runs[0]["run_id"])
        time.sleep(0.05)
    raise SystemExit("the run never appeared")


def read_stream(url: str, run_id: str, seconds: float) -> dict[str, Any]:
    """Bytes and events one client reads from the run's stream in ``seconds``."""
    headers = {"authorization": f"Bearer {TOKEN}"}
    total = events = 0
    start = time.monotonic()
    with httpx.stream(
        "GET", f"{url}/api/runs/{run_id}/stream", headers=headers, timeout=30
    ) as response:
        for chunk in response.iter_bytes():
            total += len(chunk)
            events += chunk.count(b"\ndata: ")
            if time.monotonic() - start >= seconds:
                break
    took = time.monotonic() - start
    return {
        "seconds": round(took, 2),
        "bytes": total,
        "events": events,
        "bytes_per_second": round(total / took),
        "events_per_second": round(events / took, 2),
    }


async def watch_page(url: str, run_id: str, seconds: float) -> dict[str, Any]:
    """DAG drawings chromium asks for while it shows the run page for ``seconds``."""
    from playwright.async_api import async_playwright

    drawings = {"requests": 0, "bytes": 0}

    async def count(response: Any) -> None:
        if "format=svg" in response.url:
            drawings["requests"] += 1
            with contextlib.suppress(Exception):  # a drawing cut by the end of the page
                drawings["bytes"] += len(await response.body())

    pending: list[asyncio.Task[None]] = []
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path="/usr/bin/chromium", headless=True, args=["--no-sandbox"]
        )
        try:
            page = await browser.new_page()
            page.on("response", lambda r: pending.append(asyncio.ensure_future(count(r))))
            await page.goto(f"{url}/?token={TOKEN}")
            await page.goto(f"{url}/runs/{run_id}")
            await asyncio.sleep(seconds)
        finally:
            await browser.close()
    await asyncio.gather(*pending, return_exceptions=True)
    return {"seconds": seconds, "drawings": drawings["requests"], "svg_bytes": drawings["bytes"]}


def measure(src: str, pipeline: Path, port: int, args: argparse.Namespace) -> dict[str, Any]:
    """One run under ``src``'s code, one viewer, its figures."""
    with tempfile.TemporaryDirectory(prefix="bandwidth-home-") as home:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TASKDAEMON_", "OTEL_"))}
        env.update(
            TASKDAEMON_HOME=home,
            TASKDAEMON_API_TOKEN=TOKEN,
            OTEL_METRICS_EXPORTER="none",
            PYTHONPATH=f"{src}:{pipeline.parent}",
        )
        process = subprocess.Popen(
            [
                *(sys.executable, "-m", "taskdaemon.pipeline.cli", "run", str(pipeline), "-q"),
                *("--serve", f"127.0.0.1:{port}"),
            ],
            env=env,
            cwd=pipeline.parent,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            url = f"http://127.0.0.1:{port}"
            run_id = first_run(url)
            if args.browser:
                found = asyncio.run(watch_page(url, run_id, args.seconds))
            else:
                found = read_stream(url, run_id, args.seconds)
        except httpx.HTTPError as error:  # ``run --serve`` stops serving when its run ends
            raise SystemExit(
                f"web_live_bandwidth: the run ended before its stream was read for"
                f" {args.seconds:g} s ({error}): give it more or longer stages (--length, --work)"
            ) from None
        finally:
            process.kill()
            process.wait()
    return {"src": src, **found}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--chains", type=int, default=40)
    parser.add_argument("--length", type=int, default=50)
    parser.add_argument("--work", type=float, default=0.08, help="seconds a stage sleeps")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--port", type=int, default=19481)
    parser.add_argument("--baseline", metavar="SRC", help="a tree's src to measure first")
    parser.add_argument("--browser", action="store_true", help="count DAG drawings in chromium")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bandwidth-") as where:
        pipeline = write_pipeline(Path(where), args.chains, args.length, args.work)
        stages = 1 + args.chains * args.length
        for src in [args.baseline, HERE_SRC] if args.baseline else [HERE_SRC]:
            print(json.dumps({"stages": stages, **measure(src, pipeline, args.port, args)}))


if __name__ == "__main__":
    main()
