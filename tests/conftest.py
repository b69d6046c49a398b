"""Fixtures shared by the whole suite, and its guard against threads left running.

A thread left working after its test (an OTel batch processor, a periodic metric reader, a
span store writer, an HTTP server, a telemetry shutdown that outlived its bound) keeps
exporting and logging into the root logger while later tests run, where tests that read log
lines pick its lines up; a non-daemon one keeps the interpreter from exiting. Each test is
checked on its own, so the one that leaks is the one that fails.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import pytest_asyncio

from cli_support import ROOT, TASKDAEMON, Served, environment
from taskdaemon.pipeline.secret_values import forget_secrets

if TYPE_CHECKING:
    from pipeline_monitor_support import Telemetry as InMemoryTelemetry
    from pipeline_stage_output_support import Sink
    from taskdaemon.pipeline.cli.telemetry import Telemetry
    from taskdaemon.pipeline.settings import Settings
    from taskdaemon.pipeline.stage_output import OutputCapture

#: Names of the threads OpenTelemetry's SDK and ``build_telemetry`` start to export or shut down.
EXPORTER_THREADS = (
    "OtelBatch",  # OtelBatch{Span,LogRecord}RecordProcessor
    "OtelPeriodicExportingMetricReader",
    "taskdaemon-telemetry-shutdown",
)

#: Every thread the project starts is named ``taskdaemon-...`` (span store writer, log writer,
#: HTTP server, CEL worker, telemetry shutdown, ...).
PROJECT_THREADS = "taskdaemon-"

#: Seconds, all threads together, a test's leftover threads get to finish once its teardown
#: returned: a thread already told to stop (an executor shut down without waiting, a server
#: past its last request) is joined rather than reported. A thread nobody stopped still fails.
STOPPING_GRACE = 2.0


def _watched(thread: threading.Thread) -> bool:
    """Threads a test must not leave behind: non-daemon ones (they keep the process alive),
    the project's own and OpenTelemetry's exporters (they keep exporting and logging)."""
    return not thread.daemon or thread.name.startswith((PROJECT_THREADS, *EXPORTER_THREADS))


def left_running(before: set[threading.Thread], grace: float = STOPPING_GRACE) -> list[str]:
    """Names of the watched threads started since ``before`` still alive after ``grace``."""
    started = [t for t in threading.enumerate() if t not in before and _watched(t)]
    deadline = time.monotonic() + grace
    for thread in started:
        thread.join(max(0.0, deadline - time.monotonic()))
    return sorted(thread.name for thread in started if thread.is_alive())


@pytest.fixture(autouse=True)
def no_thread_left_running() -> Iterator[None]:
    """Fail the test that leaves a thread it started running after its teardown."""
    before = set(threading.enumerate())
    yield
    left = left_running(before)
    assert not left, f"threads left running after the test: {left}"


@pytest.fixture(autouse=True)
def no_secret_value_kept() -> Iterator[None]:
    """Forget the values a test's engines found under secret keys (``secret_values`` keeps them
    for the process): one test's secret is not masked in the next one's records."""
    yield
    forget_secrets()


@pytest.fixture(autouse=True)
def no_home_in_the_checkout() -> Iterator[None]:
    """Fail the test that left a ``.taskdaemon`` home in the checkout: a process it ran had no
    ``TASKDAEMON_HOME`` and this directory as its working one (the default home is relative),
    so its sockets and records outlived it there. The home is removed, so the next test starts
    clean."""
    leftover = ROOT / ".taskdaemon"
    existed = leftover.exists()
    yield
    if not existed and leftover.exists():
        shutil.rmtree(leftover, ignore_errors=True)
        pytest.fail(f"the test left {leftover}: a process it ran had no TASKDAEMON_HOME")


@pytest.fixture(autouse=True, scope="module")
def no_thread_left_by_module() -> Iterator[None]:
    """Fail the module whose module-scoped fixtures leave a thread running after teardown."""
    before = set(threading.enumerate())
    yield
    left = left_running(before)
    assert not left, f"threads left running after the module's fixtures: {left}"


@pytest.fixture
def telemetry_for() -> Iterator[Callable[[Settings], Telemetry]]:
    """``build_telemetry`` for a test: every Telemetry it built is shut down at teardown and
    waited for, even when its shutdown outlived the export bound (a dead collector)."""
    # Imported here, not at the top: every test loads this file, few need the OTel SDK.
    from taskdaemon.pipeline.cli.telemetry import build_telemetry

    built: list[Telemetry] = []

    def build(settings: Settings) -> Telemetry:
        built.append(build_telemetry(settings))
        return built[-1]

    yield build
    for telemetry in built:
        telemetry.shutdown()
        assert telemetry.wait_closed(60), "telemetry shutdown still running after 60 s"


@pytest.fixture
def tel() -> Iterator[InMemoryTelemetry]:
    """In-memory tracer and meter providers; the monitors made with ``tel.monitor`` are closed
    and the providers shut down at teardown."""
    from pipeline_monitor_support import Telemetry as InMemoryTelemetry

    telemetry = InMemoryTelemetry()
    yield telemetry
    telemetry.shutdown()


@pytest.fixture
def cel_worker() -> Iterator[None]:
    """Stops the shared CEL worker (its process and its ``taskdaemon-cel`` thread) that the test
    started: it is made for the whole process, and would otherwise outlive the test."""
    yield
    from taskdaemon.pipeline.cel_worker import shared_worker

    shared_worker().close()


@pytest.fixture
def sink() -> Iterator[Sink]:
    """An output sink registered for the test (``pipeline_stage_output_support.Sink``); the
    capture limits the test began with are restored after it."""
    from pipeline_stage_output_support import Sink
    from taskdaemon.pipeline import stage_output

    registered = Sink()
    previous = stage_output.capture_limits()
    stage_output.add_output_sink(registered)
    try:
        yield registered
    finally:
        stage_output.remove_output_sink(registered)
        stage_output.set_capture_limits(previous)


@pytest.fixture
def captures() -> Iterator[list[OutputCapture]]:
    """Output captures made by a test (``pipeline_stage_output_support.new_capture``); their
    pipes are closed at teardown."""
    made: list[OutputCapture] = []
    try:
        yield made
    finally:
        for capture in made:
            capture.abandon()


@pytest.fixture
def home() -> Iterator[Path]:
    """A short TASKDAEMON_HOME under /tmp (a Unix socket path is limited to ~107 bytes, and the
    control sockets live under it), removed afterwards."""
    path = Path(tempfile.mkdtemp(prefix="td-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def serve(home: Path) -> Iterator[Any]:
    """Start ``taskdaemon run`` processes in the background; kill leftovers at the end."""
    started: list[Served] = []

    def start(*args: str) -> Served:
        process = subprocess.Popen(
            [TASKDAEMON, "run", *args],
            cwd=ROOT,
            env=environment(home),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        served = Served(process)
        started.append(served)
        return served

    yield start
    for served in started:
        if served.process.poll() is None:
            served.process.kill()
            served.process.communicate()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def module_chromium() -> AsyncIterator[Any]:
    """One headless chromium (and Playwright's driver) for a module's page tests: see
    ``shared_chromium``."""
    from browser_support import chromium_browser

    async with chromium_browser() as browser:
        yield browser


@pytest_asyncio.fixture(loop_scope="module")
async def shared_chromium(module_chromium: Any) -> AsyncIterator[Any]:
    """The module's chromium, for a test marked ``browser_support.SHARED_BROWSER_LOOP`` (it runs
    in the module's event loop, the browser's); its pages open in contexts of their own
    (``browser_support.browser_page``). The loop's worker threads (``asyncio.to_thread``) are
    the test's own, stopped at its end as a loop of its own would stop them."""
    workers = ThreadPoolExecutor(thread_name_prefix="asyncio")
    asyncio.get_running_loop().set_default_executor(workers)
    yield module_chromium
    workers.shutdown(wait=True)
