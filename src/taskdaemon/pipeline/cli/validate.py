"""``taskdaemon validate FILE...``: check pipeline files without running them.

For each file, prints ``OK FILE (N stages)`` or one line per issue (``FILE:LINE: PATH: REASON``;
stages whose handlers fail to resolve alike share one line, see :func:`resolve_issues`).
Unless ``--no-resolve`` is given, every stage's loop type is also resolved to its handler, which
imports the ``module:function`` of Python loop types (with the current directory on
``sys.path``, as ``taskdaemon run`` does), so a typo in a handler shows here and not mid-run.
Exit code: 0 when every file is valid, 2 otherwise.

A valid file may have warnings (``validation_warnings``): one line each,
``FILE:LINE:COLUMN: warning: PATH: REASON [CODE]``, printed before its ``OK`` line, which counts
them. They leave the exit code 0, as ruff's, mypy's and ``terraform validate``'s warnings do,
unless ``--strict`` makes them errors (exit 2, no ``OK`` line), as mypy's ``--strict`` and
kubectl's ``--warnings-as-errors``: a CI job that wants no warning asks for that.

What resolving a ``module:function`` reference checks, and so what it costs: the module
imports without error, the dotted attribute exists, and it is callable, with one argument
where its code says how many it takes (``loops._call_mismatch``); no handler runs. The
module's top-level imports are therefore paid by every ``validate``: a handler module should
import what only a running handler needs (asyncio, subprocess helpers) inside the handler,
as ``examples/loops.py`` does. A reference that does not resolve is one line naming the stage,
the loop type, the reference and the reason.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from taskdaemon.pipeline.cli.refusal import escaped, located, printable
from taskdaemon.pipeline.errors import ConfigError, HandlerImportError, LoopTypeError
from taskdaemon.pipeline.loops import LoopRegistry
from taskdaemon.pipeline.model import Pipeline
from taskdaemon.pipeline.validation_warnings import WARNING_CODES, ValidationWarning
from taskdaemon.pipeline.wording import counted

__all__ = [
    "SHOWN_STAGES",
    "add_working_directory_to_path",
    "load_warned",
    "register",
    "resolve_issues",
    "run_validate",
]


def register(subparsers: Any) -> None:
    """Add the ``validate`` sub-command."""
    parser = subparsers.add_parser(
        "validate",
        help="check pipeline files (exit 0 valid, 2 invalid)",
        description="Check pipeline files without running them: one line per issue "
        "(FILE:LINE: PATH: REASON), or OK FILE (N stages). Warnings "
        "(FILE:LINE:COLUMN: warning: PATH: REASON [CODE]) leave a file valid unless --strict. "
        "Exit code 0 when every file is valid, 2 otherwise.",
        epilog="warning codes: "
        + "; ".join(f"{code}: {meaning}" for code, meaning in WARNING_CODES.items())
        + ". A stage's 'ignore_warnings: [CODE]' suppresses them in the stage, the pipeline's "
        "in the file; in YAML, so does a comment '# taskdaemon: ignore[CODE]' on the "
        "warning's line or its stage's first line.",
    )
    parser.add_argument("files", nargs="+", metavar="FILE", help="pipeline files to check")
    parser.add_argument(
        "--no-resolve",
        action="store_true",
        help="do not import the handlers of Python loop types",
    )
    parser.add_argument(
        "--strict",
        action="store_true",
        help="treat warnings as errors (exit 2)",
    )
    # cli._check_settings, cli._foreign_home
    parser.set_defaults(func=run_validate, reads_settings=False, writes_home=False)


def load_warned(file: str) -> Pipeline:
    """``config.load_pipeline(file)`` for a command that goes on to use the pipeline (``run``,
    ``debug FILE``, ``dag FILE``, ``serve --pipeline``, ``replay --file``): its warnings, if
    any, on stderr, redacted, one line each as ``validate`` prints them, before anything else
    the command writes; stdout stays the command's own (a ``dag --format json`` is JSON alone).
    A warning never stops the command (docs/validation.md). ``ConfigError`` as the loader's."""
    from taskdaemon.pipeline.config import load_pipeline  # noqa: PLC0415

    warnings: list[ValidationWarning] = []
    pipeline = load_pipeline(file, warnings=warnings)
    if warnings:
        print(located("\n".join(map(str, warnings)), file), file=sys.stderr, flush=True)
    return pipeline


def add_working_directory_to_path() -> None:
    """Put the current directory first on ``sys.path`` so ``module:function`` handlers of the
    project (``examples.loops:plan``) import as they do with ``python -m``; a console script's
    ``sys.path`` does not have it."""
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)


#: Stages named in one line before "and N more" (a grouped resolution problem).
SHOWN_STAGES = 3


def resolve_issues(
    pipeline: Pipeline, registry: LoopRegistry, *, from_file: bool = False
) -> list[str]:
    """One line per distinct problem of the stages whose loop type does not resolve to a
    handler, in the order of the first stage that has it.

    ``from_file``: ``pipeline`` is the file ``pipeline.source`` loaded, stage for stage, so
    each line is ``FILE:LINE: PATH: REASON`` as the loader's issues are, ``PATH`` its first
    stage's reference (:func:`reference_path`, ``stages[2].handler``) and ``LINE`` that
    reference's: the file is read again for it, only when a stage fails. The reason names the
    stages only when the path does not: when several share it, or the path is a loop type's
    under ``loops:``. ``replay`` resolves some of a recorded run's stages, whose places in a
    file are not known, and leaves it false: its lines name the stages, ``stage 'a': REASON``.

    Stages that share a problem (the same handler module missing, say) share the line, which
    names the first :data:`SHOWN_STAGES` and counts the rest: a 300-stage file whose handler
    module is not on the path gets one line, not 300 copies of it. A module that fails to
    import is one problem whatever the loop types and functions that name it, and when the
    module's top-level package is not found the line says where handler modules are looked
    for: the usual cause is a run started from another directory than the project's. A module
    missing from a package that was found is a misspelling, not a directory (the loop type's
    error then says which of the package's modules was meant).
    """
    from taskdaemon.pipeline.cli.stage_leftovers import handlers_imported  # noqa: PLC0415

    handlers_imported()  # their top-level code may hold the process's end (``process_end``)
    stages_of: dict[str, list[str]] = {}
    first_of: dict[str, str] = {}  # each problem's first stage's reference, by its path
    for index, stage in enumerate(pipeline.stages):
        before = len(stages_of)
        try:
            registry.resolve(pipeline, stage)
        except HandlerImportError as error:
            problem = f"cannot import module {error.module!r}: {error.cause}"
            if error.missing is not None and error.module.partition(".")[0] == error.missing:
                problem += (
                    f" (handler modules are imported from the current directory, {os.getcwd()},"
                    " and PYTHONPATH)"
                )
            stages_of.setdefault(problem, []).append(stage.name)
        except LoopTypeError as error:
            text = str(error)
            prefix = f"stage {stage.name!r}: "
            if text.startswith(prefix):
                stages_of.setdefault(text[len(prefix) :], []).append(stage.name)
            else:
                stages_of.setdefault(text, [])
        if len(stages_of) > before:
            first_of[next(reversed(stages_of))] = reference_path(pipeline, index)
    source = pipeline.source or "<pipeline>"
    if not from_file:
        return [
            f"{source}: {_stages_phrase(names)}{problem}" for problem, names in stages_of.items()
        ]
    from taskdaemon.pipeline.config import field_lines  # noqa: PLC0415 - a failure only

    lines = field_lines(source, first_of.values()) if stages_of else {}
    found = []
    for problem, names in stages_of.items():
        path = first_of[problem]
        named = len(names) == 1 and path.startswith("stages[")  # the path names the stage
        who = "" if named else _stages_phrase(names)
        found.append(f"{source}{_at(lines.get(path))}: {path}: {who}{problem}")
    return found


def reference_path(pipeline: Pipeline, index: int) -> str:
    """The field path of what stage ``index`` of ``pipeline`` runs, as ``LoopRegistry`` resolves
    it: its ``handler`` (loop type ``python``) or ``command``, else its loop type's
    declaration under ``loops:``, else its ``loop`` (a registered type, or none)."""
    stage = pipeline.stages[index]
    if stage.loop in ("python", "command"):
        return f"stages[{index}].{'handler' if stage.loop == 'python' else 'command'}"
    declared = pipeline.loops.get(stage.loop)
    if declared is not None:
        return f"loops.{stage.loop}.{'handler' if declared.handler else 'command'}"
    return f"stages[{index}].loop"


def _at(line: int | None) -> str:
    return f":{line}" if line is not None else ""


def _stages_phrase(names: list[str]) -> str:
    """``stage 'a': ``, ``stages 'a', 'b': `` or ``stages 'a', 'b', 'c' and 7 more: ``."""
    if not names:
        return ""
    if len(names) == 1:
        return f"stage {names[0]!r}: "
    shown = ", ".join(repr(name) for name in names[:SHOWN_STAGES])
    more = len(names) - SHOWN_STAGES
    return f"stages {shown}{f' and {more} more' if more > 0 else ''}: "


def load_for_run(
    file: str, request: Mapping[str, Any], approve: Sequence[str], command: str
) -> tuple[Pipeline, LoopRegistry] | None:
    """What ``run`` and ``debug FILE`` do before their run starts: declare the secrets of the
    environment and of ``request`` (the engine would declare them at its start; any line below
    would be printed before; a request of too many is refused), load ``file``, put the working
    directory on ``sys.path``, resolve the handlers, check ``--approve`` and that the request
    has every key a stage certainly reads (these refusals headed ``taskdaemon COMMAND:``).
    The pipeline and its registry, or None after printing why not, each line redacted."""
    # Lazy: ``validate`` itself reads no secret and needs no approval policy.
    from taskdaemon.pipeline.cli.approval_policy import check_approvals  # noqa: PLC0415
    from taskdaemon.pipeline.cli.inputs import missing_request_inputs  # noqa: PLC0415
    from taskdaemon.pipeline.redaction import redact_texts  # noqa: PLC0415
    from taskdaemon.pipeline.secret_values import (  # noqa: PLC0415
        declare_secrets,
        remember_environment_secrets,
    )

    remember_environment_secrets()
    # Declared for the process, which runs this one request: the engine declares it again.
    if (refusal := declare_secrets(request, "request")) is not None:
        print(f"taskdaemon {command}: the run's request holds {refusal}", file=sys.stderr)
        return None
    try:
        pipeline = load_warned(file)  # its warnings shown, never a refusal: the run goes on
    except ConfigError as error:
        print(located(str(error), file), file=sys.stderr, flush=True)
        return None
    add_working_directory_to_path()
    registry = LoopRegistry.default()
    issues = redact_texts(
        resolve_issues(pipeline, registry, from_file=True)
        + check_approvals(pipeline, approve, command)
    )
    missing = missing_request_inputs(pipeline, request)
    if missing is not None:  # not redacted: ``--input token=VALUE`` would read as a secret
        issues.append(f"taskdaemon {command}: {missing}")
    if issues:  # redacted above, each issue; escaped here, the missing inputs' line too
        print(escaped("\n".join(issues)), file=sys.stderr, flush=True)
        return None
    return pipeline, registry


def run_validate(args: argparse.Namespace) -> int:
    """Validate every file of ``args.files``; returns the exit code."""
    from taskdaemon.pipeline.config import load_pipeline  # noqa: PLC0415 - only this command

    registry = LoopRegistry.default()
    if not args.no_resolve:
        add_working_directory_to_path()
    code = 0
    for file in args.files:
        warnings: list[ValidationWarning] = []
        try:
            pipeline = load_pipeline(file, warnings=warnings)
        except ConfigError as error:
            print(located(str(error), file), flush=True)
            code = 2
            continue
        issues = [] if args.no_resolve else resolve_issues(pipeline, registry, from_file=True)
        if issues:
            print(printable("\n".join(issues)), flush=True)
            code = 2
            continue
        if warnings:
            print(located("\n".join(map(str, warnings)), file), flush=True)
            if args.strict:
                code = 2
                continue
        count = counted(len(pipeline.stages), "stage")
        if warnings:
            count += f", {counted(len(warnings), 'warning')}"
        print(printable(f"OK {file} ({count})"), flush=True)
    return code
