"""``leftovers_traced`` (``cli/stage_leftovers.py``) in this process: the threads stage code
starts, and their threads, are noted with the stage; taskdaemon's own and anyone else's are
not; an ``atexit`` hook stage code registers is noted while it runs and still unregisters;
``pipeline_cli_process_end_test.py`` runs the real command's end in a subprocess."""

from __future__ import annotations

import atexit
import threading
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest

from taskdaemon.pipeline.cli.stage_leftovers import leftovers_traced, running_hook, started_by
from taskdaemon.pipeline.execution import enter_execution, leave_execution

STAGE = SimpleNamespace(stage="load", run_id="run-7")


def _as_stage(call: Callable[[], Any]) -> Any:
    token = enter_execution(STAGE)  # type: ignore[arg-type]
    try:
        return call()
    finally:
        leave_execution(token)


def _started(name: str, target: Callable[[], object] = lambda: None) -> threading.Thread:
    thread = threading.Thread(target=target, name=name)
    thread.start()
    return thread


def test_threads_stage_code_starts_are_noted_with_their_stage() -> None:
    """A stage's thread and the thread that one starts: the stage; a ``taskdaemon-*`` thread
    started for a stage, and a thread started outside a stage: none."""
    nested: list[threading.Thread] = []
    with leftovers_traced():
        own = _as_stage(lambda: _started("uploader", lambda: nested.append(_started("inner"))))
        mine = _as_stage(lambda: _started("taskdaemon-sync-9"))
        outside = _started("outside")
    for thread in (own, mine, outside, *nested):
        thread.join()
    assert [STAGE, STAGE, None, None] == [started_by(t) for t in (own, *nested, mine, outside)]


def test_a_hook_stage_code_registers_is_noted_while_it_runs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``atexit.register`` returns the function (a decorator keeps it) and registers a hook
    equal to it (``atexit.unregister(function)`` compares so) that says which hook runs while
    it runs; outside a stage, the function itself is registered. The real ``atexit.register``
    is a stand-in here: the test's hooks would run at pytest's exit."""
    registered: list[tuple[Any, tuple[object, ...]]] = []
    monkeypatch.setattr(atexit, "register", lambda func, *args: registered.append((func, args)))
    seen: list[Any] = []

    def hook(word: str) -> None:
        seen.append((word, running_hook()))

    with leftovers_traced():
        returned = _as_stage(lambda: atexit.register(hook, "bye"))
        atexit.register(print, "outside")
    (wrapped, args), outside = registered
    wrapped(*args)
    assert (hook, True, ("bye",), (print, ("outside",))) == (
        returned,
        wrapped == hook,
        args,
        outside,
    )
    assert ([("bye", (hook, STAGE))], None) == (seen, running_hook())


def test_a_thread_stage_code_creates_on_taskdaemons_daemon_thread_is_not_a_daemon() -> None:
    """On a daemon thread of taskdaemon's (a sync handler's pool thread), a thread stage code
    creates without ``daemon=`` is not a daemon, as on the main thread; ``daemon=True`` is
    kept; a thread created there outside a stage, or by the stage's own daemon thread,
    inherits the flag as Python does. Before, the first was a daemon (True)."""
    flags: list[bool] = []

    def own_daemon() -> None:
        flags.append(threading.Thread().daemon)

    def pool_thread() -> None:
        flags.append(_as_stage(threading.Thread).daemon)
        flags.append(_as_stage(lambda: threading.Thread(daemon=True)).daemon)
        flags.append(threading.Thread().daemon)
        theirs = _as_stage(lambda: threading.Thread(target=own_daemon, daemon=True))
        theirs.start()
        theirs.join()

    with leftovers_traced():
        pool = threading.Thread(target=pool_thread, name="taskdaemon-sync-9", daemon=True)
        pool.start()
        pool.join()
    assert [False, True, True, True] == flags


def test_thread_start_and_atexit_register_are_their_own_after_the_block() -> None:
    """Nothing is noted, nor wrapped, once the command has run its stages."""
    init, start, register = threading.Thread.__init__, threading.Thread.start, atexit.register
    with leftovers_traced():
        assert init != threading.Thread.__init__
        assert (start, register) != (threading.Thread.start, atexit.register)
    assert (init, start, register) == (
        threading.Thread.__init__,
        threading.Thread.start,
        atexit.register,
    )
