"""The span store's file and the file system under it, apart from SQLite.

Whether this process can write the store (:func:`why_read_only`: a read-only mount, a full
file system, a folder of another user), whether anyone can (:func:`nobody_writes`), the
file created private (:func:`create_private`), what stands in the way of its folder
(:func:`file_in_the_way`), and its identity while a writer holds it (:class:`OpenedFile`).
Opening the file with SQLite is ``_schema``'s.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import Final

from taskdaemon.pipeline.errors import SpanSourceError
from taskdaemon.pipeline.home import foreign_home
from taskdaemon.pipeline.private_file import make_private_dirs

__all__ = [
    "FULL_BELOW",
    "OpenedFile",
    "create_private",
    "file_in_the_way",
    "nobody_writes",
    "superblock_read_only",
    "unwritable_file_system",
    "why_read_only",
]


def create_private(path: Path) -> None:
    """Create the store file with mode 0600, and its directory with mode 0700, when they do not
    exist yet: spans hold payloads and commands, which other local users must not read.
    SQLite gives the ``-wal`` and ``-shm`` files the mode of the database file. An existing file
    or directory keeps the mode it has (someone chose it), but only this user may have chosen
    it: PermissionError for a file of another user (made in a shared checkout's ``.taskdaemon``
    before our first run, 0666, it would collect our runs for them to read), another user's
    link in the file's place (it names a file of ours they chose: our runs went into it), or a
    folder another user may change, judged as a home is (``home.foreign_home``: its owner, its
    mode, a link or folder above it). In a folder anyone, or a group of more than us, may
    write, any of them may make the ``-wal`` file first, or swap the store or its link; a store
    named by ``TASKDAEMON_SPAN_SOURCE`` outside the home was judged by its folder's bit for
    others alone, and a shared project folder of a group (0775) took our runs."""
    make_private_dirs(path.parent)
    if why := foreign_home(path.parent):
        raise PermissionError(errno.EPERM, f"its folder {why}", str(path))
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    except FileExistsError:
        found = os.lstat(path)
        if stat.S_ISLNK(found.st_mode) and found.st_uid not in (0, os.geteuid()):
            raise PermissionError(
                errno.EPERM, f"it is another user's link (uid {found.st_uid})"
            ) from None
        if (owner := path.stat().st_uid) != os.geteuid():
            raise PermissionError(
                errno.EPERM, f"it belongs to another user (uid {owner})"
            ) from None
        return
    os.close(fd)


class OpenedFile:
    """The store file a writer opened, to tell when its path names another file (the store
    deleted or replaced under the writer: SQLite would go on writing into the unlinked file,
    which no reader sees). Made right after the connection is opened."""

    __slots__ = ("_absolute", "_identity", "path")

    def __init__(self, path: Path) -> None:
        self.path = path
        self._absolute = Path(os.path.abspath(path))  # a handler's chdir must not move it
        self._identity = self._now()

    def _now(self) -> tuple[int, int] | None:
        """(device, inode) of the file at the path now, None when there is none."""
        try:
            status = os.stat(self._absolute)
        except OSError:
            return None
        return status.st_dev, status.st_ino

    def check(self) -> None:
        """SpanSourceError when the path no longer names the opened file (one ``stat``)."""
        if self._now() != self._identity:
            raise SpanSourceError(
                f"{self.path} was deleted or replaced while this process wrote to it"
            )


def file_in_the_way(path: Path) -> Path | None:
    """The nearest existing folder above ``path`` when it is not a directory (a file where
    ``TASKDAEMON_HOME`` should be), else None."""
    for parent in path.absolute().parents:
        if os.path.lexists(parent):
            return None if parent.is_dir() else parent
    return None


#: Free bytes under which a file system counts as full for readers (``_schema.connect_to_read``):
#: less than a WAL store's ``-shm`` file and the pages a read may need to spill.
FULL_BELOW: Final = 1 << 20


def unwritable_file_system(path: Path) -> str | None:
    """``"read-only"`` when ``path`` is on a file system mounted read-only, ``"full"`` when
    that file system has less than :data:`FULL_BELOW` bytes free, else None (also when it
    cannot be told)."""
    try:
        stat = os.statvfs(path)
    except OSError:
        return None
    if stat.f_flag & os.ST_RDONLY:
        return "read-only"
    return "full" if stat.f_bavail * stat.f_frsize < FULL_BELOW else None


def why_read_only(path: Path, *, or_full: bool = False) -> str | None:
    """Why this process cannot write the store at ``path``, as the end of a sentence about
    it (``on a read-only file system``, ``its folder F is not writable by this user``), or
    None when it can as far as the file system and ``access(2)`` tell. A WAL store is written
    with its ``-wal`` and ``-shm`` files beside it, so its folder must be writable too.
    ``or_full``: a full file system (:data:`FULL_BELOW`) counts too; otherwise it does not,
    as a write may still fit there (``retention`` is how one makes room)."""
    kind = unwritable_file_system(path)
    if kind == "read-only" and not superblock_read_only(path):
        return "on a read-only mount (its file system may be written through another)"
    if kind == "read-only" or (kind == "full" and or_full):
        return f"on a {kind} file system"
    folder = path.absolute().parent
    if not os.access(folder, os.W_OK):
        return f"its folder {folder} is not writable by this user"
    if os.path.exists(path) and not os.access(path, os.W_OK):
        return "the file is not writable by this user"
    return None


def superblock_read_only(path: Path) -> bool:
    """Whether the file system of ``path`` is read-only in every mount of it (its superblock's
    ``ro`` in ``/proc/self/mountinfo``). A read-only bind mount (``mount -o remount,ro,bind``,
    a container's ``:ro`` volume) sets ``ST_RDONLY`` for its own path only, while the file
    system under it may still be written through another mount."""
    try:
        device = os.stat(path).st_dev
        with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as mounts:
            for line in mounts:
                fields = line.split()
                major, _, minor = fields[2].partition(":") if len(fields) > 2 else ("", "", "")
                if f"{major}:{minor}" == f"{os.major(device)}:{os.minor(device)}":
                    super_options = fields[-1].split(",")
                    return "ro" in super_options
    except (OSError, ValueError):
        pass
    return False


def nobody_writes(path: Path) -> bool:
    """Whether no process (root aside) can start writing the WAL store at ``path`` while its
    ``-shm`` file is missing: a writer must make that file first, which nobody can on a file
    system read-only in every mount, nor in a folder without any write permission bit. Then
    ``immutable`` reads it as safely as any read; otherwise its owner may write the file under
    a reader that takes no lock, which then reads pages of two states."""
    if superblock_read_only(path):
        return True
    return not os.stat(path.absolute().parent).st_mode & 0o222
