"""The watchdog program's spawn tokens (``_watchdog_process.py``) in this process: the lines that
list and unlist a spawn, and the processes found, and ended, by the token they carry.

Only this test's processes may be signalled: the guard below refuses any other (the code under
test looks at every process of the user; a fault there, or a mutant, must not reach the
machine's other processes).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from collections import Counter
from collections.abc import Callable, Iterator

import psutil
import pytest

from taskdaemon.pipeline import _watchdog_process
from taskdaemon.pipeline._watchdog_process import (
    ENVIRON_MAX,
    TOKEN_VARIABLE,
    _end_groups,
    _Listing,
    _signal_carriers,
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
    done = _carrying(token, sys.executable, "-c", _SELF_AND_PARENT, "parent", _SELF_AND_PARENT)
    assert (0, "0 []\n") == (done.returncode, done.stdout), done.stderr


def _carrying(token: str, *argv: str) -> subprocess.CompletedProcess[str]:
    """``argv`` run to its end with the token in its environment, its output read."""
    env = {**os.environ, TOKEN_VARIABLE: token}
    return subprocess.run(
        argv, env=env, capture_output=True, text=True, timeout=DEADLINE, check=False
    )


def test_a_token_in_the_first_variable_is_found(token: str, signalled: list[int]) -> None:
    """An environment's first variable has no NUL before it: it is matched as the others are
    (a search without its leading NUL was not killed before mut60)."""
    with group("sleep", "300", only={TOKEN_VARIABLE: token, "LATER": "1"}) as first:
        _end_groups(set(), DEADLINE, {token.encode()})
        assert [first.pid] == signalled
        assert -signal.SIGTERM == first.wait(DEADLINE)


@contextlib.contextmanager
def _listed_after(first: subprocess.Popen[bytes], token: str) -> Iterator[subprocess.Popen[bytes]]:
    """A token carrier listed after ``first`` in ``/proc`` (pid order), started again while
    the pids wrap round between the two (``pid_max`` can be as low as 32,768, and the suite
    starts tens of thousands of processes): the tests below need that order."""
    while True:
        with group("sleep", "300", only={TOKEN_VARIABLE: token}) as process:
            if process.pid > first.pid:
                yield process
                return


@pytest.mark.skipif(os.geteuid() != 0, reason="a process of another user is started as root")
def test_another_users_process_is_passed_over_and_the_search_goes_on(
    token: str, signalled: list[int]
) -> None:
    """A process of another user carrying the token is not signalled (not this user's to
    end), and the processes after it in ``/proc`` are still searched."""
    with (
        group("sleep", "300", only={TOKEN_VARIABLE: token}, user=65534) as other,
        _listed_after(other, token) as ours,
    ):
        _end_groups(set(), DEADLINE, {token.encode()})
        assert [ours.pid] == signalled
        assert (-signal.SIGTERM, None) == (ours.wait(DEADLINE), other.poll())


def test_a_process_that_ends_before_its_pidfd_is_passed_over(
    token: str, signalled: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A process listed in ``/proc`` that ends (and is reaped) before the search opens its
    pidfd is passed over; the processes after it are still searched, in the same search (one
    search, signal 0: the grace's next search would find them anyway)."""
    real = os.pidfd_open
    with (
        group("sleep", "300", only={TOKEN_VARIABLE: token}) as ends,
        _listed_after(ends, token) as ours,
    ):

        def pidfd_open(pid: int, flags: int = 0) -> int:
            if pid == ends.pid and ends.poll() is None:
                ends.kill()
                ends.wait()
            return real(pid, flags)

        monkeypatch.setattr(os, "pidfd_open", pidfd_open)
        found: set[int] = set()
        count = _signal_carriers({token.encode()}, 0, 0, found)
        assert (1, {ours.pid}, -signal.SIGKILL) == (count, found, ends.returncode)
    assert [ours.pid] == signalled


def test_the_first_parent_is_never_signalled(token: str, signalled: list[int]) -> None:
    """The parent the watchdog was started by (``parent``, not its parent now) carries the
    token, at the first search, at the grace's and at SIGKILL's: it gets no signal; the other
    carriers, which ignore SIGTERM, get SIGTERM then SIGKILL."""
    with (
        group("sleep", "300", only={TOKEN_VARIABLE: token}) as parent,
        group("sh", "-c", "trap '' TERM; sleep 300 & wait", token=token) as process,
    ):
        until(lambda: bool(psutil.Process(process.pid).children()), "the trap")
        child = psutil.Process(process.pid).children()[0].pid
        _end_groups(set(), 0.2, {token.encode()}, parent.pid)
        assert -signal.SIGKILL == process.wait(DEADLINE)
        until(lambda: gone(child), "the child's end")
        assert None is parent.poll()
    assert {process.pid: 2, child: 2} == Counter(signalled)


def test_the_carriers_are_counted_and_each_signalled_once(token: str, signalled: list[int]) -> None:
    """The search says how many processes carry a token, those signalled before too, and
    signals only those not signalled yet (signal 0 here: none ends)."""
    with group("sh", "-c", "sleep 300 & wait", token=token) as process:
        until(lambda: bool(psutil.Process(process.pid).children()), "the shell's child")
        child = psutil.Process(process.pid).children()[0].pid
        found: set[int] = set()
        counts = [_signal_carriers({token.encode()}, 0, 0, found) for _ in range(2)]
        assert ([2, 2], {process.pid, child}) == (counts, found)
    assert {process.pid: 1, child: 1} == Counter(signalled)


def test_with_no_grace_the_carriers_found_get_sigkill_at_once(
    token: str, signalled: list[int]
) -> None:
    """A grace over before the first search ends (0 here) has no look of its own: the carriers
    that first search found get SIGTERM, then SIGKILL at once."""
    with group("sh", "-c", "trap '' TERM; sleep 300 & wait", token=token) as process:
        until(lambda: bool(psutil.Process(process.pid).children()), "the trap")
        child = psutil.Process(process.pid).children()[0].pid
        _end_groups(set(), 0, {token.encode()})
        assert {process.pid: 2, child: 2} == Counter(signalled)
        assert -signal.SIGKILL == process.wait(DEADLINE)


def test_groups_alone_are_ended_without_a_search(monkeypatch: pytest.MonkeyPatch) -> None:
    """With no spawn listed, ending the groups opens no process's pidfd nor reads its
    environment: the search over ``/proc`` is for tokens only (the common end pays nothing)."""
    opened: list[int] = []
    real = os.pidfd_open
    monkeypatch.setattr(os, "pidfd_open", lambda pid, flags=0: opened.append(pid) or real(pid))
    with group("sleep", "300") as process:
        _end_groups({process.pid}, DEADLINE)
        assert -signal.SIGTERM == process.wait(DEADLINE)
    assert [] == opened


def test_a_carrier_found_only_after_the_first_search_is_ended(
    token: str, signalled: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Carriers are looked for again at least once after the first search, though it found
    none: a spawn's shell in the middle of its exec shows its token only then (here a
    carrier started once the first search is over)."""
    real = _watchdog_process._live_groups
    late: list[subprocess.Popen[bytes]] = []
    with contextlib.ExitStack() as stack:

        def live_groups(groups: set[int], proc: str = "/proc") -> set[int]:
            if not late:  # called first right after the first search
                late.append(
                    stack.enter_context(group("sleep", "300", only={TOKEN_VARIABLE: token}))
                )
            return real(groups, proc)

        monkeypatch.setattr(_watchdog_process, "_live_groups", live_groups)
        _end_groups(set(), DEADLINE, {token.encode()})
        assert [late[0].pid] == signalled
        assert -signal.SIGTERM == late[0].wait(DEADLINE)


#: Run in a pid namespace of its own under two shells (pid 1, then its child, this one's
#: parent), all three carrying the token: prints its pid and how many it signalled and tried to.
_UNDER_PID_1 = textwrap.dedent(
    """
    import os, signal
    from taskdaemon.pipeline._watchdog_process import _signal_carriers

    tried = []
    signal.pidfd_send_signal = lambda pidfd, sig: tried.append(pidfd)
    token = os.environ["TASKDAEMON_SPAWN_TOKEN"].encode()
    print(os.getpid(), _signal_carriers({token}, 0, signal.SIGTERM, set()), tried)
    """
)


@pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("unshare"), reason="a pid namespace is made as root"
)
def test_pid_1_is_never_signalled(token: str) -> None:
    """pid 1 (a container's init) is never signalled, though it carries the token and is
    neither the searcher nor its parent: searched in a pid namespace whose pid 1 is a shell."""
    shells = """sh -c '"$0" -c "$1"; exit $?' "$0" "$1"; exit $?"""
    namespace = ["unshare", "--pid", "--fork", "--mount-proc"]
    done = _carrying(token, *namespace, "sh", "-c", shells, sys.executable, _UNDER_PID_1)
    assert (0, "3 0 []\n") == (done.returncode, done.stdout), done.stderr
