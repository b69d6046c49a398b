"""``cli/ended_runs.ended_run``, in-process: what ``approve``, ``status``, ``debug attach``...
say of a run no process serves, read from a real embedded store written by the SDK (the
commands' own tests run them as subprocesses: ``pipeline_cli_approve_served_test.py``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline_tracking_support import make_provider, write_example_run
from taskdaemon.pipeline.cli.ended_runs import ended_run
from taskdaemon.pipeline.tracking import SqliteSpanProcessor


def _said(run_id: str, status: str) -> str:
    return (
        f"run {run_id} has ended ({status}): no process serves it any more "
        f"('taskdaemon runs show {run_id}' has its record)"
    )


@pytest.mark.parametrize("result", ["success", "failure"])
def test_a_run_the_store_has_ended_is_said_ended_by_its_full_id(
    tmp_path: Path, result: str
) -> None:
    """A final status is said with the run's whole id, asked by a prefix as the user typed it."""
    provider, _ = make_provider(SqliteSpanProcessor(tmp_path / "spans.db"))
    run_id = write_example_run(provider, result=result)
    provider.shutdown()
    assert _said(run_id, result) == ended_run(run_id[:6], str(tmp_path))


def test_an_interrupted_run_is_ended_and_a_running_one_is_not(tmp_path: Path) -> None:
    """A run whose process is alive is no ended run (the socket's own answer stands); once its
    writer is gone it reads interrupted, which no process serves again."""
    processor = SqliteSpanProcessor(tmp_path / "spans.db")
    provider, _ = make_provider(processor)
    run_id = write_example_run(provider, end_run=False)
    processor.force_flush()
    try:
        assert ended_run(run_id, str(tmp_path)) is None
    finally:
        provider.shutdown()
    assert _said(run_id, "interrupted") == ended_run(run_id, str(tmp_path))


def test_without_a_home_the_environments_home_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No ``--home``: the store of ``TASKDAEMON_HOME``, as every command finds it."""
    provider, _ = make_provider(SqliteSpanProcessor(tmp_path / "spans.db"))
    run_id = write_example_run(provider)
    provider.shutdown()
    monkeypatch.setenv("TASKDAEMON_HOME", str(tmp_path))
    assert _said(run_id, "success") == ended_run(run_id, None)
    assert ended_run(run_id, str(tmp_path / "other")) is None


def test_an_unknown_run_or_no_store_leaves_the_sockets_answer(tmp_path: Path) -> None:
    """No such run in the store, or no store at all: None, and no store is made."""
    provider, _ = make_provider(SqliteSpanProcessor(tmp_path / "spans.db"))
    write_example_run(provider)
    provider.shutdown()
    assert ended_run("ffff", str(tmp_path)) is None
    empty = tmp_path / "empty"
    empty.mkdir()
    assert ended_run("ffff", str(empty)) is None
    assert [] == list(empty.iterdir())
