"""Where runs are served on their control sockets, and which socket a run id names.

A run's socket is ``<home>/control/<run_id>.sock`` (:func:`socket_path`); :func:`served_runs`
lists the live ones, skipping and removing stale sockets a killed process left, and
:func:`resolve_run` turns a run id, or a prefix naming exactly one served run, into its
socket's path for a client. The protocol spoken on a socket is ``control``'s.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import stat
from pathlib import Path

from taskdaemon.pipeline.ellipsis import cut
from taskdaemon.pipeline.errors import RunNotFoundError
from taskdaemon.pipeline.home import home_directory
from taskdaemon.pipeline.terminal_text import shown

__all__ = [
    "control_dir",
    "is_socket",
    "listened_on",
    "resolve_run",
    "served_runs",
    "shown_control_dir",
    "socket_path",
]

#: Seconds a live run's socket may take to accept a listing's probe before it is taken as live.
_PROBE_TIMEOUT = 1.0

#: What a run id (or a prefix of one) may be: ids are 32 hex digits; a socket's name is the id.
_MAX_RUN_ID = 128
_RUN_ID = re.compile(rf"[A-Za-z0-9_-]{{1,{_MAX_RUN_ID}}}")


def control_dir(home: str | os.PathLike[str] | None = None) -> Path:
    """``<home>/control``; home is ``TASKDAEMON_HOME`` or ``./.taskdaemon`` when not given."""
    base = Path(home) if home is not None else home_directory()
    return base / "control"


def shown_control_dir(home: str | os.PathLike[str] | None = None) -> str:
    """:func:`control_dir` as an error names it, its control characters escaped
    (``terminal_text.shown``): ``TASKDAEMON_HOME`` may hold any byte, and an escape sequence or
    a carriage return in it drove the terminal of whoever read the error."""
    return shown(str(control_dir(home)))


def socket_path(run_id: str, home: str | os.PathLike[str] | None = None) -> Path:
    """Where the run ``run_id`` is served."""
    return control_dir(home) / f"{run_id}.sock"


def served_runs(home: str | os.PathLike[str] | None = None) -> list[str]:
    """Run ids served under ``home``: a ``<run_id>.sock`` some process listens on.

    A socket left by a process that ended without removing it (``kill -9``, a crash) is stale:
    connecting to it is refused, as no process listens there. It is skipped, and removed
    (:func:`_remove_stale`). A name that is not a socket (a symlink, a file) is skipped and
    never followed; a socket that is slow to accept (a busy run, a full backlog) or that
    refuses this user (another's) is listed: only a refused connection proves a run gone.
    """
    try:
        entries = sorted(os.scandir(control_dir(home)), key=lambda entry: entry.name)
    except (FileNotFoundError, NotADirectoryError):
        return []
    return [
        entry.name.removesuffix(".sock")
        for entry in entries
        if entry.name.endswith(".sock") and listened_on(Path(entry.path))
    ]


def _socket_stat(path: Path) -> os.stat_result | None:
    """``path``'s own status when it is a socket (a symlink is not followed), else None (also
    when it is gone: removed since listed, its run ended)."""
    try:
        found = os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    return found if stat.S_ISSOCK(found.st_mode) else None


def is_socket(path: Path) -> bool:
    """Whether ``path`` itself is a socket (a symlink is not followed)."""
    return _socket_stat(path) is not None


def listened_on(path: Path) -> bool:
    """False when ``path`` is not a socket, or a stale one (then removed if ours)."""
    found = _socket_stat(path)
    if found is None:
        return False
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(_PROBE_TIMEOUT)
        try:
            probe.connect(str(path))
        except ConnectionRefusedError:
            _remove_stale(path, found)
            return False
        except FileNotFoundError:
            return False
        except OSError:  # slow to accept, or another user's: not proved dead
            return True
    return True


def _remove_stale(path: Path, probed: os.stat_result) -> None:
    """Remove the stale socket ``path`` when it is ours, in a private directory of ours, and
    still the very file probed (a run that started since with the same id has its own)."""
    uid = os.getuid()
    with contextlib.suppress(OSError):
        directory = os.lstat(path.parent)
        private = stat.S_ISDIR(directory.st_mode) and not directory.st_mode & 0o077
        if not (private and directory.st_uid == uid and probed.st_uid == uid):
            return
        now = os.lstat(path)
        if (now.st_dev, now.st_ino) == (probed.st_dev, probed.st_ino):
            path.unlink()


def resolve_run(run_id: str, home: str | os.PathLike[str] | None) -> Path:
    if not run_id:  # every served run starts with "": it would pick the only one
        raise RunNotFoundError(
            "no run id given: name a run in progress by its id or a prefix of it"
        )
    # The id names a file under the control directory: ``../x`` or ``/tmp/x`` would reach a
    # socket elsewhere (anyone's), and 300 characters a file name the system refuses.
    if not _RUN_ID.fullmatch(run_id):
        raise RunNotFoundError(
            f"not a run id: {cut(run_id, 80)!r} (a run id is "
            f"at most {_MAX_RUN_ID} letters, digits, '-' and '_')"
        )
    path = socket_path(run_id, home)
    try:
        if is_socket(path):  # a socket, not a link to one elsewhere
            return path
        matches = [served for served in served_runs(home) if served.startswith(run_id)]
    except OSError as exc:  # the control directory is another user's (EACCES)
        raise RunNotFoundError(
            f"cannot look for run {run_id!r} under {shown_control_dir(home)}: {exc.strerror or exc}"
        ) from None
    if len(matches) == 1:
        return socket_path(matches[0], home)
    where = shown_control_dir(home)
    if len(matches) > 1:
        raise RunNotFoundError(f"run id {run_id!r} is ambiguous here: {', '.join(matches)}")
    raise RunNotFoundError(
        f"no run {run_id!r} is served here (no socket under {where}): is its "
        "'taskdaemon run' (or 'serve') still running, with the same TASKDAEMON_HOME?"
    )
