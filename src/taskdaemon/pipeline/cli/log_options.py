"""The ``--log-level`` option shared by ``run``, ``serve``, ``replay`` and ``debug``.

``--log-level trace|debug|info|warning|error|critical`` overrides ``TASKDAEMON_LOG_LEVEL``
for the process: ``debug`` adds the engine's decisions to the run logs, ``trace`` every engine
event (``run_log``). It takes the names the variable takes, checked by the same function
(``log_levels.level_number``), and refuses the others in the same words: the option refused
``critical``, which the variable took. Import-light: parsers are built before any command
runs.
"""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["add_log_level_option", "settings_overrides"]


def _level(value: str) -> str:
    """``value`` when ``TASKDAEMON_LOG_LEVEL`` would take it; else argparse's one line, naming
    the choices."""
    from taskdaemon.pipeline.log_levels import level_number  # noqa: PLC0415

    try:
        level_number(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return value


def add_log_level_option(parser: argparse.ArgumentParser) -> None:
    """Add ``--log-level`` to ``parser``."""
    parser.add_argument(
        "--log-level",
        type=_level,
        metavar="LEVEL",
        help="trace, debug, info, warning, error or critical (default TASKDAEMON_LOG_LEVEL, "
        "else info); debug logs every engine decision, trace every engine event",
    )


def settings_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The ``load_settings`` overrides the command line asks for."""
    level = getattr(args, "log_level", None)
    return {"log_level": level} if level else {}
