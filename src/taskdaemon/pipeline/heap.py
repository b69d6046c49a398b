"""The cyclic garbage collector, tuned for a process that runs pipelines.

A run allocates many small containers that live as long as the run does: event records, span
and trace state, the monitor's books, asyncio tasks. CPython's collector counts every container
allocated toward its generation-0 threshold (700), and each collection walks every young
container that is still alive; the survivors then move to generation 1 and 2, where they are
walked again. A long chain therefore pays for hundreds of collections that free almost
nothing: the pipeline makes little cyclic garbage while it runs.

:func:`tuned_collector` is what ``taskdaemon run`` and ``taskdaemon serve`` run under:

* the generation-0 threshold is raised to :data:`GEN0_THRESHOLD`: a young collection every
  200,000 net container allocations instead of 700. Cyclic garbage now waits longer to be
  freed, at most about that many containers (tens of MiB at worst, far less in practice: a
  run makes little of it); the peak memory of long and of concurrent runs did not move beyond
  its run-to-run spread. Why so high: a young collection walks every young container still
  alive, and with many runs open most of them are (a run's records, spans and books live as
  long as the run); the rarer the collection, the more of the short-lived ones (a stage's
  records, an ended span handed to the store's writer) are freed by their reference count
  before it comes, and are never walked at all;
* generation 1 is collected every :data:`GEN1_THRESHOLD` young collections instead of every
  10. A run's records, spans and books live as long as the run, so with many runs open
  almost every young container survives its young collection, and a collection of
  generation 1 then walks all of them a second time (hundreds of thousands of containers)
  to free nothing. Collected less often, more of them have died with their run before it
  comes. The young collections, which free the cycles a run makes, keep their cadence; the
  full collections keep theirs too (the generation-2 threshold is lowered to match, see
  :func:`tuned_thresholds`), so only cycles that outlive a young collection wait longer (a
  failed run's exception and frames, kept until the run ends): up to 51 young collections
  instead of 11;
* what exists when it is entered (the imported modules, the loaded pipeline, the settings) is
  moved to the permanent generation (``gc.freeze``, through ``waited_children.freeze``, which
  keeps the ``Popen`` objects frozen in view of the zombie reaper): it lives as long as the
  process, and a full collection of a long-lived ``serve`` no longer walks it. The body is
  given a callable that moves what exists by then to it too: ``taskdaemon run`` loads its
  pipeline inside and then calls it, so that the young collection due when the load's pause
  of the collector ends (``config._gc_paused``: every container of the definition counts
  toward the threshold) does not come at the default threshold and walk the whole definition
  first.

Both are undone on exit (``gc.unfreeze``, the previous thresholds), so a caller that runs the
CLI in its own process (tests, an embedding application) gets its collector back as it was.
Nothing is disabled: cycles are still found and freed, only less often. The figures are in
benchmarks/README.md (``gc_cost.py``; generation 1: ``concurrent_runs.py``, round 11).
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Callable, Iterator
from typing import Final

from taskdaemon.pipeline import waited_children

__all__ = ["GEN0_THRESHOLD", "GEN1_THRESHOLD", "tuned_collector", "tuned_thresholds"]

#: Net container allocations between two young collections while pipelines run.
GEN0_THRESHOLD: Final = 200_000
#: Young collections between two collections of generation 1 while pipelines run.
GEN1_THRESHOLD: Final = 50


def tuned_thresholds(previous: tuple[int, int, int]) -> tuple[int, int, int]:
    """The collector's thresholds inside :func:`tuned_collector`, from ``previous``.

    Generations 0 and 1 are raised to :data:`GEN0_THRESHOLD` and :data:`GEN1_THRESHOLD`
    (never lowered: an embedding application's higher ones stay). Generation 2 counts
    collections of generation 1, which now come less often, so its threshold is lowered to
    keep a full collection at least every as many young collections as before (CPython
    collects an older generation when its count *exceeds* the threshold, hence the ``+ 1``);
    generation 1 is raised only as far as that allows (half that many young collections).
    """
    gen0 = max(previous[0], GEN0_THRESHOLD)
    young_per_full = (previous[1] + 1) * (previous[2] + 1)
    gen1 = max(previous[1], min(GEN1_THRESHOLD, young_per_full // 2 - 1))
    gen2 = max(1, young_per_full // (gen1 + 1) - 1)
    return gen0, gen1, min(gen2, previous[2])


@contextlib.contextmanager
def tuned_collector() -> Iterator[Callable[[], None]]:
    """Run the body with the collector tuned for pipeline runs (see the module docstring);
    the previous thresholds and the frozen set are restored on the way out. The body gets a
    callable that freezes what exists when it is called (a loaded definition) with the rest,
    or does nothing when the freeze is not this one's (an earlier freeze is left alone)."""
    previous = gc.get_threshold()
    # Someone froze objects already (an embedding application): leave its freeze alone.
    freeze = gc.get_freeze_count() == 0
    if freeze:
        waited_children.freeze()
    gc.set_threshold(*tuned_thresholds(previous))
    try:
        yield waited_children.freeze if freeze else _keep_nothing
    finally:
        gc.set_threshold(*previous)
        if freeze:
            gc.unfreeze()


def _keep_nothing() -> None:
    """The body's callable when the freeze is someone else's: nothing is moved."""
