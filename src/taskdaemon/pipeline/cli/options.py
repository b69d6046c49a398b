"""Options several sub-commands declare, each defined once so that their help, default and
checks cannot drift apart between commands.

Import-light: every parser is built before any command runs
(``tests/pipeline_cli_startup_test.py``).
"""

from __future__ import annotations

import argparse
import math

__all__ = ["INTERVAL_RANGE", "add_input_options", "add_interval_option", "poll_interval"]

#: ``--interval`` bounds, in seconds: polls faster than 20 a second load the span source (a
#: remote one too) for nothing a reader can see; slower than a minute, a follower looks hung.
INTERVAL_RANGE = (0.05, 60.0)


def poll_interval(text: str) -> float:
    """``--interval``'s value: seconds within :data:`INTERVAL_RANGE` (argparse type)."""
    low, high = INTERVAL_RANGE
    try:
        seconds = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if math.isnan(seconds) or not low <= seconds <= high:
        raise argparse.ArgumentTypeError(f"must be {low:g} to {high:g} seconds, not {text!r}")
    return seconds


def add_interval_option(parser: argparse.ArgumentParser, polled: str) -> None:
    """``--interval SECONDS``: how often the command polls ``polled`` (``logs``, ``watch``)."""
    low, high = INTERVAL_RANGE
    parser.add_argument(
        "--interval",
        type=poll_interval,
        default=0.5,
        metavar="SECONDS",
        help=f"seconds between polls of {polled} (default 0.5; {low:g} to {high:g})",
    )


def add_input_options(parser: argparse.ArgumentParser) -> None:
    """``--input KEY=VALUE`` (repeatable) and ``--input-file FILE``: the request of a run
    (``run``, ``debug``, ``serve``, ``replay``; ``cli/inputs.py`` reads them)."""
    parser.add_argument(
        "--input",
        "-i",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a request field; VALUE is JSON when it parses, else text "
        "(-i goal='ship it', -i n=3, -i tags='[\"a\"]'); repeatable",
    )
    parser.add_argument(
        "--input-file",
        metavar="FILE",
        help="request fields from a JSON or YAML mapping; --input fields go on top",
    )
