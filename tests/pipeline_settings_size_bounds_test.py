"""The ``TASKDAEMON_*`` size settings are refused alike: a wrong value exits 2 naming the
variable, whichever command reads it and whatever source it reads (docs/architecture.md,
"Exit codes": invalid settings are 2)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli_support import taskdaemon, write

RUN_ID = "0123456789abcdef0123456789abcdef"
READERS = [("runs", "list"), ("runs", "show", RUN_ID), ("dag", "--run", RUN_ID), ("report",)]
# A remote source that cannot answer (port 9): the setting must be refused before any query.
SOURCES = {"store": {}, "tempo": {"TASKDAEMON_SPAN_SOURCE": "tempo+http://127.0.0.1:9"}}


@pytest.mark.slow
@pytest.mark.parametrize("source", sorted(SOURCES))
@pytest.mark.parametrize("command", READERS, ids=" ".join)
def test_a_wrong_source_size_exits_2_in_every_reader(
    home: Path, command: tuple[str, ...], source: str
) -> None:
    """`TASKDAEMON_SOURCE_MAX_BYTES=1kb` is refused by every command that reads runs, over the
    embedded store (which took it silently) as over a remote source (which exited 1)."""
    done = taskdaemon(home, *command, TASKDAEMON_SOURCE_MAX_BYTES="1kb", **SOURCES[source])
    named = [line for line in done.stderr.splitlines() if "TASKDAEMON_SOURCE_MAX_BYTES" in line]
    assert (2, 1, "Traceback" in done.stderr) == (done.returncode, len(named), False), done.stderr


@pytest.mark.slow
@pytest.mark.parametrize("value", ["0", "-1", "1kb"])
def test_a_stdout_bound_that_fits_nothing_is_refused(
    home: Path, tmp_path: Path, value: str
) -> None:
    """`TASKDAEMON_STDOUT_MAX_BYTES=0` would fail every command stage: refused, exit 2, before
    the run starts."""
    pipeline = write(
        tmp_path / "one.yaml",
        "name: one\nstages:\n  - {name: a, command: 'true', triggers: [{manual: {}}]}\n",
    )
    done = taskdaemon(home, "run", "-q", str(pipeline), TASKDAEMON_STDOUT_MAX_BYTES=value)
    named = [line for line in done.stderr.splitlines() if "TASKDAEMON_STDOUT_MAX_BYTES" in line]
    assert (2, 1, False) == (done.returncode, len(named), (home / "workspaces").exists())


@pytest.mark.slow
def test_serve_refuses_a_wrong_source_size_at_start(home: Path) -> None:
    """`serve`, whose API reads runs through a span source, refuses the setting before it
    serves (its API's run answers were an internal error, a traceback in its log)."""
    done = taskdaemon(home, "serve", "--port", "0", TASKDAEMON_SOURCE_MAX_BYTES="0", timeout=30)
    named = [line for line in done.stderr.splitlines() if "TASKDAEMON_SOURCE_MAX_BYTES" in line]
    assert (2, 1, False) == (done.returncode, len(named), "Traceback" in done.stderr)
