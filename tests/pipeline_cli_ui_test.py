"""``taskdaemon ui`` refuses a span store it cannot serve in the one line every command uses."""

from __future__ import annotations

import errno
import os
import pty
import select
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from cli_support import without_settings


def _future_store(path: Path) -> None:
    """A store written by a taskdaemon newer than this one (its schema version is ahead)."""
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE spans (span_id TEXT)")
        conn.execute("PRAGMA user_version = 999")
    conn.close()


def _in_a_terminal(home: Path, source: str, *args: str) -> tuple[int | None, str]:
    """``taskdaemon ui --source SOURCE [ARGS]`` (``--port 0`` unless ARGS name one) with a pty
    as its terminal: its exit code (None if it still served after a quiet minute: then it is
    killed) and all it wrote there."""
    controller, terminal = pty.openpty()
    env = without_settings(TASKDAEMON_HOME=str(home), OTEL_METRICS_EXPORTER="none")
    with subprocess.Popen(
        [sys.executable, "-m", "taskdaemon.pipeline.cli", "ui", "--source", source]
        + (list(args) or ["--port", "0"]),
        env=env,
        stdin=terminal,
        stdout=terminal,
        stderr=terminal,
    ) as process:
        os.close(terminal)
        seen = b""
        try:
            while select.select([controller], [], [], 60)[0]:
                chunk = os.read(controller, 4096)
                if not chunk:
                    break
                seen += chunk
        except OSError as error:  # EIO: the last holder of the terminal closed it
            if error.errno != errno.EIO:
                raise
        finally:
            os.close(controller)
            if process.poll() is None:
                process.kill()
        code = None if process.wait() < 0 else process.returncode
    return code, seen.decode(errors="replace")


@pytest.mark.parametrize(
    ("store", "said"),
    [
        ("missing", "no span store here"),
        ("not SQLite", "cannot open span store"),
        ("from the future", "999"),
    ],
)
def test_a_store_the_ui_cannot_serve_is_one_line_on_the_terminal(
    store: str, said: str, tmp_path: Path
) -> None:
    """It was a timestamped ``ERROR taskdaemon.ui:`` log line, where ``runs``, ``report`` and
    the rest say ``taskdaemon COMMAND: why``. Now the ui says it the same way: one line, exit 1
    (a source that cannot answer, as everywhere)."""
    path = tmp_path / "given" / "spans.db"  # not the home's own store, which a reader may make
    path.parent.mkdir()
    if store == "not SQLite":
        path.write_bytes(b"not a database" * 512)
    elif store == "from the future":
        _future_store(path)
    code, output = _in_a_terminal(tmp_path / "home", f"sqlite:///{path}")
    lines = output.splitlines()
    assert (code, len(lines)) == (1, 1), output
    assert lines[0].startswith(f"taskdaemon ui: {path}: "), output
    assert said in lines[0], output


def test_a_port_in_use_is_one_line_on_the_terminal(tmp_path: Path) -> None:
    """A taken port was a timestamped ``ERROR`` log line too; now ``taskdaemon ui: cannot
    serve on HOST:PORT: why``, exit 1."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        store = tmp_path / "home" / "spans.db"  # the home's own store: ui serves it
        code, output = _in_a_terminal(tmp_path / "home", f"sqlite:///{store}", "--port", str(port))
    assert (code, output.splitlines()) == (
        1,
        [f"taskdaemon ui: cannot serve on 127.0.0.1:{port}: Address already in use"],
    ), output
