"""The watchdog program's parts (``_watchdog_process.py``) in this process: the listing the
pipe's lines make, the groups still alive, and their ending (SIGTERM, then SIGKILL).

The program itself runs as ``python -I -S`` of its file (``pipeline_group_watchdog_test.py``
drives it); these tests call its functions directly, so that a change in them is seen here.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

from taskdaemon.pipeline._watchdog_process import (
    _end_groups,
    _Listing,
    _live_groups,
    _signal_groups,
    _watch,
)
from watchdog_support import DEADLINE, group, until


@pytest.fixture(autouse=True)
def _only_our_groups(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """``os.killpg`` limited to the groups this process started (their leader is, or was,
    its child): a signal to another live group is refused (PermissionError) and fails the
    test, one to a group without a leader is ProcessLookupError, as for a group that is gone.
    The code under test signals whatever groups it finds alive; a fault there (or a mutant)
    must not reach the machine's other processes."""
    real = os.killpg
    ours: set[int] = set()
    refused: list[int] = []

    def killpg(pgid: int, sig: int) -> None:
        with contextlib.suppress(psutil.Error):
            if psutil.Process(pgid).ppid() == os.getpid():
                ours.add(pgid)
        if pgid in ours:
            real(pgid, sig)
        elif psutil.pid_exists(pgid):
            refused.append(pgid)
            raise PermissionError(f"test guard: group {pgid} is not this test's")
        else:
            raise ProcessLookupError(f"test guard: no group {pgid} of this test")

    monkeypatch.setattr(os, "killpg", killpg)
    yield
    assert [] == refused


def _listing(*chunks: bytes) -> set[int]:
    listing = _Listing()
    for chunk in chunks:
        listing.feed(chunk)
    return listing.groups


def test_plus_lists_a_group_and_minus_unlists_it() -> None:
    """``+PGID`` lines list groups and ``-PGID`` lines unlist them, in order."""
    assert {13, 14} == _listing(b"+12\n+13\n-12\n+14\n")


def test_a_line_split_between_chunks_is_read_whole() -> None:
    """A line whose end comes in a later read is read once it is whole."""
    assert [set(), {123}] == [set(_listing(b"+1")), _listing(b"+1", b"23\n")]


def test_unlisting_a_group_never_listed_is_nothing() -> None:
    """``-PGID`` of a group not listed, and lines of neither kind, change nothing."""
    assert {5} == _listing(b"-7\n\nx\n+5\n")


def test_drain_reads_what_the_pipe_holds_without_waiting() -> None:
    """``drain`` lists what was written and returns while the write end is still open."""
    read_end, write_end = os.pipe()
    try:
        os.write(write_end, b"+7\n+8\n-7\n")
        listing = _Listing()
        listing.drain(read_end)
    finally:
        os.close(read_end)
        os.close(write_end)
    assert {8} == listing.groups


def test_a_group_with_a_running_process_is_alive() -> None:
    """A group with a sleeping process is among the live groups; one nobody has is not."""
    with group("sleep", "300") as process:
        live = _live_groups({process.pid, 2**22 + 1})
    assert {process.pid} == live


def test_without_proc_a_group_is_alive_while_signal_0_finds_a_process(tmp_path: Path) -> None:
    """Without ``/proc`` (not Linux) the live groups are those a signal 0 reaches: the running
    one, not the one nobody has, though that one comes first in the set; nothing raises, and
    the running one gets no signal."""
    with group("sleep", "300") as process:
        # No pid is over 2**22: nobody's groups, one of them first in the set's order.
        nobodys = range(2**22 + 1, 2**22 + 64)
        gone = next(pgid for pgid in nobodys if next(iter({pgid, process.pid})) == pgid)
        groups = {gone, process.pid}
        live = _live_groups(groups, proc=str(tmp_path / "no-proc"))
        with pytest.raises(subprocess.TimeoutExpired):
            process.wait(0.5)  # a signal sent would have ended it by then
    assert {process.pid} == live


def test_a_group_within_this_session_is_found_by_its_group_id() -> None:
    """A group that is not a session of its own is found by its group id, not its
    session's."""
    process = subprocess.Popen(["sleep", "300"], process_group=0)
    try:
        live = _live_groups({process.pid})
    finally:
        process.kill()
        process.wait()
    assert {process.pid} == live


def test_a_command_name_holding_a_parenthesis_is_read_past(tmp_path: Path) -> None:
    """A process whose name holds ``) Z 1 1`` (what a zombie's fields look like) is read by
    the fields after its name's last parenthesis: alive."""
    sleep = tmp_path / "s) Z 1 1"
    sleep.symlink_to(shutil.which("sleep") or "/bin/sleep")
    with group(str(sleep), "300") as process:
        live = _live_groups({process.pid})
    assert {process.pid} == live


def test_a_group_of_a_zombie_only_is_not_alive() -> None:
    """A group whose only process has ended and waits for its reaper is not alive."""
    process = subprocess.Popen(["true"], start_new_session=True)
    try:
        until(lambda: psutil.Process(process.pid).status() == psutil.STATUS_ZOMBIE, "the zombie")
        live = _live_groups({process.pid})
    finally:
        process.wait()
    assert set() == live


def test_ending_groups_sends_sigterm_first() -> None:
    """A group that heeds SIGTERM ends of it, within the grace period."""
    with group("sleep", "300") as process:
        _end_groups({process.pid}, grace=DEADLINE)
        assert -signal.SIGTERM == process.wait(DEADLINE)


def test_ending_groups_sends_sigkill_after_the_grace() -> None:
    """A group that ignores SIGTERM is killed with SIGKILL once the grace period has passed."""
    with group("sh", "-c", "trap '' TERM; sleep 300 & wait") as process:
        # The shell starts its child only after it set the trap.
        until(lambda: bool(psutil.Process(process.pid).children()), "the trap")
        _end_groups({process.pid}, grace=0.2)
        assert -signal.SIGKILL == process.wait(DEADLINE)


def test_ending_groups_waits_for_a_group_that_ends_within_the_grace() -> None:
    """A group still busy a second after SIGTERM, but done well within the grace period, is
    left to end by itself: no SIGKILL."""
    script = "trap 'sleep 1; exit 3' TERM; sleep 300 & wait"
    with group("sh", "-c", script) as process:
        # The trap is set once the child is there, and the child's SIGTERM ends it once it is
        # ``sleep`` (the forked shell before its exec would only note the trap, and exec).
        until(
            lambda: ["sleep"] == [c.name() for c in psutil.Process(process.pid).children()],
            "the child's sleep",
        )
        _end_groups({process.pid}, grace=DEADLINE)
        assert 3 == process.wait(DEADLINE)


def test_ending_groups_returns_once_they_are_gone(monkeypatch: pytest.MonkeyPatch) -> None:
    """Once no listed group is alive, the ending returns without waiting out its grace and
    sends no SIGKILL."""
    sent: list[tuple[int, int]] = []
    real = os.killpg

    def killpg(pgid: int, sig: int) -> None:
        sent.append((pgid, sig))
        real(pgid, sig)

    monkeypatch.setattr(os, "killpg", killpg)
    with group("sleep", "300") as process:
        _end_groups({process.pid}, grace=3600.0)
        signals = list(sent)
        status = process.wait(DEADLINE)
    assert ([(process.pid, signal.SIGTERM)], -signal.SIGTERM) == (signals, status)


def test_a_group_that_is_gone_keeps_no_other_from_its_signal() -> None:
    """A listed group that no longer exists is passed over; the others get the signal."""
    with group("sleep", "300") as process:
        _signal_groups({2**22 + 1, process.pid, 2**22 + 3}, signal.SIGTERM)
        assert -signal.SIGTERM == process.wait(DEADLINE)


def _pdeathsig() -> int:
    """This thread's parent-death signal, ``prctl(PR_GET_PDEATHSIG)``."""
    libc = ctypes.CDLL(None, use_errno=True)
    value = ctypes.c_int(-1)
    assert 0 == libc.prctl(2, ctypes.byref(value), 0, 0, 0)
    return value.value


def _watched(
    lines: bytes, parent: int, beside: Callable[[int], None] = lambda write_end: None
) -> tuple[dict[str, object], float]:
    """``_watch(parent, grace)`` in this process with a pipe as its stdin, ``lines`` written
    first and ``beside(write_end)`` run on a thread meanwhile (it closes the write end, or
    the test does once ``_watch`` returned); what it changed of this process is put back.
    Returns what the watch left set (the parent-death signal, SIGINT's and SIGUSR1's
    handlers) and the seconds it took."""
    open_before = set(os.listdir("/proc/self/fd"))
    read_end, write_end = os.pipe()
    os.write(write_end, lines)
    stdin = os.dup(0)
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGUSR1)}
    thread = threading.Thread(target=beside, args=(write_end,))
    started = time.monotonic()
    try:
        os.dup2(read_end, 0)
        thread.start()
        _watch(parent, DEADLINE)
        took = time.monotonic() - started
        left: dict[str, object] = {
            "pdeathsig": _pdeathsig(),
            "SIGINT": signal.getsignal(signal.SIGINT),
            "SIGUSR1": callable(signal.getsignal(signal.SIGUSR1)),
        }
    finally:
        thread.join(DEADLINE)
        os.dup2(stdin, 0)
        os.close(stdin)
        os.close(read_end)
        with contextlib.suppress(OSError):
            os.close(write_end)
        wake = signal.set_wakeup_fd(-1)
        if wake != -1:
            os.close(wake)
        ctypes.CDLL(None, use_errno=True).prctl(1, 0, 0, 0, 0)
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
        for fd in set(os.listdir("/proc/self/fd")) - open_before:  # the watch's wake-up pipe
            with contextlib.suppress(OSError):
                if os.readlink(f"/proc/self/fd/{fd}").startswith("pipe:"):
                    os.close(int(fd))
    return left, took


def test_the_watch_ends_the_listed_groups_once_the_pipe_ends() -> None:
    """The program's loop: it lists and unlists groups as lines come, a signal (the parent's
    death signal, its parent unchanged) only wakes it, and at the pipe's end it ends the
    groups still listed, not before; meanwhile SIGINT is ignored (a terminal's ^C is the
    parent's to handle) and the parent's death is asked to be signalled."""
    seen: dict[str, object] = {}
    with (
        group("sleep", "300") as kept,
        group("sleep", "300") as unlisted,
        group("sleep", "300") as later,
    ):

        def beside(write_end: int) -> None:
            time.sleep(0.3)
            seen["running"] = [kept.poll(), unlisted.poll()]
            seen["SIGINT"] = signal.getsignal(signal.SIGINT)
            if callable(signal.getsignal(signal.SIGUSR1)):  # else it would end the test
                os.kill(os.getpid(), signal.SIGUSR1)
            time.sleep(0.1)
            os.write(write_end, f"-{unlisted.pid}\n+{later.pid}\n".encode())
            time.sleep(0.1)
            os.close(write_end)

        left, _ = _watched(f"+{kept.pid}\n+{unlisted.pid}\n".encode(), os.getppid(), beside)
        ended = [kept.wait(DEADLINE), later.wait(DEADLINE), unlisted.poll()]
    assert {"running": [None, None], "SIGINT": signal.SIG_IGN} == seen
    assert [-signal.SIGTERM, -signal.SIGTERM, None] == ended
    assert {"pdeathsig": signal.SIGUSR1, "SIGINT": signal.SIG_IGN, "SIGUSR1": True} == left


def test_the_watch_of_a_parent_already_gone_ends_what_the_pipe_held() -> None:
    """The parent changed before the loop (it ended before the death signal was asked for):
    the watch reads what the pipe holds, without waiting for its end, and ends those
    groups."""
    with group("sleep", "300") as kept, group("sleep", "300") as unlisted:
        lines = f"+{kept.pid}\n+{unlisted.pid}\n-{unlisted.pid}\n".encode()
        _, took = _watched(lines, os.getppid() + 2**22)
        ended = [kept.wait(DEADLINE), unlisted.poll()]
    assert [-signal.SIGTERM, None] == ended
    assert took < DEADLINE
