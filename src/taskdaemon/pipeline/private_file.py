"""Files of run data written whole and private: a debug dump, ``dag -o``, ``report -o``.

:func:`replace_privately` writes through a temporary file beside the target, made by
``tempfile.mkstemp`` (so readable by its owner only, 0600, from its creation on, whatever the
umask), and renames it over the target. A write that fails (a full disk) removes the temporary
and leaves the target as it was; a reader never sees half a file. The target is replaced, not
rewritten: a mode it had before does not carry over.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

__all__ = ["replace_privately"]


def replace_privately(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """Replace ``path`` with what ``write(handle)`` writes to ``handle`` (see the module
    docstring); what ``write`` or the rename raises is raised, with nothing left behind."""
    import tempfile  # noqa: PLC0415 - only a file written needs it (the CLI's start-up time)

    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
