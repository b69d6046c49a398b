"""The ``taskdaemon`` command: the composition root.

Each sub-command lives in its own module of this package exposing
``register(subparsers) -> None``, which adds its parser and sets ``func`` (``args -> int``, the
exit code). Only this package and ``settings.py`` build OpenTelemetry SDK providers.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from importlib import import_module

from taskdaemon import __version__
from taskdaemon.pipeline.errors import SettingsError

__all__ = ["build_parser", "main"]

#: Sub-command modules, in the order ``--help`` lists them.
COMMAND_MODULES: tuple[str, ...] = ("run", "validate", "approve", "dag", "runs", "serve")


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser with every sub-command registered."""
    parser = argparse.ArgumentParser(
        prog="taskdaemon",
        description="Run pipelines and observe them the OpenTelemetry way.",
    )
    parser.add_argument("--version", action="version", version=f"taskdaemon {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        import_module(f"{__name__}.{name}").register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the process exit code."""
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except SettingsError as error:  # invalid TASKDAEMON_*/OTEL_* variables: name them, exit 2
        print(f"taskdaemon: invalid settings:\n{error}", file=sys.stderr, flush=True)
        return 2
    return code


if __name__ == "__main__":
    sys.exit(main())
