"""process_tree: CPU and memory of a real process tree, read by loops and the metrics sampler."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import psutil
import pytest

from taskdaemon.pipeline.process_tree import ProcessTree, TreePeaks

BUSY = f"{sys.executable} -c 'sum(i * i for i in range(2_000_000))'"


def waiting_shell(script: str, ready: str) -> Iterator[subprocess.Popen[str]]:
    """A shell running ``script``, once it printed the line ``ready``; at the end its
    descendants are killed, and the shell ends as its stdin closes."""
    shell = subprocess.Popen(
        ["sh", "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert shell.stdout is not None
    assert f"{ready}\n" == shell.stdout.readline()
    yield shell
    for process in psutil.Process(shell.pid).children(recursive=True):
        process.kill()
    assert shell.stdin is not None
    shell.stdin.close()
    shell.wait(timeout=10)
    shell.stdout.close()


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


def test_the_tree_is_every_descendant_psutil_finds(nested_tree: subprocess.Popen[str]) -> None:
    """The tree read from the kernel's children lists holds the same processes as psutil's scan
    of every process on the machine, grandchildren included."""
    root = psutil.Process(nested_tree.pid)
    for _ in range(500):  # until the subshell has started its background sleep
        if any(p.ppid() != root.pid for p in root.children(recursive=True)):
            break
        psutil.wait_procs([], timeout=0.01)
    descendants = root.children(recursive=True)
    grandchildren = [p for p in descendants if p.ppid() != root.pid]
    expected = {root.pid, *(p.pid for p in descendants)}
    tree = {p.pid for p in ProcessTree(root.pid).processes()}
    assert (True, expected) == (bool(grandchildren), tree)
