"""Where ``dag`` and ``report`` put their output: stdout, or the file ``-o`` names.

Decision: such a file holds run data (a run's stages, states and errors; a report's stage
names, durations and failures), so it is written as a debug dump is, whole and readable by its
owner only (``private_file.replace_privately``): a failed write (a full disk) leaves the
previous file as it was, and ``dag --watch``'s viewer never reads half of one.

Decision: the folders above the file that are missing are made (0700, never through another
user's link: ``private_file.make_output_dirs``), as ``dump -o`` always made them: one rule
for every ``-o``. ``dump`` had to make its default folder (``$TASKDAEMON_HOME/dumps``) and
its ``-o`` took the same road; ``dag -o`` and ``report -o`` refused a missing folder, so a
script writing a run's dump, DAG and report into a new ``out/RUN/`` needed a ``mkdir -p``
for two of the three. Refusing for all three would have broken ``dump -o`` where it worked.
A mistyped folder is made rather than refused: the file lands where it was named.

Decision: with no ``--format``, ``-o FILE``'s suffix chooses it (``run.svg``, ``report.html``),
else the command's default: ``dag --run RUN -o run.svg`` wrote DOT text into a file no viewer
opened as an image, and ``report -o report.html`` the terminal's table. A ``--format`` given
wins, so a suffix never overrides what was asked.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path

from taskdaemon.pipeline.private_file import make_output_dirs, replace_privately

__all__ = ["output_format", "write_atomically", "write_output"]


def output_format(
    given: str | None, output: str | None, by_suffix: Mapping[str, str], default: str
) -> str:
    """``--format`` when ``given``, else the one ``output``'s suffix names in ``by_suffix``,
    else ``default`` (the module docstring)."""
    if given is not None:
        return given
    suffix = Path(output).suffix.lower() if output else ""
    return by_suffix.get(suffix, default)


def write_atomically(path: Path, text: str) -> None:
    """Replace ``path`` with ``text``, whole and private, its missing folders made (the
    module docstring)."""
    make_output_dirs(path)
    replace_privately(path, lambda handle: handle.write(text.encode("utf-8")))


def write_output(text: str, output: str | None) -> str | None:
    """Write ``text`` to stdout, or to the file ``output``; the one-line reason it could not
    be written, else None."""
    if output is None:
        sys.stdout.write(text)
        sys.stdout.flush()
        return None
    try:
        write_atomically(Path(output), text)
    except OSError as exc:
        return f"cannot write {output}: {exc.strerror or exc}"
    return None
