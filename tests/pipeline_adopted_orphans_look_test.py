"""What one spawn left outside its group, found among this process's children and ended
(``adopted_orphans.Orphans``), in-process: the tests' own children stand for adopted orphans
(a child is a child, adopted or spawned), so the tests' process needs to be no subreaper. The
real ``taskdaemon run`` cases are in ``pipeline_adopted_orphans_test.py``."""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from taskdaemon.pipeline import adopted_orphans
from taskdaemon.pipeline._watchdog_process import TOKEN_VARIABLE

pytestmark = [
    pytest.mark.skipif(sys.platform != "linux", reason="/proc's children are Linux's"),
    pytest.mark.slow,  # real processes, spawned and killed
]

_TOKEN = "spawn-token-58"


def _state(pid: int) -> str | None:
    """A process's state letter, or None once it is reaped."""
    try:
        text = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    return text[text.rfind(b")") + 2 :].split()[0].decode()


def _spawn(program: str, *, token: bool = False, group: int | None = None) -> int:
    """A child of the tests' main thread (``posix_spawn``: no ``Popen`` to wait for it), with
    the spawn's token in its environment or not, in ``group`` or a group of its own."""
    env = {key: value for key, value in os.environ.items() if key != TOKEN_VARIABLE}
    if token:
        env[TOKEN_VARIABLE] = _TOKEN
    return os.posix_spawn("/bin/sh", ["sh", "-c", program], env, setpgroup=group or 0)


@pytest.fixture
def spawned() -> Iterator[list[int]]:
    """The pids a test spawns: each killed and reaped at its end, if still there."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass


def _until(pid: int, letter: str) -> None:
    deadline = time.monotonic() + 10
    while _state(pid) != letter:
        assert time.monotonic() < deadline, (pid, _state(pid))
        time.sleep(0.01)


def test_the_spawns_children_by_token_or_group_are_killed_reaped_and_named(
    spawned: list[int],
) -> None:
    """The command's own process (the group's leader) and a child without the token in
    another group are not the spawn's leftovers; a child with the token, and one in the
    command's group, are killed and reaped, named with their pid; a zombie of the group is
    reaped without being said killed."""
    root = _spawn("exec sleep 30")
    spawned.append(root)
    other = _spawn("exec sleep 30")
    carrier = _spawn("exec sleep 30", token=True)
    member = _spawn("exec sleep 30", group=root)
    ended = _spawn("exit 0", group=root)
    spawned += [other, carrier, member, ended]
    for pid in (root, other, carrier, member):
        _until(pid, "S")
    _until(ended, "Z")
    orphans = adopted_orphans.Orphans(root, _TOKEN)
    names, count, left = orphans.end(5.0)
    shown = sorted([f"{carrier} 'sleep'", f"{member} 'sleep'"])
    assert (shown, 2, 0) == (sorted(names), count, left)
    assert [None, None, None] == [_state(pid) for pid in (carrier, member, ended)]
    assert ["S", "S"] == [_state(pid) for pid in (root, other)]


def test_a_child_found_without_the_token_is_not_read_again(spawned: list[int]) -> None:
    """A child seen not to be the spawn's is kept as another's: a later look does not take it
    for the spawn's, whatever it became (its group is its own for its life)."""
    root = _spawn("exec sleep 30")
    other = _spawn("exec sleep 30")
    spawned += [root, other]
    _until(other, "S")
    orphans = adopted_orphans.Orphans(root, _TOKEN)
    orphans.look()
    carrier = _spawn("exec sleep 30", token=True)
    spawned.append(carrier)
    _until(carrier, "S")
    names, count, left = orphans.end(5.0)
    assert ([f"{carrier} 'sleep'"], 1, 0) == (names, count, left)
    assert "S" == _state(other)


def test_the_warning_names_a_few_and_counts_them_all(
    spawned: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past ``SHOWN`` processes the names stop; the count is of every process killed."""
    monkeypatch.setattr(adopted_orphans, "SHOWN", 2)
    root = _spawn("exec sleep 30")
    carriers = [_spawn("exec sleep 30", token=True) for _ in range(3)]
    spawned += [root, *carriers]
    for pid in carriers:
        _until(pid, "S")
    names, count, left = adopted_orphans.Orphans(root, _TOKEN).end(5.0)
    assert (2, 3, 0) == (len(names), count, left)
    assert [None, None, None] == [_state(pid) for pid in carriers]


def _command_and_carrier(spawned: list[int]) -> tuple[int, int]:
    """A command's process and a child carrying its spawn's token, running."""
    root = _spawn("exec sleep 30")
    carrier = _spawn("exec sleep 30", token=True)
    spawned += [root, carrier]
    _until(carrier, "S")
    return root, carrier


#: The children's listing itself, kept before any test replaces it.
_LISTED = adopted_orphans._children


def _listing_only(monkeypatch: pytest.MonkeyPatch, pids: list[int]) -> None:
    """The looks list only these children of the test's, in the kernel's order (other tests'
    children, should any be left, would shift the bounds the test counts on)."""
    monkeypatch.setattr(adopted_orphans, "_children", lambda: [p for p in _LISTED() if p in pids])


def test_a_look_reads_at_most_its_bound_of_children_it_does_not_know(
    spawned: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With room for two: the end's look reads the command's process and another child, not
    the carrier, third; the next end's look skips both, known, and ends the carrier (a fork
    bomb's bound: each look's work is bounded, and what is known is not read again)."""
    monkeypatch.setattr(adopted_orphans, "LOOK_LIMIT", 2)
    root = _spawn("exec sleep 30")
    other = _spawn("exec sleep 30")
    carrier = _spawn("exec sleep 30", token=True)
    spawned += [root, other, carrier]
    for pid in (other, carrier):
        _until(pid, "S")
    _listing_only(monkeypatch, spawned)
    orphans = adopted_orphans.Orphans(root, _TOKEN)
    assert ([], 0, 0) == orphans.end(5.0)
    assert "S" == _state(carrier)
    assert ([f"{carrier} 'sleep'"], 1, 0) == orphans.end(5.0)
    assert ["S", "S", None] == [_state(pid) for pid in (root, other, carrier)]


def test_the_looks_keep_at_most_their_bound_of_processes(
    spawned: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With room for two: neither the processes found nor the others' children kept grow past
    it, look after look (memory a fork bomb cannot grow)."""
    monkeypatch.setattr(adopted_orphans, "LOOK_LIMIT", 2)
    root = _spawn("exec sleep 30")
    carriers = [_spawn("exec sleep 30", token=True) for _ in range(3)]
    others = [_spawn("exec sleep 30") for _ in range(3)]
    spawned += [root, *carriers, *others]
    for pid in (*carriers, *others):
        _until(pid, "S")
    _listing_only(monkeypatch, carriers)
    found = adopted_orphans.Orphans(root, _TOKEN)
    for _ in range(3):
        found.look()
    _listing_only(monkeypatch, others)
    kept = adopted_orphans.Orphans(root, _TOKEN)
    for _ in range(3):
        kept.look()
    assert [2, 2] == [len(found._found), len(kept._others)]


def test_a_process_gone_before_it_is_read_is_passed_over(
    spawned: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A child listed and reaped before its ``stat`` and environment are read (by its waiter,
    or ``adopted_reaper``) reads as gone, carrying nothing, and the look goes on to the next."""
    gone = _spawn("exit 0")
    os.waitpid(gone, 0)
    assert (None, False) == (adopted_orphans._state(gone), adopted_orphans._carries(gone, b"A=1"))
    root, carrier = _command_and_carrier(spawned)
    listed = adopted_orphans._children
    monkeypatch.setattr(adopted_orphans, "_children", lambda: [gone, *listed()])
    assert ([f"{carrier} 'sleep'"], 1, 0) == adopted_orphans.Orphans(root, _TOKEN).end(5.0)


def test_a_process_found_then_reaped_by_another_is_not_waited_for(spawned: list[int]) -> None:
    """A process the look found, ended and reaped by another before the stage's end (its
    waiter, ``adopted_reaper``), is neither killed nor said: the end is over at once."""
    root, carrier = _command_and_carrier(spawned)
    orphans = adopted_orphans.Orphans(root, _TOKEN)
    orphans.look()
    os.kill(carrier, signal.SIGKILL)
    os.waitpid(carrier, 0)
    began = time.monotonic()
    assert ([], 0, 0) == orphans.end(60.0)
    assert time.monotonic() - began < 30


def test_a_pid_that_is_another_process_now_is_neither_killed_nor_waited_for(
    spawned: list[int],
) -> None:
    """A process found whose pid another process took since (its start time differs: the
    found one was reaped by another, and the kernel gave its pid again, which no test can make
    happen, so the test keeps a start time one tick off) is left alone, and the end is over at
    once, nothing left."""
    root, carrier = _command_and_carrier(spawned)
    orphans = adopted_orphans.Orphans(root, _TOKEN)
    orphans.look()
    name, start = orphans._found[carrier]
    orphans._found[carrier] = (name, start - 1)
    began = time.monotonic()
    assert ([], 0, 0) == orphans.end(60.0)
    assert time.monotonic() - began < 30
    assert "S" == _state(carrier)


def test_the_end_is_over_once_all_it_found_are_reaped(spawned: list[int]) -> None:
    """The end's rounds stop when nothing found is left, not at the grace's end."""
    root, carrier = _command_and_carrier(spawned)
    began = time.monotonic()
    assert ([f"{carrier} 'sleep'"], 1, 0) == adopted_orphans.Orphans(root, _TOKEN).end(60.0)
    assert time.monotonic() - began < 30
