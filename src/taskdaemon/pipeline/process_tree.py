"""CPU time and resident memory of a process tree: one root pid and all its descendants.

The one place psutil reads a stage's processes. Two readers use it: the ``command`` loop
(``loops``), which samples its subprocess tree while it runs and reports the largest CPU total
and peak RSS when it ends (``TreePeaks``), and the metrics' ``ResourceSampler``, which reads a
running stage's tree each time the gauges are collected.

CPU is each process's user+system time plus its ``children_*`` time (what it reaped): every
process of the tree is then counted exactly once, whether alive or already reaped. A process
that vanishes between listing and reading is skipped; the tree's root not answering makes the
CPU reading None. psutil is imported on first use, not at import: validating a pipeline or
starting a run does not wait for it.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import psutil

__all__ = ["ProcessTree", "TreePeaks"]


def _descendant_pids(pid: int) -> list[int] | None:
    """Every descendant of ``pid``, read from Linux's per-thread ``children`` lists; None where
    the kernel has none (not Linux, or built without them). Why not psutil's
    ``children(recursive=True)``: it reads every process on the machine to map parents, about
    25 times the cost of walking the tree itself, and the command loop samples ten times a
    second. Like psutil's listing it races with processes starting and exiting: a sample may
    miss a process born or reparented while it reads."""
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
        if not os.path.exists(f"/proc/{pid}/task/{tasks[0]}/children"):
            return None
    except (OSError, IndexError):
        return []  # the root is gone: no descendants to read
    found: list[int] = []
    parents = [(pid, tasks)]
    while parents:
        parent, threads = parents.pop()
        for tid in threads:
            try:
                with open(f"/proc/{parent}/task/{tid}/children", "rb") as listing:
                    children = listing.read().split()
            except OSError:  # the thread or its process ended meanwhile
                continue
            for child in map(int, children):
                found.append(child)
                try:
                    parents.append((child, os.listdir(f"/proc/{child}/task")))
                except OSError:
                    continue
    return found


class ProcessTree:
    """The tree rooted at ``pid``; opens the root on first read and retries while it fails."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._root: psutil.Process | None = None

    @property
    def root(self) -> psutil.Process | None:
        """The root process, or None if it cannot be opened (gone, or not ours to read)."""
        if self._root is None:
            import psutil  # noqa: PLC0415 - see the module docstring

            try:
                self._root = psutil.Process(self.pid)
            except psutil.Error:
                return None
        return self._root

    def processes(self) -> list[psutil.Process]:
        """The root and every live descendant ([root] if they cannot be listed; [] if no root)."""
        import psutil  # noqa: PLC0415 - see the module docstring

        root = self.root
        if root is None:
            return []
        pids = _descendant_pids(self.pid)
        if pids is None:  # no /proc children lists here: psutil scans every process
            try:
                return [root, *root.children(recursive=True)]
            except psutil.Error:
                return [root]
        tree = [root]
        for pid in pids:
            try:
                tree.append(psutil.Process(pid))
            except psutil.Error:  # gone since it was listed
                continue
        return tree

    def cpu_seconds(self) -> float | None:
        """The tree's CPU seconds so far (see the module docstring); None if the root is gone."""
        import psutil  # noqa: PLC0415 - see the module docstring

        tree = self.processes()
        if not tree:
            return None
        try:
            times = tree[0].cpu_times()
        except psutil.Error:
            return None
        total = times.user + times.system + times.children_user + times.children_system
        for process in tree[1:]:
            try:
                child = process.cpu_times()
            except psutil.Error:
                continue
            total += child.user + child.system + child.children_user + child.children_system
        return total

    def rss_bytes(self) -> int | None:
        """The summed resident memory of the tree's live processes; None without a root."""
        import psutil  # noqa: PLC0415 - see the module docstring

        tree = self.processes()
        if not tree:
            return None
        total = 0
        for process in tree:
            try:
                total += process.memory_info().rss
            except psutil.Error:
                continue
        return total

    def usage(self) -> tuple[float, int] | None:
        """``(cpu_seconds, rss_bytes)`` in one pass: one listing of the tree and one read of
        each process (psutil's ``oneshot``); None if the root is gone, as for ``cpu_seconds``."""
        import psutil  # noqa: PLC0415 - see the module docstring

        tree = self.processes()
        if not tree:
            return None
        cpu = 0.0
        rss = 0
        for index, process in enumerate(tree):
            try:
                with process.oneshot():
                    times = process.cpu_times()
                    memory = process.memory_info().rss
            except psutil.Error:
                if index == 0:
                    return None
                continue
            cpu += times.user + times.system + times.children_user + times.children_system
            rss += memory
        return cpu, rss


class TreePeaks:
    """The largest CPU total and RSS seen over repeated ``sample()`` calls.

    CPU only grows, so its largest sample is the best estimate of what the tree used; work done
    after the last sample (the last interval before the root exits) is not seen. Both stay None
    until a sample reads the tree; RSS stays None after a sample that read only an exited,
    unreaped root (a zombie, which has no memory left: "0B" would be a wrong peak).
    """

    def __init__(self, pid: int) -> None:
        self.tree = ProcessTree(pid)
        self.cpu_seconds: float | None = None
        self.peak_rss: int | None = None

    def sample(self) -> None:
        """Read the tree once and keep the maxima."""
        usage = self.tree.usage()
        if usage is None:
            return
        cpu, rss = usage
        self.cpu_seconds = cpu if self.cpu_seconds is None else max(self.cpu_seconds, cpu)
        if rss > 0:  # 0: only a zombie was read (its CPU times are final, its memory is gone)
            self.peak_rss = rss if self.peak_rss is None else max(self.peak_rss, rss)
