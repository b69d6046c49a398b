"""One drawing of a run's DAG for every viewer, while its states stay the same.

The DOT text a run's drawing is made from holds each stage's duration, which ticks while the
stage runs: every viewer's request made a different text, missed ``SvgRenderer``'s cache, and
ran ``dot`` (seconds for hundreds of stages) for itself. :class:`RunDrawings` keeps one drawing
per run with the states it shows (each stage's state and attempt count, the run's status: what
the page redraws on, docs/web.md, "The DAG drawing") and gives it to every request for the same
states during ``max_age`` seconds; its running durations then lag by that much at most, as the
page's own redraw rule already lets them. A request that finds the drawing being made waits for
it instead of running ``dot`` again. A drawing that failed is not kept: the next request tries
again.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable

from taskdaemon.pipeline.visualization._snapshot import DagSnapshot

__all__ = ["RunDrawings", "states_key"]


def states_key(snapshot: DagSnapshot) -> Hashable:
    """What a drawing of ``snapshot`` shows that is worth a new one: the stages, their states
    and attempt counts, the run's status (not the durations)."""
    nodes = tuple((node.name, node.state, len(node.attempts)) for node in snapshot.nodes)
    return nodes, None if snapshot.run is None else snapshot.run.status


class RunDrawings:
    """Drawings by run, shared while the run's states stay the same (module docstring)."""

    def __init__(
        self,
        *,
        max_age: float = 10.0,
        runs: int = 64,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_age = max_age
        self._runs = runs
        self._clock = clock
        # run -> (states key, when it was asked for, the drawing being made or made)
        self._kept: OrderedDict[str, tuple[Hashable, float, asyncio.Future[bytes]]] = OrderedDict()

    async def draw(
        self, run: str, snapshot: DagSnapshot, make: Callable[[], Awaitable[bytes]]
    ) -> bytes:
        """The drawing of ``snapshot`` (of run ``run``): the one kept for the same states and
        not older than ``max_age``, else what ``make()`` draws now."""
        key = states_key(snapshot)
        now = self._clock()
        kept = self._kept.get(run)
        if kept is not None and kept[0] == key and now - kept[1] <= self.max_age:
            self._kept.move_to_end(run)
            try:
                return await asyncio.shield(kept[2])
            except asyncio.CancelledError:
                if not kept[2].cancelled():
                    raise  # this request was cancelled, not the drawing's
                # The request making it went away: this one makes it.
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._kept[run] = (key, now, future)
        self._kept.move_to_end(run)
        while len(self._kept) > self._runs:
            self._kept.popitem(last=False)
        try:
            drawing = await make()
        except BaseException as exc:
            if run in self._kept and self._kept[run][2] is future:
                del self._kept[run]  # a failed drawing is not kept
            if isinstance(exc, asyncio.CancelledError):
                future.cancel()
            else:
                future.set_exception(exc)
                future.exception()  # retrieved: no warning when nobody else waited
            raise
        future.set_result(drawing)
        return drawing
