"""Work counted, not timed: how many Python steps a call takes, for tests of how a cost grows.

A step is a line of Python run, or a call of a function, Python or C (``sys.settrace``'s line
events and ``sys.setprofile``'s calls, on the calling thread). The count does not depend on the
machine or its load, so a test can compare it at N and 10N: linear work makes about 10 times
the steps, a loop over the stages inside a loop over the stages about 100 times. What it cannot
see is work inside one C call (``x in some_list`` is one step however long the list): the
timings in ``benchmarks/`` show that.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from types import FrameType
from typing import Any


def steps(call: Callable[[], object]) -> int:
    """The Python lines run and the functions called (Python or C) while ``call()`` runs."""
    count = 0

    def trace(frame: FrameType, event: str, arg: Any) -> Callable[..., Any]:
        nonlocal count
        if event == "line":
            count += 1
        return trace

    def profile(frame: FrameType, event: str, arg: Any) -> None:
        nonlocal count
        if event in ("call", "c_call"):
            count += 1

    previous = sys.gettrace(), sys.getprofile()
    sys.settrace(trace)
    sys.setprofile(profile)
    try:
        call()
    finally:
        sys.setprofile(previous[1])
        sys.settrace(previous[0])
    return count


def growth(call_with: Callable[[int], object], small: int, large: int) -> float:
    """How many times the steps of ``call_with(large)`` are those of ``call_with(small)``,
    each counted after one uncounted call (imports and first-use caches paid)."""
    counts = []
    for n in (small, large):
        call_with(n)
        counts.append(steps(functools.partial(call_with, n)))
    return counts[1] / counts[0]
