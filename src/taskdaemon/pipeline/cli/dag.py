"""``taskdaemon dag``: draw a pipeline's DAG as DOT, JSON, Mermaid or SVG.

::

    taskdaemon dag FILE [--format dot|json|mermaid|svg] [-o OUT]      # the definition
    taskdaemon dag --run RUN [--source URL] [--format ...] [-o OUT]  # a run, from spans alone
    taskdaemon dag FILE --run RUN ...                              # a run over its definition
    taskdaemon dag [FILE] --run RUN --watch -o OUT                 # OUT rewritten live

A run is rebuilt from its stored spans through the span source (``--source``, else
``TASKDAEMON_SPAN_SOURCE``, else ``sqlite:///$TASKDAEMON_HOME/spans.db``). ``--watch`` follows
the run (polling the source) and rewrites OUT on every change until the run ends, for editors
with a live preview; each write goes to a temporary file beside OUT, renamed over it, so a
reader never sees half a file. ``svg`` is the DOT drawn by Graphviz's ``dot`` (as the API's
``?format=svg``), within ``graphviz.DAG_DOT_TIMEOUT``; without Graphviz it is one line, exit 1.
Exit codes: 0 drawn, 1 the run or its source could not be read,
2 invalid arguments, pipeline file or settings; ``--watch`` stopped by Ctrl-C 130, SIGTERM 143,
SIGHUP 129, as ``watch`` stops (``cli/sigterm.py``): with no line, OUT whole (a write under way
leaves no temporary file beside it, as SIGTERM's default action did).
"""

from __future__ import annotations

import argparse
import functools
import sys
from pathlib import Path
from typing import Any

from taskdaemon.pipeline.cli.options import add_source_option, any_case, source_exit_code
from taskdaemon.pipeline.cli.output_file import (
    add_output_option,
    output_format,
    output_target,
    write_atomically,
    write_output,
)
from taskdaemon.pipeline.cli.refusal import located, printable, refuse, say
from taskdaemon.pipeline.errors import ConfigError, PipelineError, SpanSourceError
from taskdaemon.pipeline.model import Pipeline
from taskdaemon.pipeline.records import RunRecord
from taskdaemon.pipeline.visualization import DagSnapshot, VisualizationFormat, visualize

__all__ = ["register", "run_dag"]

#: The format drawn by Graphviz rather than by a renderer of ``visualization``.
SVG = "svg"
#: What ``--format`` takes, in any case (``options.any_case``).
_FORMATS = (*(fmt.value for fmt in VisualizationFormat), SVG)
#: The format ``-o FILE``'s suffix chooses when no ``--format`` is given (``cli/output_file.py``).
_BY_SUFFIX = {".svg": SVG, ".dot": "dot", ".gv": "dot", ".json": "json", ".mmd": "mermaid"}
#: The suffix of the file ``-o FOLDER/`` gets: ``RUN.svg``, or ``FILE``'s stem for a definition.
_SUFFIX = {SVG: ".svg", "dot": ".dot", "json": ".json", "mermaid": ".mmd"}


def register(subparsers: Any) -> None:
    """Add the ``dag`` sub-command."""
    parser = subparsers.add_parser(
        "dag",
        help="draw a pipeline DAG (definition or run) as DOT, JSON, Mermaid or SVG",
        description="Draw a pipeline's DAG as DOT, JSON, Mermaid or SVG (drawn by Graphviz's "
        "dot): the definition of FILE, a "
        "run rebuilt from its stored spans (--run), or a run over its definition (both). "
        "Exit codes: 0 drawn, 1 the run or its source could not be read, 2 invalid arguments, "
        "pipeline file or settings.",
    )
    parser.add_argument(
        "file", metavar="FILE", nargs="?", help="pipeline file (.yaml, .yml, .json, .toml)"
    )
    parser.add_argument("--run", metavar="RUN", help="overlay this run, rebuilt from spans")
    add_source_option(parser)
    parser.add_argument(
        "--at", metavar="T", help="with --run: the run as it stood T after its start (12.5s)"
    )
    parser.add_argument(
        "--format",
        "-f",
        type=any_case(_FORMATS),
        choices=_FORMATS,
        help="output format; svg is the DOT drawn by Graphviz's dot (default: -o FILE's suffix, "
        ".svg .dot .gv .json .mmd, else dot)",
    )
    add_output_option(parser, "RUN.FORMAT, or FILE's stem.FORMAT for a definition")
    parser.add_argument(
        "--watch", action="store_true", help="with --run and -o: rewrite FILE on every change"
    )
    # Settings are checked by --run alone (_span_source): a file is drawn without any.
    parser.set_defaults(func=run_dag, reads_settings=False, writes_home=False)


def _span_source(source_url: str | None) -> str:
    """``--source``, else the settings' source; every setting is checked here, as other
    commands check them at start (``cli._check_settings``): only ``--run`` reads any."""
    from taskdaemon.pipeline.settings import load_settings  # noqa: PLC0415

    settings = load_settings()
    return source_url or settings.span_source


def _load_run(run_id: str, source_url: str | None, at: str | None = None) -> RunRecord:
    # Imported here: drawing a definition needs no span source (nor its HTTP client).
    from taskdaemon.pipeline.tracking.sources import open_source  # noqa: PLC0415

    source = open_source(_span_source(source_url))
    try:
        if at is None:
            return source.get_run(run_id)
        from taskdaemon.pipeline.replay.timeline import run_at  # noqa: PLC0415

        return run_at(source.get_trace(run_id), at)
    finally:
        source.close()


def run_dag(args: argparse.Namespace) -> int:
    """Draw the DAG named by ``args``; returns the exit code."""
    args.format = output_format(args.format, args.output, _BY_SUFFIX, VisualizationFormat.DOT.value)
    if args.file is None and args.run is None:
        return refuse("dag", 2, "give a pipeline FILE, --run RUN, or both")
    for option, value in (("--source", args.source), ("--at", args.at)):
        if value is not None and args.run is None:
            return refuse("dag", 2, f"{option} needs --run")
    if args.watch and (args.run is None or args.output is None):
        return refuse("dag", 2, "--watch needs --run and -o FILE")
    if args.watch and args.at is not None:
        return refuse(
            "dag", 2, "--watch follows the run as it goes; it cannot be combined with --at"
        )
    pipeline: Pipeline | None = None
    run: RunRecord | None = None
    try:
        if args.file is not None:
            from taskdaemon.pipeline.cli.validate import load_warned  # noqa: PLC0415

            pipeline = load_warned(args.file)
        if args.watch:
            import asyncio  # noqa: PLC0415 (drawing a file once needs no event loop)

            from taskdaemon.pipeline.cli.sigterm import (  # noqa: PLC0415
                sigterm_raises,
                woken_by_signals,
            )

            with sigterm_raises():
                asyncio.run(
                    woken_by_signals(
                        _watch(
                            pipeline,
                            args.run,
                            args.source,
                            args.format,
                            args.output,
                            file=args.file,
                        )
                    )
                )
            return 0
        if args.run is not None:
            run = _load_run(args.run, args.source, args.at)
    except ConfigError as exc:  # the file's issues as validate and run write them, one a line
        said = printable(str(exc)) if args.file is None else located(str(exc), args.file)
        print(said, file=sys.stderr, flush=True)
        return 2
    except ValueError as exc:
        return refuse("dag", 2, str(exc))
    except (PipelineError, SpanSourceError) as exc:
        return refuse("dag", source_exit_code(exc), str(exc))
    except OSError as exc:
        return refuse("dag", 1, f"cannot write {args.output}: {exc.strerror or exc}")
    except KeyboardInterrupt as stop:
        from taskdaemon.pipeline.cli.sigterm import exit_code  # noqa: PLC0415

        return exit_code(stop)
    if pipeline is not None and run is not None and run.pipeline != pipeline.name:
        return refuse("dag", 2, _other_pipeline(run, pipeline, args.file))
    try:
        text = _drawn(pipeline, args.format, run)
    except PipelineError as exc:  # Graphviz missing, failing or too slow
        return refuse("dag", 1, str(exc))
    named = run.run_id if run is not None else Path(str(args.file)).stem
    problem = write_output(text, output_target(args.output, named + _SUFFIX[args.format]))
    if problem:
        return refuse("dag", 1, problem)
    if args.format == VisualizationFormat.MERMAID:
        from taskdaemon.pipeline.visualization._mermaid import (  # noqa: PLC0415
            beyond_default_limits,
        )

        refused = beyond_default_limits(text)
        if refused is not None:
            say("dag", f"note: {refused}")
    if run is not None:
        # The drawing has no place for these that every format keeps: said beside it.
        from taskdaemon.pipeline.cli.run_tables import dropped_note, not_read_note  # noqa: PLC0415

        for word, note in (("not read", not_read_note(run)), ("dropped", dropped_note(run))):
            if note is not None:
                say("dag", f"{word}: {note}")
    return 0


def _drawn(what: Pipeline | DagSnapshot | None, fmt: str, run: RunRecord | None = None) -> str:
    """``what`` (with ``run`` over it) in the format ``fmt``: a renderer's text, or for
    ``svg`` Graphviz's drawing of the DOT text (``graphviz.GraphvizError`` when it cannot)."""
    if fmt != SVG:
        return visualize(what, VisualizationFormat(fmt), run=run)
    from taskdaemon.pipeline.graphviz import DAG_DOT_TIMEOUT, dot_to_svg  # noqa: PLC0415

    dot = visualize(what, VisualizationFormat.DOT, run=run)
    return dot_to_svg(dot, timeout=DAG_DOT_TIMEOUT).decode()


def _other_pipeline(run: RunRecord, pipeline: Pipeline, file: str | None) -> str:
    """Why a run is not drawn over FILE: drawn together they would mix the run's stages with
    the file's name and loop labels."""
    return (
        f"run {run.run_id} is a run of pipeline {run.pipeline!r}, not of {pipeline.name!r} ({file})"
    )


async def _watch(
    pipeline: Pipeline | None,
    run_id: str,
    source_url: str | None,
    fmt: str,
    output: str,
    *,
    file: str | None = None,
) -> None:
    from taskdaemon.pipeline.tracking.sources import open_source  # noqa: PLC0415
    from taskdaemon.pipeline.visualization import watch_stored_run  # noqa: PLC0415

    source = open_source(_span_source(source_url))
    try:
        resolve = getattr(source, "resolve_run_id", None)
        full_id = resolve(run_id) if callable(resolve) else run_id
        async for snapshot in watch_stored_run(
            source, full_id, pipeline=pipeline, on_quiet=functools.partial(say, "dag")
        ):
            run = snapshot.run
            if pipeline is not None and run is not None and run.pipeline != pipeline.name:
                raise ValueError(_other_pipeline(run, pipeline, file))
            target = str(output_target(output, full_id + _SUFFIX[fmt]))
            try:
                write_atomically(Path(target), _drawn(snapshot, fmt))
            except OSError as exc:  # the file named, not the folder -o named
                raise PipelineError(f"cannot write {target}: {exc.strerror or exc}") from exc
    finally:
        source.close()
