"""Which commands refuse an invalid setting (``settings.py``'s docstring; docs/architecture.md,
"Settings"): every command that reads any setting checks them all at start, whichever it uses;
``validate`` and ``dag`` of a file read none and check none. Each command runs for real, in
its own process."""

from __future__ import annotations

from pathlib import Path
from typing import Any

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


NINES = "9" * 20  # past any int64: SQLite's integers overflow

#: Odd values of the number settings: accepted (None) or refused with this reason's start
#: (``settings.py``'s docstring, "Numbers").
ODD_NUMBERS = [
    ("TASKDAEMON_METRICS_PORT", " 7 ", None),
    ("TASKDAEMON_METRICS_PORT", "", "Input should be a valid integer"),
    ("TASKDAEMON_METRICS_PORT", "1e999", "Input should be a valid integer"),
    (
        "TASKDAEMON_METRICS_PORT",
        NINES,
        f"Input should be less than or equal to 65535, not '{NINES}'",
    ),
    ("TASKDAEMON_METRICS_PORT", "-0", None),
    ("TASKDAEMON_METRICS_PORT", "nan", "Input should be a valid integer"),
    ("TASKDAEMON_CAPTURE_MAX_BYTES", NINES, None),
    ("TASKDAEMON_CAPTURE_MAX_BYTES", "-0", None),
    ("TASKDAEMON_LOG_CAPTURE_MAX_LINES", "inf", "Input should be a valid integer"),
    ("TASKDAEMON_STDOUT_MAX_BYTES", "-0", "Input should be greater than or equal to 1"),
    ("TASKDAEMON_EXPORT_TIMEOUT", "nan", "Input should be a number, not NaN"),
    (
        "TASKDAEMON_EXPORT_TIMEOUT",
        "1e999",
        "Input should be less than or equal to 300, not '1e999'",
    ),
    ("TASKDAEMON_EXPORT_TIMEOUT", "-0", "Input should be greater than 0, not '-0'"),
    (
        "TASKDAEMON_EXPORT_TIMEOUT",
        "5s",
        "Input should be a valid number, unable to parse string as a number, not '5s'",
    ),
    ("TASKDAEMON_SOURCE_TIMEOUT", "1e999", "must be a finite number > 0, not '1e999'"),
    ("TASKDAEMON_SOURCE_TIMEOUT", "", None),
    ("TASKDAEMON_SOURCE_MAX_BYTES", "nan", "not a number: 'nan'"),
    ("TASKDAEMON_RETENTION_KEEP", NINES, f"must be 0 to 1000000000, not '{NINES}'"),
    ("TASKDAEMON_RETENTION_KEEP", "-0", None),
    ("TASKDAEMON_RETENTION_MAX_AGE", "nan", "not a duration: 'nan'"),
    # Full-width digits: int() and float() take them, no other reader of the value does.
    (
        "TASKDAEMON_METRICS_PORT",
        "９０９０",
        "Input should be a valid integer, in ASCII digits, not '９",
    ),
    ("TASKDAEMON_CAPTURE_MAX_BYTES", "1\u2003", "Input should be a valid integer, in ASCII"),
    (
        "TASKDAEMON_EXPORT_TIMEOUT",
        "５",
        "Input should be a valid number, in ASCII digits, not '５'",
    ),
    ("TASKDAEMON_SOURCE_TIMEOUT", "３０", "not a number: '３０'"),
    ("TASKDAEMON_SOURCE_MAX_BYTES", "６４", "not a number: '６４'"),
    ("TASKDAEMON_RETENTION_KEEP", "１０", "not a count: '１０'"),
    ("TASKDAEMON_RETENTION_MAX_AGE", "３０d", "not a duration: '３０d'"),
]


@pytest.mark.parametrize(("variable", "value", "refused"), ODD_NUMBERS)
def test_an_odd_number_is_a_meaning_or_one_line(
    variable: str, value: str, refused: str | None, home: Path
) -> None:
    """Spaces, empty, huge, negative zero, NaN and infinity: never a traceback."""
    done = taskdaemon(home, "runs", "list", **{variable: value})
    if refused is None:
        assert (done.returncode, done.stdout, done.stderr) == (0, "no runs\n", "")
    else:
        assert done.returncode == 2, done.stderr
        assert done.stderr.startswith(f"taskdaemon: invalid setting {variable}: {refused}")
        assert done.stderr.count("\n") == 1


def test_a_refused_setting_quoting_the_users_text_is_escaped(home: Path) -> None:
    """``serve --host`` beyond loopback without a token is refused as an invalid setting, and
    the line names the host: an ESC in it reached the terminal (the line was the one not
    written by ``cli/refusal.py``, which escapes)."""
    done = taskdaemon(home, "serve", "--port", "0", "--host", "bad\x1b[31mhost")
    said = (
        "taskdaemon: invalid setting TASKDAEMON_API_TOKEN: refusing to serve the run API on "
        "bad\\x1b[31mhost without a configured token; set TASKDAEMON_API_TOKEN (16+ characters) "
        "or bind 127.0.0.1"
    )
    assert (done.returncode, done.stderr.splitlines()) == (2, [said])


@pytest.mark.parametrize("level", ["critical", "WARN", "loud"])
def test_log_level_option_and_variable_take_the_same_names(home: Path, level: str) -> None:
    """``run --log-level LEVEL`` takes what ``TASKDAEMON_LOG_LEVEL=LEVEL`` takes, and refuses
    what it refuses in the same words: the option refused ``critical`` (and ``warn``), which
    the variable took."""
    pipeline = str(write(home / "one.yaml", ONE_STAGE_PIPELINE))
    by_variable = taskdaemon(home, "run", "-q", pipeline, TASKDAEMON_LOG_LEVEL=level)
    by_option = taskdaemon(home, "run", "-q", "--log-level", level, pipeline)

    def said(done: Any) -> tuple[int, str]:
        return done.returncode, done.stderr.partition("must be")[2].partition(" (see")[0].strip()

    assert said(by_variable) == said(by_option), by_option.stderr
    assert said(by_option)[0] == (2 if level == "loud" else 0)
