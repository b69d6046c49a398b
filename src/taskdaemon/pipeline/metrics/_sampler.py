"""Resource sampling for the gauges: CPU and memory of the running stage executions.

``ResourceSampler`` tracks which executions run (keys ``(run_id, task_run_id)``) and measures
them only when the gauges are collected (scrape or export), never on the engine's thread: a
command stage through its process tree (``process_tree.ProcessTree``, once its pid is known),
a Python stage through this process (see the package docstring for the caveats).

A Python stage's CPU percent is this process's since the previous collection (or the sampler's
creation): one reading of the process CPU clock per collection, shared by every Python stage,
and none when a stage starts. That clock sums every thread's time (a system call that holds
the GIL, dear in a busy ``taskdaemon run``: benchmarks/README.md, "Round 4 (issue 14,
monitorcost, 2026-12-01; load average 3-6 on 2 CPUs)"), and the figure is the whole process's
either way, so a per-stage baseline bought nothing but that cost on every stage.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from taskdaemon.pipeline.process_tree import ProcessTree

if TYPE_CHECKING:  # imported by the sampling callbacks: no run waits for it to load
    import psutil

__all__ = ["ResourceSampler"]


@dataclass(slots=True)  # one a stage execution: no instance dict to build and free
class _Sampled:
    pipeline: str
    stage: str
    tree: ProcessTree | None  # None: a Python stage (this process), or no pid yet
    is_command: bool
    # the process tree's CPU and the clock at its previous reading (command stages only)
    last_cpu: float | None = None
    last_wall: float | None = None


class ResourceSampler:
    """Tracks running stage executions and measures them when the gauges are collected.

    Keys are ``(run_id, task_run_id)``. Command stages are measured once their pid is known
    (``set_process``); until then they report nothing. All psutil work happens in the
    collection callbacks, never on the engine's thread.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._running: dict[tuple[str, str], _Sampled] = {}
        self._lock = threading.Lock()
        self._self_process: psutil.Process | None = None
        # This process's CPU and the clock at the previous collection (or creation): the
        # baseline of every Python stage's next figure.
        self._process_mark = (time.process_time(), clock())

    @property
    def _self(self) -> psutil.Process:
        if self._self_process is None:
            import psutil  # noqa: PLC0415 - see TYPE_CHECKING above

            self._self_process = psutil.Process()
        return self._self_process

    def stage_started(
        self,
        key: tuple[str, str],
        pipeline: str,
        stage: str,
        *,
        is_command: bool,
    ) -> None:
        """A stage execution started. Reads no clock: a Python stage is measured against the
        process's reading at the previous collection (see the module docstring)."""
        sampled = _Sampled(pipeline, stage, None, is_command)
        with self._lock:
            self._running[key] = sampled

    def set_process(self, key: tuple[str, str], pid: int) -> None:
        """The execution's work happens in the process tree rooted at ``pid``."""
        with self._lock:
            sampled = self._running.get(key)
            if sampled is not None:
                sampled.tree = ProcessTree(pid)
                sampled.is_command = True

    def stage_finished(self, key: tuple[str, str]) -> None:
        """The execution ended: it leaves the gauges."""
        with self._lock:
            self._running.pop(key, None)

    def active(self) -> int:
        """How many executions are tracked."""
        with self._lock:
            return len(self._running)

    def _entries(self) -> list[_Sampled]:
        with self._lock:
            return list(self._running.values())

    def memory(self) -> dict[tuple[str, str], float]:
        """RSS bytes per (pipeline, stage) now."""
        result: dict[tuple[str, str], float] = {}
        own: float | None = None
        for sampled in self._entries():
            label = (sampled.pipeline, sampled.stage)
            if not sampled.is_command:
                if own is None:
                    own = float(self._self.memory_info().rss)
                result[label] = max(result.get(label, 0.0), own)
                continue
            total = None if sampled.tree is None else sampled.tree.rss_bytes()
            if total is None:
                continue
            result[label] = result.get(label, 0.0) + total
        return result

    def cpu_percent(self) -> dict[tuple[str, str], float]:
        """CPU percent per (pipeline, stage) since the previous collection (or the start)."""
        import psutil  # noqa: PLC0415 - see TYPE_CHECKING above

        result: dict[tuple[str, str], float] = {}
        now = self._clock()
        last_cpu, last_wall = self._process_mark
        process_cpu = time.process_time()
        self._process_mark = (process_cpu, now)
        own = None
        if now > last_wall:
            own = max(0.0, (process_cpu - last_cpu) / (now - last_wall) * 100.0)
        for sampled in self._entries():
            label = (sampled.pipeline, sampled.stage)
            if not sampled.is_command:
                if own is not None:
                    result[label] = own
                continue
            tree_cpu = None if sampled.tree is None else sampled.tree.cpu_seconds()
            root = None if sampled.tree is None else sampled.tree.root
            if tree_cpu is None or root is None:
                continue
            if sampled.last_cpu is None:
                # A fresh process tree used nothing before it was created.
                try:
                    created = root.create_time()
                except psutil.Error:
                    continue
                sampled.last_cpu = 0.0
                sampled.last_wall = now - max(0.0, time.time() - created)
            percent = self._delta(sampled, tree_cpu, now)
            if percent is not None:
                result[label] = result.get(label, 0.0) + percent
        return result

    @staticmethod
    def _delta(sampled: _Sampled, cpu: float, now: float) -> float | None:
        last_cpu, last_wall = sampled.last_cpu, sampled.last_wall
        sampled.last_cpu, sampled.last_wall = cpu, now
        if last_cpu is None or last_wall is None or now <= last_wall:
            return None
        return max(0.0, (cpu - last_cpu) / (now - last_wall) * 100.0)
