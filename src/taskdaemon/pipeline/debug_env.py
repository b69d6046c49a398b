"""What the debugger's ``env`` shows of a paused execution: the environment its stage will see
(at a failure pause, the one it ran with), redacted and bounded (docs/debugging.md, "The env
command").

Decided, and why:

* A **command** stage (``Pipeline.runs_command``) gets what ``command_loop`` gives it: the
  variables taskdaemon sets (``TASKDAEMON_INPUT_<NAME>`` made from the inputs it will run
  with, an override included, and ``TASKDAEMON_RUN_ID``, ``_PIPELINE``, ``_STAGE``,
  ``_ATTEMPT``, ``_INSTANCE``), the run's workspace as working directory and its command, on
  top of this process's environment (less ``opentelemetry-instrument``'s bootstrap:
  ``command_env``). ``TRACEPARENT`` and ``TASKDAEMON_SPAWN_TOKEN`` are made as the attempt
  starts: named, not shown (nothing holds them yet).
* A **handler** stage runs in this process: it sees this process's environment, and its inputs
  as ``ctx.inputs`` (``inputs STAGE``), not as variables.
* The inherited environment is shown whole, by name and value, as a user debugging "works on my
  machine" needs it, but **redacted as every other answer is** (docs/redaction.md): by key
  (``TASKDAEMON_REDACT_PATTERNS``: ``API_TOKEN``, ``DB_PASSWORD``), by shape, and by the
  environment's secret values; and only then cut, or a long secret's first characters would be
  shown and no longer found. ``PWD`` and ``OLDPWD`` are directories, not secrets, though
  ``pwd`` is a secret key word (``db_pwd``): shown by value, redacted by shape only, as
  ``secret_values`` leaves them out. A command's shell sets ``PWD`` to its working directory
  (the run's workspace), so that is the ``PWD`` shown for it; it read ``[REDACTED]``.
* A variable's **name** is masked as any text is, by shape and by the environment's secret
  values (``AKIA…``, ``ghp_…`` are valid names): a stage name is kept as it is only where it
  is the key that joins the views (a metric label, the store's ``logs.stage``, a stage to
  name at the prompt: docs/redaction.md), and masked where it is text, as inside a span; a
  variable's name in this answer joins nothing and no command takes it, so it is text. Names
  masked alike are numbered (``[REDACTED] #2``), so the count of variables shown stays true.
* **Bounded**: at most :data:`MAX_VARIABLES` inherited variables (by name; the answer says how
  many there are), each name and value cut to :data:`MAX_VALUE` characters, the command too. A
  server's environment may be large, and the answer goes to a terminal and over HTTP.
  Terminal controls in a value are the prompt's to escape (``cli/_debug_prompt.py``), as
  everything else it prints; JSON escapes them over HTTP.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

from taskdaemon.pipeline.command_env import command_environment
from taskdaemon.pipeline.command_loop import input_environment
from taskdaemon.pipeline.ellipsis import cut
from taskdaemon.pipeline.redaction import masked_names, redact, redact_text
from taskdaemon.pipeline.terminal_text import shown

if TYPE_CHECKING:
    from taskdaemon.pipeline.engine import PausedExecution
    from taskdaemon.pipeline.model import Pipeline

__all__ = ["AT_START", "MAX_VALUE", "MAX_VARIABLES", "environment_lines", "stage_environment"]

#: Inherited variables shown at most (the first by name).
MAX_VARIABLES: Final = 200
#: Characters of a name, a value or the command shown at most.
MAX_VALUE: Final = 256
#: What a command stage gets only as its attempt starts.
AT_START: Final = ("TRACEPARENT", "TASKDAEMON_SPAWN_TOKEN")
#: Inherited variables that name directories: shown, though ``pwd`` is a secret key word.
_DIRECTORIES: Final = frozenset({"PWD", "OLDPWD"})


def stage_environment(
    pipeline: Pipeline,
    workspace: str | None,
    paused: PausedExecution,
    patterns: tuple[str, ...],
    environ: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The ``env`` answer for ``paused`` (module docstring), redacted with ``patterns``; JSON-able.
    ``environ`` is this process's environment unless given."""
    stage = pipeline.stage(paused.stage)
    command = pipeline.runs_command(stage)
    inherited = command_environment() if environ is None else command_environment(environ)
    names = sorted(inherited)
    kept = redact({name: inherited[name] for name in names[:MAX_VARIABLES]}, patterns)
    for name in _DIRECTORIES & kept.keys():
        kept[name] = redact_text(inherited[name])
    if command and "PWD" in kept and workspace:
        kept["PWD"] = workspace
    kept = masked_names(kept)
    answer: dict[str, Any] = {
        "stage": paused.stage,
        "task_run_id": paused.task_run_id,
        "kind": "command" if command else "handler",
        "command": _bounded(redact_text(stage.command)) if command and stage.command else None,
        "cwd": workspace if command else None,
        "set": {},
        "at_start": list(AT_START) if command else [],
        "inherited": _bounded_map(kept),
        "inherited_count": len(names),
    }
    if command:
        own = input_environment(paused.inputs)
        own.update(
            {
                "TASKDAEMON_RUN_ID": paused.run_id,
                "TASKDAEMON_PIPELINE": paused.pipeline,
                "TASKDAEMON_STAGE": paused.stage,
                "TASKDAEMON_ATTEMPT": str(paused.attempt),
                "TASKDAEMON_INSTANCE": str(paused.instance),
            }
        )
        answer["set"] = _bounded_map(masked_names(redact(own, patterns)))
    return answer


def environment_lines(answer: Mapping[str, Any]) -> list[str]:
    """The prompt's ``env``: ``answer`` (:func:`stage_environment`) as lines, each value's line
    breaks and other controls escaped (a value is one line, whatever it holds)."""
    lines = [f"{answer['task_run_id']} runs a {answer['kind']}"]
    if answer["kind"] == "command":
        lines[0] += f": {shown(answer['command'] or '')}"
        lines.append("  cwd " + shown(answer["cwd"] or "(the process working directory)"))
        lines.append("  set by taskdaemon:")
        lines += [f"    {shown(name)}={shown(value)}" for name, value in answer["set"].items()]
        lines.append(f"  set as the attempt starts: {', '.join(answer['at_start'])}")
    else:
        lines[0] += " in this process: its inputs are ctx.inputs (inputs STAGE), not variables"
    inherited, count = answer["inherited"], answer["inherited_count"]
    more = f"; the first {len(inherited)} by name" if count > len(inherited) else ""
    lines.append(f"  inherited ({count} variables{more}):")
    lines += [f"    {shown(name)}={shown(value)}" for name, value in inherited.items()]
    return lines


def _bounded(text: str) -> str:
    return cut(text, MAX_VALUE)


def _bounded_map(variables: Mapping[str, Any]) -> dict[str, str]:
    return {_bounded(str(name)): _bounded(str(value)) for name, value in variables.items()}
