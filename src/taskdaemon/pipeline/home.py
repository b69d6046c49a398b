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
a root run would hand that user its workspaces and control sockets. Only the home itself is
judged, not the folders above it. A home that does not exist yet is fine: it is made 0700.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Final

from taskdaemon.pipeline.variables import variable

__all__ = ["DEFAULT_HOME", "HOME_VARIABLE", "foreign_home", "home_directory", "home_path"]

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
    try:
        found = path.stat()
    except OSError:
        return None
    if found.st_uid not in (0, os.geteuid()):
        return f"belongs to another user (uid {found.st_uid})"
    if found.st_mode & 0o022:
        return f"may be written by group or others (mode {found.st_mode & 0o7777:04o})"
    return None
