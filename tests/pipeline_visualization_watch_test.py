"""The terminal watch: ``taskdaemon watch RUN``, ``run --watch`` and ``dag --run --watch -o``.

The live view is read through a real pseudo-terminal (``pty``) while the run goes on in another
process and waits for an approval; the plain-lines fallback through a pipe.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import io
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
from pipeline_engine_support import Resolver
from pipeline_visualization_support import feature_delivery
from taskdaemon.pipeline.engine import Engine
from taskdaemon.pipeline.loops import StageContext
from taskdaemon.pipeline.model import (
    Manual,
    OnCompletion,
    OnCondition,
    Pipeline,
    Stage,
    TriggerMode,
)
from taskdaemon.pipeline.records import AttemptRecord, RunRecord, StageRecord
from taskdaemon.pipeline.visualization import dag_snapshot, watch_run
from taskdaemon.pipeline.visualization._terminal import (
    _fit,
    changes,
    render_table,
    stage_rows,
    summary_line,
)

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


# -- the pure part ----------------------------------------------------------------------------


def attempt(stage: str, instance: int, start: float, end: float | None) -> AttemptRecord:
    """A first attempt of one instance, ``success`` once it ended."""
    status = "running" if end is None else "success"
    return AttemptRecord(f"{stage}.{instance}", instance, 1, status, start, end)


def _fan_out_run() -> RunRecord:
    """A run of feature_delivery whose ``implementation`` stage has three instances, two
    ended, and whose ``release`` has not started."""
    t0 = 1_700_000_000.0
    return RunRecord(
        run_id="ab" * 16,
        pipeline="feature_delivery",
        status="running",
        start=t0,
        end=None,
        stages=(
            StageRecord("planning", "plan", "success", (attempt("planning", 0, t0, t0 + 1),)),
            StageRecord(
                "specification", "spec", "success", (attempt("specification", 0, t0 + 1, t0 + 2),)
            ),
            StageRecord(
                "implementation",
                "phase",
                "running",
                (
                    attempt("implementation", 0, t0 + 2, t0 + 5),
                    attempt("implementation", 1, t0 + 2, t0 + 6),
                    attempt("implementation", 2, t0 + 2, None),
                ),
            ),
        ),
        edges=(),
    )


def test_rows_show_fan_out_progress_elapsed_time_and_waits() -> None:
    """A fan-out shows instances ended/started, a running stage its time so far, a pending
    stage the upstream and condition it waits for, then (mode ``all``) its approval."""
    snapshot = dag_snapshot(feature_delivery(), _fan_out_run())
    rows = {row.stage: row for row in stage_rows(snapshot, now=1_700_000_010.0)}
    implementation = rows["implementation"]
    assert ("running", "2/3", 8.0) == (
        implementation.state,
        implementation.progress,
        implementation.elapsed,
    )
    planning = rows["planning"]
    assert ("success", "", 1.0) == (planning.state, planning.progress, planning.elapsed)
    release = rows["release"]
    assert ("pending", None) == (release.state, release.elapsed)
    # Cut to 60 columns: the approval, asked for once the others held, is the part that goes.
    assert release.waiting_for.startswith("implementation, condition size(")
    assert release.waiting_for.endswith("…")


async def _waits_of_c_while_a_runs(go: int) -> str:
    """What stage c (mode all: a's completion and the condition ``request.go == 1``) waits
    for while a runs, in a real engine's run with ``go`` in its request."""
    gate = asyncio.Event()

    async def blocked(ctx: StageContext) -> dict[str, Any]:
        await gate.wait()
        return {}

    triggers = (OnCompletion("a"), OnCondition("request.go == 1"))
    pipeline = Pipeline(
        "held",
        (
            Stage("a", "python", (Manual(),)),
            Stage("c", "python", triggers, trigger_mode=TriggerMode.ALL),
        ),
    )
    waits = ""
    async with Engine(resolver=Resolver({"a": blocked})) as engine:
        stream = watch_run(engine)
        await engine.start_run(pipeline, {"go": go})
        async for snapshot in stream:
            if (snapshot.node("a").state, snapshot.node("c").state) == ("running", "waiting"):
                waits = {r.stage: r for r in stage_rows(snapshot, 0.0)}["c"].waiting_for
                gate.set()
    return waits


async def _waits_of_deploy(mode: TriggerMode) -> list[str]:
    """What deploy (a's completion and an approval, in ``mode``) waits for before it starts,
    each distinct wait in turn, in a real engine's run: a runs until deploy's wait was seen,
    and deploy is approved once its approval is all it waits for."""
    gate = asyncio.Event()

    async def blocked(ctx: StageContext) -> dict[str, Any]:
        await gate.wait()
        return {}

    triggers = (OnCompletion("a"), Manual(approval_required=True))
    pipeline = Pipeline(
        "held",
        (
            Stage("a", "python", (Manual(),)),
            Stage("deploy", "python", triggers, trigger_mode=mode),
        ),
    )
    waits: dict[str, None] = {}
    async with Engine(resolver=Resolver({"a": blocked})) as engine:
        stream = watch_run(engine)
        handle = await engine.start_run(pipeline)
        async for snapshot in stream:
            row = {r.stage: r for r in stage_rows(snapshot, 0.0)}["deploy"]
            wait = row.waiting_for if row.state in ("pending", "waiting") else ""
            waits.update({wait: None} if wait else {})
            if snapshot.node("a").state == "running" and wait:
                gate.set()
            if wait == "approval" and snapshot.node("a").state == "success":
                handle.approve("deploy", by="test")
    return list(waits)


async def test_in_mode_all_an_approval_is_waited_for_after_the_other_triggers() -> None:
    """Mode ``all`` asks for the approval once a ended (docs/architecture.md, "Run
    semantics"): deploy waits for a, then approval, then for the approval alone. Mode ``any``
    asks for it at once, and a's end fires deploy without it: the approval comes first."""
    assert (["a, then approval", "approval"], ["approval, a"]) == (
        await _waits_of_deploy(TriggerMode.ALL),
        await _waits_of_deploy(TriggerMode.ANY),
    )


async def test_a_trigger_that_already_holds_is_not_listed_as_waited_for() -> None:
    """A condition found true while the upstream still runs is no longer waited for: the row
    listed it all the same, read as "still waiting for it". One not true yet still is."""
    assert ("a", "a, condition request.go == 1") == (
        await _waits_of_c_while_a_runs(1),
        await _waits_of_c_while_a_runs(2),
    )


def test_a_wait_on_a_cjk_condition_is_cut_in_screen_columns() -> None:
    """A condition comparing with a CJK string is cut to 60 terminal columns (each CJK
    character takes two), not 60 characters."""
    from taskdaemon.pipeline.model import OnCondition, Pipeline, Stage
    from taskdaemon.pipeline.table_fit import text_columns

    title = "数据仓库刷新失败磁盘空间不足请联系管理员清理空间后再重试cafe\u0301"
    expression = f'stages.specification.outputs.title == "{title}"'
    release = Stage("release", "command", (OnCondition(expression),))
    pipeline = Pipeline(name="p", stages=(*feature_delivery().stages[:3], release))
    snapshot = dag_snapshot(pipeline, _fan_out_run())
    rows = {row.stage: row for row in stage_rows(snapshot, now=1_700_000_010.0)}
    waiting = rows["release"].waiting_for
    assert (True, True) == (text_columns(waiting) in (59, 60), waiting.endswith("…")), waiting


def test_plain_lines_say_each_change_once() -> None:
    """The fallback writes one line per stage whose state changed, none for unchanged ones."""
    first = dag_snapshot(feature_delivery(), _fan_out_run())
    assert [
        "planning: success, 1.0s",
        "specification: success, 1.0s",
        "implementation: running, instances 2/3",
    ] == changes(None, first, 1_700_000_010.0)
    assert [] == changes(first, first, 1_700_000_011.0)


def test_names_from_a_span_source_are_shown_escaped() -> None:
    """A run read from a span source (an OTLP JSON file, Tempo) names its pipeline and stages
    with anyone's text: ESC in them reached the terminal through ``watch``'s lines."""
    t0 = 1_700_000_000.0
    stage = "a\x1b]0;title\x07"
    run = RunRecord(
        "ab" * 16,
        "p\x1b[2J\u202e",
        "success",
        t0,
        t0 + 1,
        (StageRecord(stage, "command", "success", (attempt(stage, 0, t0, t0 + 1),)),),
        (),
    )
    lines = changes(None, dag_snapshot(None, run), t0 + 2)
    assert [
        "a\\x1b]0;title\\x07: success, 1.0s",
        f"run {'ab' * 16} of p\\x1b[2J\\u202e: success, 1.0s, 1/1 stage done",
    ] == lines


@pytest.mark.parametrize("width", [80, 56, 40])
def test_a_narrow_terminal_cuts_the_free_text_columns_only(width: int) -> None:
    """However narrow the terminal, every state, elapsed time and instance count is whole and
    each stage is one line: the waits, then the stage names, are cut with an ellipsis."""
    from rich.console import Console

    snapshot = dag_snapshot(feature_delivery(), _fan_out_run())
    console = Console(width=width, record=True, force_terminal=False, file=io.StringIO())
    console.print(render_table(snapshot, 1_700_000_010.0))
    lines = console.export_text().splitlines()
    table = lines[next(i for i, line in enumerate(lines) if line.startswith("STAGE")) :]
    assert ["STAGE", "STATE", "ELAPSED", "INST"] == table[0].split()[:4]
    cells = [line.split() for line in table[1:]]
    expected = [["success", "1.0s"], ["success", "1.0s"], ["running", "8.0s", "2/3"], "pending"]
    assert (expected, True, True) == (
        [*(row[1:] for row in cells[:3]), cells[3][1]],
        all(len(line) <= width for line in lines),
        table[4].rstrip().endswith("…"),
    )
    names = ("planning", "specification", "implementation", "release")
    assert all(
        cell == name or (cell.endswith("…") and name.startswith(cell[:-1]))
        for cell, name in zip((row[0] for row in cells), names, strict=True)
    )


def test_a_short_terminal_keeps_the_active_stages() -> None:
    """Cut to fewer rows than stages, the table keeps running stages and counts the rest."""
    from rich.console import Console

    snapshot = dag_snapshot(feature_delivery(), _fan_out_run())
    console = Console(width=100, record=True, force_terminal=False)
    console.print(render_table(snapshot, 1_700_000_010.0, height=5))
    text = console.export_text()
    assert "implementation" in text
    assert re.search(r"… \d+ more stages \(.*pending", text)


@pytest.mark.parametrize("height", [6, 7])
def test_a_wrapped_summary_takes_its_lines_from_the_stage_rows(height: int) -> None:
    """On a short, narrow terminal the summary wraps; the frame still fits in ``height`` lines,
    the count of the stages left out last, in view (a summary counted as one line pushed it
    off the screen)."""
    from rich.console import Console

    snapshot = dag_snapshot(feature_delivery(), _fan_out_run())
    console = Console(width=40, record=True, force_terminal=False, file=io.StringIO())
    console.print(render_table(snapshot, 1_700_000_010.0, height=height, width=40))
    lines = console.export_text().splitlines()
    heading = next(i for i, line in enumerate(lines) if line.startswith("STAGE"))
    assert (True, len(lines), True) == (
        heading > 1,
        height,
        lines[-1].startswith("… ") and "more stages" in lines[-1],
    ), lines


def test_a_short_terminal_shows_running_stages_before_queued_ones() -> None:
    """With more stages queued than the terminal has rows, the running and failed stages are
    the ones shown (in DAG order), and the queued ones are counted: a wide pipeline's workers
    stay in view."""

    def stage(name: str, status: str) -> StageRecord:
        attempt = AttemptRecord(f"{name}.0.1", 0, 1, status, start=1.0, end=None)
        return StageRecord(name, "work", status, attempts=(attempt,))

    names = [("q1", "queued"), ("q2", "queued"), ("failed", "failure"), ("q3", "queued")]
    run = RunRecord(
        run_id="r" * 32,
        pipeline="p",
        status="running",
        start=0.0,
        end=None,
        stages=(*(stage(n, s) for n, s in names), stage("busy", "running")),
        edges=(),
    )
    rows, more = _fit(stage_rows(dag_snapshot(None, run), 5.0), 3)
    expected = ([("failed", "failure"), ("busy", "running")], "… 3 more stages (3 queued)")
    assert expected == ([(r.stage, r.state) for r in rows], more)


# -- through a real terminal, following a run in another process ------------------------------


@pytest.mark.slow
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
        deadline = time.monotonic() + 60
        while not out.exists():  # polled: the file's first write is the event waited for
            assert time.monotonic() < deadline, "the file was never written"
            assert drawer.poll() is None, drawer.communicate()
            select.select([], [], [], 0.05)
        first = json.loads(out.read_text())
        assert "waiting" == {n["name"]: n["state"] for n in first["nodes"]}["deploy"]
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


def _failed_run() -> RunRecord:
    """A run of feature_delivery whose ``specification`` failed (its error on two lines) and
    whose ``implementation`` was skipped for it."""
    t0 = 1_700_000_000.0
    failed = AttemptRecord(
        "specification.0", 0, 1, "failure", t0 + 1, t0 + 2, error="schema invalid:\n  id missing"
    )
    return RunRecord(
        run_id="cd" * 16,
        pipeline="feature_delivery",
        status="running",
        start=t0,
        end=None,
        stages=(
            StageRecord("planning", "plan", "success", (attempt("planning", 0, t0, t0 + 1),)),
            StageRecord("specification", "spec", "failure", (failed,)),
            StageRecord("implementation", "phase", "skipped", skip_reason="upstream failed"),
        ),
        edges=(),
    )


def test_a_failed_stage_shows_its_error_and_a_skipped_one_why_while_the_run_goes() -> None:
    """Rows carry a failed stage's error on one line and a skipped stage's reason, before the
    run has ended; a stage that succeeded carries none."""
    snapshot = dag_snapshot(feature_delivery(), _failed_run())
    rows = {row.stage: row for row in stage_rows(snapshot, now=1_700_000_010.0)}
    expected = ("schema invalid: id missing", "upstream failed", "")
    assert expected == (
        rows["specification"].error,
        rows["implementation"].error,
        rows["planning"].error,
    )


def test_the_table_and_the_plain_lines_show_a_failed_stage_error() -> None:
    """The live table shows the error in the stage's row; the plain line of its change ends
    with it."""
    from rich.console import Console

    snapshot = dag_snapshot(feature_delivery(), _failed_run())
    console = Console(width=120, record=True, force_terminal=False)
    console.print(render_table(snapshot, 1_700_000_010.0))
    row = next(line for line in console.export_text().splitlines() if "specification" in line)
    lines = changes(None, snapshot, 1_700_000_010.0)
    expected = (True, "specification: failure, 1.0s, schema invalid: id missing")
    assert expected == (row.rstrip().endswith("schema invalid: id missing"), lines[1])


@pytest.mark.parametrize("width", [79, 56, 40])
def test_the_summary_wraps_between_words_without_a_trailing_blank(width: int) -> None:
    """The summary over the table, wider than the terminal, wraps between words, its later
    lines indented by four, and no line ends in the blank where it broke (``rich`` left one:
    ``4/5 `` over ``stages done``)."""
    from rich.console import Console

    snapshot = dag_snapshot(feature_delivery(), _fan_out_run())
    console = Console(width=width, record=True, force_terminal=False, file=io.StringIO())
    console.print(render_table(snapshot, 1_700_000_010.0, width=width))
    lines = console.export_text().splitlines()
    heading = lines[: next(i for i, line in enumerate(lines) if line.startswith("STAGE"))]
    words = summary_line(snapshot, 1_700_000_010.0).split(" ")
    assert (True, [], words) == (
        len(heading) > 1,
        [line for line in heading if line.endswith(" ") or len(line) > width],
        " ".join(heading).split(),
    ), heading
