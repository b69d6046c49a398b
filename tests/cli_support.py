"""Running the real ``taskdaemon`` command in tests: its environment (the caller's settings
left out, a credential provider installed), one command to its end, pipeline files, a run in
the background read line by line (the ``serve`` fixture in ``conftest.py``), and the reads of a
command's output with a deadline (:func:`line_with`)."""

from __future__ import annotations

import contextlib
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parent.parent
TASKDAEMON = str(Path(sys.executable).with_name("taskdaemon"))


def settings_variable(name: str) -> bool:
    """Whether ``name`` is a TASKDAEMON_* or OTEL_* variable, in any case: ``load_settings``
    reads a variable whatever the case of its name (docs/architecture.md, "Settings")."""
    return name.upper().startswith(("TASKDAEMON_", "OTEL_"))


def without_settings(**extra: str) -> dict[str, str]:
    """This environment without a TASKDAEMON_* or OTEL_* variable of the caller's, and
    ``extra``: a command run with it reads the test's settings only."""
    env = {name: value for name, value in os.environ.items() if not settings_variable(name)}
    env.update(extra)
    return env


def environment(home: Path, **extra: str) -> dict[str, str]:
    """This environment with its own ``TASKDAEMON_HOME``, no exporters, text logs, no span
    source, retention or breakpoints of the caller's, and ``extra``."""
    env = dict(os.environ)
    env.update(
        {
            "TASKDAEMON_HOME": str(home),
            "OTEL_TRACES_EXPORTER": "none",
            "OTEL_METRICS_EXPORTER": "none",
            "OTEL_LOGS_EXPORTER": "none",
            "TASKDAEMON_LOG_FORMAT": "text",
        }
    )
    for name in (
        "TASKDAEMON_SPAN_SOURCE",
        "TASKDAEMON_RETENTION_MAX_AGE",
        "TASKDAEMON_BREAKPOINTS",
    ):
        env.pop(name, None)
    env.pop("TASKDAEMON_RETENTION_KEEP", None)
    env.update(extra)
    return env


#: :func:`credential_provider`'s entry points: one whose provider is ``dict``, whose ``{}`` is no
#: ``grpc.ChannelCredentials``, and one whose provider is a ``requests.Session`` sending
#: :data:`PROVIDED_AUTHORIZATION` (an HTTP exporter's credentials).
NOT_CREDENTIALS = "not-credentials"
BEARER_SESSION = "bearer-session"
PROVIDED_AUTHORIZATION = "Bearer provided-by-the-session"


def credential_provider(folder: Path) -> Path:
    """A distribution in ``folder``, to put on the path, declaring :data:`NOT_CREDENTIALS` and
    :data:`BEARER_SESSION` credential providers
    (``OTEL_PYTHON_EXPORTER_OTLP_{GRPC,HTTP}_CREDENTIAL_PROVIDER``)."""
    info = folder / "not_credentials-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: not-credentials\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        f"[opentelemetry_otlp_credential_provider]\n{NOT_CREDENTIALS} = builtins:dict\n"
        f"{BEARER_SESSION} = bearer_session:session\n"
    )
    (folder / "bearer_session.py").write_text(
        "import requests\n\n\ndef session():\n    made = requests.Session()\n"
        f"    made.headers['Authorization'] = {PROVIDED_AUTHORIZATION!r}\n    return made\n"
    )
    return folder


#: How long a test waits for the line it reads a command's output for: the command is
#: stuck past it, and the test says so with what it read, where pytest's limit (120 s) would
#: stop it with nothing but a stack.
LINE_WAIT = 60.0


def read_line(stream: IO[str] | None, timeout: float = LINE_WAIT, seen: Sequence[str] = ()) -> str:
    """The next line of ``stream`` (``""`` at its end) if it comes within ``timeout``
    seconds; else an AssertionError quoting ``seen``, the lines read before it. The line is
    read on a thread of its own: a pipe's ``readline`` takes no timeout, and a ``select`` on
    its descriptor misses what the text layer read ahead already."""
    assert stream is not None
    got: queue.SimpleQueue[str | Exception] = queue.SimpleQueue()

    def pump() -> None:
        try:
            got.put(stream.readline())
        except (OSError, ValueError) as exc:  # raised on the test's thread instead (a closed pipe)
            got.put(exc)

    threading.Thread(target=pump, name="test line reader", daemon=True).start()
    try:
        line = got.get(timeout=max(timeout, 0.0))
    except queue.Empty:
        said = "".join(seen) or "(nothing)\n"
        raise AssertionError(f"no line within {timeout:g} s; read before it:\n{said}") from None
    if isinstance(line, Exception):
        raise line
    return line


def exit_and_stderr(process: subprocess.Popen[str]) -> tuple[int, str]:
    """``process``'s exit code and stderr, once it ended (killed after a minute)."""
    try:
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    return process.returncode, stderr


@contextlib.contextmanager
def ended_at_exit(process: subprocess.Popen[str]) -> Iterator[subprocess.Popen[str]]:
    """``process``, killed on leaving if still running and its pipes then read to their end: a
    read that timed out, or any other failure, leaves no process behind."""
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=30)


def line_with(
    stream: IO[str] | None,
    needle: str | re.Pattern[str],
    timeout: float = LINE_WAIT,
    seen: list[str] | None = None,
) -> str:
    """The first line of ``stream`` holding ``needle`` (a pattern: that it matches, searched)
    read within ``timeout`` seconds in all, the explicit sync point; each line read is added to
    ``seen``. A command that hangs, or whose output ends first, fails the test with the lines
    it read."""
    assert stream is not None
    pattern = needle if isinstance(needle, re.Pattern) else re.compile(re.escape(needle))
    read = [] if seen is None else seen
    deadline = time.monotonic() + timeout
    while True:
        try:
            line = read_line(stream, deadline - time.monotonic())
        except AssertionError:
            line = None
        if not line:
            why = "the output ended" if line == "" else f"not within {timeout:g} s"
            said = "".join(read) or "(nothing)\n"
            shown = needle.pattern if isinstance(needle, re.Pattern) else needle
            raise AssertionError(f"{shown!r} never came ({why}); the output read:\n{said}")
        read.append(line)
        if pattern.search(line):
            return line


#: A ``launcher`` for :func:`taskdaemon` that puts the command's stderr on its stdout (``2>&1``):
#: one stream in the order it was written, as a user's ``> log 2>&1`` keeps it.
ONE_STREAM = ("sh", "-c", 'exec "$0" "$@" 2>&1', TASKDAEMON)


def taskdaemon(
    home: Path,
    *args: str,
    timeout: float = 60,
    cwd: Path = ROOT,
    launcher: Sequence[str] = (TASKDAEMON,),
    stdin: str | None = None,
    **extra: str,
) -> subprocess.CompletedProcess[str]:
    """Run one command to its end, in ``cwd``, with ``environment(home, **extra)`` and
    ``stdin`` on a pipe (None: no input); ``launcher`` is what runs the CLI (the console
    script, or ``python -c CODE``)."""
    return subprocess.run(
        [*launcher, *args],
        cwd=cwd,
        env=environment(home, **extra),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


#: The line ``taskdaemon ui`` logs once it serves: its address and its token file.
_UI_URL = re.compile(r"taskdaemon ui: (http://127\.0\.0\.1:\d+)/ \(token in (\S+)\)")


def validated(
    home: Path, file: Path, text: str, newline: str, *args: str
) -> tuple[int, list[str], str]:
    """``taskdaemon validate`` (with ``args``) of ``text`` written to ``file`` with ``newline``
    line ends: its exit code, its output's lines and its error output."""
    file.write_text(text.replace("\n", newline), newline="")
    done = taskdaemon(home, "validate", *args, file.name, cwd=file.parent)
    return done.returncode, done.stdout.splitlines(), done.stderr


def start_ui(home: Path, cwd: Path = ROOT, **extra: str) -> tuple[subprocess.Popen[str], str, str]:
    """``taskdaemon ui --port 0`` started with ``environment(home, **extra)``, once it serves:
    the process (the caller ends it), its URL and its API token."""
    ui = subprocess.Popen(
        [TASKDAEMON, "ui", "--port", "0"],
        cwd=cwd,
        env=environment(home, **extra),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        found = _UI_URL.search(line_with(ui.stderr, _UI_URL))
        assert found is not None
    except AssertionError:
        ui.kill()
        ui.communicate(timeout=30)
        raise
    return ui, found.group(1), Path(found.group(2)).read_text().strip()


def in_background(
    home: Path, *args: str, hangup: bool = False, **extra: str
) -> subprocess.Popen[str]:
    """``taskdaemon ARGS`` in the background, in the repository, with ``environment(home,
    **extra)`` and its stdin, stdout and stderr on pipes (text). ``hangup``: SIGHUP's default
    action restored in the command, for a test of SIGHUP run under ``nohup`` (SIGHUP ignored,
    and inherited: the command would rightly keep ignoring it)."""
    return subprocess.Popen(
        [TASKDAEMON, *args],
        cwd=ROOT,
        env=environment(home, **extra),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_default_hangup if hangup else None,  # noqa: PLW1509 - a test's child
    )


def dumped_while_running(home: Path, go: Path, *args: str) -> tuple[int, str, Path]:
    """``taskdaemon ARGS`` in the background, sent SIGUSR1 once a stage runs (one that waits
    for the file ``go``, made then): its exit code, its stdout and the dump it wrote."""
    process = in_background(home, *args)
    try:
        line_with(process.stderr, " running")
        process.send_signal(signal.SIGUSR1)
        line = line_with(process.stderr, "dump of run")
        go.touch()
        out, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    return process.returncode, out, Path(line.rsplit("written to ", 1)[1].strip())


def read_one_line(home: Path, *args: str) -> tuple[str, int, str]:
    """``taskdaemon ARGS | head -1``: the first line of its stdout, the pipe then closed with
    the rest unread; its exit code and its stderr."""
    process = in_background(home, *args)
    assert process.stdin is not None
    assert process.stdout is not None
    assert process.stderr is not None
    process.stdin.close()
    try:
        first = read_line(process.stdout)
    except AssertionError:
        process.kill()
        process.communicate(timeout=30)
        raise
    process.stdout.close()
    stderr = process.stderr.read()
    process.stderr.close()
    return first, process.wait(timeout=60), stderr


def _default_hangup() -> None:
    signal.signal(signal.SIGHUP, signal.SIG_DFL)


def wait_until_stored(home: Path, run_id: str, stage: str, status: str = "running") -> None:
    """Wait until the home's store shows ``stage`` of the run with ``status``, as ``taskdaemon
    runs show RUN`` would (the writer commits every 100 ms; a run killed before would have
    nothing to show). Read in this process, as that command reads it: the home's store opened
    to read, missing until the run's writer makes it, no retention, the run rebuilt from it."""
    from taskdaemon.pipeline.errors import RunNotFoundError, SpanSourceError
    from taskdaemon.pipeline.tracking.store import RetentionPolicy, SpanStore

    with SpanStore(home / "spans.db", retention=RetentionPolicy(), missing_ok=True) as store:
        for _ in range(300):
            try:
                stages = {s.name: s.status for s in store.get_run(run_id).stages}
            except (RunNotFoundError, SpanSourceError):  # not yet written, or mid-write
                stages = {}
            if stages.get(stage) == status:
                return
            time.sleep(0.1)
    raise AssertionError(f"stage {stage} of run {run_id} never showed {status} in the store")


#: One command stage that does nothing (``true``): a run to write, list and read back.
ONE_STAGE_PIPELINE = """\
    name: one
    stages:
      - name: only
        command: "true"
        triggers: [{manual: {approval_required: false}}]
"""

#: ``deploy`` waits for ``build`` and for a manual approval (``trigger_mode: all``).
GATED_PIPELINE = """\
    name: gated
    stages:
      - name: build
        command: "echo built"
        triggers: [{manual: {approval_required: false}}]
      - name: deploy
        command: "echo deployed"
        triggers:
          - on_completion: {stage: build}
          - manual: {approval_required: true}
        trigger_mode: all
"""

#: Two stages, b reading a's output ``x``: what the debugger's tests pause at b and override.
PAUSABLE_PIPELINE = """\
    name: dbg
    stages:
      - name: a
        command: "echo '{\\"x\\": 1}'"
        triggers: [{manual: {approval_required: false}}]
      - name: b
        command: "echo '{}'"
        triggers: [{on_completion: {stage: a}}]
        inputs: {x: stages.a.outputs.x}
"""


def pythonpath_with(*paths: Path | str) -> str:
    """``paths`` (a test's handler modules) before the caller's ``PYTHONPATH``: a command
    started with it imports the handlers, and the package of the tree under test (a work tree,
    a mutant) rather than whichever one is installed."""
    return os.pathsep.join(filter(None, [*map(str, paths), os.environ.get("PYTHONPATH")]))


def run_quiet(
    home: Path, folder: Path, handlers: tuple[str, str], pipeline: str, **env: str
) -> subprocess.CompletedProcess[str]:
    """``taskdaemon run -q`` of ``pipeline`` (its text) written in ``folder``, its handler
    module ``handlers`` (its name and text) beside it and on the path, more environment in
    ``env``."""
    module, text = handlers
    (folder / f"{module}.py").write_text(text)
    path = folder / "p.yaml"
    path.write_text(pipeline)
    return taskdaemon(home, "run", "-q", str(path), PYTHONPATH=pythonpath_with(folder), **env)


#: Two Python stages that print to taskdaemon's stdout (``printing.py``, :func:`printing_run`);
#: the first logs a warning after its line.
PRINTING_PIPELINE = """\
    name: printing
    stages:
      - name: first
        handler: "printing:first"
        triggers: [{manual: {approval_required: false}}]
      - name: second
        handler: "printing:second"
        triggers: [{on_completion: {stage: first}}]
"""

_PRINTING_HANDLERS = """\
import logging


def first(context):
    print("printed by first")
    logging.getLogger("printing").warning("logged by first")
    return {}


def second(context):
    print("printed by second")
    return {}
"""


def printing_run(home: Path, folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``taskdaemon run ARGS printing.yaml`` of :data:`PRINTING_PIPELINE` in ``folder``, its
    stderr on its stdout (``2>&1``): one stream, in the order it was written."""
    write(folder / "printing.yaml", PRINTING_PIPELINE)
    (folder / "printing.py").write_text(_PRINTING_HANDLERS)
    return taskdaemon(home, "run", *args, "printing.yaml", cwd=folder, launcher=ONE_STREAM)


def write(path: Path, text: str) -> Path:
    """Write a dedented pipeline file."""
    path.write_text(textwrap.dedent(text))
    return path


@dataclass
class Served:
    """A ``taskdaemon run`` in the background, read line by line from its stderr."""

    process: subprocess.Popen[str]
    run_id: str = ""

    def wait_for_line(self, needle: str) -> str:
        """Read stderr until a line contains ``needle`` (the explicit sync point), within
        :data:`LINE_WAIT` seconds."""
        seen: list[str] = []
        try:
            return line_with(self.process.stderr, needle, seen=seen)
        finally:
            started = [line for line in seen if line.startswith("run ") and " started " in line]
            if started:
                self.run_id = started[-1].split()[1]

    def finish(self, timeout: float = 60) -> tuple[int, str, str]:
        """Wait for the exit code, stdout and the rest of stderr."""
        stdout, stderr = self.process.communicate(timeout=timeout)
        return self.process.returncode, stdout, stderr

    def close(self) -> None:
        """Kill the command if it still runs, reap it and close its pipes: the pipes of one
        that already exited (its test never read its end) stayed open until the collector
        found them, in whichever later test that happened."""
        if self.process.poll() is None:
            self.process.kill()
        try:
            self.process.communicate(timeout=10)
        except subprocess.TimeoutExpired:  # a process the command started holds its pipes
            pass
        finally:
            for pipe in (self.process.stdout, self.process.stderr):
                if pipe is not None:
                    pipe.close()
            self.process.wait()


def free_port() -> int:
    """A TCP port of the loopback interface nobody listens on right now (bound, then
    released): free to serve on, and a connection to it is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


#: Stands in for the standard library's ``uuid`` (the telemetry load imports it, through
#: orjson): its import on the loading thread lasts until the file RELEASE exists, as a
#: telemetry load on a loaded host or a slow file system lasts.
_SLOW_UUID = """\
import os
import sysconfig
import threading
import time
from pathlib import Path

if threading.current_thread().name == "taskdaemon-telemetry-load":
    while not os.path.exists("RELEASE"):
        time.sleep(0.01)
_real = Path(sysconfig.get_paths()["stdlib"], "uuid.py")
exec(compile(_real.read_text(), str(_real), "exec"))
"""


#: Of the held-load tests (:func:`load_held_until`): stage ``a`` ends at once, ``b`` makes
#: the file STARTED and waits for the file GO; ``c`` comes after ``b``.
HELD_CHAIN = """\
    name: chain
    stages:
      - name: a
        command: "true"
        triggers: [{manual: {approval_required: false}}]
      - name: b
        command: "touch STARTED; while [ ! -e GO ]; do sleep 0.05; done"
        triggers: [{on_completion: {stage: a}}]
      - name: c
        command: "true"
        triggers: [{on_completion: {stage: b}}]
"""


def load_held_until(tmp_path: Path, release: Path) -> Path:
    """A folder for ``PYTHONPATH`` under ``tmp_path`` whose ``uuid`` holds a ``taskdaemon``
    process's telemetry load (its loading thread) until the file ``release`` exists."""
    shadow = tmp_path / "shadow"
    shadow.mkdir()
    (shadow / "uuid.py").write_text(_SLOW_UUID.replace("RELEASE", str(release)))
    return shadow
