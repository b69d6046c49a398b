"""The ``--log-level`` option shared by ``run``, ``serve``, ``replay`` and ``debug``.

``--log-level trace|debug|info|warning|error`` overrides ``TASKDAEMON_LOG_LEVEL`` for the
process: ``debug`` adds the engine's decisions to the run logs, ``trace`` every engine event
(``run_log``). Import-light: parsers are built before any command runs.
"""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["LOG_LEVEL_CHOICES", "add_log_level_option", "settings_overrides"]

LOG_LEVEL_CHOICES = ("trace", "debug", "info", "warning", "error")


def add_log_level_option(parser: argparse.ArgumentParser) -> None:
    """Add ``--log-level`` to ``parser``."""
    parser.add_argument(
        "--log-level",
        type=str.lower,
        choices=LOG_LEVEL_CHOICES,
        metavar="LEVEL",
        help="trace, debug, info, warning or error (default TASKDAEMON_LOG_LEVEL, else info); "
        "debug logs every engine decision, trace every engine event",
    )


def settings_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The ``load_settings`` overrides the command line asks for."""
    level = getattr(args, "log_level", None)
    return {"log_level": level} if level else {}
