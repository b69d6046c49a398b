"""Options several sub-commands declare, each defined once so that their help, default and
checks cannot drift apart between commands.

Import-light: every parser is built before any command runs
(``tests/pipeline_cli_startup_test.py``).
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Collection
from pathlib import Path

from taskdaemon.pipeline.ascii_number import ascii_only
from taskdaemon.pipeline.cli.terminal_width import summary_width
from taskdaemon.pipeline.home import home_directory
from taskdaemon.pipeline.quoting import quote
from taskdaemon.pipeline.span_source_forms import SPAN_SOURCE_USAGE, unknown_scheme

__all__ = [
    "INTERVAL_RANGE",
    "MAX_LIST",
    "WHEN_FORMAT",
    "add_input_options",
    "add_interval_option",
    "add_pipeline_filter",
    "add_server_options",
    "add_source_option",
    "add_wide_option",
    "add_workspace_option",
    "any_case",
    "cannot_serve",
    "pipeline_name",
    "poll_interval",
    "port_number",
    "source_exit_code",
    "span_source",
    "table_width",
    "whole_number",
]


def any_case(choices: Collection[str]) -> Callable[[str], str]:
    """The argparse type of an option of ``choices``: one given in any case (``-f JSON``) is
    taken as its lower-case name, as ``-o FILE``'s suffix and ``logs --level`` are read; any
    other value is left as given for argparse to refuse. Not lower-cased: the refusal quotes
    it, redacted by the secret values it is compared with (``DB_PASSWORD``'s, in its case)."""

    def chosen(value: str) -> str:
        lower = value.lower()
        return lower if lower in choices else value

    return chosen


#: The largest ``--limit`` of ``runs list`` and ``report``: far past any history read from a
#: terminal, and within SQLite's integers (a larger one was an OverflowError of the store).
MAX_LIST = 1_000_000

#: How ``--since``, ``--until`` (``runs list``, ``report``) are written (``durations.parse_when``).
WHEN_FORMAT = (
    "an age with its unit (90s, 1h, 7d) or an ISO 8601 time (2025-01-31T12:00, local unless it "
    "ends in Z)"
)

#: ``--interval`` bounds, in seconds: polls faster than 20 a second load the span source (a
#: remote one too) for nothing a reader can see; slower than a minute, a follower looks hung.
INTERVAL_RANGE = (0.05, 60.0)


def whole_number(text: str) -> int:
    """A count option's value (argparse type): bounds are the command's to check."""
    try:
        return int(ascii_only(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {quote(text)}") from None


def poll_interval(text: str) -> float:
    """``--interval``'s value: seconds within :data:`INTERVAL_RANGE` (argparse type)."""
    low, high = INTERVAL_RANGE
    try:
        seconds = float(ascii_only(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {quote(text)}") from None
    if math.isnan(seconds) or not low <= seconds <= high:
        raise argparse.ArgumentTypeError(f"must be {low:g} to {high:g} seconds, not {quote(text)}")
    return seconds


def add_interval_option(parser: argparse.ArgumentParser) -> None:
    """``--interval SECONDS``: how often a follower polls the span source (``logs --follow``,
    ``watch``)."""
    low, high = INTERVAL_RANGE
    parser.add_argument(
        "--interval",
        type=poll_interval,
        default=0.5,
        metavar="SECONDS",
        help=f"seconds between polls of the span source (default 0.5; {low:g} to {high:g})",
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


def span_source(text: str) -> str:
    """``--source``'s value, stripped, its scheme known (argparse type): an unknown one is a
    usage error in every command, before anything is opened. The rest of the URL is checked
    where it is opened. Empty: the default source. The error names the scheme only: a URL may
    carry credentials."""
    url = text.strip()
    if url and unknown_scheme(url):
        scheme = url.split("://", 1)[0] if "://" in url else ""
        what = f"unknown span source scheme {quote(scheme)}" if scheme else "no scheme"
        raise argparse.ArgumentTypeError(f"{what}: use {SPAN_SOURCE_USAGE}")
    return url


def source_exit_code(error: Exception) -> int:
    """The exit code for a span source that cannot be used, the same in every command: 2 for a
    URL that names no source (``SpanSourceURLError``: the command line's mistake), 1 for a
    source that cannot answer (unreachable, missing, damaged)."""
    from taskdaemon.pipeline.errors import SpanSourceURLError  # noqa: PLC0415 - start-up time

    return 2 if isinstance(error, SpanSourceURLError) else 1


def add_source_option(parser: argparse.ArgumentParser, *, forms: str = SPAN_SOURCE_USAGE) -> None:
    """``--source URL``: the span source a command reads; ``forms``, the URL forms it takes
    where not every source (``retention``: the embedded store alone)."""
    parser.add_argument(
        "--source",
        type=span_source,
        metavar="URL",
        help=f"span source: {forms} (default TASKDAEMON_SPAN_SOURCE, else the embedded "
        "store, $TASKDAEMON_HOME/spans.db)",
    )


def add_workspace_option(parser: argparse.ArgumentParser) -> None:
    """``--workspace DIR``: where a run's working directory is made (``run``, ``debug``)."""
    parser.add_argument(
        "--workspace",
        metavar="DIR",
        help="each run works in DIR/<run_id> (default: $TASKDAEMON_HOME/workspaces)",
    )


def workspace_root(args: argparse.Namespace) -> Path:
    """Where the runs of a command with ``--workspace`` work, absolute: DIR, else
    ``$TASKDAEMON_HOME/workspaces`` (``run``, ``debug`` and ``replay`` alike)."""
    return (Path(args.workspace) if args.workspace else home_directory() / "workspaces").absolute()


def port_number(text: str) -> int:
    """``--port``'s value: 0 (any free port) to 65535 (argparse type)."""
    try:
        port = int(ascii_only(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {quote(text)}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"must be 0 to 65535, not {quote(text)}")
    return port


def add_server_options(parser: argparse.ArgumentParser, default_port: str) -> None:
    """``--host HOST`` and ``--port PORT`` of a command that serves HTTP (``serve``, ``ui``);
    ``default_port`` says where the port comes from when none is given."""
    parser.add_argument(
        "--host",
        metavar="HOST",
        help="address to bind (default TASKDAEMON_METRICS_HOST, else 127.0.0.1; beyond "
        "loopback the API needs TASKDAEMON_API_TOKEN)",
    )
    parser.add_argument(
        "--port",
        type=port_number,
        metavar="PORT",
        help=f"port to bind, 0 for any free one (default {default_port})",
    )


def cannot_serve(host: str, port: int, error: OSError) -> str:
    """Why a server could not start on ``HOST:PORT`` (the port in use, a host that is not this
    machine's): one wording for ``serve``, ``ui`` and ``run --serve``."""
    return f"cannot serve on {host}:{port}: {error.strerror or error}"


def pipeline_name(text: str) -> str:
    """``--pipeline``'s value (argparse type): text that is UTF-8, and not empty. A byte that
    is not UTF-8 (a name typed in another encoding) reached the store's query as a lone
    surrogate: a UnicodeEncodeError traceback. No pipeline is named ``''``: ``-p "$P"`` with
    ``P`` unset was read as a pipeline the source knows no run of, exit 0, where the mistake is
    the command line's."""
    if not text:
        raise argparse.ArgumentTypeError("empty: name a pipeline, or leave --pipeline out")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # repr shows the byte as \udcXX
        raise argparse.ArgumentTypeError(f"not UTF-8 text: {quote(text)}") from None
    return text


def add_pipeline_filter(parser: argparse.ArgumentParser) -> None:
    """``--pipeline/-p NAME``: only the runs of one pipeline (``runs list``, ``report``)."""
    parser.add_argument(
        "--pipeline",
        "-p",
        type=pipeline_name,
        metavar="P",
        help="only this pipeline's runs; one the source knows no run of (a typo) is refused "
        "with a 'did you mean' (exit 1)",
    )


def add_wide_option(parser: argparse.ArgumentParser) -> None:
    """``--wide`` (``runs list``, ``runs show``, ``report``): the whole table on a terminal."""
    parser.add_argument(
        "--wide",
        action="store_true",
        help="on a terminal narrower than the table, print it whole anyway (full run ids, "
        "uncut names): a pipe or a file always gets it whole",
    )


def table_width(args: argparse.Namespace) -> int | None:
    """The width a history table is fitted to: the terminal's, None for ``--wide``, a pipe or
    a file."""
    if getattr(args, "wide", False):
        return None
    return summary_width()
