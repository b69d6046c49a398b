"""Files of run data written whole and private (a debug dump, ``dag -o``, ``report -o``), and
the private folders that hold run data (the home, the store's, workspaces, dumps).

:func:`replace_privately` writes through a temporary file beside the target, made by
``tempfile.mkstemp`` (so readable by its owner only, 0600, from its creation on, whatever the
umask), and renames it over the target. A write that fails (a full disk) removes the temporary
and leaves the target as it was; a reader never sees half a file. The target is replaced, not
rewritten: a mode it had before does not carry over.

Decision: a target that exists and is neither a regular file nor a folder (``/dev/null``, a
named pipe), or is a symbolic link (``/dev/stdout``), is written into, not replaced: renaming
over it put a regular file where a device or a link was (as root, ``dag -o /dev/null``
replaced the machine's ``/dev/null``; ``-o /dev/stdout`` the link), and a reader of a pipe
waited for ever. Such a write is neither atomic nor private: the user named where it goes.
Only when the user can have named it, though: the link, pipe or device must belong to this
process's user or to root (``/dev/null``, ``/dev/stdout``). One another user planted in a folder
both can write (a shared ``/tmp`` where the kernel's ``protected_symlinks`` is off, a group's
folder) is refused with ``PermissionError``: written through, a link would overwrite whatever
file it points to with this user's rights, and a named pipe would hand run data to its owner.

:func:`make_private_dirs` makes a folder and each missing one above it 0700. ``mkdir(parents=
True, mode=0o700)`` and ``os.makedirs`` give the mode to the last folder only, the others the
umask's: under umask 0, a parent anyone may write, where anyone may rename the private folder
away and put one of theirs in its place.

:func:`make_output_dirs` makes the missing folders above a file the user named (``-o`` of
``dump``, ``dag`` and ``report``, the debugger's ``dump PATH``; a dump's default folder too)
that way, after the same check
as the file's: a symbolic link on the way that belongs to another user (not this one, not
root) is refused, as a link at the file itself is. Followed, a link planted in a shared folder
would take the file, or the folders made, wherever its owner chose.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

__all__ = ["make_output_dirs", "make_private_dirs", "replace_privately"]


def make_private_dirs(path: str | os.PathLike[str]) -> None:
    r"""Make the folder ``path`` and each missing folder above it, each with mode 0700 (less
    what the umask takes away); existing folders keep their mode (someone chose it). A file at
    ``path`` raises ``FileExistsError``, a file above it ``NotADirectoryError``, as ``mkdir``
    does; other ``OSError``\ s are raised."""
    target = Path(path)
    missing = []
    folder = target
    while not folder.exists() and folder.parent != folder:
        missing.append(folder)
        folder = folder.parent
    if not missing and not target.is_dir():
        raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(target))
    for folder in reversed(missing):  # a file above them: NotADirectoryError, as mkdir says
        try:
            folder.mkdir(mode=0o700)
        except FileExistsError:
            if not folder.is_dir():  # a file; a folder made meanwhile by another process is fine
                raise


def make_output_dirs(path: Path) -> None:
    """Make the missing folders above the file ``path``, 0700 (``make_private_dirs``); a
    folder on its way that is another user's symbolic link raises ``PermissionError`` naming
    it (the module docstring)."""
    import stat  # noqa: PLC0415 - the CLI's start-up time

    folder = path.absolute().parent
    for each in (folder, *folder.parents):
        try:
            found = os.lstat(each)
        except (FileNotFoundError, NotADirectoryError):  # made below, or refused there
            continue
        if stat.S_ISLNK(found.st_mode) and found.st_uid not in (0, os.geteuid()):
            raise PermissionError(
                errno.EPERM, f"{each} is another user's link (uid {found.st_uid})", str(path)
            )
    make_private_dirs(folder)


def replace_privately(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """Replace ``path`` with what ``write(handle)`` writes to ``handle`` (see the module
    docstring); what ``write`` or the rename raises is raised, with nothing left behind."""
    import stat  # noqa: PLC0415 - only a file written needs them (the CLI's start-up time)
    import tempfile  # noqa: PLC0415

    try:
        found = os.lstat(path)
    except FileNotFoundError:
        found = None
    if found is not None and not (stat.S_ISREG(found.st_mode) or stat.S_ISDIR(found.st_mode)):
        if found.st_uid not in (0, os.geteuid()):  # planted by another user (docstring)
            raise PermissionError(
                errno.EPERM, f"another user's link, pipe or device (uid {found.st_uid})", str(path)
            )
        with open(path, "wb") as handle:  # a device, a pipe, a link (docstring)
            write(handle)
        return
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
