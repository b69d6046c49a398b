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


#: Exit code when the reader of stdout went away (``runs list | head -1``): 128 + SIGPIPE, what a
#: shell reports for a command a closed pipe killed.
EXIT_BROKEN_PIPE = 141


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the process exit code.

    A closed stdout (the reader of a pipe exited early) ends the command quietly with
    ``EXIT_BROKEN_PIPE``: no traceback, no "Exception ignored" at interpreter exit.
    """
    try:
        code = _dispatch(argv)
        sys.stdout.flush()  # a closed pipe shows here, inside the handler, not at exit
    except BrokenPipeError:
        # The Python docs' recipe (library/signal, "Note on SIGPIPE"): point stdout at devnull
        # so the interpreter's final flush has nowhere to fail.
        import os  # noqa: PLC0415 - only this rare path needs it

        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return EXIT_BROKEN_PIPE
    return code


def _dispatch(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except SettingsError as error:  # invalid TASKDAEMON_*/OTEL_* variables: name them, exit 2
        print(f"taskdaemon: invalid settings:\n{error}", file=sys.stderr, flush=True)
        return 2
    return code


if __name__ == "__main__":
    sys.exit(main())
