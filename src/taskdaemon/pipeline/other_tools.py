"""The keys other tools' pipeline files use, and the line a taskdaemon file says the same with.

A newcomer from GitHub Actions (``needs``, ``if``, ``run``), GitLab CI (``when``, ``script``,
``rules``), Airflow (``upstream``, ``retries``, ``on_failure_callback``), Prefect (``wait_for``),
Dagster or Argo (``depends``, ``when``) writes those keys first. ``config_reader`` reports each
as an unknown key; its "did you mean" would point at an unrelated key (``script`` at
``description``) and the list of keys does not say how. :func:`stage_key_hint` and
:func:`trigger_kind_hint` give the line to write instead, with the stage named in the value
where the value names one (``on_success: build`` reads ``write on_completion: {stage: 'build'}``).

Decision: ``on_failure`` points at an ``on_condition`` on the stage's status with
``error_strategy: continue``, the one way a stage runs only when another failed (under ``fail``
the run stops at the failure and skips it); ``success_only: false`` runs it however it ends.
"""

from __future__ import annotations

import re
from typing import Any, Final

from taskdaemon.pipeline.hint_syntax import Syntax, Word, setting

__all__ = ["ORDERING_KEYS", "completion_body_hint", "stage_key_hint", "trigger_kind_hint"]

_STAGE_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]{0,59}", re.ASCII)  # a name as the model's, short

#: Stage keys other tools order their steps with (GitHub Actions' ``needs``, Airflow's and
#: Compose's ``depends_on``, Airflow's ``upstream``, Prefect's ``wait_for``, Argo's ``depends``).
_AFTER_KEYS: Final = frozenset(
    {
        "after",
        "depends",
        "depends_on",
        "dependencies",
        "needs",
        "requires",
        "run_after",
        "upstream",
        "upstream_tasks",
        "wait_for",
    }
)
_AFTER: Final = "a stage runs after another by a trigger: "
_CALLBACK_KEYS: Final = frozenset(
    {"on_success", "on_failure", "on_failure_callback", "on_success_callback"}
)
_CONDITION_KEYS: Final = ("when", "if", "condition", "rules", "only_if", "run_if")
_GITLAB_WHEN: Final = frozenset({"always", "never", "on_success", "on_failure", "delayed"})
_CONDITION: Final = "a stage runs on a condition by a trigger: "
_COMMAND_KEYS: Final = frozenset(("script", "run", "cmd", "shell", "bash_command"))
_ENV_KEYS: Final = frozenset(("env", "environment", "variables"))
_CALLBACK: Final = "a stage that runs after another names it in its own triggers: "
#: The stage keys whose hint is the trigger to write: a stage with one and no ``triggers`` is
#: not told how to make an entry stage as well.
ORDERING_KEYS: Final = _AFTER_KEYS | _CALLBACK_KEYS
#: What an ``on_completion`` body's unknown key about the upstream stage's result gets.
_COMPLETION_BODY_HINT: Final = (
    "on_completion fires when the stage succeeds; success_only: false fires however it ends"
)
_COMPLETION_BODY_KEYS: Final = frozenset({"status", "when", "state", "result", "trigger_rule"})
_ALWAYS: Final = ("on_complete", "on_completed", "on_finish", "on_done", "always", "finally")
_SCHEDULE_HINT: Final = (
    "a schedule is not a trigger: taskdaemon serve --pipeline FILE --every SECONDS starts a "
    "run every SECONDS"
)


def stage_key_hint(key: str, value: Any, syntax: Syntax) -> str | None:
    """The hint for a stage's unknown ``key`` that another tool uses, or None, in the file's
    ``syntax``; for ``retries: N`` it names the attempts (``retry: {max_attempts: N + 1}``)."""
    if key in _AFTER_KEYS:
        names = [value] if isinstance(value, str) else value if isinstance(value, list) else []
        if not 0 < len(names) <= 3 or not all(map(_is_stage_name, names)):
            return _AFTER + _triggers("on_completion", "stage", Word("NAME"), syntax)
        triggers = [{"on_completion": {"stage": name}} for name in names]
        both = setting("trigger_mode", Word("all"), syntax)
        more = f", with {both} to wait for all" if len(names) > 1 else ""
        return f"write {setting('triggers', triggers, syntax)}{more}"
    if key == "when" and value == "manual":  # GitLab's approval
        return "write " + _triggers("manual", "approval_required", True, syntax)
    if key in _CONDITION_KEYS and isinstance(value, str) and value not in _GITLAB_WHEN:
        return "write " + _triggers("on_condition", "expression", value, syntax)
    if key in _CONDITION_KEYS:
        return _CONDITION + _triggers("on_condition", "expression", Word("CEL"), syntax)
    if key in ("retries", "max_retries"):
        attempts = value + 1 if type(value) is int and 0 <= value < 1000 else Word("N")
        retry = setting("retry", {"max_attempts": attempts}, syntax)
        return f"write {retry}, the first attempt included"
    if key in _COMMAND_KEYS:
        return "did you mean 'command'?"
    if key in _ENV_KEYS:
        inputs = setting("inputs", {"NAME": Word("CEL")}, syntax)
        return f"a command gets its inputs as TASKDAEMON_INPUT_<NAME> variables: {inputs}"
    if key in _CALLBACK_KEYS:
        return _CALLBACK + _triggers("on_completion", "stage", Word("NAME"), syntax)
    return None


def _triggers(kind: str, field: str, value: object, syntax: Syntax) -> str:
    """``triggers: [{KIND: {FIELD: VALUE}}]`` in the file's syntax."""
    return setting("triggers", [{kind: {field: value}}], syntax)


def completion_body_hint(key: str) -> str | None:
    """The hint for an ``on_completion`` body's unknown ``key`` (``status: failure``)."""
    return _COMPLETION_BODY_HINT if key in _COMPLETION_BODY_KEYS else None


def trigger_kind_hint(kind: str, body: Any, syntax: Syntax) -> str | None:
    """The line to write for a trigger of another tool's ``kind`` (``on_success: build``), with
    the stage ``body`` names (a string, or a mapping's ``stage``), else None; in the file's
    ``syntax``."""
    stage = _stage_named(body)
    if kind in ("on_success", "after", "needs", "depends_on", "upstream", "requires"):
        return "write " + setting("on_completion", {"stage": stage}, syntax)
    if kind in _ALWAYS:
        body = {"stage": stage, "success_only": False}
        return "write " + setting("on_completion", body, syntax)
    if kind in ("on_failure", "on_error"):
        name = stage if stage.isidentifier() else "NAME"  # CEL reads stages.a-b as a minus
        condition = f"stages.{name}.status == 'failure'"
        on_condition = setting("on_condition", {"expression": condition}, syntax)
        strategy = setting("error_strategy", Word("continue"), syntax)
        return f"write {on_condition}, with {strategy}"
    if kind in ("when", "if", "condition"):
        return "write " + setting("on_condition", {"expression": Word("CEL")}, syntax)
    if kind in ("schedule", "cron"):
        return _SCHEDULE_HINT
    if kind in ("approval", "approve", "manual_approval"):
        return "write " + setting("manual", {"approval_required": True}, syntax)
    return None


def _stage_named(body: Any) -> str:
    """The stage a trigger's ``body`` names (``build``, ``{stage: build}``), else ``NAME`` (a
    :class:`~taskdaemon.pipeline.hint_syntax.Word`)."""
    if isinstance(body, dict):
        body = body.get("stage", body.get("job", body.get("task")))
    return body if _is_stage_name(body) else Word("NAME")


def _is_stage_name(value: Any) -> bool:
    return isinstance(value, str) and _STAGE_NAME.fullmatch(value) is not None
