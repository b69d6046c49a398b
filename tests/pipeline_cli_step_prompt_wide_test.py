"""``replay RUN --step`` on a real 80-column pseudo-terminal, over a run whose error mixes
Hebrew, CJK, a combining mark and emoji: ``where`` and the state line fit the screen's columns;
on a pipe the reasons keep their 80 columns."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import shutil
import struct
import subprocess
import sys
import tempfile
import termios
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from taskdaemon.pipeline.table_fit import text_columns

TASKDAEMON = str(Path(sys.executable).with_name("taskdaemon"))
ERROR = "שגיאה בשלב 数据仓库刷新失败：磁盘空间不足，请联系管理员清理空间后再重试 cafe\u0301 🚀🚀"
PIPELINE = f"""\
    name: wide
    stages:
      - name: load
        command: "echo '{{}}'"
        triggers: [{{manual: {{}}}}]
      - name: refresh-the-warehouse
        command: "echo '{ERROR}' >&2; exit 3"
        triggers: [{{on_completion: {{stage: load}}}}]
      - name: skipped-one
        command: "echo '{{}}'"
        triggers: [{{on_completion: {{stage: refresh-the-warehouse}}}}]
"""


def _environment(home: Path) -> dict[str, str]:
    env = {**os.environ, "TASKDAEMON_HOME": str(home), "TERM": "dumb"}
    for name in ("COLUMNS", "LINES", "TASKDAEMON_SPAN_SOURCE", "OTEL_EXPORTER_OTLP_ENDPOINT"):
        env.pop(name, None)
    return env


@pytest.fixture(scope="module")
def recorded() -> Iterator[tuple[Path, str]]:
    """A home whose store holds one real failed run of PIPELINE, and the run's id."""
    home = Path(tempfile.mkdtemp(prefix="td-wide-", dir="/tmp"))
    (home / "p.yaml").write_text(textwrap.dedent(PIPELINE))
    done = subprocess.run(
        [TASKDAEMON, "run", str(home / "p.yaml"), "-q"],
        env=_environment(home),
        cwd=home,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert 1 == done.returncode, done.stderr
    yield home, done.stdout.strip()
    shutil.rmtree(home, ignore_errors=True)


def _on_terminal(home: Path, run_id: str, keys: bytes, columns: int) -> str:
    """What ``replay RUN --step`` shows on a pseudo-terminal ``columns`` wide, typed
    ``keys`` (ending in ``quit``), read until the process ends."""
    controller, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
    process = subprocess.Popen(
        [TASKDAEMON, "replay", run_id, "--step"],
        cwd=home,
        env=_environment(home),
        stdin=terminal,
        stdout=terminal,
        stderr=subprocess.DEVNULL,
        close_fds=True,
    )
    os.close(terminal)
    seen: list[bytes] = []
    try:
        os.write(controller, keys)
        while True:  # until the child closes the terminal (EOF or EIO)
            ready, _, _ = select.select([controller], [], [], 60.0)
            assert ready, b"".join(seen).decode(errors="replace")
            try:
                chunk = os.read(controller, 4096)
            except OSError:
                break
            if not chunk:
                break
            seen.append(chunk)
        assert 0 == process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(controller)
    return b"".join(seen).decode().replace("\r\n", "\n")


def _after(text: str, command: str) -> list[str]:
    """The lines shown after ``(replay) command`` up to the next prompt."""
    tail = text.split(f"(replay) {command}", 1)[1].split("(replay) ", 1)[0]
    return [line for line in tail.splitlines() if line.strip()]


@pytest.mark.slow
@pytest.mark.parametrize("columns", [80, 100])
def test_where_on_a_terminal_fits_its_columns(recorded: tuple[Path, str], columns: int) -> None:
    """The opening lines, each ``where`` line and each state line are within the terminal's
    columns, counted as the screen counts them (a CJK character two, a combining mark none);
    the failure's and the skip's reasons are cut with an ellipsis; the run id stays whole."""
    home, run_id = recorded
    shown = _on_terminal(home, run_id, b"goto 1h\nwhere\nquit\n", columns)
    opening = shown.split("(replay) ", 1)[0].splitlines()
    lines = opening + _after(shown, "goto 1h") + _after(shown, "where")
    assert [] == [line for line in lines if text_columns(line) > columns], shown
    stages = {line.split()[0]: line for line in _after(shown, "where")[-3:]}
    assert stages["refresh-the-warehouse"].endswith("…)"), shown
    assert "数据" in stages["refresh-the-warehouse"], shown
    assert stages["skipped-one"].endswith("…)"), shown
    assert run_id in shown.split()


def test_where_on_a_pipe_keeps_80_columns_of_each_reason(recorded: tuple[Path, str]) -> None:
    """On a pipe there is no screen: a reason keeps its 80 columns (79 when the next
    character is a CJK one, which takes two), counted in columns, not characters."""
    home, run_id = recorded
    done = subprocess.run(
        [TASKDAEMON, "replay", run_id, "--step"],
        cwd=home,
        env=_environment(home),
        input="goto 1h\nwhere\nquit\n",
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    (failed,) = [line for line in done.stdout.splitlines() if "  failure  (" in line]
    reason = failed.split("  failure  (", 1)[1].removesuffix(")")
    assert (True, True) == (text_columns(reason) in (79, 80), reason.endswith("…")), failed
