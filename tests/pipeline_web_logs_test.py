"""The stage panel's log routes: a ``run --serve`` server's live stream, and a dump's records."""

from __future__ import annotations

import hashlib
import io
import json
import re
import shutil
import subprocess
import tarfile
import tempfile
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from browser_support import TOKEN as BROWSER_TOKEN
from browser_support import browser_page
from cli_support import TASKDAEMON, environment, line_with
from taskdaemon.pipeline.http_security import ApiAuth
from taskdaemon.pipeline.log_rows import LogRow
from taskdaemon.pipeline.server import MonitorServer, create_app
from taskdaemon.pipeline.tracking.log_writer import SqliteLogWriter
from taskdaemon.pipeline.web import WebOptions
from taskdaemon.pipeline.web._logs import MAX_BODY, follow_stage_logs, stage_log_tail

TOKEN = "a-test-token-of-enough-length"
_API = re.compile(r"API: (http://127\.0\.0\.1:\d+)/")
_STARTED = re.compile(r"run ([0-9a-f]{32}) of gate started")


def _events(lines: Iterator[str]) -> list[str]:
    """Every event block of the stream's lines until it ends (the server closed it)."""
    blocks, block = [], ""
    for line in lines:
        if line:
            block += line + "\n"
        elif block:
            blocks.append(block)
            block = ""
    return blocks


@pytest.mark.slow
def test_a_run_serve_log_stream_ends_with_the_stages_last_lines(home: Path) -> None:
    """When a ``run --serve`` run ends, its server closes; a stage's log stream still gets the
    tail with the stage's last line, not live any more, then ``event: end``."""
    gate = home / "go"
    pipeline = home / "gate.yaml"
    pipeline.write_text(
        "name: gate\nstages:\n  - name: deploy\n    loop: command\n"
        f'    command: "while [ ! -e {gate} ]; do sleep 0.02; done; echo deployed"\n'
        "    triggers: [{manual: {approval_required: false}}]\n"
    )
    process = subprocess.Popen(
        [TASKDAEMON, "run", str(pipeline), "--serve", "127.0.0.1:0"],
        env=environment(home, TASKDAEMON_API_TOKEN=TOKEN),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        seen: list[str] = []
        for said in (_API, _STARTED):  # the server's address and the run's id, in any order
            if not any(map(said.search, seen)):
                line_with(process.stderr, said, seen=seen)
        api, started = _API.search("".join(seen)), _STARTED.search("".join(seen))
        assert api is not None
        assert started is not None
        url, run_id = api.group(1), started.group(1)
        stream = f"{url}/api/runs/{run_id}/logs/stream?stage=deploy"
        headers = {"Authorization": f"Bearer {TOKEN}"}
        with httpx.stream("GET", stream, headers=headers, timeout=30) as response:
            lines = response.iter_lines()
            while next(lines) != "":  # the stream's first block: it is open
                pass
            gate.touch()
            rest = _events(lines)
    finally:
        process.kill()
        process.communicate()  # waits, and closes the pipe
    tail = json.loads(rest[-2].split("data: ", 1)[1])
    bodies = [record["body"] for record in tail["records"]]
    assert (["deployed", "stage deploy.0.1 finished: success"], False, "event: end") == (
        bodies[-2:],
        tail["live"],
        rest[-1].split("\n")[0],
    )


async def _get_from_ui(archive: Path, *paths: str) -> list[httpx.Response]:
    """``GET`` each path, in order, from a ``ui --source dump://archive`` app."""
    app = create_app(
        auth=ApiAuth.configured(TOKEN),
        web=WebOptions(source_url=f"dump://{archive}", read_only=True),
    )
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://127.0.0.1",
            headers={"authorization": f"Bearer {TOKEN}"},
        ) as client:
            return [await client.get(path) for path in paths]
    finally:
        app.state.web.close()


@pytest.fixture(scope="module")
def dumped_run() -> Iterator[tuple[str, Path]]:
    """(run id, archive): a finished run whose one stage printed two lines, dumped. Made once
    for the module (two ``taskdaemon`` processes): its tests only read the archive."""
    home = Path(tempfile.mkdtemp(prefix="td-", dir="/tmp"))  # as conftest's ``home``
    try:
        pipeline = home / "two.yaml"
        pipeline.write_text(
            "name: two\nstages:\n  - name: say\n    loop: command\n"
            '    command: "echo one; echo two"\n'
            "    triggers: [{manual: {approval_required: false}}]\n"
        )
        env = environment(home)
        ran = subprocess.run(
            [TASKDAEMON, "run", "-q", str(pipeline)],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        archive = home / "run.tar.gz"
        run_id = ran.stdout.strip()
        subprocess.run(
            [TASKDAEMON, "dump", run_id, "-o", str(archive)],
            env=env,
            capture_output=True,
            check=True,
        )
        yield run_id, archive
    finally:
        shutil.rmtree(home, ignore_errors=True)


@pytest.mark.slow
async def test_a_dumps_stage_logs_are_served_from_the_dump(dumped_run: tuple[str, Path]) -> None:
    """``ui --source dump://...`` serves a stage's log records from the dump, once and not
    live, on both routes (the stream then ends), as the store would."""
    run_id, archive = dumped_run
    answered, stream = await _get_from_ui(
        archive, f"/api/runs/{run_id}/logs?stage=say", f"/api/runs/{run_id}/logs/stream?stage=say"
    )
    once = answered.json()
    blocks = stream.text.strip().split("\n\n")
    output = [r["body"] for r in once["records"] if r["logger"] == "taskdaemon.run.output"]
    assert (["one", "two"], False, once, "event: end") == (
        output,
        once["live"],
        json.loads(blocks[-2].split("data: ", 1)[1]),
        blocks[-1].split("\n")[0],
    )


@pytest.mark.slow
async def test_a_dump_whose_logs_are_not_json_is_a_one_line_502(
    dumped_run: tuple[str, Path], tmp_path: Path
) -> None:
    """A dump whose spans read but whose ``logs.otlp.json`` is hostile (nested 100,000 deep)
    answers the logs route 502 with one line naming the member, never a 500."""
    run_id, dumped = dumped_run
    archive = tmp_path / "run.tar.gz"  # the module's dump, spoilt in a copy
    with tarfile.open(dumped) as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}  # type: ignore[union-attr]
    # The brackets spaced out: packed, the dump's bound on values per byte refuses them first.
    members["logs.otlp.json"] = b"[       " * 100_000 + b"]" * 100_000
    # Listed in the manifest as written, so that the reader gets as far as decoding it.
    manifest = json.loads(members["manifest.json"])
    sha256 = hashlib.sha256(members["logs.otlp.json"]).hexdigest()
    manifest["files"]["logs.otlp.json"] = {"size": len(members["logs.otlp.json"]), "sha256": sha256}
    members["manifest.json"] = json.dumps(manifest).encode()
    with tarfile.open(archive, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    (response,) = await _get_from_ui(archive, f"/api/runs/{run_id}/logs?stage=say")
    expected = (502, f"dump: {archive}: logs.otlp.json is not JSON")
    assert expected == (response.status_code, response.json()["error"])


@pytest.mark.slow
async def test_a_dumps_page_shows_the_stage_logs_in_chromium(dumped_run: tuple[str, Path]) -> None:
    """The run page of ``ui --source dump://...``, in Debian's chromium: selecting the stage
    shows its two output lines, marked complete, and the page logs no error. Each line's
    fields are apart in its text, as copied or read out ("... info 0.1 one", not "info0.1one")."""
    run_id, archive = dumped_run
    app = create_app(
        auth=ApiAuth.configured(BROWSER_TOKEN),
        web=WebOptions(source_url=f"dump://{archive}", read_only=True),
    )
    server = MonitorServer(app, host="127.0.0.1", port=0)
    await server.start()
    try:
        async with browser_page() as (page, errors):
            await page.goto(f"{server.url}/?token={BROWSER_TOKEN}")
            await page.goto(f"{server.url}/runs/{run_id}")
            await page.click('#stages tr[data-stage="say"] button.select')
            await page.wait_for_selector('#stage-logs[data-log-state="complete"]')
            bodies = await page.eval_on_selector_all(
                "#log-lines li .log-body", "items => items.map(i => i.textContent)"
            )
            first = await page.text_content('#log-lines li:has(.log-body:text-is("one"))')
    finally:
        await server.aclose()
        app.state.web.close()
    assert (["one", "two"], []) == ([b for b in bodies if b in ("one", "two")], errors)
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d info \d+\.\d+ one", first or ""), first


def test_a_megabyte_log_record_is_cut_in_the_stage_panels_tail(tmp_path: Path) -> None:
    """A ``logging`` record of 1 MB (stored whole) reaches the stage panel's tail as its first
    ``MAX_BODY`` characters and a note of how many more ``taskdaemon logs`` shows; a tail is
    then at most ``TAIL`` records of that size, not 200 MB."""
    db = tmp_path / "spans.db"
    run = "d" * 32
    writer = SqliteLogWriter(db)
    try:
        writer.write_row(
            LogRow(run, time.time_ns(), 13, "WARNING", "p", "s", 0, 1, None, "s", "L" * 10**6, {})
        )
    finally:
        writer.close()
    body = stage_log_tail(db, run, "s")["records"][0]["body"]
    rest = 10**6 - MAX_BODY
    assert "L" * MAX_BODY + f"… ({rest} more characters: taskdaemon logs shows them)" == body


def megabyte_records(db: Path, run: str, count: int) -> None:
    """``count`` ``logging`` records of 1 MB each, stage ``s`` of ``run``, in the store ``db``."""
    writer = SqliteLogWriter(db)
    try:
        for _ in range(count):
            writer.write_row(
                LogRow(
                    run, time.time_ns(), 13, "WARNING", "p", "s", 0, 1, None, "s", "L" * 10**6, {}
                )
            )
    finally:
        writer.close()


def test_a_tail_of_megabyte_records_never_holds_them_whole(tmp_path: Path) -> None:
    """Reading a tail of 20 records of 1 MB holds at most their cut bodies (under 4 MB of
    Python memory at its peak), not 20 MB: the query cuts each body."""
    db = tmp_path / "spans.db"
    megabyte_records(db, "e" * 32, 20)
    tracemalloc.start()
    try:
        tail = stage_log_tail(db, "e" * 32, "s")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert (20, True) == (len(tail["records"]), peak < 4 * 10**6)


async def test_a_followed_tail_reads_new_megabyte_records_cut(tmp_path: Path) -> None:
    """Records that arrive while a tail is followed are read cut as well: the poll that reads
    20 new records of 1 MB peaks under 4 MB of Python memory."""
    db = tmp_path / "spans.db"
    run = "f" * 32
    megabyte_records(db, run, 0)
    follow = follow_stage_logs(db, run, "s", interval=0.01, ended=lambda: False)
    first = await anext(follow)
    megabyte_records(db, run, 20)
    tracemalloc.start()
    try:
        second = await anext(follow)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        await follow.aclose()
    assert (0, 20, True) == (first["total"], second["total"], peak < 4 * 10**6)
