"""``os._exit`` bound by a handler module as it was imported (``from os import _exit``), called
by the real ``taskdaemon run``'s stage or its thread: said as a call through ``os._exit`` is
(``cli/late_exit.py``). Before, the name held the real function: the process ended silent, with
the code asked (0 after a run that failed)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

import pytest

from cli_support import run_quiet, taskdaemon
from taskdaemon.pipeline.cli import late_exit as late_exit_module
from taskdaemon.pipeline.cli.late_exit import beneath, bound_late, late_exit

#: ``a`` ends the process at once (``AT``: ``stage``), or leaves a thread that does once the
#: process's end has begun (``AT``: ``grace``); ``b`` then exits ``B_EXIT``.
HANDLERS = """\
import os
import threading
from os import _exit


def exits():
    threading.main_thread().join()  # returns once the process's end has begun
    _exit(int(os.environ["CODE"]))


def a(ctx):
    if os.environ["AT"] == "stage":
        _exit(int(os.environ["CODE"]))
    threading.Thread(target=exits, name="exiter").start()
    return {}
"""

PIPELINE = """\
name: bound
stages:
  - name: a
    handler: "bound:a"
    triggers: [{manual: {approval_required: false}}]
  - name: b
    command: "exit ${B_EXIT:-0}"
    triggers: [{on_completion: {stage: a}}]
"""


def _run(home: Path, tmp_path: Path, **env: str) -> tuple[int, str]:
    ran = run_quiet(home, tmp_path, ("bound", HANDLERS), PIPELINE, **env)
    return ran.returncode, ran.stderr.splitlines()[-1] if ran.stderr else ""


@pytest.mark.slow
@pytest.mark.parametrize(("asked", "failed", "code"), [(0, True, 1), (5, False, 5)])
def test_an_exit_bound_at_import_called_in_the_grace_is_said(
    home: Path, tmp_path: Path, asked: int, failed: bool, code: int
) -> None:
    """``_exit(0)`` after a run that failed (``b`` exits 3) ends with the run's 1, said."""
    env = {"AT": "grace", "CODE": str(asked), "B_EXIT": "3" if failed else "0"}
    said = (
        f"taskdaemon: thread 'exiter' (started by stage 'a', running bound.exits) ended the "
        f"process with os._exit({asked}) after the command ended with exit code {int(failed)}"
    )
    assert (code, said) == _run(home, tmp_path, **env)


@pytest.mark.slow
def test_an_exit_bound_at_import_called_by_a_stage_is_said_and_stored(
    home: Path, tmp_path: Path
) -> None:
    """The stage's own call, as ``os._exit``'s (``reliability_process_exit_test.py``)."""
    code, last = _run(home, tmp_path, AT="stage", CODE="0")
    said = "stage 'a' ended taskdaemon's process (os._exit(0)): run "
    assert (1, True) == (code, said in last), last
    run_id = last.split(said)[1].split()[0]
    logged = taskdaemon(home, "logs", run_id, "--stage", "a")
    assert said in logged.stdout.splitlines()[-1], logged


def test_the_stand_in_calls_the_exit_of_the_moment_and_is_named_as_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Bound once: a second call keeps it; ``beneath`` gives what it calls when ``os._exit``
    is itself, and what a replacement is otherwise. This process's own put back after; a
    stand-in for it lies beneath, so that a mutant calling it does not end the test's process."""

    def under(status: int) -> NoReturn:
        raise AssertionError(f"the exit beneath called with {status}")

    monkeypatch.setattr(os, "_exit", under)
    monkeypatch.setattr(late_exit_module, "_REAL", [])
    calls: list[int] = []

    def replaced(status: int) -> None:
        calls.append(status)
        raise SystemExit(status)

    bound_late()
    bound_late()
    assert os._exit is late_exit
    monkeypatch.setattr(os, "_exit", replaced)
    with pytest.raises(SystemExit):
        late_exit(7)
    assert ([7], "os._exit", True) == (
        calls,
        f"{late_exit.__module__}.{late_exit.__qualname__}",
        beneath(late_exit) is under and beneath(replaced) is replaced,  # type: ignore[arg-type]
    )


def test_the_stand_in_calls_the_exit_beneath_it_and_is_bound_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With ``os._exit`` the stand-in itself, a call reaches the function it took the place
    of; with a replacement in its place, the replacement, never the one beneath. A second
    ``bound_late`` after a replacement leaves the replacement where it is. (A stand-in for the
    real ``os._exit`` lies beneath, so no mutant can end the test's process.)"""
    calls: list[tuple[str, int]] = []

    def ending(name: str) -> Callable[[int], NoReturn]:
        def end(status: int) -> NoReturn:
            calls.append((name, status))
            raise SystemExit(status)

        return end

    beneath_it = ending("beneath")
    monkeypatch.setattr(os, "_exit", beneath_it)
    monkeypatch.setattr(late_exit_module, "_REAL", [])
    bound_late()
    with pytest.raises(SystemExit):
        os._exit(3)
    replacement = ending("replacement")
    monkeypatch.setattr(os, "_exit", replacement)
    bound_late()
    with pytest.raises(SystemExit):
        late_exit(4)
    assert ([("beneath", 3), ("replacement", 4)], [beneath_it], True) == (
        calls,
        late_exit_module._REAL,
        os._exit is replacement,
    )
