"""The environment a command stage starts from: this process's own, less the bootstrap that
``opentelemetry-instrument`` put on ``PYTHONPATH``.

``opentelemetry-instrument taskdaemon run ...`` runs taskdaemon with its ``auto_instrumentation``
directory first on ``PYTHONPATH``: that directory's ``sitecustomize`` starts OpenTelemetry in
every Python interpreter that starts with the variable, and upstream keeps it there on purpose
so that Python subprocesses are instrumented too. Decision: a command stage does not inherit
it. A command is the user's program, not a part of taskdaemon, and its environment is the
user's, not the instrumentation's:

* an interpreter without OpenTelemetry (the system ``python3``, another virtualenv) prints
  ``Error in sitecustomize ... No module named 'opentelemetry'`` on stderr at every start, into
  the stage's captured output;
* an interpreter with it would start an SDK of its own from taskdaemon's ``OTEL_*`` settings,
  under taskdaemon's service name, and export telemetry nobody asked for; the stage is traced
  already, and its command gets ``TRACEPARENT`` to join the trace on its own terms. A command
  that wants auto-instrumentation says so: ``opentelemetry-instrument python3 job.py``.

What goes: every ``PYTHONPATH`` entry that is such a bootstrap directory (a path ending in
``opentelemetry/instrumentation/auto_instrumentation``); the variable is left out when no entry
is left. What stays: the current directory ``opentelemetry-instrument`` also adds when it is
not on ``PYTHONPATH`` yet, because it cannot be told from a user's own entry
(``PYTHONPATH=$PWD``), and dropping the user's entry would break a command that needs it, where
keeping the added one only lets a command import from where taskdaemon was started; and the
``OTEL_*`` variables, which are the user's settings (``opentelemetry-instrument`` writes them
only from its own command line) and which a command may read.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Final

__all__ = ["command_environment"]

_BOOTSTRAP: Final = ("opentelemetry", "instrumentation", "auto_instrumentation")


def command_environment(environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """A copy of ``environ`` without the instrumentation's bootstrap (module docstring); every
    other variable, and every other ``PYTHONPATH`` entry in its order, as it was."""
    env = dict(environ)
    python_path = env.get("PYTHONPATH")
    if not python_path:
        return env
    entries = python_path.split(os.pathsep)
    kept = [entry for entry in entries if not _is_bootstrap(entry)]
    if len(kept) == len(entries):
        return env
    if kept:
        env["PYTHONPATH"] = os.pathsep.join(kept)
    else:
        del env["PYTHONPATH"]
    return env


def _is_bootstrap(entry: str) -> bool:
    """Whether ``entry`` names an ``opentelemetry-instrument`` bootstrap directory."""
    return bool(entry) and tuple(os.path.normpath(entry).split(os.sep)[-3:]) == _BOOTSTRAP
