"""The cyclic garbage collector, tuned for a process that runs pipelines.

A run allocates many small containers that live as long as the run does: event records, span
and trace state, the monitor's books, asyncio tasks. CPython's collector counts every container
allocated toward its generation-0 threshold (700), and each collection walks every young
container that is still alive; the survivors then move to generation 1 and 2, where they are
walked again. A long chain therefore pays for hundreds of collections that free almost
nothing: the pipeline makes little cyclic garbage while it runs.

:func:`tuned_collector` is what ``taskdaemon run`` and ``taskdaemon serve`` run under:

* the generation-0 threshold is raised to :data:`GEN0_THRESHOLD` (the older generations keep
  their thresholds, relative to it): a young collection every 50,000 net container allocations
  instead of 700. Cyclic garbage now waits longer to be freed, at most about that many
  containers (a few MiB); the peak memory of long and of concurrent runs did not move beyond
  its run-to-run spread;
* what exists when it is entered (the imported modules, the loaded pipeline, the settings) is
  moved to the permanent generation (``gc.freeze``): it lives as long as the process, and a
  full collection of a long-lived ``serve`` no longer walks it.

Both are undone on exit (``gc.unfreeze``, the previous thresholds), so a caller that runs the
CLI in its own process (tests, an embedding application) gets its collector back as it was.
Nothing is disabled: cycles are still found and freed, only less often. The figures are in
benchmarks/README.md (``gc_cost.py``).
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator
from typing import Final

__all__ = ["GEN0_THRESHOLD", "tuned_collector"]

#: Net container allocations between two young collections while pipelines run.
GEN0_THRESHOLD: Final = 50_000


@contextlib.contextmanager
def tuned_collector() -> Iterator[None]:
    """Run the body with the collector tuned for pipeline runs (see the module docstring);
    the previous thresholds and the frozen set are restored on the way out."""
    previous = gc.get_threshold()
    # Someone froze objects already (an embedding application): leave its freeze alone.
    freeze = gc.get_freeze_count() == 0
    if freeze:
        gc.freeze()
    if previous[0] < GEN0_THRESHOLD:
        gc.set_threshold(GEN0_THRESHOLD, *previous[1:])
    try:
        yield
    finally:
        gc.set_threshold(*previous)
        if freeze:
            gc.unfreeze()
