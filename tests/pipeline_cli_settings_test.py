"""Which commands refuse an invalid setting (``settings.py``'s docstring; docs/architecture.md,
"Settings"): every command that reads any setting checks them all at start, whichever it uses;
``validate`` and ``dag`` of a file read none and check none. Each command runs for real, in
its own process."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli_support import ONE_STAGE_PIPELINE, taskdaemon, write
from taskdaemon.pipeline.cli import COMMANDS

RUN_ID = "0" * 32

#: One command line of every sub-command that reads settings (``PIPELINE`` is a pipeline file).
READING: dict[str, tuple[str, ...]] = {
    "run": ("run", "PIPELINE"),
    "debug": ("debug", "PIPELINE"),
    "dump": ("dump", RUN_ID),
    "approve": ("approve", RUN_ID, "stage"),
    "publish": ("publish", RUN_ID, "event"),
    "cancel": ("cancel", RUN_ID),
    "status": ("status", RUN_ID),
    "dag": ("dag", "--run", RUN_ID),
    "runs": ("runs", "list"),
    "retention": ("retention", "--keep", "5"),
    "logs": ("logs", RUN_ID),
    "replay": ("replay", RUN_ID),
    "watch": ("watch", RUN_ID),
    "report": ("report",),
    "serve": ("serve",),
    "ui": ("ui",),
}
#: The command lines that read no setting.
NOT_READING: dict[str, tuple[str, ...]] = {
    "validate": ("validate", "PIPELINE"),
    "dag": ("dag", "PIPELINE"),
}

#: Invalid values of settings a reading command may not use at all: a port (no server), a
#: log format, the replay cap, an exporter.
INVALID = {
    "TASKDAEMON_METRICS_PORT": "http",
    "TASKDAEMON_LOG_FORMAT": "yaml",
    "TASKDAEMON_CAPTURE_MAX_BYTES": "-1",
    "OTEL_TRACES_EXPORTER": "zipkin",
}


def test_every_command_is_listed() -> None:
    """A new sub-command must say here whether it reads settings."""
    assert set(COMMANDS) == set(READING) | set(NOT_READING)


def _argv(args: tuple[str, ...], pipeline: Path) -> list[str]:
    return [str(pipeline) if arg == "PIPELINE" else arg for arg in args]


@pytest.mark.parametrize("command", sorted(READING), ids=sorted(READING))
def test_a_reading_command_refuses_every_invalid_setting(
    command: str, home: Path, tmp_path: Path
) -> None:
    pipeline = write(tmp_path / "p.yaml", ONE_STAGE_PIPELINE)
    done = taskdaemon(home, *_argv(READING[command], pipeline), timeout=120, **INVALID)
    lines = done.stderr.splitlines()
    assert done.returncode == 2, done.stderr
    assert sorted(line.split(":")[1].split()[-1] for line in lines) == sorted(INVALID)
    assert all(line.startswith("taskdaemon: invalid setting ") for line in lines)
    assert done.stdout == ""
    assert list(home.iterdir()) == []  # nothing was done: no store, workspace or socket


@pytest.mark.parametrize("args", list(NOT_READING.values()), ids=list(NOT_READING))
def test_a_command_reading_no_setting_ignores_them(
    args: tuple[str, ...], home: Path, tmp_path: Path
) -> None:
    pipeline = write(tmp_path / "p.yaml", ONE_STAGE_PIPELINE)
    done = taskdaemon(home, *_argv(args, pipeline), **INVALID)
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout
