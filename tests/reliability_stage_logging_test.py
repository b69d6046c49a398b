"""Stage code whose log message is its own code, which may never return, run by the real
``taskdaemon run``: ``logger.info("%s", obj)``, ``logger.info(obj)`` and ``%r`` with an
``obj`` whose ``__str__``/``__repr__`` spins, or raises. The handler goes on, the other stages
log, the line says its text did not come (or could not be written)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli_support import pythonpath_with, taskdaemon

HANDLERS = """\
import logging

log = logging.getLogger("spinning")


class Spins:
    def __str__(self):
        while True:
            pass

    __repr__ = __str__


def by_percent_s(ctx):
    log.info("value %s", Spins())
    return {"kept": 1}


def as_the_message(ctx):
    log.warning(Spins())
    return {"kept": 2}


def by_percent_r(ctx):
    log.info("value %r", [Spins()])
    return {"kept": 3}


class Raises:
    def __str__(self):
        raise ValueError("no text")


def raising(ctx):
    log.info("value %s", Raises())
    return {"kept": 5}


def plain(ctx):
    log.info("plain %s %r", "text", {"n": 1})
    return {"kept": 4}
"""


@pytest.mark.slow
def test_a_log_message_whose_text_never_comes_holds_no_one_up(home: Path, tmp_path: Path) -> None:
    """Before, the first such message held the console handler's lock for good: every stage
    that logged after it waited, the run timed out and never ended (TimeoutExpired)."""
    (tmp_path / "spinning.py").write_text(HANDLERS)
    entry = "[{manual: {approval_required: false}}]"
    stages = "".join(
        f'  - {{name: {name}, handler: "spinning:{name}", triggers: {entry}}}\n'
        for name in ("by_percent_s", "as_the_message", "by_percent_r", "raising", "plain")
    )
    pipeline = tmp_path / "p.yaml"
    pipeline.write_text("name: spinning\ntimeout: 20s\nstages:\n" + stages)
    ran = taskdaemon(
        home, "run", str(pipeline), "-q", timeout=40, PYTHONPATH=pythonpath_with(tmp_path)
    )
    assert 0 == ran.returncode, ran.stderr
    logged = taskdaemon(home, "logs", ran.stdout.strip(), "--json")
    assert 0 == logged.returncode, logged.stderr
    messages = {
        entry["stage"]: entry["msg"]
        for entry in map(json.loads, logged.stdout.splitlines())
        if entry["logger"] == "spinning"
    }
    assert {
        "by_percent_s": "value %s <its text did not come within 1s: spinning.Spins>",
        "as_the_message": "<spinning.Spins: its text did not come within 1s>",
        "by_percent_r": "value %r <its text did not come within 1s: builtins.list>",
        "raising": "value %s <its text could not be written: ValueError: no text>",
        "plain": "plain text {'n': 1}",
    } == messages
    assert "value %s <its text did not come within 1s: spinning.Spins> [" in ran.stderr
    assert "Traceback" not in ran.stderr  # logging's report of a message that raised


WRONG_FORMATS = """\
import logging

log = logging.getLogger("formats")


def f(ctx):
    log.info("%d items", "x")
    log.warning("%s and %s", 1)
    log.info("%(name)s", {"other": 1})
    log.info("%d done", 3)
    return {"kept": 1}
"""


@pytest.mark.slow
def test_a_message_whose_format_does_not_fit_its_values_is_kept_in_one_line(
    home: Path, tmp_path: Path
) -> None:
    """Before, logging printed its traceback ("--- Logging error ---") to stderr for each
    handler and the store lost the record."""
    (tmp_path / "formats.py").write_text(WRONG_FORMATS)
    entry = "[{manual: {approval_required: false}}]"
    pipeline = tmp_path / "p.yaml"
    pipeline.write_text(
        f'name: formats\nstages:\n  - {{name: s, handler: "formats:f", triggers: {entry}}}\n'
    )
    ran = taskdaemon(home, "run", str(pipeline), "-q", PYTHONPATH=pythonpath_with(tmp_path))
    assert 0 == ran.returncode, ran.stderr
    logged = taskdaemon(home, "logs", ran.stdout.strip(), "--json")
    assert 0 == logged.returncode, logged.stderr
    messages = [
        entry["msg"]
        for entry in map(json.loads, logged.stdout.splitlines())
        if entry["logger"] == "formats"
    ]
    assert [
        "%d items <its format does not fit its arguments ('x',): TypeError: "
        "%d format: a real number is required, not str>",
        "%s and %s <its format does not fit its arguments (1,): TypeError: "
        "not enough arguments for format string>",
        "%(name)s <its format does not fit its arguments {'other': 1}: KeyError: 'name'>",
        "3 done",
    ] == messages
    assert "Logging error" not in ran.stderr
    assert "Traceback" not in ran.stderr
    assert "%s and %s <its format does not fit its arguments (1,)" in ran.stderr  # a warning
