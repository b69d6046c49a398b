"""Runs that had not ended in a report's window, on real ``taskdaemon run`` processes: one killed
with ``kill -9`` (``interrupted``) and one held at an approval (still running). They are left
out of the figures, and the notes say how many and of which kind, per pipeline, from the store's
aggregates, from runs rebuilt from spans (the Tempo/Jaeger/OTLP path) and from a dump, in every
format; a pipeline whose runs have all not ended is named too (docs/reports.md, "Runs that had
not ended")."""

from __future__ import annotations

import html
import json
import shutil
import sqlite3
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from cli_support import (
    ONE_STAGE_PIPELINE,
    ROOT,
    TASKDAEMON,
    Served,
    environment,
    taskdaemon,
    wait_until_stored,
    write,
)
from taskdaemon.pipeline.reporting import (
    RecordData,
    Report,
    Unended,
    build_report,
    unended_note,
)
from taskdaemon.pipeline.tracking import SpanStore
from taskdaemon.pipeline.tracking._schema import connect
from taskdaemon.pipeline.tracking.aggregates import StoreReportData

pytestmark = pytest.mark.slow

DAY = 86400.0

#: ``mixed`` ends when its one stage has; ``mixed`` from ``SLOW`` runs until killed.
QUICK = ONE_STAGE_PIPELINE.replace("name: one", "name: mixed")
SLOW = (
    QUICK
    + """\
      - name: wait
        command: "echo $$ >> PIDS; exec sleep 600"
        triggers: [{on_completion: {stage: only}}]
"""
)
#: ``gated`` waits for an approval of ``deploy`` that never comes.
GATED = """\
    name: gated
    stages:
      - name: build
        command: "echo '{}'"
        triggers: [{manual: {approval_required: false}}]
      - name: deploy
        command: "echo '{}'"
        triggers:
          - on_completion: {stage: build}
          - manual: {approval_required: true}
        trigger_mode: all
"""

MIXED_NOTE = unended_note("mixed", Unended(interrupted=1))
GATED_NOTE = unended_note("gated", Unended(running=1))


class Scene:
    """In one home: two ended runs of ``mixed``, one killed (``kill -9``) while its stage
    ``wait`` ran, and one run of ``gated`` held at its approval (alive until ``close``)."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.pids = home / "pids"
        self.started: list[Served] = []
        self.killed = self.held = ""
        self.ended: list[str] = []
        self.runs: list[str] = []

    def record(self) -> None:
        """Make the runs (``close`` ends what is left, even when this failed midway)."""
        home = self.home
        quick = write(home / "quick.yaml", QUICK)
        slow = write(home / "slow.yaml", SLOW.replace("PIDS", str(self.pids)))
        gated = write(home / "gated.yaml", GATED)
        self.ended = [self._ended_run(quick) for _ in range(2)]
        held = self._start(gated)
        held.wait_for_line("deploy                   waiting for approval")
        killed = self._start(slow)
        killed.wait_for_line("wait                     running")
        wait_until_stored(home, killed.run_id, "wait")
        killed.process.kill()  # SIGKILL: the run's spans stay open in the store
        killed.finish()
        wait_until_stored(home, held.run_id, "build", "success")  # its rows are in
        self.killed, self.held = killed.run_id, held.run_id
        self.runs = [*self.ended, self.killed, self.held]

    def _ended_run(self, path: Path) -> str:
        done = taskdaemon(self.home, "run", str(path), "-q")
        assert 0 == done.returncode, done.stderr
        return done.stdout.split()[-1]

    def _start(self, path: Path) -> Served:
        process = subprocess.Popen(
            [TASKDAEMON, "run", str(path)],
            cwd=ROOT,
            env=environment(self.home),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.started.append(Served(process))
        return self.started[-1]

    def close(self) -> None:
        """Kill the processes still running (the held run), and any sleeper left."""
        for served in self.started:
            served.close()
        # The killed run's group watchdog ends its sleeper; one left over is ended here.
        for line in self.pids.read_text().split() if self.pids.exists() else ():
            try:
                sleeper = psutil.Process(int(line))
                if "sleep" in sleeper.name():
                    sleeper.kill()
            except psutil.Error:
                pass


@pytest.fixture(scope="module")
def scene() -> Iterator[Scene]:
    home = Path(tempfile.mkdtemp(prefix="td-", dir="/tmp"))  # short: control sockets live in it
    made = Scene(home)
    try:
        made.record()
        yield made
    finally:
        made.close()
        shutil.rmtree(home, ignore_errors=True)


def _report(scene: Scene, *args: str) -> str:
    done = taskdaemon(scene.home, "report", *args)
    assert 0 == done.returncode, done.stderr
    return done.stdout


def _window() -> tuple[float, float]:
    now = time.time()
    return now - DAY, now + 60


def _summary(report: Report) -> tuple[list[str], dict[str, tuple[int, float]]]:
    return list(report.notes), {p.pipeline: (p.runs, p.success_rate) for p in report.pipelines}


def test_the_store_report_says_which_runs_had_not_ended(scene: Scene) -> None:
    """From the store: ``mixed`` shows its two ended runs, all succeeded, and a note for the
    killed one; ``gated``, with no ended run, has no figures but is named in a note."""
    shown = json.loads(_report(scene, "--format", "json"))
    assert [GATED_NOTE, MIXED_NOTE] == shown["notes"]
    assert [("mixed", 2, 1.0)] == [
        (p["pipeline"], p["runs"], p["success_rate"]) for p in shown["pipelines"]
    ]
    assert "1 still running" in GATED_NOTE
    assert "1 interrupted" in MIXED_NOTE


def test_a_pipeline_filter_keeps_its_own_note(scene: Scene) -> None:
    """``--pipeline gated``: its note alone, though it has no ended run."""
    shown = json.loads(_report(scene, "--pipeline", "gated", "--format", "json"))
    assert ([GATED_NOTE], []) == (shown["notes"], shown["pipelines"])


@pytest.mark.parametrize("fmt", ["table", "markdown", "html"])
def test_every_format_shows_the_notes(scene: Scene, fmt: str) -> None:
    """The table, Markdown and HTML forms carry both notes."""
    text = _report(scene, "--format", fmt)
    for note in (GATED_NOTE, MIXED_NOTE):
        assert (html.escape(note) if fmt == "html" else note) in text


def test_runs_rebuilt_from_spans_give_the_same_notes(scene: Scene) -> None:
    """The path of sources without aggregates counts the same runs the same way as the store,
    and a window that holds none of the runs has no note from either."""
    since, until = _window()
    with SpanStore(scene.home / "spans.db") as store:
        rebuilt = RecordData([store.get_run(run_id) for run_id in scene.runs])
        data = StoreReportData(store)
        try:
            for low, high in ((since, until), (since - DAY, since)):
                assert _summary(build_report(rebuilt, low, high)) == _summary(
                    build_report(data, low, high)
                )
            assert ([GATED_NOTE, MIXED_NOTE], {"mixed": (2, 1.0)}) == _summary(
                build_report(rebuilt, since, until)
            )
            assert ([], {}) == _summary(build_report(data, since - DAY, since))
        finally:
            data.close()


def test_a_dump_of_the_killed_run_reports_it_interrupted(scene: Scene, tmp_path: Path) -> None:
    """``report --source dump:///ARCHIVE`` over the killed run's dump (a source without
    aggregates, read through the CLI): no figures, and the note says it was interrupted."""
    archive = tmp_path / "killed.tar.gz"
    dumped = taskdaemon(scene.home, "dump", scene.killed, "-o", str(archive))
    assert 0 == dumped.returncode, dumped.stderr
    shown = json.loads(_report(scene, "--source", f"dump:///{archive}", "--format", "json"))
    assert ([MIXED_NOTE], []) == (shown["notes"], shown["pipelines"])


NS = 10**9
T0 = 1_700_000_000 * NS


def _history(path: Path, before: int) -> Path:
    """A store of ``before`` runs that never ended (``interrupted``: no writer), a minute
    apart, then two more in the window [T0, T0 + 1 h)."""
    connect(path).close()  # as a writer does: readers never create a store
    rows = [(f"{n:032x}", T0 - (before - n) * 60 * NS) for n in range(before)]
    rows += [(f"{before + n:032x}", T0 + n * 60 * NS) for n in range(2)]
    with sqlite3.connect(path) as conn:
        conn.executemany(
            "INSERT INTO runs (trace_id, pipeline, status, start_ns) VALUES (?, 'p', 'running', ?)",
            rows,
        )
    return path


def _steps_to_count(path: Path) -> tuple[int, dict[str, Unended]]:
    with SpanStore(path) as store:
        data = StoreReportData(store)
        try:
            steps = [0]

            def tick() -> int:
                steps[0] += 1
                return 0

            data._conn.set_progress_handler(tick, 1)
            found = dict(data.unended(T0 / NS, T0 / NS + 3600))
            data._conn.set_progress_handler(None, 0)
        finally:
            data.close()
    return steps[0], found


def test_the_store_counts_the_window_s_open_runs_only(tmp_path: Path) -> None:
    """Counting the runs that had not ended executes as many SQLite instructions after 3,000
    open runs before the window as after 10: the query reads the window's rows only."""
    expected = (_steps_to_count(_history(tmp_path / "short.db", 10))[0], {"p": Unended(0, 2)})
    assert expected == _steps_to_count(_history(tmp_path / "long.db", 3000))
