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

Decision: ``-o`` naming a folder (a trailing ``/``, or a folder that exists) writes into it,
under the name the command gives its file (``output_target``), as ``dump -o out/`` always
did: ``dag -o out/`` wrote a file called ``out``, and ``dag -o out`` with ``out`` a folder
was refused. A folder's name says no format, so its suffix chooses none.

Decision: an empty ``-o ''`` is refused (``output_path``): ``dag`` and ``report`` said
``cannot write : No such file or directory`` and ``dump`` wrote its default file, each its
own way, none saying what was wrong.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from pathlib import Path

from taskdaemon.pipeline.private_file import make_output_dirs, replace_privately

__all__ = [
    "add_output_option",
    "names_folder",
    "output_format",
    "output_path",
    "output_target",
    "write_atomically",
    "write_output",
]


def output_path(value: str) -> str:
    """``-o``'s argparse type: ``value``, unless it is empty (the module docstring)."""
    if not value.strip():
        raise argparse.ArgumentTypeError("an empty path")
    return value


def add_output_option(parser: argparse.ArgumentParser, folder_gets: str) -> None:
    """``-o/--output FILE`` of a command that writes to stdout otherwise (``dag``, ``report``);
    ``folder_gets``: the help's name of the file a folder gets."""
    parser.add_argument(
        "-o",
        "--output",
        type=output_path,
        metavar="FILE",
        help="write here instead of stdout; a folder (made if missing when its name ends with /) "
        f"gets {folder_gets}",
    )


def names_folder(output: str | None) -> bool:
    """Whether ``-o output`` names a folder to write in: it ends with a separator (made when
    missing), or it is a folder that exists (the module docstring)."""
    return output is not None and (output.endswith(os.sep) or os.path.isdir(output))


def output_target(output: str | None, name: str) -> str | None:
    """Where ``-o output`` writes: ``output``, or the file ``name`` in it when it names a
    folder; None (stdout) stays None."""
    if output is None or not names_folder(output):
        return output
    return os.path.join(output, name)


def output_format(
    given: str | None, output: str | None, by_suffix: Mapping[str, str], default: str
) -> str:
    """``--format`` when ``given``, else the one ``output``'s suffix names in ``by_suffix``,
    else ``default`` (the module docstring)."""
    if given is not None:
        return given
    suffix = Path(output).suffix.lower() if output and not names_folder(output) else ""
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
