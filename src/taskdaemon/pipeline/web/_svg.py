"""DOT to SVG with Graphviz (``dot -Tsvg``), bounded and cached.

The page draws a run's DAG from the same DOT text ``taskdaemon dag`` writes. Graphviz runs as
a subprocess with a time limit (``timeout``) and at most ``concurrency`` at once; its SVG is
cut of its XML prologue and DOCTYPE so it can be inserted into the page, and kept in a small
LRU cache keyed by the DOT text (every viewer of a run asks for the same drawing after each
change, so ``dot`` runs once per change, not once per viewer).

``dot`` is looked up on ``PATH`` again at each drawing while it is missing, so Graphviz
installed after ``serve`` started serves the next request rather than a 503 until a restart;
once found, its path is kept (no lookup per request). A ``dot`` removed after it was found is
missing again at the next drawing, and looked up again.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import re
import shutil
from collections import OrderedDict

from taskdaemon.pipeline.graphviz import DOT_TIMEOUT, GraphvizError, failed, missing, too_slow

__all__ = ["GraphvizError", "SvgRenderer"]

_PROLOGUE = re.compile(
    rb"\A\s*(?:<\?xml[^>]*\?>\s*)?(?:<!DOCTYPE[^>]*>\s*)?(?:<!--.*?-->\s*)*", re.DOTALL
)


class SvgRenderer:
    """Renders DOT to SVG with ``dot``; see the module docstring."""

    def __init__(
        self,
        *,
        dot: str | None = None,
        timeout: float = DOT_TIMEOUT,
        concurrency: int = 2,
        cache_size: int = 64,
        max_bytes: int = 16 << 20,
    ) -> None:
        self.dot = dot or shutil.which("dot")
        self.timeout = timeout
        self.max_bytes = max_bytes
        self._gate = asyncio.Semaphore(concurrency)
        self._cache: OrderedDict[str, bytes] = OrderedDict()
        self._cache_size = cache_size

    async def render(self, dot_text: str) -> bytes:
        """The SVG of ``dot_text`` (an ``<svg>`` element); GraphvizError on failure."""
        key = hashlib.sha256(dot_text.encode()).hexdigest()
        cached = self._cache.get(key)
        if cached is not None:
            self._cache.move_to_end(key)
            return cached
        if self.dot is None:
            self.dot = shutil.which("dot")  # installed since (see the module docstring)
            if self.dot is None:
                raise missing()
        async with self._gate:
            svg = await self._run(dot_text)
        self._cache[key] = svg
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return svg

    async def _run(self, dot_text: str) -> bytes:
        assert self.dot is not None
        try:
            process = await asyncio.create_subprocess_exec(
                self.dot,
                "-Tsvg",
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
        except FileNotFoundError:  # uninstalled since it was found: looked up again next time
            self.dot = None
            raise missing() from None
        try:
            out, err = await asyncio.wait_for(process.communicate(dot_text.encode()), self.timeout)
        except TimeoutError:
            raise too_slow(self.timeout) from None
        finally:
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
        if process.returncode != 0:
            raise failed(process.returncode, err)
        if len(out) > self.max_bytes:
            raise GraphvizError(f"the drawing is larger than {self.max_bytes} bytes")
        return _PROLOGUE.sub(b"", out, count=1)
