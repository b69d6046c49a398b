"""``taskdaemon runs``: the bounds of its options, what ``runs show`` says of a run it lacks, and
which instant ``runs show --at`` shows."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from cli_support import taskdaemon
from taskdaemon.pipeline.cli import main


def test_a_limit_past_what_the_store_can_take_is_one_line(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``runs list --limit`` past 1,000,000 exits 2 with one line naming the range (it used to
    be an OverflowError traceback from SQLite)."""
    code = main(
        ["runs", "list", "--limit", "99999999999999999999", "--source", f"sqlite:///{home}/s.db"]
    )
    expected = (2, "taskdaemon runs list: --limit must be 1 to 1000000\n")
    assert expected == (code, capsys.readouterr().err)


def test_an_invalid_retention_variable_is_an_invalid_setting(
    home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A reader opening the store under a bad ``TASKDAEMON_RETENTION_KEEP`` exits 2 naming the
    variable, as for every invalid setting (docs/architecture.md, "Settings"), not with a
    ValueError traceback."""
    monkeypatch.setenv("TASKDAEMON_RETENTION_KEEP", "abc")
    monkeypatch.delenv("TASKDAEMON_RETENTION_MAX_AGE", raising=False)
    code = main(["runs", "list", "--source", f"sqlite:///{home}/s.db"])
    expected = (2, "taskdaemon: invalid setting TASKDAEMON_RETENTION_KEEP: not a count: 'abc'\n")
    assert expected == (code, capsys.readouterr().err)


def test_bounds_the_wrong_way_round_are_refused_as_report_refuses_them(
    home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``runs list --since 1d --until 3d`` (the ages swapped) said ``no runs``, exit 0, which
    no store could answer otherwise; ``report`` refused the same bounds. Now exit 2 and one
    line naming both; equal bounds still list the runs started at that instant."""
    monkeypatch.setenv("TASKDAEMON_HOME", str(home))
    code = main(["runs", "list", "--since", "1d", "--until", "3d"])
    expected = (2, "taskdaemon runs list: --until 3d must not be before --since 1d\n")
    assert expected == (code, capsys.readouterr().err)
    same = ["--since", "2026-01-01T00:00", "--until", "2026-01-01T00:00"]
    assert (0, ("no runs\n", "")) == (main(["runs", "list", *same]), capsys.readouterr())


@pytest.mark.slow
def test_a_run_killed_at_once_reads_interrupted_then_is_said_to_have_started(
    home: Path, tmp_path: Path
) -> None:
    """A run whose process is killed as its first stage starts (``kill -9`` by its own
    handler, as the OOM killer would) reads ``interrupted``: ``run`` stores its start before
    that stage (``cli/run_start.py``); it used to store nothing, and ``runs show`` said "no
    run ID". Once retention deleted it, ``runs show`` says the run started here, and the
    causes, not only "no run ID", as for a mistyped id: exit 1 and one line. (An ``os._exit``
    in a handler is said and stored first: ``reliability_process_exit_test``.)"""
    (tmp_path / "dies.py").write_text(
        "import os\nimport signal\n\n\ndef step(ctx):\n    os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    (tmp_path / "dies.yaml").write_text(
        "name: dies\nstages:\n  - name: a\n    handler: 'dies:step'\n"
        "    triggers: [{manual: {approval_required: false}}]\n"
    )
    ran = taskdaemon(home, "run", "dies.yaml", cwd=tmp_path)
    started = re.search(r"run ([0-9a-f]{32}) of dies started", ran.stdout + ran.stderr)
    assert (-9, True) == (ran.returncode, started is not None), ran.stderr
    run_id = started.group(1)  # type: ignore[union-attr]
    shown = taskdaemon(home, "runs", "show", run_id, "--json")
    assert (0, "interrupted") == (shown.returncode, json.loads(shown.stdout)["status"])
    kept = taskdaemon(home, "retention", "--keep", "0")
    assert 0 == kept.returncode, kept.stderr
    shown = taskdaemon(home, "runs", "show", run_id)
    expected = (
        f"taskdaemon runs show: no run {run_id} in {home / 'spans.db'} (it started here: "
        f"{home / 'workspaces' / run_id} is its workspace; its process was killed before its "
        "spans were stored, could not store them, or retention deleted them since)\n"
    )
    assert (1, "", expected) == (shown.returncode, shown.stdout, shown.stderr)


@pytest.mark.slow
def test_a_view_at_an_instant_says_which(home: Path, tmp_path: Path) -> None:
    """``runs show RUN --at T`` printed the run as it stood at T with nothing saying so: a
    ``running`` table with no end, which a reader of a saved copy could take for the record.
    Now a line above the table names the instant, and ``--json`` gives it as ``at``; the
    whole run's view has neither."""
    (tmp_path / "p.yaml").write_text(
        "name: p\nloops:\n  ok: {command: 'true'}\nstages:\n  - name: a\n    loop: ok\n"
        "    triggers: [{manual: {approval_required: false}}]\n"
    )
    ran = taskdaemon(home, "run", "p.yaml", "-q", cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    run_id = ran.stdout.split()[-1]
    at = taskdaemon(home, "runs", "show", run_id, "--at", "0s")
    whole = taskdaemon(home, "runs", "show", run_id)
    assert (at.returncode, at.stdout.splitlines()[:2]) == (
        0,
        ["the run as it stood 0ms after its start (--at)", f"run       {run_id}"],
    ), at.stderr
    assert whole.stdout.splitlines()[0] == f"run       {run_id}", whole.stderr
    shown = json.loads(taskdaemon(home, "runs", "show", run_id, "--at", "1m30s", "--json").stdout)
    assert (
        shown["at"],
        "at" in json.loads(taskdaemon(home, "runs", "show", run_id, "--json").stdout),
    ) == (90.0, False)
