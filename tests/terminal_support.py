"""A ``taskdaemon`` command whose stdout is a real terminal (a pty) of a given width, read to
its end: what the history tables (``runs list``, ``runs show``, ``report``) and the prompts
(``replay --step``, typed to on the same terminal) are fitted to."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import struct
import subprocess
import termios
from pathlib import Path

from cli_support import ROOT, TASKDAEMON, environment, write

#: A pipeline whose names and error are wider than a narrow terminal gives them.
LONG_PIPELINE = "nightly-data-warehouse-refresh-with-a-long-name"
LONG_STAGES = (
    "extract-customer-orders-from-the-legacy-billing-system",
    "load-into-the-warehouse-and-refresh-materialized-views",
)
LONG_ERROR = "数据仓库刷新失败: the warehouse refused the load, its refresh timed out"


def long_names_pipeline(folder: Path) -> Path:
    """``folder/long.yaml``: :data:`LONG_PIPELINE`, whose second stage fails with
    :data:`LONG_ERROR` (on stderr, exit 3) after its first succeeds."""
    return write(
        folder / "long.yaml",
        f"""\
        name: {LONG_PIPELINE}
        stages:
          - name: {LONG_STAGES[0]}
            command: "true"
            triggers: [{{manual: {{approval_required: false}}}}]
          - name: {LONG_STAGES[1]}
            command: "echo '{LONG_ERROR}' >&2; exit 3"
            triggers: [{{on_completion: {{stage: {LONG_STAGES[0]}}}}}]
        """,
    )


def on_a_terminal_of(
    columns: int,
    home: Path,
    *args: str,
    streams: tuple[str, ...] = ("stdout", "stderr"),
    keys: bytes | None = None,
    lines: int = 24,
    cwd: Path = ROOT,
) -> tuple[int, list[str]]:
    """``taskdaemon ARGS`` with its ``streams`` (stdout, stderr) on a pty ``columns`` wide and
    ``lines`` high, any other discarded (no ``COLUMNS`` variable: the terminal's own size is
    read): its exit code and the lines it showed. With ``keys``, stdin is the terminal too
    and ``keys`` are typed at once (the terminal holds them until the command reads). It runs
    in ``cwd`` (a pipeline's Python handlers beside its file)."""
    primary, secondary = pty.openpty()
    fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", lines, columns, 0, 0))
    env = environment(home, TERM="xterm-256color")
    env.pop("COLUMNS", None)
    try:
        child = subprocess.Popen(
            [TASKDAEMON, *args],
            stdin=subprocess.DEVNULL if keys is None else secondary,
            stdout=secondary if "stdout" in streams else subprocess.DEVNULL,
            stderr=secondary if "stderr" in streams else subprocess.DEVNULL,
            cwd=cwd,
            env=env,
        )
    finally:
        os.close(secondary)
    chunks: list[bytes] = []
    if keys is not None:
        os.write(primary, keys)
    try:
        while True:  # to the end of the output: the child's exit closes the terminal
            ready, _, _ = select.select([primary], [], [], 60.0)
            if not ready:
                break  # a safety net: the caller's assertion then shows what came
            try:
                chunk = os.read(primary, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
        code = child.wait(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        os.close(primary)
    text = b"".join(chunks).decode().replace("\r\n", "\n")
    return code, text.splitlines()
