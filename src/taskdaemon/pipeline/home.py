"""``TASKDAEMON_HOME``: where taskdaemon keeps a user's state (the span store, workspaces,
control sockets, token files, prompt histories, dumps), found by one rule everywhere.

The variable is read as every variable is (``variables.variable``: its exact name, else the
same name spelt in another case). Unset, empty or blank, the home is ``.taskdaemon`` in the current
directory. One rule matters because the commands and the readers find the home apart: with
an empty value a run used to write its store into the current directory while ``runs list``
looked in ``.taskdaemon``, and a lower-case spelling moved the store but not the workspaces.

:func:`foreign_home` says why a home must not be written into, as ``sshd``'s ``StrictModes``
judges a home: one that another user owns (made 0755 by them in a shared checkout), or that
group or others may write. Their owner, or anyone, could rename our 0700 ``workspaces/`` and
``control/`` away and put theirs in place before a stage runs. A home root owns is accepted
(root may do all that anyway), but root is refused another user's home, as ``sshd`` refuses it:
a root run would hand that user its workspaces and control sockets. A home that does not
exist yet is fine: it is made 0700.

The folders above the home are judged too, as ``StrictModes`` judges those above
``authorized_keys``: the owner of any of them, or whoever may write one, could rename the
home (or a folder between) away and put one of theirs in its place, workspaces and sockets
included. Each folder of the home's real path (links resolved) up to ``/`` must belong to
this user or root and be closed to writing by group and others, unless it is sticky: in a
sticky folder (``/tmp``, 1777) only a name's owner may rename or remove it, so
``/tmp/mine/home`` is safe when ``mine`` is ours. The home itself gets no such pass (anyone
could make ``control/`` in it first). A link on the home's path is judged by where it leads,
as ``sshd`` judges it (``realpath``), and by its owner as well, as ``private_file`` judges the
folders above an output file: another user's link (in a sticky ``/tmp``) is theirs to point
elsewhere. Only the names the path gives are judged so, not those inside a link's target.

:func:`foreign_workspace` judges a ``--workspace DIR`` by the same rule, but lets DIR itself
be sticky as the folders above are: each run makes only its own ``DIR/<run_id>``, 0700, under
a name no one can guess first, and in a sticky folder no one else may rename it away.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Final

from taskdaemon.pipeline.variables import variable

__all__ = [
    "DEFAULT_HOME",
    "HOME_VARIABLE",
    "foreign_home",
    "foreign_workspace",
    "home_directory",
    "home_path",
]

HOME_VARIABLE: Final = "TASKDAEMON_HOME"
DEFAULT_HOME: Final = ".taskdaemon"


def home_path(value: str | None) -> Path:
    """The home a value of the variable names: :data:`DEFAULT_HOME` for none, or an empty or
    blank one."""
    return Path(value) if value is not None and value.strip() else Path(DEFAULT_HOME)


def home_directory(environ: Mapping[str, str] | None = None) -> Path:
    """The home named by ``environ`` (default: the process's environment)."""
    return home_path(variable(HOME_VARIABLE, environ))


def foreign_home(path: Path) -> str | None:
    """Why this process must not write into the home ``path`` (module docstring), else None.
    A home that cannot be looked at (a file above it) is left to the command to fail on."""
    return _foreign_folder(path, sticky_counts=False)


def foreign_workspace(path: Path) -> str | None:
    """Why this process must not make its runs' folders in ``path`` (``--workspace``), else
    None: as :func:`foreign_home`, a sticky ``path`` allowed (module docstring). A ``path``
    that is no folder (``/dev/null``) is left to the run, which says it cannot make its
    folder there, as is one that cannot be looked at (a name too long)."""
    try:
        if path.exists() and not path.is_dir():
            return None
    except OSError:
        return None
    return _foreign_folder(path, sticky_counts=True)


def _foreign_folder(path: Path, *, sticky_counts: bool) -> str | None:
    try:
        found = path.stat()
    except FileNotFoundError:
        found = None  # made 0700 later, in the folders judged below
    except OSError:
        return None
    if found is not None and (why := _foreign(found, sticky_counts=sticky_counts)):
        return why
    absolute = path.absolute()
    for name in (absolute, *absolute.parents):
        try:
            link = name.lstat()
        except OSError:  # not made yet, or a file above: the folders below say it
            continue
        if stat.S_ISLNK(link.st_mode) and link.st_uid not in (0, os.geteuid()):
            return f"is reached through '{name}', another user's link (uid {link.st_uid})"
    for folder in Path(os.path.realpath(path)).parents:
        try:
            above = folder.stat()
        except FileNotFoundError:  # made 0700 with the home
            continue
        except OSError:
            return None
        if why := _foreign(above, sticky_counts=True):
            return f"is under '{folder}', which {why}"
    return None


def _foreign(found: os.stat_result, *, sticky_counts: bool) -> str | None:
    """Why a folder with the status ``found`` is another user's to change, else None: its
    owner, or a mode letting group or others write (allowed when sticky, if it counts; a
    group's write when the group is its owner's alone: :func:`_group_of_one`)."""
    if found.st_uid not in (0, os.geteuid()):
        return f"belongs to another user (uid {found.st_uid})"
    writable = found.st_mode & 0o022
    if writable == 0o020 and _group_of_one(found.st_gid, found.st_uid):
        return None
    if writable and not (sticky_counts and found.st_mode & stat.S_ISVTX):
        return f"may be written by group or others (mode {found.st_mode & 0o7777:04o})"
    return None


def _group_of_one(gid: int, owner: int) -> bool:
    """Whether the group ``gid`` has one member, the user ``owner``: its primary group to no
    one else, and no one else listed in it.

    Decision: a folder only its owner's own group may write is as closed as one no group may
    write. Systems that give each user a group of their own (Fedora, RHEL) set the umask to
    002, so a checkout there is group-writable and its default home was refused on the
    README's first command. Debian's ``sshd`` accepts such a folder by the same rule; a group
    with no member is refused, as there (a setgid program's group). The user database is
    read whole (the users whose primary group it is) only for such a folder, not on every
    start."""
    import grp  # noqa: PLC0415 - only a group-writable folder needs them
    import pwd  # noqa: PLC0415

    try:
        group = grp.getgrgid(gid)
        name = pwd.getpwuid(owner).pw_name
    except KeyError:  # a group or owner with no name: nothing says who is in it
        return False
    if any(member != name for member in group.gr_mem):
        return False
    primary = [user.pw_uid for user in pwd.getpwall() if user.pw_gid == gid]
    return all(uid == owner for uid in primary) and bool(primary or group.gr_mem)
