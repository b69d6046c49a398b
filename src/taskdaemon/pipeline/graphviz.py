"""DOT to SVG with Graphviz's ``dot``, for the commands that write a drawing (``dag --format
svg``, a debug dump's ``dag.svg``).

``dot`` runs as a subprocess with a time limit: a drawing that takes longer (thousands of
stages on a slow machine) is an error, not a hung command. ``dag --format svg`` gives it
longer (``DAG_DOT_TIMEOUT``) than a dump and the web page do (``DOT_TIMEOUT``): a user asked
that command for the whole drawing, waits for it alone and can stop it with Ctrl-C, and it is
the command the web page names for a DAG too big to draw there, so it must draw a 5,000-stage
fan-out on a loaded machine; a dump is taken in a hurry and a page's request holds a server's
slot, so both keep the short bound. The web page has its own renderer
(``web/_svg.py``): asynchronous, bounded in concurrency and cached for many viewers; it says
its failures in the same words (:func:`missing`, :func:`too_slow`, :func:`failed`).
"""

from __future__ import annotations

import shutil
import subprocess
from typing import Final

from taskdaemon.pipeline.errors import PipelineError

__all__ = [
    "DAG_DOT_TIMEOUT",
    "DOT_TIMEOUT",
    "GraphvizError",
    "dot_to_svg",
    "failed",
    "missing",
    "too_slow",
]

#: Seconds ``dot`` may take for one drawing.
DOT_TIMEOUT: Final = 10.0
#: Seconds ``dot`` may take for ``dag --format svg`` (see the module docstring).
DAG_DOT_TIMEOUT: Final = 120.0


class GraphvizError(PipelineError):
    """``dot`` is missing, failed, or took too long (one line saying which)."""


def missing() -> GraphvizError:
    """No ``dot`` on ``PATH``."""
    return GraphvizError("Graphviz's dot is not installed (Debian: apt install graphviz)")


def too_slow(timeout: float) -> GraphvizError:
    """``dot`` ran past ``timeout`` seconds (and was killed)."""
    return GraphvizError(f"dot took longer than {timeout:g} s")


def failed(returncode: int | None, stderr: bytes) -> GraphvizError:
    """``dot`` exited ``returncode``: its first line of ``stderr`` says why."""
    first = stderr.decode(errors="replace").strip().splitlines()[:1]
    return GraphvizError(f"dot failed: {first[0] if first else f'exit {returncode}'}")


def dot_to_svg(dot: str, *, timeout: float = DOT_TIMEOUT) -> bytes:
    """The SVG document Graphviz draws of ``dot``; :class:`GraphvizError` when it cannot."""
    executable = shutil.which("dot")
    if executable is None:
        raise missing()
    try:
        done = subprocess.run(
            [executable, "-Tsvg"],
            input=dot.encode(),
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise too_slow(timeout) from None
    except OSError as error:
        raise GraphvizError(f"cannot run {executable}: {error.strerror or error}") from None
    if done.returncode != 0:
        raise failed(done.returncode, done.stderr)
    return done.stdout
