"""Readers never create a span store: a named path that is missing is an error, the home's own
store reads as no runs until a run makes it, and a long-lived reader sees it appear."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest

from cli_support import start_ui, taskdaemon, write
from taskdaemon.pipeline.errors import SpanSourceError
from taskdaemon.pipeline.tracking.store import SpanStore

RUN_ID = "0123456789abcdef0123456789abcdef"

#: Every command that reads the store, with the arguments it needs.
READERS = [
    ("runs", "list"),
    ("runs", "show", RUN_ID),
    ("report",),
    ("dag", "--run", RUN_ID),
    ("logs", RUN_ID),
    ("replay", RUN_ID),
    ("dump", RUN_ID, "-o", "/dev/null"),
    ("watch", "0123"),
    ("retention", "--keep", "3", "--vacuum"),
]


def _name(command: tuple[str, ...]) -> str:
    return " ".join(command[:2]) if command[0] == "runs" else command[0]


def test_a_missing_store_file_is_refused_by_the_store(tmp_path: Path) -> None:
    """``SpanStore`` on a path with no file raises SpanSourceError and leaves no file there."""
    path = tmp_path / "typo.db"
    with pytest.raises(SpanSourceError, match="no span store here"):
        SpanStore(path)
    assert [] == list(tmp_path.iterdir())


@pytest.mark.slow
@pytest.mark.parametrize("command", READERS, ids=_name)
def test_a_reader_given_a_missing_store_names_it_and_fails(
    command: tuple[str, ...], home: Path, tmp_path: Path
) -> None:
    """A read command given ``--source`` naming a missing file exits 1 with one line
    naming the path, and creates nothing."""
    typo = tmp_path / "typo.db"
    done = taskdaemon(home, *command, "--source", f"sqlite:///{typo}")
    lines = done.stderr.strip().splitlines()
    expected = (1, 1, True, [])
    assert expected == (
        done.returncode,
        len(lines),
        str(typo) in done.stderr,
        list(tmp_path.iterdir()),
    )


@pytest.mark.slow
@pytest.mark.parametrize("command", READERS, ids=_name)
def test_a_reader_in_a_fresh_home_creates_nothing(command: tuple[str, ...], home: Path) -> None:
    """A read command on the default store of a fresh home leaves the home empty."""
    taskdaemon(home, *command)
    assert [] == list(home.iterdir())


@pytest.mark.slow
def test_runs_list_in_a_fresh_home_says_no_runs(home: Path) -> None:
    """``runs list`` in a fresh home prints ``no runs`` and exits 0, as over an empty store."""
    done = taskdaemon(home, "runs", "list")
    assert (0, "no runs\n") == (done.returncode, done.stdout)


@pytest.mark.slow
def test_the_web_page_started_before_the_store_shows_a_later_run(home: Path) -> None:
    """``ui`` started in a fresh home lists a run that a ``run`` started afterwards made,
    without a restart."""
    pipeline = write(
        home / "one.yaml",
        """\
        name: later
        stages:
          - name: a
            command: "true"
            triggers: [{manual: {approval_required: false}}]
        """,
    )
    ui, url, token = start_ui(home)
    try:

        def recent() -> list[str]:
            request = urllib.request.Request(
                f"{url}/api/runs/recent", headers={"Authorization": f"Bearer {token}"}
            )
            with urllib.request.urlopen(request, timeout=30) as response:
                return [run["pipeline"] for run in json.load(response)["runs"]]

        before = (recent(), (home / "spans.db").exists())
        ran = taskdaemon(home, "run", str(pipeline), "-q")
        assert 0 == ran.returncode, ran.stderr
        after = recent()
    finally:
        ui.terminate()
        ui.communicate(timeout=30)
    assert (([], False), ["later"]) == (before, after)


def test_the_store_opens_a_file_created_after_it(tmp_path: Path) -> None:
    """A store opened with ``missing_ok`` before its file exists reads the file's runs once a
    writer has made it."""
    from taskdaemon.pipeline.tracking._schema import connect

    path = tmp_path / "spans.db"
    store = SpanStore(path, missing_ok=True)
    try:
        before = (store.search(), store.missing)
        connect(path).close()
        after = store.missing
    finally:
        store.close()
    assert (([], True), False) == (before, after)


def test_a_store_waiting_for_its_file_never_makes_it(tmp_path: Path) -> None:
    """Queries of a store opened with ``missing_ok`` on a missing file create nothing."""
    store = SpanStore(tmp_path / "spans.db", missing_ok=True)
    try:
        store.search()
        store.count()
        store.pipeline_counts()
    finally:
        store.close()
    assert [] == list(tmp_path.iterdir())
