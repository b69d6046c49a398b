"""Where a running server's generated API token is found: a 0600 file per server, held while
the server runs, so that several servers can share one ``TASKDAEMON_HOME``.

``serve``, ``run --serve`` and ``ui`` (and two ``serve`` on different ports) may run in one home
at once, each with a token of its own. A server's token goes to two names under the home:

* ``NAME.PORT`` (``api-token.9090``; ``ui-token.9091`` for ``ui``): this server's file, named
  by the port in its URL, so ``curl -H "Authorization: Bearer $(cat …/api-token.9090)"`` reaches
  the server on 9090 whatever else runs. The sign-in log line names this file.
* ``NAME`` (``api-token``, ``ui-token``) too, unless a live server of the home holds it: the
  first server started keeps it for as long as it runs, and no later one replaces it. The name
  the README uses (``cat .taskdaemon/api-token``) so stays right for the common one-server
  case, and never silently switches to another server's token; when several servers run, each
  one's token is in its ``NAME.PORT``. It goes when its server stops; a server started earlier
  and still running does not take it over (nothing tells it to: its ``NAME.PORT`` holds it).

Live or stale: a server holds an exclusive ``flock`` on its files (one inode, two names) through
a descriptor it keeps open until it stops; the kernel releases it when the process ends in any
way, ``kill -9`` included, and no pid is involved, so a reused pid cannot pass for a live
server. A file no process holds is a crashed server's: a starting server replaces a stale
``NAME`` and removes the stale ``NAME.PORT`` files of other ports, and a live server's file is
never touched. What cannot be removed at a name (a user's folder) is left there, and the name
not claimed: the server's other file still holds its token, removed when it stops. When a
server stops it removes each name that is still its own file (the same inode): a name another
server has since taken stays.

Files are created exclusively under a temporary name (mode 0600, set with ``fchmod``: the umask
can only take bits away), written and synced, then hard-linked into place: a link never
replaces an existing name, so two servers cannot both believe they hold ``NAME``. A symlink
planted at a name is never written through (it is not held, so it is replaced). Two servers
starting in the same instant beside a stale ``NAME`` may both find it stale; then one of them
ends up with ``NAME``, and each keeps its ``NAME.PORT``.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
from pathlib import Path

from taskdaemon.pipeline.ascii_number import ascii_digits
from taskdaemon.pipeline.private_file import make_private_dirs

__all__ = ["ServerTokenFiles", "publish_token"]


def _write_private(home: Path, name: str, token: str) -> tuple[int, Path]:
    """Write ``token`` and a newline to a new file with mode 0600 under ``home`` (made private
    when missing), under a temporary name derived from ``name``; its open descriptor and path.
    The caller links or renames it into place, and closes the descriptor."""
    make_private_dirs(home)  # it may hold the store later, and other users' runs must not
    temporary = home / f".{name}.{os.getpid()}.{secrets.token_hex(4)}"
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(temporary, flags, 0o600)
    try:
        os.fchmod(fd, 0o600)  # the umask can only remove bits; make the mode exact
        os.write(fd, f"{token}\n".encode())
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        temporary.unlink(missing_ok=True)
        raise
    return fd, temporary


def _held(path: Path) -> bool:
    """Whether a live process holds the file at ``path`` (its ``flock``); False when there is
    no such file, or it is not a plain file this process can open (a planted symlink)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        os.close(fd)
    return False


def _claim(temporary: Path, target: Path) -> bool:
    """Link ``temporary`` at ``target`` unless a live server holds ``target`` or what is there
    cannot be removed (a folder; a stale file there is removed first); whether it did."""
    for _ in range(2):
        try:
            os.link(temporary, target)
        except FileExistsError:
            if _held(target):
                return False
            with contextlib.suppress(OSError):  # gone already, or a folder: not ours to take
                target.unlink()
        else:
            return True
    return False


def _remove_stale(home: Path, name: str) -> None:
    """Remove the ``NAME.PORT`` files under ``home`` that no live server holds."""
    for path in home.glob(f"{name}.*"):
        if ascii_digits(path.name[len(name) + 1 :]) and not _held(path):
            with contextlib.suppress(OSError):
                path.unlink()


class ServerTokenFiles:
    """The token files of one running server: :attr:`paths` (its ``NAME.PORT`` first, then
    ``NAME`` when it holds that), held until :meth:`remove`."""

    def __init__(self, fd: int, paths: list[Path]) -> None:
        self._fd: int | None = fd
        status = os.fstat(fd)
        self._identity = (status.st_dev, status.st_ino)
        self.paths = tuple(paths)

    @property
    def path(self) -> Path | None:
        """The file to name in the sign-in line: ``NAME.PORT``, else ``NAME``; None when
        neither could be claimed."""
        return self.paths[0] if self.paths else None

    def remove(self) -> None:
        """Remove each name that is still this server's file, and let go of it (idempotent)."""
        if self._fd is None:
            return
        for path in self.paths:
            with contextlib.suppress(OSError):
                status = os.stat(path, follow_symlinks=False)
                if (status.st_dev, status.st_ino) == self._identity:
                    path.unlink()
        os.close(self._fd)
        self._fd = None


def publish_token(home: Path, token: str, name: str, port: int) -> ServerTokenFiles:
    """Write ``token`` to ``home/NAME.PORT`` and, unless a live server holds it, ``home/NAME``
    (see the module docstring); the files, held until their ``remove()``. OSError when the
    file cannot be written at all."""
    fd, temporary = _write_private(home, name, token)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a new inode: nobody else holds it
        _remove_stale(home, name)
        claimed = [
            path for path in (home / f"{name}.{port}", home / name) if _claim(temporary, path)
        ]
        return ServerTokenFiles(fd, claimed)
    except BaseException:
        os.close(fd)
        raise
    finally:
        temporary.unlink(missing_ok=True)
