"""Files of run data written whole and private (a debug dump, ``dag -o``, ``report -o``), and
the private folders that hold run data (the home, the store's, workspaces, dumps).

:func:`replace_privately` writes through a temporary file beside the target, made with
``O_EXCL`` and mode 0600 (so readable by its owner only from its creation on, whatever the
umask, as ``tempfile.mkstemp`` makes one), and renames it over the target. A write that
fails (a full disk) removes the temporary and leaves the target as it was; a reader never
sees half a file. The target is replaced, not rewritten: a mode it had before does not carry
over.

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
away and put one of theirs in its place. :func:`make_output_dirs` makes the missing folders
above a file the user named (``-o`` of ``dump``, ``dag`` and ``report``, the debugger's ``dump
PATH``; a dump's default folder too) the same way.

Both follow the file's own rule: a symbolic link on the way that belongs to another user (not
this one, not root) is refused, as a link at the file itself is. Followed, a link planted in a
shared folder would take the file, or the folders made (a home, a workspace, the store's),
wherever its owner chose.

Decision: each check is made on what is then used, never on a name looked up again, so a
link swapped in after the check (in a folder both users can write) is never followed. The
folders above a file are walked one name at a time from ``/`` (or the current folder) by
descriptor, each opened without following a link (``O_PATH | O_NOFOLLOW``) and judged by
``fstat``; a link of this user's or root's is followed by reading the target of the very link
judged and walking it the same way; missing folders are made relative to their parent's
descriptor. The temporary file is made, and renamed over the target, relative to the
folder's descriptor; a link, pipe or device at the target is judged on its descriptor, then
a link's target read from it, a pipe or device reopened through ``/proc/self/fd`` (Linux, as
the CI). The three functions walk the one way (``_open_folder``), and each walks afresh: the
folders ``make_output_dirs`` checked are not trusted by ``replace_privately``. What the kernel
still follows unjudged is the rest of a judged link's target when the file itself is that
link (``-o /dev/stdout``), as before.
"""

from __future__ import annotations

import contextlib
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
    does; another user's symbolic link on the way ``PermissionError`` naming it (the module
    docstring); other ``OSError``\ s are raised."""
    folder = Path(path)
    os.close(_open_folder(folder, folder, make=True))


def make_output_dirs(path: Path) -> None:
    """Make the missing folders above the file ``path``, 0700 (``make_private_dirs``); a
    folder on its way that is another user's symbolic link raises ``PermissionError`` naming
    it (the module docstring)."""
    os.close(_open_folder(path.parent, path, make=True))


def replace_privately(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """Replace ``path`` with what ``write(handle)`` writes to ``handle`` (see the module
    docstring); what ``write`` or the rename raises is raised, with nothing left behind."""
    folder = _open_folder(path.parent, path, make=False)
    try:
        if not _written_through(folder, path, write):
            _replace_in(folder, path.name, write)
    finally:
        os.close(folder)


#: How a folder on the way, and a name in it, are opened: by descriptor, for ``*at`` calls
#: and ``fstat`` only (``O_PATH``: a folder we may search but not list is walked, as the
#: kernel walks it), never following a link (it is judged, then its target walked).
_FOLDER = os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC
_NAME = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC
#: Links followed on one path before ``ELOOP``, as Linux's own limit.
_MOST_LINKS = 40
#: Names tried for a temporary file before giving up, as ``tempfile.mkstemp`` tries them.
_TRIES = 10000


def _open_folder(where: Path, path: Path, *, make: bool) -> int:
    """A descriptor of the folder ``where`` (the file ``path``'s, or the folder ``path``),
    reached name by name from ``/`` or the current folder, each missing one made 0700 when
    ``make`` (not those a link's target names: a dangling link is an error, as for ``mkdir
    -p``); the caller closes it. A link on the way is judged by its owner, then its target,
    read from the link judged, is walked the same way; another user's raises
    ``PermissionError`` naming it (module docstring). Errors name ``path``."""
    import stat  # noqa: PLC0415 - the CLI's start-up time

    absolute = where.is_absolute()
    folder = os.open("/" if absolute else ".", _FOLDER)
    shown = Path("/" if absolute else "")  # what an error names
    names = list(reversed(where.parts[1:] if absolute else where.parts))
    ours = len(names)  # the names below this index are the path's own, not a link's target
    links = 0
    try:
        while names:
            name = names.pop()
            try:
                found = os.open(name, _NAME, dir_fd=folder)
            except FileNotFoundError:
                if not make:
                    raise
                if len(names) >= ours:  # a dangling link's target: it exists, as mkdir says
                    raise FileExistsError(
                        errno.EEXIST, os.strerror(errno.EEXIST), str(path)
                    ) from None
                with contextlib.suppress(FileExistsError):  # made meanwhile: judged as any
                    os.mkdir(name, 0o700, dir_fd=folder)
                names.append(name)
                continue
            try:
                status = os.fstat(found)
                if stat.S_ISDIR(status.st_mode):
                    folder, found = found, folder  # the folder left is closed below
                    shown = shown / name
                    continue
                if not stat.S_ISLNK(status.st_mode):  # a file: as make_private_dirs says
                    if names:
                        raise NotADirectoryError(
                            errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(path)
                        )
                    raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(path))
                if status.st_uid not in (0, os.geteuid()):
                    raise PermissionError(
                        errno.EPERM,
                        f"{(shown / name).absolute()} is another user's link (uid {status.st_uid})",
                        str(path),
                    )
                target = Path(os.readlink("", dir_fd=found))  # the link judged, not a swapped one
            finally:
                os.close(found)
            links += 1
            if links > _MOST_LINKS:
                raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), str(path))
            if target.is_absolute():
                os.close(folder)
                folder = os.open("/", _FOLDER)
                shown = Path("/")
            ours = min(ours, len(names))
            names.extend(reversed(target.parts[1:] if target.is_absolute() else target.parts))
    except BaseException:
        os.close(folder)
        raise
    return folder


def _written_through(folder: int, path: Path, write: Callable[[BinaryIO], object]) -> bool:
    """Write into the link, pipe or device ``path`` names in ``folder`` when it is this
    user's or root's (module docstring): True when it was, False when ``path`` is missing, a
    file or a folder. The owner is judged on the descriptor then written through: a link's
    target is read from the link judged, a pipe or device reopened from its descriptor."""
    import stat  # noqa: PLC0415 - the CLI's start-up time

    try:
        found = os.open(path.name, _NAME, dir_fd=folder)
    except FileNotFoundError:
        return False
    try:
        status = os.fstat(found)
        if stat.S_ISREG(status.st_mode) or stat.S_ISDIR(status.st_mode):
            return False
        if status.st_uid not in (0, os.geteuid()):  # planted by another user (docstring)
            raise PermissionError(
                errno.EPERM, f"another user's link, pipe or device (uid {status.st_uid})", str(path)
            )
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC
        if stat.S_ISLNK(status.st_mode):
            handle = os.open(os.readlink("", dir_fd=found), flags, 0o666, dir_fd=folder)
        else:  # the pipe or device judged, not whatever has its name now
            handle = os.open(f"/proc/self/fd/{found}", flags & ~os.O_CREAT)
    finally:
        os.close(found)
    with open(handle, "wb") as opened:
        write(opened)
    return True


def _replace_in(folder: int, name: str, write: Callable[[BinaryIO], object]) -> None:
    """Write a private temporary beside ``name`` in ``folder`` and rename it over ``name``,
    both relative to ``folder``: a folder swapped meanwhile changes nothing."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
    for _ in range(_TRIES):
        temporary = f".{name}.{os.urandom(6).hex()}.tmp"  # hidden, never the target's suffix
        try:
            handle = os.open(temporary, flags, 0o600, dir_fd=folder)
            break
        except FileExistsError:
            continue
    else:
        raise FileExistsError(errno.EEXIST, "no free name for a temporary file", name)
    try:
        with open(handle, "wb") as opened:
            write(opened)
        os.replace(temporary, name, src_dir_fd=folder, dst_dir_fd=folder)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary, dir_fd=folder)
        raise
