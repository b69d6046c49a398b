"""The watchdog program's spawn tokens (``_watchdog_process.py``) in this process: the lines that
list and unlist a spawn, and the processes found, and ended, by the token they carry.

Only this test's processes may be signalled: the guard below refuses any other (the code under
test looks at every process of the user; a fault there, or a mutant, must not reach the
machine's other processes).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
from collections import Counter
from collections.abc import Callable, Iterator

import psutil
import pytest

from taskdaemon.pipeline._watchdog_process import (
    ENVIRON_MAX,
    _end_groups,
    _Listing,
)
from watchdog_support import DEADLINE, gone, group, until


@pytest.fixture
def token() -> str:
    """A token of this test only (a process another test left behind does not carry it)."""
    return os.urandom(16).hex()


def _parent(pid: int) -> int:
    """``pid``'s parent (0 for none, or once it is gone), read from ``/proc``: psutil's own
    checks call ``os.kill``, which the guard below replaces."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return int(stat.read().rpartition(b")")[2].split()[1])
    except (OSError, IndexError):
        return 0


def _descends_from_this_test(pid: int) -> bool:
    while pid > 1:
        pid = _parent(pid)
        if pid == os.getpid():
            return True
    return False


@pytest.fixture(autouse=True)
def signalled(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """``os.kill``, ``os.killpg`` and ``signal.pidfd_send_signal`` limited to this test's
    processes: its descendants, and the orphans left in their sessions (a carrier's child
    whose parent was killed first); any other is refused (PermissionError), and fails the
    test; one that is gone is ProcessLookupError. Yields the pids ``pidfd_send_signal`` sent a
    signal to, in order: what a test sees as sent, though its end comes later."""
    refused: list[int] = []
    sent: list[int] = []
    sessions: set[int] = set()  # of this test's descendants, less this test's own

    def guarded(
        real: Callable[[int, int], None], pid_of: Callable[[int], int], log: list[int]
    ) -> object:
        def call(target: int, sig: int) -> None:
            pid = pid_of(target)
            try:
                session = os.getsid(pid)
            except ProcessLookupError:
                raise ProcessLookupError(f"test guard: no process {pid}") from None
            if _descends_from_this_test(pid):
                if session != os.getsid(0):
                    sessions.add(session)
            elif session not in sessions:
                refused.append(pid)
                raise PermissionError(f"test guard: process {pid} is not this test's")
            real(target, sig)
            log.append(pid)

        return call

    monkeypatch.setattr(os, "kill", guarded(os.kill, int, []))
    monkeypatch.setattr(os, "killpg", guarded(os.killpg, int, []))
    monkeypatch.setattr(
        signal, "pidfd_send_signal", guarded(signal.pidfd_send_signal, _pid_of, sent)
    )
    yield sent
    assert [] == refused


def _pid_of(pidfd: int) -> int:
    """The pid a pidfd of this process refers to."""
    with open(f"/proc/self/fdinfo/{pidfd}") as info:
        return next(int(line.split()[1]) for line in info if line.startswith("Pid:"))


def _tokens(*chunks: bytes) -> set[bytes]:
    listing = _Listing()
    for chunk in chunks:
        listing.feed(chunk)
    return listing.tokens


def test_a_question_mark_lists_a_spawn_and_a_bang_unlists_it() -> None:
    """``?TOKEN`` lines list spawns, ``!TOKEN`` lines unlist them, in order; the group lines
    in between change no spawn."""
    assert {b"b", b"c"} == _tokens(b"?a\n?b\n+12\n!a\n?c\n-12\n")


def test_a_spawn_line_without_a_token_lists_nothing() -> None:
    """``?`` alone lists no spawn: an empty token would be carried by every process whose
    variable is empty."""
    assert set() == _tokens(b"?\n")


def test_a_process_carrying_the_token_is_ended(token: str) -> None:
    """A process whose environment carries a listed token gets SIGTERM."""
    with group("sleep", "300", token=token) as process:
        _end_groups(set(), DEADLINE, {token.encode()})
        assert -signal.SIGTERM == process.wait(DEADLINE)


def test_carriers_that_ignore_sigterm_get_sigkill_after_the_grace(
    token: str, signalled: list[int]
) -> None:
    """Carriers that ignore SIGTERM, a shell and its child (which inherited the token), get it
    once, though looked for again at each look of the grace, then SIGKILL once it has passed."""
    with group("sh", "-c", "trap '' TERM; sleep 300 & wait", token=token) as process:
        until(lambda: bool(psutil.Process(process.pid).children()), "the trap")
        child = psutil.Process(process.pid).children()[0].pid
        _end_groups(set(), 0.2, {token.encode()})
        assert -signal.SIGKILL == process.wait(DEADLINE)
        until(lambda: gone(child), "the child's end")
    assert {process.pid: 2, child: 2} == Counter(signalled)


def test_processes_without_the_exact_token_are_not_signalled(
    token: str, signalled: list[int]
) -> None:
    """A process carrying another token, one without any, one whose variable holds the token
    and more, and one holding it under another name, all get no signal."""
    with contextlib.ExitStack() as stack:
        others = [os.urandom(16).hex(), None, token + "0", "0" + token]
        for other in others:
            stack.enter_context(group("sleep", "300", token=other))
        stack.enter_context(group("sleep", "300", ALSO=token))
        ended = stack.enter_context(group("sleep", "300", token=token))
        _end_groups(set(), DEADLINE, {token.encode()})
        assert -signal.SIGTERM == ended.wait(DEADLINE)
    assert [ended.pid] == signalled


def test_a_token_past_the_bound_of_the_environment_read_is_not_found(
    token: str, signalled: list[int]
) -> None:
    """Only the first ``ENVIRON_MAX`` bytes of an environment are searched: a token after
    more than that is not seen (nor signalled), one before it is."""
    # execve takes at most 128 KiB per string: the padding is several variables, before the
    # token's (the environment is in the order of its dictionary).
    padding = {f"PAD{i}": "x" * 100_000 for i in range(ENVIRON_MAX // 100_000 + 1)}
    with (
        group("sleep", "300", **padding, TASKDAEMON_SPAWN_TOKEN=token),
        group("sleep", "300", **padding, token=token) as near,
    ):
        _end_groups(set(), DEADLINE, {token.encode()})
        assert -signal.SIGTERM == near.wait(DEADLINE)
    assert [near.pid] == signalled


#: Run as ``parent``, it runs itself as ``child``, which searches for the token both carry and
#: prints how many processes it signalled and which it tried to (none is: it only records them).
_SELF_AND_PARENT = textwrap.dedent(
    """
    import os, signal, subprocess, sys
    from taskdaemon.pipeline._watchdog_process import _signal_carriers

    if sys.argv[1] == "parent":
        sys.exit(subprocess.run([sys.executable, "-c", sys.argv[2], "child"]).returncode)
    tried = []
    signal.pidfd_send_signal = lambda pidfd, sig: tried.append(pidfd)
    token = os.environ["TASKDAEMON_SPAWN_TOKEN"].encode()
    print(_signal_carriers({token}, 0, signal.SIGTERM, set()), tried)
    """
)


def test_the_searcher_and_its_parent_are_never_signalled(token: str) -> None:
    """A search from a process that carries the token, whose parent carries it too, signals
    neither of them."""
    env = {**os.environ, "TASKDAEMON_SPAWN_TOKEN": token}
    done = subprocess.run(
        [sys.executable, "-c", _SELF_AND_PARENT, "parent", _SELF_AND_PARENT],
        env=env,
        capture_output=True,
        text=True,
        timeout=DEADLINE,
        check=False,
    )
    assert (0, "0 []\n") == (done.returncode, done.stdout), done.stderr
