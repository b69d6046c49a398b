"""The embedded span store under faults: a store that cannot be opened, a disk that fills up,
damaged rows, and the file modes that keep other local users out.

Monitoring never stops a pipeline: each fault leaves ``taskdaemon run`` with the pipeline's exit
code, one-line warnings and no traceback, while ``/readyz`` and the metric
``taskdaemon_spans_dropped_total`` say what was lost. The full-disk cases use a real tmpfs
(``reliability_support.tmpfs``; the suite runs as root, in CI too).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import sqlite3
import stat
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import nullcontext
from pathlib import Path

import httpx
import pytest
from opentelemetry.sdk.trace import TracerProvider

from cli_support import environment
from reliability_support import (
    TASKDAEMON,
    TWO_STAGES,
    fill,
    sample,
    short_dir,
    store_one_run,
    stored_span_counts,
    taskdaemon,
    tmpfs,
    write_pipeline,
)
from taskdaemon.pipeline.cli.telemetry import build_telemetry
from taskdaemon.pipeline.errors import SpanSourceError
from taskdaemon.pipeline.server import HealthSources, create_app
from taskdaemon.pipeline.settings import load_settings
from taskdaemon.pipeline.tracking import SqliteSpanProcessor
from taskdaemon.pipeline.tracking._health import WriteFailures
from taskdaemon.pipeline.tracking._schema import connect

pytestmark = pytest.mark.slow


@pytest.fixture
def tmp_path() -> Iterator[Path]:
    """A short temporary directory (the control socket lives under ``TASKDAEMON_HOME``)."""
    with short_dir() as path:
        yield path


WARNING_LINE = re.compile(r"^\S+Z WARNING \S+: .+$")


def _valid_store(path: Path) -> Path:
    """A store file holding a few pages (schema created, log checkpointed, closed)."""
    connect(path).close()
    return path


def _broken_store(kind: str, home: Path, disk: Path) -> tuple[Path, str]:
    """Break the store ``kind``'s way; returns its path and the cause the warning must name."""
    db = home / "spans.db"
    if kind == "corrupt":
        db.write_bytes(os.urandom(8192))
        return db, "file is not a database"
    if kind == "truncated":
        _valid_store(db)
        os.truncate(db, 8192)
        return db, "malformed"
    if kind == "directory":
        db.mkdir()
        return db, "unable to open database file"
    if kind == "future_schema":
        _valid_store(db)
        conn = sqlite3.connect(db)
        conn.execute("PRAGMA user_version = 99")
        conn.close()
        return db, "newer than this taskdaemon understands"
    if kind == "read_only":
        db = _valid_store(disk / "spans.db")
        subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
        return db, "cannot open span store: this user cannot write it: on a read-only file system"
    assert kind == "full_disk"
    fill(disk)
    return disk / "spans.db", "database or disk is full"


@pytest.mark.parametrize(
    "kind", ["corrupt", "truncated", "directory", "future_schema", "read_only", "full_disk"]
)
def test_run_goes_on_without_a_store_it_cannot_open(tmp_path: Path, kind: str) -> None:
    """A store that cannot be opened leaves the run succeeding (exit 0) with one warning line
    naming the file and the cause at start, one line at the end saying the printed run id is
    not stored, and no traceback. Only the kinds that need a disk of their own mount one (as
    root): the others run as any user."""
    home = tmp_path / "home"
    home.mkdir()
    pipeline = write_pipeline(tmp_path / "two.yaml", TWO_STAGES)
    disk_of_its_own = kind in ("read_only", "full_disk")
    with tmpfs(tmp_path / "disk") if disk_of_its_own else nullcontext(tmp_path) as disk:
        db, cause = _broken_store(kind, home, disk)
        done = taskdaemon(
            home, "run", "-q", str(pipeline), TASKDAEMON_SPAN_SOURCE=f"sqlite:///{db}"
        )
    lines = done.stderr.splitlines()
    unstored = (
        f"taskdaemon run: run {done.stdout.strip()} is not stored (the span store could not be "
        "opened): runs show will not find it"
    )
    expected = (0, 2, True, unstored, True, True, False)
    actual = (
        done.returncode,
        len(lines),
        bool(lines) and WARNING_LINE.match(lines[0]) is not None,
        lines[-1],
        "span store unavailable" in done.stderr and str(db) in done.stderr,
        cause in done.stderr,
        "Traceback" in done.stderr,
    )
    assert expected == actual, done.stderr


async def test_readyz_and_the_metric_report_a_store_that_cannot_be_opened(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """With the store unopenable, /readyz answers 503 naming it, every span ended is counted in
    taskdaemon_spans_dropped_total, and the warning is logged once."""
    (tmp_path / "spans.db").mkdir()
    telemetry = build_telemetry(load_settings(home=tmp_path))
    try:
        tracer = telemetry.tracer_provider.get_tracer("test")
        with caplog.at_level(logging.WARNING):
            for name in ("one", "two", "three"):
                tracer.start_span(name).end()
        app = create_app(health=HealthSources(store=telemetry.store_health))
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://td") as client:
            response = await client.get("/readyz")
        dropped = sample(telemetry.registry, "taskdaemon_spans_dropped_total")
    finally:
        telemetry.shutdown()
    store = response.json()["components"]["span_store"]
    warnings = [r for r in caplog.records if "span store unavailable" in r.getMessage()]
    expected = (503, False, True, 3.0, 1)
    actual = (
        response.status_code,
        store["ok"],
        "span store unavailable" in store["detail"],
        dropped,
        len(warnings),
    )
    assert expected == actual


# --- a disk that fills up while the store is in use --------------------------------------------


# Waits until the store at {db} has its tables (read-only: it never makes the file).
_STORE_READY = """\
import sqlite3, time
while True:
    try:
        db = sqlite3.connect("file:{db}?mode=ro", uri=True)
        try:
            db.execute("SELECT 1 FROM spans LIMIT 1").fetchall()
            break
        finally:
            db.close()
    except sqlite3.OperationalError:
        time.sleep(0.02)
"""


def test_full_disk_during_a_run_is_counted_and_said_once(tmp_path: Path) -> None:
    """When the disk fills during a run, the run still exits 0 (its pipeline succeeded), stderr
    says once that writes fail (with SQLite's real cause, not a failed ROLLBACK) and once how
    many spans were lost; spans stored in full plus lost spans is exactly every span of the run
    (a lost span may leave the row written before the telemetry loaded: ``stored_span_counts``)."""
    home = tmp_path / "home"
    stages = 13
    with tmpfs(tmp_path / "disk") as disk:
        db = disk / "spans.db"
        # The disk fills once the store exists: a run's first stages start before telemetry
        # (and the store) have loaded, and a store that cannot be made is another case.
        ready = tmp_path / "ready.py"
        ready.write_text(_STORE_READY.format(db=db), encoding="utf-8")
        lines = ["name: fills", "stages:"]
        lines += [
            "  - name: ready",
            f'    command: "python3 {ready}"',
            "    triggers: [{manual: {approval_required: false}}]",
            "  - name: fill",
            f'    command: "head -c 5000000 /dev/zero > {disk}/filler 2>/dev/null || true"',
            "    triggers: [{on_completion: {stage: ready}}]",
        ]
        previous = "fill"
        for number in range(stages - 2):
            lines += [
                f"  - name: s{number}",
                '    command: "true"',
                f"    triggers: [{{on_completion: {{stage: {previous}}}}}]",
            ]
            previous = f"s{number}"
        pipeline = write_pipeline(tmp_path / "fills.yaml", "\n".join(lines) + "\n")
        done = taskdaemon(
            home, "run", "-q", str(pipeline), TASKDAEMON_SPAN_SOURCE=f"sqlite:///{db}"
        )
        (disk / "filler").unlink()
        stored, _ = stored_span_counts(db)
    failed = [ln for ln in done.stderr.splitlines() if "write failed" in ln]
    lost = [ln for ln in done.stderr.splitlines() if "spans were not stored" in ln]
    counted = re.search(r"(\d+) spans were not stored", done.stderr)
    expected = (0, 1, 1, True, True, False, False, stages + 1)
    actual = (
        done.returncode,
        len(failed),
        len(lost),
        "database or disk is full" in done.stderr,
        all(WARNING_LINE.match(ln) for ln in done.stderr.splitlines()),
        "cannot rollback" in done.stderr,
        "Traceback" in done.stderr,
        stored + (int(counted.group(1)) if counted else 0),
    )
    assert expected == actual, done.stderr


async def test_readyz_stays_down_while_span_writes_fail(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """On a full disk the writer's heartbeat (one row updated in place) still commits while the
    spans' batches fail: /readyz stays 503 across that heartbeat, and turns 200 only once spans
    are written again; the metric counts the one span lost."""
    with tmpfs(tmp_path / "disk") as disk:
        db = disk / "spans.db"
        telemetry = build_telemetry(load_settings(home=tmp_path, span_source_url=f"sqlite:///{db}"))
        processor = telemetry.span_processors[0]
        assert isinstance(processor, SqliteSpanProcessor)
        app = create_app(health=HealthSources(store=telemetry.store_health))
        tracer = telemetry.tracer_provider.get_tracer("test")
        reader = sqlite3.connect(db)
        try:
            tracer.start_span("before").end()
            processor.force_flush()
            reserve = disk / "reserve"
            reserve.write_bytes(bytes(64 * 1024))
            filler = fill(disk)
            reserve.unlink()  # 64 KiB free: a heartbeat fits, a 400 KB span does not
            with caplog.at_level(logging.WARNING):
                tracer.start_span("big", attributes={"blob": "x" * 400_000}).end()
                processor.force_flush()
                failed_at = reader.execute("SELECT max(heartbeat_ns) FROM writers").fetchone()[0]
                # Poll for the next heartbeat's commit (the writer renews it every second).
                deadline = time.monotonic() + 10
                beat = failed_at
                while beat <= failed_at and time.monotonic() < deadline:
                    await asyncio.sleep(0.05)
                    beat = reader.execute("SELECT max(heartbeat_ns) FROM writers").fetchone()[0]
                transport = httpx.ASGITransport(app=app)
                async with httpx.AsyncClient(transport=transport, base_url="http://td") as client:
                    during = (await client.get("/readyz")).status_code
                    filler.unlink()
                    tracer.start_span("after").end()
                    processor.force_flush()
                    after = (await client.get("/readyz")).status_code
            dropped = sample(telemetry.registry, "taskdaemon_spans_dropped_total")
        finally:
            reader.close()
            telemetry.shutdown()
        names = {row[0] for row in sqlite3.connect(db).execute("SELECT name FROM spans_readable")}
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    expected = (True, 503, 200, 1.0, {"before", "after"}, 1, 1)
    actual = (
        beat > failed_at,
        during,
        after,
        dropped,
        names,
        sum("write failed" in m and "database or disk is full" in m for m in messages),
        sum(m == f"span store {db}: writes succeed again; 1 span dropped so far" for m in messages),
    )
    assert expected == actual


def test_a_heartbeat_alone_does_not_end_a_failing_streak() -> None:
    """Only a committed batch holding spans ends a failing streak; an empty one (heartbeat)
    does not, and each failure adds its ended spans to the dropped count."""
    failures = WriteFailures()
    started = failures.failed(3, OSError("database or disk is full"))
    again = failures.failed(2, OSError("database or disk is full"))
    heartbeat_ends_it = failures.succeeded(0)
    still_failing = failures.failing
    batch_ends_it = failures.succeeded(4)
    expected = (True, False, False, True, True, False, 5, "database or disk is full")
    actual = (
        started,
        again,
        heartbeat_ends_it,
        still_failing,
        batch_ends_it,
        failures.failing,
        failures.dropped,
        failures.last_error,
    )
    assert expected == actual


def _start_under_lock(db: Path) -> tuple[threading.Event, list[SqliteSpanProcessor]]:
    """Start a writer on ``db`` on a thread of its own; the event is set once it started."""
    started = threading.Event()
    made: list[SqliteSpanProcessor] = []

    def start() -> None:
        made.append(SqliteSpanProcessor(db))
        started.set()

    threading.Thread(target=start, daemon=True).start()
    return started, made


def test_a_writer_starts_while_another_process_holds_the_write_lock(tmp_path: Path) -> None:
    """A store whose write lock another connection holds (a ``retention --vacuum``, say) does
    not hold up the writer's start, which a run waits for before its first command stage."""
    db = _valid_store(tmp_path / "spans.db")
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        started, made = _start_under_lock(db)
        actual = started.wait(10.0)
    finally:
        holder.execute("COMMIT")
        holder.close()
    started.wait(60.0)  # the writer, started either way, is shut down before the test ends
    made[0].shutdown()
    expected = True
    assert expected == actual


def test_spans_ended_while_the_write_lock_was_held_are_stored_after(tmp_path: Path) -> None:
    """Spans that end while another connection holds the store's write lock are written once
    it is released: none is lost, none counted as dropped."""
    db = _valid_store(tmp_path / "spans.db")
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        started, made = _start_under_lock(db)
        started.wait(10.0)
        provider = TracerProvider()
        provider.add_span_processor(made[0])
        with provider.get_tracer("test").start_as_current_span("held"):
            pass
    finally:
        holder.execute("COMMIT")
        holder.close()
    made[0].shutdown()
    with sqlite3.connect(db) as conn:
        (stored,) = conn.execute("SELECT count(*) FROM spans").fetchone()
    assert (1, 0) == (stored, made[0].dropped_spans)


@pytest.mark.parametrize("how", ["deleted", "replaced"])
def test_a_store_file_gone_under_its_writer_is_counted_and_said(tmp_path: Path, how: str) -> None:
    """A store file deleted or replaced while a writer has it open (``rm spans.db`` during a
    run) is a failing write: the spans are counted as dropped and ``health()`` says why,
    rather than written into a file no reader sees."""
    db = tmp_path / "spans.db"
    processor = SqliteSpanProcessor(db)
    provider = TracerProvider()
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("before"):
        pass
    processor.force_flush()
    for path in tmp_path.glob("spans.db*"):
        path.unlink()
    if how == "replaced":
        _valid_store(db)
    with tracer.start_as_current_span("after"):
        pass
    processor.force_flush()
    health = processor.health()
    provider.shutdown()
    assert (1, False) == (processor.dropped_spans, health.ok)
    assert f"{db} was deleted or replaced while this process wrote to it" in health.detail


def test_a_store_on_a_read_only_file_system_is_read(tmp_path: Path) -> None:
    """A home on a file system mounted read-only (a backup's snapshot) can still be read:
    ``runs list`` lists its run and ``logs`` prints its lines, where SQLite alone cannot open
    the store (it must create the ``-shm`` file even to read)."""
    with tmpfs(tmp_path / "mount", size="8m") as mount:
        home = mount / "home"
        pipeline = write_pipeline(tmp_path / "two.yaml", TWO_STAGES.replace('"true"', '"echo hi"'))
        ran = taskdaemon(home, "run", "-q", str(pipeline))
        subprocess.run(["mount", "-o", "remount,ro", str(mount)], check=True)
        listed = taskdaemon(home, "runs", "list")
        logs = taskdaemon(home, "logs", ran.stdout.strip(), "--stage", "first")
    assert (0, True, True) == (
        ran.returncode,
        ran.stdout.strip() in listed.stdout,
        "hi" in logs.stdout,
    ), listed.stderr + logs.stderr


def test_a_report_on_a_read_only_file_system_is_made_from_a_private_copy(tmp_path: Path) -> None:
    """``report`` on a home mounted read-only reports the run, says it used a temporary copy
    (its aggregates must be written somewhere), and leaves no copy behind."""
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    with tmpfs(tmp_path / "mount", size="8m") as mount:
        home = mount / "home"
        pipeline = write_pipeline(tmp_path / "two.yaml", TWO_STAGES)
        ran = taskdaemon(home, "run", "-q", str(pipeline))
        subprocess.run(["mount", "-o", "remount,ro", str(mount)], check=True)
        report = taskdaemon(home, "report", "--format", "json", TMPDIR=str(scratch))
    stages = json.loads(report.stdout)["pipelines"][0]["stages"] if report.stdout else []
    assert (0, 0, ["first", "second"], [], True) == (
        ran.returncode,
        report.returncode,
        sorted(stage["stage"] for stage in stages),
        list(scratch.iterdir()),
        "on a read-only file system, reporting from a temporary copy" in report.stderr,
    ), report.stderr


def test_a_report_whose_copy_does_not_fit_says_so_in_one_line(tmp_path: Path) -> None:
    """``report`` on a read-only home, with a temporary directory too small for the store's
    copy, fails in one line naming the cause, and leaves nothing there."""
    with tmpfs(tmp_path / "mount", size="8m") as mount, tmpfs(tmp_path / "tmp", size="16k") as tmp:
        home = mount / "home"
        ran = taskdaemon(home, "run", "-q", str(write_pipeline(tmp_path / "t.yaml", TWO_STAGES)))
        subprocess.run(["mount", "-o", "remount,ro", str(mount)], check=True)
        report = taskdaemon(home, "report", TMPDIR=str(tmp))
        left = list(tmp.iterdir())
    lines = report.stderr.strip().splitlines()
    assert (0, 1, [], True) == (
        ran.returncode,
        report.returncode,
        left,
        "cannot copy the store" in lines[-1] and "full" in lines[-1],
    ), report.stderr


# --- file modes --------------------------------------------------------------------------------


def test_store_files_and_home_are_private(tmp_path: Path) -> None:
    """A store created by taskdaemon is 0600 with its -wal and -shm files, in a home it
    created 0700, whatever the umask; another local user cannot read the spans."""
    home = tmp_path / "home"
    db = home / "spans.db"
    old = os.umask(0o022)
    try:
        processor = SqliteSpanProcessor(db)
        try:
            modes = {
                path.name: stat.S_IMODE(path.stat().st_mode)
                for path in (home, db, db.with_name("spans.db-wal"), db.with_name("spans.db-shm"))
            }
        finally:
            processor.shutdown()
    finally:
        os.umask(old)
    expected = {"home": 0o700, "spans.db": 0o600, "spans.db-wal": 0o600, "spans.db-shm": 0o600}
    assert expected == modes


def test_run_creates_its_home_private(tmp_path: Path) -> None:
    """``taskdaemon run`` with a home that does not exist yet creates it 0700, the store 0600
    and the run's workspace (and the folder of workspaces) 0700."""
    home = tmp_path / "fresh"
    pipeline = write_pipeline(tmp_path / "two.yaml", TWO_STAGES)
    done = taskdaemon(home, "run", "-q", str(pipeline))
    workspaces = home / "workspaces"
    modes = [
        stat.S_IMODE(path.stat().st_mode)
        for path in (home, home / "spans.db", workspaces, *workspaces.iterdir())
    ]
    assert (0, [0o700, 0o600, 0o700, 0o700]) == (done.returncode, modes), done.stderr


def test_a_run_makes_its_homes_missing_parents_private_under_umask_0(tmp_path: Path) -> None:
    """Under umask 0, ``taskdaemon run`` with a home two levels below any existing folder makes
    each folder it creates 0700 (a folder others may write lets them swap the home for theirs)."""
    home = tmp_path / "a" / "b" / "home"
    pipeline = write_pipeline(tmp_path / "two.yaml", TWO_STAGES)
    done = subprocess.run(
        [TASKDAEMON, "run", "-q", str(pipeline)],
        env=environment(home),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        umask=0,
    )
    made = (tmp_path / "a", tmp_path / "a" / "b", home, home / "workspaces")
    modes = [stat.S_IMODE(path.stat().st_mode) for path in made]
    assert (0, [0o700] * 4) == (done.returncode, modes), done.stderr


def test_a_run_workspace_is_private_in_a_shared_folder(tmp_path: Path) -> None:
    """In a workspace folder others may read (``--workspace`` made 0755 by the user), each
    run's own folder is still 0700."""
    shared = tmp_path / "ws"
    shared.mkdir(mode=0o755)
    pipeline = write_pipeline(tmp_path / "two.yaml", TWO_STAGES)
    done = taskdaemon(tmp_path / "home", "run", "-q", str(pipeline), "--workspace", str(shared))
    modes = [stat.S_IMODE(path.stat().st_mode) for path in shared.iterdir()]
    assert (0, [0o700]) == (done.returncode, modes), done.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to nobody needs root")
def test_a_store_another_user_made_first_is_not_written(tmp_path: Path) -> None:
    """Another user, first in a shared checkout, makes its ``.taskdaemon`` and an empty
    ``spans.db`` anyone may read: our run goes on (exit 0) with one warning naming the file
    and why, and their file stays empty."""
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    planted = home / "spans.db"
    planted.touch()
    planted.chmod(0o666)
    os.chown(planted, 65534, 65534)
    pipeline = write_pipeline(tmp_path / "two.yaml", TWO_STAGES)
    done = taskdaemon(home, "run", "-q", str(pipeline))
    assert (0, 1, 0) == (
        done.returncode,
        done.stderr.count(f"{planted}: cannot open span store: it belongs to another user"),
        planted.stat().st_size,
    ), done.stderr


def test_a_store_is_not_made_in_a_folder_anyone_may_write(tmp_path: Path) -> None:
    """With the store in a folder anyone may write (``/tmp``), anyone could make the store's
    ``-wal`` file first, or swap the store for theirs: no store is made there, and the error
    says why. (The CLI refuses such a home before: ``pipeline_home_test.py``.)"""
    home = tmp_path / "home"
    home.mkdir()
    home.chmod(0o1777)
    with pytest.raises(SpanSourceError) as raised:
        connect(home / "spans.db")
    assert (
        "cannot open span store: its folder may be written by group or others (mode 1777)",
        False,
    ) == (str(raised.value).partition(": ")[2], (home / "spans.db").exists())


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a folder or a link to nobody needs root")
def test_a_store_named_outside_the_home_in_a_folder_a_group_may_write_is_not_made(
    tmp_path: Path,
) -> None:
    """``TASKDAEMON_SPAN_SOURCE`` naming a store in a shared project folder (0770, group
    ``nogroup``, whose member ``nobody`` could make the ``-wal`` first or swap the store): the
    run goes on (exit 0) with one warning saying why, and no store is made there. Before, only
    the folder's bit for others was judged, and the run was stored there."""
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chown(shared, -1, 65534)
    shared.chmod(0o770)
    pipeline = write_pipeline(tmp_path / "two.yaml", TWO_STAGES)
    source = f"sqlite:///{shared / 'spans.db'}"
    done = taskdaemon(tmp_path / "home", "run", "-q", str(pipeline), TASKDAEMON_SPAN_SOURCE=source)
    warning = "cannot open span store: its folder may be written by group or others (mode 0770)"
    assert (0, 1, []) == (
        done.returncode,
        done.stderr.count(warning),
        list(shared.iterdir()),
    ), done.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a link to nobody needs root")
def test_another_user_s_link_in_the_store_s_place_is_not_written_through(tmp_path: Path) -> None:
    """A link ``nobody`` owns where the store should be, naming a store of ours: the run goes
    on (exit 0) with one warning saying why, and the store it names is left as it was.
    Before, the link was followed (the owner judged was the target's, ours) and the run was
    written into the file they chose."""
    ours, _ = store_one_run(tmp_path, TWO_STAGES)
    before = ours.read_bytes()
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    link = home / "spans.db"
    link.symlink_to(ours)
    os.lchown(link, 65534, 65534)
    done = taskdaemon(home, "run", "-q", str(tmp_path / "p.yaml"))
    assert (0, 1, True) == (
        done.returncode,
        done.stderr.count("cannot open span store: it is another user's link (uid 65534)"),
        ours.read_bytes() == before,
    ), done.stderr


# --- damaged rows ------------------------------------------------------------------------------


def _damage(db: Path, span_name: str, body: object) -> None:
    conn = sqlite3.connect(db)
    with conn:
        conn.execute(
            "UPDATE spans SET body = ? WHERE json_extract(body, '$[1]') = ?", (body, span_name)
        )
    conn.close()


@pytest.mark.parametrize(
    "body",
    ["{not json", '{"an": "object"}', "[1, 2, 3]", '[null, 7, "INTERNAL", "OK", "", {}, [], []]'],
    ids=["not-json", "object", "short-array", "name-not-text"],
)
def test_runs_show_and_dag_skip_a_damaged_row_with_one_warning(tmp_path: Path, body: str) -> None:
    """A span row that is not JSON, or JSON of the wrong shape, is skipped by ``runs show`` and
    ``dag --run`` with one warning line counting it; the rest of the run is shown."""
    home = tmp_path / "home"
    pipeline = write_pipeline(tmp_path / "two.yaml", TWO_STAGES)
    run_id = taskdaemon(home, "run", "-q", str(pipeline)).stdout.strip()
    _damage(home / "spans.db", "second", body)
    show = taskdaemon(home, "runs", "show", run_id)
    dag = taskdaemon(home, "dag", "--run", run_id, "--format", "json")
    expected = ((0, 1, True, True), (0, 1, True, True))
    actual = tuple(
        (
            done.returncode,
            len(done.stderr.splitlines()),
            "skipped 1 corrupt span row" in done.stderr,
            "first" in done.stdout,
        )
        for done in (show, dag)
    )
    assert expected == actual, (show.stderr, dag.stderr)
