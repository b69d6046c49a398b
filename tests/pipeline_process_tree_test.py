"""process_tree: CPU and memory of a real process tree, read by loops and the metrics sampler."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

import psutil
import pytest

from cli_support import ended_at_exit, read_line
from taskdaemon.pipeline import process_tree
from taskdaemon.pipeline.process_tree import ProcessTree, TreePeaks

BUSY = f"{sys.executable} -c 'sum(i * i for i in range(2_000_000))'"


def waiting_shell(script: str, ready: str) -> Iterator[subprocess.Popen[str]]:
    """A shell running ``script``, once it printed the line ``ready``; at the end, or if the
    line never comes, the shell and its descendants are killed."""
    shell = subprocess.Popen(
        ["sh", "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    with ended_at_exit(shell):
        try:
            assert f"{ready}\n" == read_line(shell.stdout)
            yield shell
        finally:
            for process in psutil.Process(shell.pid).children(recursive=True):
                process.kill()


def _ended(pid: int) -> bool:
    """Whether process ``pid`` has ended (a zombie has: only its parent's wait is left)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_a_shell_that_never_says_ready_is_killed_with_its_children(tmp_path: Path) -> None:
    """The shell fixture's wait failing (another line came) leaves neither the shell nor its
    child running: they were left waiting on stdin and ``sleep 60`` for the whole session."""
    pids = tmp_path / "pids"
    shell = waiting_shell(f"sleep 60 & echo $$ $! > {pids}; echo other; read _", "up")
    with pytest.raises(AssertionError):
        next(shell)
    assert [True, True] == [_ended(int(pid)) for pid in pids.read_text().split()]


@pytest.fixture
def shell_after_busy_child() -> Iterator[subprocess.Popen[str]]:
    """A shell that ran a CPU-bound child to its end (and reaped it), then waits on stdin."""
    yield from waiting_shell(f"{BUSY}; echo reaped; read _", "reaped")


def test_cpu_counts_what_the_tree_reaped(shell_after_busy_child: subprocess.Popen[str]) -> None:
    """A child that already ended still counts: the tree's CPU holds what its parent reaped."""
    tree = ProcessTree(shell_after_busy_child.pid)
    cpu = tree.cpu_seconds()
    usage = tree.usage()
    assert cpu is not None
    assert cpu > 0.05
    assert usage is not None
    assert usage[0] >= cpu
    assert usage[1] > 0


def test_peaks_keep_the_largest_sample(shell_after_busy_child: subprocess.Popen[str]) -> None:
    """TreePeaks reports CPU and RSS once a sample read the tree, and never lowers them."""
    peaks = TreePeaks(shell_after_busy_child.pid)
    assert (None, None) == (peaks.cpu_seconds, peaks.peak_rss)
    peaks.sample()
    first = (peaks.cpu_seconds, peaks.peak_rss)
    peaks.peak_rss = 1 << 40  # as if an earlier sample had seen more
    peaks.sample()
    assert first[0] is not None
    assert first[1] is not None
    assert first[1] > 0
    assert peaks.cpu_seconds is not None
    assert peaks.cpu_seconds >= first[0]
    assert 1 << 40 == peaks.peak_rss


def test_a_gone_process_reads_as_nothing() -> None:
    """The tree of a pid that no longer exists reads None, and a sample leaves peaks unset."""
    child = subprocess.Popen(["true"])
    child.wait()
    tree = ProcessTree(child.pid)
    peaks = TreePeaks(child.pid)
    peaks.sample()
    assert ([], None, None, None) == (
        tree.processes(),
        tree.cpu_seconds(),
        tree.rss_bytes(),
        tree.usage(),
    )
    assert (None, None) == (peaks.cpu_seconds, peaks.peak_rss)


@pytest.fixture
def nested_tree() -> Iterator[subprocess.Popen[str]]:
    """A shell with a child and, through a subshell, a grandchild, waiting on stdin."""
    yield from waiting_shell("(sleep 60 & sleep 60) & sleep 60 & echo up; read _", "up")


def _settled_descendants(root: psutil.Process) -> list[psutil.Process]:
    """``root``'s descendants once the nested tree's subshell has started its own child."""
    for _ in range(500):  # until the subshell has started its background sleep
        if any(p.ppid() != root.pid for p in root.children(recursive=True)):
            break
        psutil.wait_procs([], timeout=0.01)
    return root.children(recursive=True)


def test_the_tree_is_every_descendant_psutil_finds(nested_tree: subprocess.Popen[str]) -> None:
    """The tree read from the kernel's children lists holds the same processes as psutil's scan
    of every process on the machine, grandchildren included."""
    root = psutil.Process(nested_tree.pid)
    descendants = _settled_descendants(root)
    grandchildren = [p for p in descendants if p.ppid() != root.pid]
    expected = {root.pid, *(p.pid for p in descendants)}
    tree = {p.pid for p in ProcessTree(root.pid).processes()}
    assert (True, expected) == (bool(grandchildren), tree)


def test_on_linux_the_descendants_are_read_from_the_kernels_lists(
    nested_tree: subprocess.Popen[str],
) -> None:
    """Where the kernel keeps children lists, they give every descendant, not None."""
    expected = sorted(p.pid for p in _settled_descendants(psutil.Process(nested_tree.pid)))
    found = process_tree._descendant_pids(nested_tree.pid)
    assert expected == (sorted(found) if found is not None else None)


def test_without_the_kernels_lists_psutil_finds_the_grandchildren(
    nested_tree: subprocess.Popen[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where the kernel has no children lists, psutil's scan gives the whole tree."""
    root = psutil.Process(nested_tree.pid)
    expected = {root.pid, *(p.pid for p in _settled_descendants(root))}
    monkeypatch.setattr(process_tree, "_descendant_pids", lambda pid: None)
    assert expected == {p.pid for p in ProcessTree(root.pid).processes()}


def test_a_listed_process_gone_before_it_is_opened_is_skipped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A descendant that exits between the listing and its opening is left out, and the ones
    listed after it are kept."""
    gone = subprocess.Popen(["true"])
    gone.wait()
    tree = ProcessTree(os.getpid())
    monkeypatch.setattr(process_tree, "_descendant_pids", lambda pid: [gone.pid, os.getppid()])
    assert [os.getpid(), os.getppid()] == [p.pid for p in tree.processes()]


class FakeProcess:
    """A process whose CPU times and RSS are given, or that is gone when read."""

    def __init__(self, times: tuple[float, float, float, float], rss: int, gone: bool = False):
        self._times = SimpleNamespace(
            user=times[0], system=times[1], children_user=times[2], children_system=times[3]
        )
        self._rss = rss
        self._gone = gone

    def cpu_times(self) -> SimpleNamespace:
        """The four CPU times psutil gives, or NoSuchProcess when gone."""
        if self._gone:
            raise psutil.NoSuchProcess(1)
        return self._times

    def memory_info(self) -> SimpleNamespace:
        """The resident size, or NoSuchProcess when gone."""
        if self._gone:
            raise psutil.NoSuchProcess(1)
        return SimpleNamespace(rss=self._rss)

    @contextmanager
    def oneshot(self) -> Iterator[None]:
        """psutil's cached reads: nothing to cache here."""
        yield


ROOT = FakeProcess((1, 2, 4, 8), 1000)
GONE = FakeProcess((0, 0, 0, 0), 0, gone=True)
CHILD = FakeProcess((16, 32, 64, 128), 2000)
LAST = FakeProcess((256, 512, 1024, 2048), 4000)
#: A root, a child read, one gone when read, and one listed after it.
TREE = [ROOT, CHILD, GONE, LAST]


def _tree(monkeypatch: pytest.MonkeyPatch, processes: list[FakeProcess]) -> ProcessTree:
    """A tree whose listing gives ``processes``."""
    monkeypatch.setattr(ProcessTree, "processes", lambda self: processes)
    return ProcessTree(1)


def test_cpu_sums_every_time_of_each_process_read(monkeypatch: pytest.MonkeyPatch) -> None:
    """User, system and reaped children's times of each process are added up; a process gone
    when read is skipped, the ones after it counted."""
    assert 4095 == _tree(monkeypatch, TREE).cpu_seconds()


def test_rss_sums_each_process_read(monkeypatch: pytest.MonkeyPatch) -> None:
    """The resident sizes are added up; a process gone when read is skipped."""
    assert 7000 == _tree(monkeypatch, TREE).rss_bytes()


def test_usage_sums_each_process_read(monkeypatch: pytest.MonkeyPatch) -> None:
    """``usage`` gives the same sums in one pass, skipping a process gone when read."""
    assert (4095, 7000) == _tree(monkeypatch, TREE).usage()


def test_usage_is_none_when_the_root_is_gone_when_read(monkeypatch: pytest.MonkeyPatch) -> None:
    """A root that vanished after the listing makes the usage None, whatever its children."""
    assert None is _tree(monkeypatch, [GONE, CHILD]).usage()


def test_a_lower_cpu_sample_never_lowers_the_peak() -> None:
    """CPU peaks keep the largest sample, as RSS peaks do."""
    peaks = TreePeaks(os.getpid())
    peaks.cpu_seconds = 1e9  # as if an earlier sample had seen more
    peaks.sample()
    assert 1e9 == peaks.cpu_seconds


def test_an_exited_unreaped_root_gives_its_cpu_but_no_memory_peak() -> None:
    """A command that exited before the first sample read it, not yet reaped (a zombie): its
    CPU times are final and count, but its memory is gone; the peak stays None ("-") rather
    than 0, which ``runs show`` and ``report`` printed as a peak of 0B."""
    child = subprocess.Popen([sys.executable, "-c", "sum(i * i for i in range(1_000_000))"])
    try:
        os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)  # until it exits, unreaped
        peaks = TreePeaks(child.pid)
        peaks.sample()
    finally:
        child.wait()
    ran = peaks.cpu_seconds is not None and peaks.cpu_seconds > 0
    assert (True, None) == (ran, peaks.peak_rss)
