"""``TASKDAEMON_HOME`` and the other variables found by one rule (``home.py``,
``variables.py``): in-process, and by real commands that write and read a run through them."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from cli_support import ONE_STAGE_PIPELINE, TASKDAEMON, environment, write
from taskdaemon.pipeline.home import home_directory
from taskdaemon.pipeline.settings import load_settings


@pytest.mark.parametrize(
    ("environ", "home"),
    [
        ({}, ".taskdaemon"),
        ({"TASKDAEMON_HOME": ""}, ".taskdaemon"),
        ({"TASKDAEMON_HOME": "  "}, ".taskdaemon"),
        ({"TASKDAEMON_HOME": "/x"}, "/x"),
        ({"taskdaemon_home": "/y"}, "/y"),
        ({"taskdaemon_home": "/y", "TASKDAEMON_HOME": "/x"}, "/x"),
    ],
)
def test_the_home_is_found_as_the_settings_find_it(
    environ: dict[str, str], home: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Unset, empty or blank is ``.taskdaemon``; the exact name wins over another case's; the
    settings read the same home."""
    for name in ("TASKDAEMON_HOME", "taskdaemon_home"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    assert (Path(home), Path(home)) == (home_directory(environ), load_settings().home)


@pytest.mark.slow
@pytest.mark.parametrize("variable", ["TASKDAEMON_HOME", "taskdaemon_home"])
def test_a_run_and_its_readers_find_the_same_home(
    variable: str, home: Path, tmp_path: Path
) -> None:
    """A run made with the home's variable empty (or spelt in lower case) keeps its store and
    workspace in the home the readers then read: ``runs list`` lists it."""
    pipeline = write(tmp_path / "one.yaml", ONE_STAGE_PIPELINE)
    value = "" if variable == "TASKDAEMON_HOME" else str(home)
    where = tmp_path / ".taskdaemon" if value == "" else home
    env = {k: v for k, v in environment(home).items() if k != "TASKDAEMON_HOME"}
    env[variable] = value

    def command(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [TASKDAEMON, *args],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    run = command("run", "-q", str(pipeline))
    listed = command("runs", "list", "--json")
    run_id = run.stdout.strip()
    assert (0, True, [run_id]) == (
        run.returncode,
        (where / "workspaces" / run_id).is_dir() and (where / "spans.db").is_file(),
        [entry["run_id"] for entry in json.loads(listed.stdout or "[]")],
    ), run.stderr + listed.stderr


@pytest.mark.slow
def test_a_span_source_spelt_in_lower_case_is_where_the_run_and_the_readers_go(
    home: Path, tmp_path: Path
) -> None:
    """``taskdaemon_span_source`` (the settings accept any case) is the store ``run`` writes
    to and the one ``runs list`` reads, not the home's."""
    pipeline = write(tmp_path / "one.yaml", ONE_STAGE_PIPELINE)
    store = tmp_path / "elsewhere.db"
    env = {**environment(home), "taskdaemon_span_source": f"sqlite:///{store}"}
    done = [
        subprocess.run(
            [TASKDAEMON, *args], env=env, capture_output=True, text=True, timeout=60, check=False
        )
        for args in (("run", "-q", str(pipeline)), ("runs", "list", "--json"))
    ]
    listed = [entry["run_id"] for entry in json.loads(done[1].stdout or "[]")]
    assert ([done[0].stdout.strip()], True, False) == (
        listed,
        store.is_file(),
        (home / "spans.db").exists(),
    ), done[0].stderr + done[1].stderr
