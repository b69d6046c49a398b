"""``TASKDAEMON_HOME``: where taskdaemon keeps a user's state (the span store, workspaces,
control sockets, token files, prompt histories, dumps), found by one rule everywhere.

The variable is read as every variable is (``variables.variable``: its exact name, else the
same name spelt in another case). Unset, empty or blank, the home is ``.taskdaemon`` in the current
directory. One rule matters because the commands and the readers find the home apart: with
an empty value a run used to write its store into the current directory while ``runs list``
looked in ``.taskdaemon``, and a lower-case spelling moved the store but not the workspaces.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Final

from taskdaemon.pipeline.variables import variable

__all__ = ["DEFAULT_HOME", "HOME_VARIABLE", "home_directory", "home_path"]

HOME_VARIABLE: Final = "TASKDAEMON_HOME"
DEFAULT_HOME: Final = ".taskdaemon"


def home_path(value: str | None) -> Path:
    """The home a value of the variable names: :data:`DEFAULT_HOME` for none, or an empty or
    blank one."""
    return Path(value) if value is not None and value.strip() else Path(DEFAULT_HOME)


def home_directory(environ: Mapping[str, str] | None = None) -> Path:
    """The home named by ``environ`` (default: the process's environment)."""
    return home_path(variable(HOME_VARIABLE, environ))
