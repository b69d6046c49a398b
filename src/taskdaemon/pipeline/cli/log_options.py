"""The ``--log-level`` option shared by ``run``, ``serve``, ``replay`` and ``debug``, and the
parser of every option naming a level (``logs --level`` too).

``--log-level trace|debug|info|warning|error|critical`` overrides ``TASKDAEMON_LOG_LEVEL``
for the process: ``debug`` adds the engine's decisions to the run logs, ``trace`` every engine
event (``run_log``). It takes the names the variable takes, checked by the same function
(``log_levels.level_number``), and refuses the others in the same words: the option refused
``critical``, which the variable took, and ``logs --level`` refused ``warn`` and ``fatal``,
which ``--log-level`` took. Import-light: parsers are built before any command runs.
"""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["LEVEL_CHOICES", "add_log_level_option", "level_name", "settings_overrides"]

#: What an option naming a level says it takes.
LEVEL_CHOICES = "trace, debug, info, warning (warn), error or critical (fatal)"


def level_name(value: str) -> str:
    """The lower-case name of the level ``value`` names, as ``TASKDAEMON_LOG_LEVEL`` takes it
    (``WARN`` → ``warning``); else argparse's one line, naming the choices."""
    import logging  # noqa: PLC0415

    from taskdaemon.pipeline.log_levels import level_number  # noqa: PLC0415

    try:
        return str(logging.getLevelName(level_number(value))).lower()
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_log_level_option(parser: argparse.ArgumentParser) -> None:
    """Add ``--log-level`` to ``parser``."""
    parser.add_argument(
        "--log-level",
        type=level_name,
        metavar="LEVEL",
        help=f"{LEVEL_CHOICES} (default TASKDAEMON_LOG_LEVEL, else info); debug logs every "
        "engine decision, trace every engine event",
    )


def settings_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The ``load_settings`` overrides the command line asks for."""
    level = getattr(args, "log_level", None)
    return {"log_level": level} if level else {}
