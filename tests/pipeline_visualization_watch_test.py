"""The terminal watch: ``taskdaemon watch RUN``, ``run --watch`` and ``dag --run --watch -o``.

The live view is read through a real pseudo-terminal (``pty``) while the run goes on in another
process and waits for an approval; the plain-lines fallback through a pipe. Its rows and table
on their own: ``pipeline_visualization_terminal_test.py``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pty
import re
import select
import sqlite3
import struct
import subprocess
import termios
import time
from pathlib import Path
from typing import Any

import pytest

from cli_support import GATED_PIPELINE as GATED
from cli_support import ROOT, TASKDAEMON, environment, read_line, taskdaemon, write

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][A-Z0-9]|\r")


class Terminal:
    """A command running on a pseudo-terminal of 40 rows by 120 columns; ``screen`` is all it
    wrote so far, with the escape sequences removed."""

    def __init__(self, home_dir: Path, *args: str) -> None:
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
        env = environment(home_dir) | {"TERM": "xterm-256color", "COLUMNS": "120", "LINES": "40"}
        self.process = subprocess.Popen(
            [TASKDAEMON, *args], cwd=ROOT, env=env, stdin=slave, stdout=slave, stderr=slave
        )
        os.close(slave)
        self._master = master
        self.raw = b""

    @property
    def screen(self) -> str:
        """Everything written so far, without escape sequences."""
        return _ANSI.sub("", self.raw.decode(errors="replace"))

    def read_until(self, pattern: str, timeout: float = 60) -> str:
        """Read output until ``pattern`` (a regex) matches the text seen so far."""
        deadline = time.monotonic() + timeout
        while not re.search(pattern, self.screen):
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{pattern!r} never showed; screen:\n{self.screen[-3000:]}")
            ready, _, _ = select.select([self._master], [], [], left)
            if ready:
                try:
                    chunk = os.read(self._master, 65536)
                except OSError:  # the command exited and closed the terminal
                    chunk = b""
                if not chunk:
                    raise AssertionError(f"{pattern!r} never showed; screen:\n{self.screen}")
                self.raw += chunk
        return self.screen

    def finish(self, timeout: float = 60) -> int:
        """Read to the end of the output and return the exit code."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self._master], [], [], 1.0)
            if not ready:
                if self.process.poll() is not None:
                    break
                continue
            try:
                chunk = os.read(self._master, 65536)
            except OSError:
                break
            if not chunk:
                break
            self.raw += chunk
        code = self.process.wait(timeout=max(1.0, deadline - time.monotonic()))
        os.close(self._master)
        return code

    def kill(self) -> None:
        """Stop the command if it still runs (test clean-up)."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def _until_stored(home: Path, run_id: str, timeout: float = 30) -> None:
    """Return once the span store in ``home`` holds the trace ``run_id``.

    A run's progress lines are printed as it goes, and its spans reach the store a batch
    later (the store's writer commits on an interval), so a run id prefix resolves (against
    stored traces) only after that."""
    deadline = time.monotonic() + timeout
    uri = f"file:{home / 'spans.db'}?mode=ro"
    while True:
        try:
            with contextlib.closing(sqlite3.connect(uri, uri=True)) as conn:
                query = "SELECT 1 FROM traces WHERE trace_id = ?"
                if conn.execute(query, (run_id,)).fetchone() is not None:
                    return
        except sqlite3.OperationalError:  # not created yet, or its schema not yet written
            pass
        assert time.monotonic() < deadline, f"run {run_id} never reached the span store"
        time.sleep(0.02)


@pytest.mark.slow
def test_watch_follows_a_run_in_another_process_on_a_terminal(
    home: Path, tmp_path: Path, serve: Any
) -> None:
    """`taskdaemon watch RUN` on a pty draws the table: deploy waits for its approval, then,
    once approved from a third process, the run's final state. The run is named by a prefix,
    which resolves against the stored runs: the watch starts once the run is stored."""
    served = serve(str(write(tmp_path / "gated.yaml", GATED)))
    served.wait_for_line("waiting for approval")
    _until_stored(home, served.run_id)
    terminal = Terminal(home, "watch", served.run_id[:8], "--interval", "0.1")
    try:
        screen = terminal.read_until(r"deploy\s+waiting\s+.*approval")
        assert re.search(r"build\s+success", screen)
        assert "STAGE" in screen
        assert "WAITING FOR" in screen
        assert 0 == taskdaemon(home, "approve", served.run_id, "deploy").returncode
        terminal.read_until(rf"run {served.run_id} of gated: success")
        assert 0 == terminal.finish()
    finally:
        terminal.kill()
    assert re.search(r"deploy\s+success", terminal.screen)
    assert 0 == served.finish()[0]


@pytest.mark.slow
def test_watch_writes_plain_lines_through_a_pipe(home: Path, tmp_path: Path, serve: Any) -> None:
    """Not on a terminal, `watch` writes one line per change and no escape sequence."""
    served = serve(str(write(tmp_path / "gated.yaml", GATED)))
    served.wait_for_line("waiting for approval")
    watcher = subprocess.Popen(
        [TASKDAEMON, "watch", served.run_id, "--interval", "0.1"],
        cwd=ROOT,
        env=environment(home),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert watcher.stdout is not None
        first = [read_line(watcher.stdout), read_line(watcher.stdout)]
        assert ["build: success", "deploy: waiting, waiting for approval"] == [
            re.sub(r", [\d.]+(ms|s)$", "", line.strip()) for line in first
        ]
        assert 0 == taskdaemon(home, "approve", served.run_id, "deploy").returncode
        rest, stderr = watcher.communicate(timeout=60)
    finally:
        if watcher.poll() is None:
            watcher.kill()
            watcher.communicate()
    assert 0 == watcher.returncode, stderr
    # A poll may catch deploy between the approval and its end (``pending`` until its span is
    # written, ``running``; under load): one line per change, so such a line is a change like
    # the others, before the success.
    *between, done, ended = rest.splitlines()
    assert (set(), "deploy: success") == (
        {line.split(",")[0] for line in between} - {"deploy: pending", "deploy: running"},
        done.split(",")[0],
    )
    assert ended.startswith(f"run {served.run_id} of gated: success")
    assert "\x1b" not in "".join(first) + rest
    assert 0 == served.finish()[0]


@pytest.mark.slow
def test_run_watch_draws_the_table_on_a_terminal(home: Path, tmp_path: Path) -> None:
    """`run --watch` on a pty shows the live table instead of two lines per stage."""
    path = write(tmp_path / "gated.yaml", GATED)
    terminal = Terminal(home, "run", str(path), "--watch", "--auto-approve")
    try:
        terminal.read_until(r"run [0-9a-f]{32} of gated: success")
        assert 0 == terminal.finish()
    finally:
        terminal.kill()
    screen = terminal.screen
    assert "WAITING FOR" in screen
    assert re.search(r"deploy\s+success", screen)
    assert "running\n" not in screen  # no progress lines


@pytest.mark.slow
def test_run_watch_says_an_approval_after_the_other_triggers(home: Path, tmp_path: Path) -> None:
    """A stage waiting (mode ``all``) for its upstream, a condition and an approval says the
    approval last: the engine asks for it only once the others held. It said it first, as if
    ``approve`` could be given then (it is refused)."""
    condition = "size(stages.build.outputs) >= 0 && 'a long condition' != 'its expression'"
    gated = GATED.replace(
        "          - manual:",
        f'          - on_condition: {{expression: "{condition}"}}\n          - manual:',
    )
    path = write(tmp_path / "gated.yaml", gated)
    done = taskdaemon(home, "run", str(path), "--watch", "--auto-approve")
    assert 0 == done.returncode, done.stderr
    waits = [line for line in done.stderr.splitlines() if line.startswith("deploy: waiting")]
    assert waits, done.stderr
    # Then, once the others held, maybe the approval asked for, alone (a line of its own).
    first, *_ = waits
    assert all(w.endswith(", then approval") for w in [first, *waits[1:-1]]), waits
    assert waits[-1].endswith((", then approval", " waiting for approval")), waits


@pytest.mark.slow
def test_run_watch_shows_a_waited_for_condition_escaped(home: Path, tmp_path: Path) -> None:
    """A condition waited for is the definition's text, and a literal it compares may hold
    ESC, BEL and U+202E: `run --watch` printed them to the terminal (its title set, its screen
    cleared). They are escaped, as an error is."""
    escapes = GATED.replace(
        "manual: {approval_required: true}",
        "on_condition: {expression: \"'\\e]0;title\\a\\e[2J\\u202e' == ''\"}",
    ).replace("trigger_mode: all", "trigger_mode: any")
    path = write(tmp_path / "escapes.yaml", escapes)
    done = taskdaemon(home, "run", str(path), "--watch")
    shown = "waiting for build, condition '\\x1b]0;title\\x07\\x1b[2J\\u202e' == ''"
    assert (0, True, False) == (
        done.returncode,
        f"deploy: waiting, {shown}" in done.stderr.splitlines(),
        any(c in done.stderr for c in "\x1b\x07\u202e"),
    ), done.stderr


@pytest.mark.slow
def test_run_watch_through_a_pipe_writes_one_line_per_change(home: Path, tmp_path: Path) -> None:
    """Without a terminal, `run --watch` writes a line per stage state change on stderr."""
    path = write(tmp_path / "gated.yaml", GATED)
    done = taskdaemon(home, "run", str(path), "--watch", "--auto-approve")
    assert 0 == done.returncode, done.stderr
    lines = done.stderr.splitlines()[1:]  # after "run <id> of gated started (...)"
    changes_seen = [tuple(line.split(",")[0].split(": ")) for line in lines[:-1]]
    last: dict[str, str] = {}
    for line in lines[:-1]:
        # Every line is a change of its stage's state, or the approval asked for (which the
        # auto-approval may answer before a snapshot shows it asked).
        stage, state = line.split(",")[0].split(": ")
        assert last.get(stage) != state or line == "deploy: waiting, waiting for approval", lines
        last[stage] = state
    assert {"build": "success", "deploy": "success"} == last
    assert ("deploy", "waiting") in changes_seen
    assert re.fullmatch(r"run [0-9a-f]{32} of gated: success, .*, 2/2 stages done", lines[-1])
    assert "\x1b" not in done.stderr


@pytest.mark.slow
def test_run_watch_through_a_pipe_says_when_the_approval_is_asked_for(
    home: Path, tmp_path: Path, serve: Any
) -> None:
    """Mode ``all``: deploy waits for build, then approval. Once build ended the approval is
    asked for, and deploy's state stays ``waiting``: a line says so all the same, the action a
    person following the pipe has to take. It said nothing until someone approved."""
    served = serve(str(write(tmp_path / "gated.yaml", GATED)), "--watch")
    served.wait_for_line("build: success")
    deadline = time.monotonic() + 60
    while taskdaemon(home, "approve", served.run_id, "deploy").returncode != 0:
        assert time.monotonic() < deadline, "the approval was never asked for"
        time.sleep(0.1)
    # Read as wait_for_line reads (``finish`` would miss the lines its reader holds already).
    asked = served.wait_for_line("deploy: ").strip()
    approved = served.wait_for_line("deploy: ").strip().split(",")[0]
    assert (0, "deploy: waiting, waiting for approval", "deploy: queued") == (
        served.finish()[0],
        asked,
        approved,
    )


@pytest.mark.slow
def test_dag_watch_rewrites_the_file_until_the_run_ends(
    home: Path, tmp_path: Path, serve: Any
) -> None:
    """`dag --run RUN --watch -o FILE` rewrites FILE as the run changes (whole files only),
    and exits 0 once the run has ended, the last picture showing it."""
    served = serve(str(write(tmp_path / "gated.yaml", GATED)))
    served.wait_for_line("waiting for approval")
    out = tmp_path / "live.json"
    drawer = subprocess.Popen(
        [TASKDAEMON, "dag", "--run", served.run_id, "--watch", "-f", "json", "-o", str(out)],
        cwd=ROOT,
        env=environment(home),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # Polled: the rewrite showing the approval wait is the event waited for. The first
        # picture may come before it: `run` stores a run's start before its telemetry has
        # loaded (tracking/run_start.py), so the store shows the run, its stages pending, until
        # the spans of its first stages land. Each read is a whole JSON file (no torn write).
        deadline = time.monotonic() + 60
        states: dict[str, str] = {}
        while states.get("deploy") != "waiting":
            assert time.monotonic() < deadline, f"never showed deploy waiting: {states}"
            assert drawer.poll() is None, drawer.communicate()
            if out.exists():
                states = {n["name"]: n["state"] for n in json.loads(out.read_text())["nodes"]}
            select.select([], [], [], 0.05)
        assert "success" == states["build"]
        assert 0 == taskdaemon(home, "approve", served.run_id, "deploy").returncode
        _, stderr = drawer.communicate(timeout=60)
    finally:
        if drawer.poll() is None:
            drawer.kill()
            drawer.communicate()
    assert 0 == drawer.returncode, stderr
    final = json.loads(out.read_text())
    assert "success" == final["run"]["status"]
    assert ["live.json"] == sorted(p.name for p in tmp_path.iterdir() if "live" in p.name)
    assert 0 == served.finish()[0]


def test_dag_watch_needs_run_and_output(home: Path) -> None:
    """`dag --watch` without -o is refused in one line, exit 2."""
    done = taskdaemon(home, "dag", "--run", "abcd1234", "--watch")
    assert (2, "taskdaemon dag: --watch needs --run and -o FILE\n") == (
        done.returncode,
        done.stderr,
    )
