"""Fixtures shared by the whole suite, and its guards against what a test leaves behind.

A thread left working after its test (an OTel batch processor, a periodic metric reader, a
span store writer, an HTTP server, a telemetry shutdown that outlived its bound) keeps
exporting and logging into the root logger while later tests run, where tests that read log
lines pick its lines up; a non-daemon one keeps the interpreter from exiting. A child process
left running holds its ports, files and CPU while later tests run. Process-wide state a test
changed (an environment variable, the working directory, the umask, ``sys.path``, a signal
handler, a logging handler, an OpenTelemetry global provider) makes every later test depend
on whether that test ran before it. Each test is checked on its own, so the one that leaks is
the one that fails.
"""

from __future__ import annotations

import _signal
import asyncio
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import pytest_asyncio

from cli_support import ROOT, TASKDAEMON, Served, environment, settings_variable
from taskdaemon.pipeline.secret_values import forget_secrets

if TYPE_CHECKING:
    from pipeline_monitor_support import Telemetry as InMemoryTelemetry
    from pipeline_stage_output_support import Sink
    from taskdaemon.pipeline.cli.telemetry import Telemetry
    from taskdaemon.pipeline.settings import Settings
    from taskdaemon.pipeline.stage_output import OutputCapture

# A user's taskdaemon writes to a pipe or a file through a buffer; this machine's environment
# sets PYTHONUNBUFFERED, which hid what a buffer keeps back (a line late, or lost at exit). Every
# process a test starts inherits the environment as a user's would; a test that needs an
# unbuffered child asks for it by name, with its reason.
os.environ.pop("PYTHONUNBUFFERED", None)

# A background job of a script (``scripts/test.sh > log &`` from a non-interactive shell) starts
# with SIGINT and SIGQUIT ignored, and every process a test starts inherits that: a Ctrl-C a
# test types at a child's prompt, or sends to this process, was then never delivered, and two
# dozen tests failed for how the suite was started, not for the code. The suite runs as a
# foreground command does, whoever started it.
for _signum, _handler in (
    (signal.SIGINT, signal.default_int_handler),
    (signal.SIGQUIT, signal.SIG_DFL),
):
    if signal.getsignal(_signum) == signal.SIG_IGN:
        signal.signal(_signum, _handler)

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


#: The command line of the process-wide group watchdog (``group_watchdog``), started at the
#: first command stage a test runs in this process and meant to live as long as the process.
WATCHDOG_PROGRAM = "_watchdog_process.py"


def child_processes() -> dict[int, str]:
    """This process's children still running (zombies excluded), with their command lines."""
    pids = []
    for task in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{task}/children") as children:
                pids += children.read().split()
        except FileNotFoundError:  # the thread ended meanwhile
            continue
    running = {}
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                state = stat.read().rpartition(")")[2].split()[0]
            with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
                command = cmdline.read().replace(b"\0", b" ").decode(errors="replace")
        except FileNotFoundError:  # reaped meanwhile
            continue
        if state != "Z":
            running[int(pid)] = command
    return running


def children_left_running(before: set[int], grace: float = STOPPING_GRACE) -> list[str]:
    """Command lines of the child processes started since ``before`` still running after
    ``grace`` (a child already signalled gets that long to end), the watchdog excepted."""
    deadline = time.monotonic() + grace
    while True:
        left = {
            pid: command
            for pid, command in child_processes().items()
            if pid not in before and WATCHDOG_PROGRAM not in command
        }
        if not left or time.monotonic() >= deadline:
            return sorted(command[:200] for command in left.values())
        time.sleep(0.05)


@pytest.fixture(autouse=True)
def no_child_process_left_running() -> Iterator[None]:
    """Fail the test that leaves a child process it started running after its teardown."""
    before = set(child_processes())
    yield
    left = children_left_running(before)
    assert not left, f"child processes left running after the test: {left}"


def _environment() -> dict[str, str]:
    """The environment, but for the variable pytest sets to the test it runs."""
    return {name: value for name, value in os.environ.items() if name != "PYTEST_CURRENT_TEST"}


def _set_environment(saved: dict[str, str]) -> None:
    for name in set(_environment()) - set(saved):
        del os.environ[name]
    os.environ.update(saved)


def _umask() -> int:
    current = os.umask(0o077)
    os.umask(current)
    return current


#: Every signal a handler can be set for, but SIGALRM: pytest-timeout's, set before each test
#: and reset after it (a test that timed out finds it changed).
CATCHABLE_SIGNALS = tuple(
    signal.Signals(number)
    for number in sorted(signal.valid_signals())
    if number not in (signal.SIGKILL, signal.SIGSTOP, signal.SIGALRM) and number < signal.SIGRTMIN
)


def _signal_handlers() -> dict[str, object]:
    # ``_signal.getsignal``, which ``signal.getsignal`` wraps to turn SIG_DFL and SIG_IGN into
    # enum members: that turn took most of this guard's time, twice a test.
    return {number.name: _signal.getsignal(number) for number in CATCHABLE_SIGNALS}


def _set_signal_handlers(saved: dict[str, object]) -> None:
    for name, handler in saved.items():
        if handler is not None:  # None: not set from Python, so not a test's to put back
            signal.signal(signal.Signals[name], handler)  # type: ignore[arg-type]


def _logging_handlers() -> dict[str, list[logging.Handler]]:
    """Each logger's handlers (the root's under ``""``) but pytest's own, which it swaps around
    every phase of a test, and the ``NullHandler`` a library adds when first imported."""
    loggers = {"": logging.getLogger(), **logging.Logger.manager.loggerDict}
    handlers = {
        name: [
            h
            for h in logger.handlers
            if not (type(h).__module__.startswith("_pytest") or type(h) is logging.NullHandler)
        ]
        for name, logger in loggers.items()
        if isinstance(logger, logging.Logger)
    }
    return {name: listed for name, listed in handlers.items() if listed}


def _set_logging_handlers(saved: dict[str, list[logging.Handler]]) -> None:
    for name, handlers in _logging_handlers().items():
        for handler in handlers:
            if handler not in saved.get(name, []):
                logging.getLogger(name or None).removeHandler(handler)
                handler.close()


#: The OpenTelemetry API's global providers: module, attribute, and the attribute of its
#: set-once guard.
OTEL_GLOBALS = (
    ("opentelemetry.trace", "_TRACER_PROVIDER", "_TRACER_PROVIDER_SET_ONCE"),
    ("opentelemetry.metrics._internal", "_METER_PROVIDER", "_METER_PROVIDER_SET_ONCE"),
    ("opentelemetry._logs._internal", "_LOGGER_PROVIDER", "_LOGGER_PROVIDER_SET_ONCE"),
)


def _otel_globals() -> tuple[object, ...]:
    """The global providers (read without importing the API: few tests need it)."""
    return tuple(getattr(sys.modules.get(module), name, None) for module, name, _ in OTEL_GLOBALS)


def _unset_otel_globals(saved: tuple[object, ...]) -> None:
    """Unset the globals set since ``saved``, as OpenTelemetry's own test utilities do: the API
    lets a process set each one once, and a test is not the process."""
    from opentelemetry.util._once import Once

    for (module, name, once), before in zip(OTEL_GLOBALS, saved, strict=True):
        if before is None and module in sys.modules:
            setattr(sys.modules[module], name, None)
            setattr(sys.modules[module], once, Once())


#: Process-wide state a test may change but must put back: its name, how to read it, how to
#: put a saved value back (so that the tests after a leaking one start clean).
PROCESS_STATE: tuple[tuple[str, Callable[[], Any], Callable[[Any], object]], ...] = (
    ("environment variables", _environment, _set_environment),
    ("working directory", os.getcwd, os.chdir),
    ("umask", _umask, os.umask),
    ("sys.path", lambda: list(sys.path), lambda saved: sys.path.__setitem__(slice(None), saved)),
    ("signal handlers", _signal_handlers, _set_signal_handlers),
    ("logging handlers", _logging_handlers, _set_logging_handlers),
    ("root logger level", lambda: logging.getLogger().level, logging.getLogger().setLevel),
    ("OpenTelemetry global providers", _otel_globals, _unset_otel_globals),
)


def process_state() -> list[Any]:
    """The values of :data:`PROCESS_STATE`, in its order."""
    return [read() for _, read, _ in PROCESS_STATE]


def changed_state(before: list[Any]) -> list[str]:
    """What differs from ``before`` (for a mapping, its keys that differ), each put back."""
    changed = []
    for (name, _, put_back), saved, now in zip(PROCESS_STATE, before, process_state(), strict=True):
        if saved != now:
            if isinstance(saved, dict):
                keys = sorted(k for k in saved.keys() | now.keys() if saved.get(k) != now.get(k))
                changed.append(f"{name} {keys}")
            else:
                changed.append(name)
            put_back(saved)
    return changed


@pytest.fixture(autouse=True)
def no_process_state_changed() -> Iterator[None]:
    """Fail the test that leaves process-wide state changed after its teardown (put back)."""
    before = process_state()
    yield
    changed = changed_state(before)
    assert not changed, f"process-wide state changed by the test: {changed}"


@pytest.fixture
def process_state_put_back() -> Iterator[None]:
    """For a test that runs the command's composition root in this process (``run``'s
    observers, ``build_monitor``): it configures logging and sets the OTel global providers
    for the whole process, as the real command does; they are put back after the test."""
    before = process_state()
    yield
    changed_state(before)


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
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No TASKDAEMON_* or OTEL_* variable of the caller's (in any case, as ``load_settings``
    reads them) reaches ``load_settings`` in this process: for a module of settings tests,
    ``pytestmark = pytest.mark.usefixtures("clean_environment")``."""
    for name in list(os.environ):
        if settings_variable(name):
            monkeypatch.delenv(name)


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
    from taskdaemon.pipeline import output_sinks

    registered = Sink()
    previous = output_sinks.capture_limits()
    output_sinks.add_output_sink(registered)
    try:
        yield registered
    finally:
        output_sinks.remove_output_sink(registered)
        output_sinks.set_capture_limits(previous)


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
    """Start ``taskdaemon run`` processes in the background; at the end, each is killed if it
    still runs, reaped and its pipes closed."""
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
        served.close()


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
