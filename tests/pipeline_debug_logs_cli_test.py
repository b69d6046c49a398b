"""``taskdaemon logs`` as a real process: following a run that another process writes, the
stderr tail ``run`` shows, and an unknown run or stage refused in one line."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from cli_support import TASKDAEMON, environment, line_with
from pipeline_debug_logs_support import IDS
from pipeline_tracking_support import make_provider, write_example_run
from taskdaemon.pipeline.cli import main
from taskdaemon.pipeline.tracking import RetentionPolicy, SqliteSpanProcessor
from taskdaemon.pipeline.tracking._schema import connect

CLI_PIPELINE = """
name: cli-logs
stages:
  - name: talk
    loop: command
    command: "echo first; while [ ! -f {gate} ]; do sleep 0.02; done; echo second"
    triggers: [{{manual: {{approval_required: false}}}}]
  - name: fail
    loop: command
    command: "echo ok; echo broken thing >&2; exit 3"
    triggers: [{{on_completion: {{stage: talk}}}}]
"""


def _wait_for_run(db: Path, deadline: float) -> str:
    while time.monotonic() < deadline:
        if db.exists():
            try:
                conn = sqlite3.connect(db)
                try:
                    row = conn.execute("SELECT trace_id FROM runs").fetchone()
                finally:
                    conn.close()
            except sqlite3.Error:
                row = None
            if row:
                return str(row[0])
        time.sleep(0.05)
    raise AssertionError("the run never reached the store")


@pytest.mark.slow
def test_logs_follow_a_run_in_another_process_and_run_shows_the_stderr_tail(
    tmp_path: Path,
) -> None:
    """``logs --follow`` prints a command's lines while the run goes on in another process
    and ends with the run; ``run`` prints the failed command's stderr under its failure; and
    ``logs --json`` gives every id."""
    gate = tmp_path / "gate"
    (tmp_path / "p.yaml").write_text(CLI_PIPELINE.format(gate=gate))
    env = environment(tmp_path / "home")
    run = subprocess.Popen(
        [TASKDAEMON, "run", "p.yaml"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    follow = None
    try:
        run_id = _wait_for_run(tmp_path / "home" / "spans.db", time.monotonic() + 60)
        follow = subprocess.Popen(
            [TASKDAEMON, "logs", run_id[:8], "--follow", "--interval", "0.05"],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        seen: list[str] = []
        line_with(follow.stdout, "[stdout] first", seen=seen)  # no sleep for ordering
        assert "second" not in "".join(seen)  # the run still waits at its gate
        gate.touch()
        rest, _ = follow.communicate(timeout=60)
        _, err = run.communicate(timeout=60)
    finally:
        for process in (run, follow):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait()
    followed = "".join(seen) + rest
    assert (0, 1) == (follow.returncode, run.returncode)
    assert "talk.0.1 [stdout] second" in followed
    assert "fail.0.1 [stderr] broken thing" in followed
    assert "finished: failure" in followed.splitlines()[-1]
    assert "  | broken thing" in err
    listed = subprocess.run(
        [TASKDAEMON, "logs", run_id, "--json", "--stage", "fail"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    entry = next(json.loads(line) for line in listed.stdout.splitlines() if '"ok"' in line)
    assert (run_id, "cli-logs", "fail", 0, 1, run_id) == tuple(entry[name] for name in IDS[:-1])
    assert 16 == len(entry["span_id"])


def test_logs_of_an_unknown_run_is_one_line(tmp_path: Path) -> None:
    """An unknown run id gets one line on stderr and exit code 1."""
    env = environment(tmp_path / "home")
    (tmp_path / "home").mkdir()
    connect(tmp_path / "home" / "spans.db").close()
    done = subprocess.run(
        [TASKDAEMON, "logs", "abcd1234"],
        check=False,
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert (1, 1) == (done.returncode, len(done.stderr.strip().splitlines()))


def test_logs_of_a_stage_the_run_does_not_have_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``logs RUN --stage S`` for a stage the run has not (a typo) says so and exits 1, rather
    than printing nothing as for a stage that logged nothing."""
    db = tmp_path / "spans.db"
    processor = SqliteSpanProcessor(db, retention=RetentionPolicy())
    provider, _ = make_provider(processor)
    run_id = write_example_run(provider)
    processor.shutdown()
    code = main(["logs", run_id, "--stage", "biuld", "--source", f"sqlite:///{db}"])
    expected = (
        1,
        f"taskdaemon logs: run {run_id} of pipeline 'demo' has no stage 'biuld' "
        "(its stages: plan, build, test, deploy); did you mean 'build'?\n",
    )
    assert expected == (code, capsys.readouterr().err)
