"""What an issue of a pipeline file adds when the author made a newcomer's slip: the line to
write instead (``config_reader.ConfigReader`` words each issue, and appends these).

The slips: a number, or a boolean, written as a string (``max_attempts: "3"``, ``success_only:
"no"``); a command written as a list of arguments; a YAML bare ``yes`` or ``off`` where a string
belongs; a trigger's kind written bare (``triggers: on_completion``), or with its one field as
its value (``on_completion: fetch``); several stages in one ``on_completion``; one stage's
fields where the list of stages belongs. Each hint is one line, and quotes what the file holds
bounded (``quoting.quote``, ``shown_number``), and writes its code in the file's syntax
(``hint_syntax``). The hints for another tool's keys are ``other_tools``'.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import Any, Final

from taskdaemon.pipeline.hint_syntax import Syntax, Word, setting, written
from taskdaemon.pipeline.quoting import quote

__all__ = [
    "TRIGGER_FIELD",
    "argv_hint",
    "boolean_hint",
    "each_stage",
    "entry_stage_hint",
    "one_of",
    "quote_hint",
    "several_stages_hint",
    "shown_number",
    "trigger_body_hint",
    "trigger_example",
    "unquote",
]

#: The field a trigger kind's mapping needs, which a newcomer writes as the kind's value.
TRIGGER_FIELD: Final = {"on_completion": "stage", "on_event": "type", "on_condition": "expression"}
#: What each field of ``TRIGGER_FIELD`` holds, as a hint names it.
_FIELD_WORD: Final = {"stage": Word("NAME"), "type": Word("TYPE"), "expression": Word("CEL")}


def trigger_example(kind: object) -> dict[str, Any] | None:
    """``{on_completion: {stage: NAME}}``, what to write for a trigger given as its kind's bare
    name (``triggers: on_completion``), for ``hint_syntax.written``; None for any other value."""
    if kind == "manual":
        return {"manual": {}}
    if isinstance(kind, str) and kind in TRIGGER_FIELD:
        field = TRIGGER_FIELD[kind]
        return {kind: {field: _FIELD_WORD[field]}}
    return None


def each_stage(syntax: Syntax) -> str:
    """What a file that wrote one stage's fields where the list of stages belongs is told."""
    if syntax == "toml":
        return " (an item per stage: [[stages]], then its name = ..., in TOML)"
    if syntax == "json":
        return ' (a list, an item per stage: "stages": [{"name": ...}])'
    return " (an item per stage: '- name: ...' in YAML)"


def entry_stage_hint(syntax: Syntax) -> str:
    """What a stage with no trigger is told: how an entry stage starts."""
    manual = [{"manual": {"approval_required": False}}]
    return f" (an entry stage has {setting('triggers', manual, syntax)})"


def several_stages_hint(syntax: Syntax) -> str:
    """An ``on_completion`` that names a list of stages: one trigger per stage."""
    each = [{"on_completion": {"stage": Word("a")}}, {"on_completion": {"stage": Word("b")}}]
    both = setting("trigger_mode", Word("all"), syntax)
    return (
        f"expected a string, got list (one stage per trigger: {setting('triggers', each, syntax)}"
        f", with {both} to wait for both)"
    )


def trigger_body_hint(kind: str, body: str | list[Any], syntax: Syntax) -> str:
    """``expected a mapping, got string (write on_completion: {stage: 'fetch'})`` for a
    trigger written ``on_completion: fetch``, or with a list (``[a, b]``)."""
    field = TRIGGER_FIELD[kind]
    if isinstance(body, list):
        each = setting(kind, {field: Word("...")}, syntax)
        return f"expected a mapping, got list (write {each}, one per trigger)"
    return f"expected a mapping, got string (write {setting(kind, {field: body}, syntax)})"


def unquote(value: Any, form: re.Pattern[str]) -> str:
    """`` '3' (write 3 without quotes)`` for a number of ``form`` written as a string
    (``max_attempts: "3"``, a common YAML slip), which strict types refuse; nothing else."""
    if isinstance(value, str) and form.fullmatch(text := value.strip()):
        return f" {quote(value)} (write {shown_number(text)} without quotes)"
    return ""


def boolean_hint(value: Any) -> str:
    """`` 'no' (write false without quotes)`` for a boolean written as a string."""
    if isinstance(value, str) and (word := value.strip().lower()) in _BOOLEAN_WORDS:
        return f" {quote(value)} (write {_BOOLEAN_WORDS[word]} without quotes)"
    return ""


_BOOLEAN_WORDS: Final = dict.fromkeys(("true", "yes", "on"), "true") | dict.fromkeys(
    ("false", "no", "off"), "false"
)


def argv_hint(value: Any, path: str, syntax: Syntax) -> str:
    """A command written as a list of arguments (``command: [echo, hi]``, a Dockerfile's or
    GitHub's ``args:`` habit): the one string ``/bin/sh -c`` reads, which the file takes."""
    if not path.endswith(".command") or not isinstance(value, list) or len(value) > 100:
        return ""
    if not value or not all(isinstance(item, str) for item in value):
        return ""
    import shlex  # noqa: PLC0415 - a wrong file only

    return (
        f" (write it as one string, as a shell reads it: {written(shlex.join(value), syntax, 80)})"
    )


def shown_number(text: str) -> str:
    """``text``, a number, as a hint writes it: ``N`` past 20 characters (a file's hostile
    number of a million digits is not echoed whole)."""
    return text if len(text) <= 20 else "N"


def one_of(names: Collection[str]) -> str:
    """``a, b or c``: the names an issue says it expected."""
    names = list(names)
    return ", ".join(names[:-1]) + f" or {names[-1]}" if len(names) > 1 else names[0]


def quote_hint(value: object, syntax: Syntax) -> str:
    """A hint for a boolean where a string belongs in a YAML file: YAML 1.1, which PyYAML reads,
    takes a bare ``yes``, ``no``, ``on``, ``off``, ``true`` or ``false`` as one, so a stage named
    ``off`` or a ``command: yes`` is refused for a type the author never wrote. JSON and TOML
    write a boolean only as ``true`` or ``false``: no hint there."""
    if isinstance(value, bool) and syntax == "yaml":
        return " (quote it: YAML reads a bare yes, no, on, off, true or false as a boolean)"
    return ""
