"""What an issue of a pipeline file adds when the author made a newcomer's slip: the line to
write instead (``config_reader.ConfigReader`` words each issue, and appends these).

The slips: a number, or a boolean, written as a string (``max_attempts: "3"``, ``success_only:
"no"``); a command written as a list of arguments; a YAML bare ``yes`` or ``off`` where a string
belongs; a trigger's kind written bare (``triggers: on_completion``), or with its one field as
its value (``on_completion: fetch``); several stages in one ``on_completion``; one stage's
fields where the list of stages belongs. Each hint is one line, and quotes what the file holds
bounded (``ellipsis.quote``, ``shown_number``). The hints for another tool's keys are
``other_tools``'.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import Any, Final

from taskdaemon.pipeline.ellipsis import quote

__all__ = [
    "EACH_STAGE",
    "SEVERAL_STAGES_HINT",
    "TRIGGER_EXAMPLES",
    "TRIGGER_FIELD",
    "argv_hint",
    "boolean_hint",
    "one_of",
    "quote_hint",
    "shown_number",
    "trigger_body_hint",
    "unquote",
]

#: What to write for a trigger given as its kind's bare name (``triggers: on_completion``).
TRIGGER_EXAMPLES: Final = {
    "manual": "manual: {}",
    "on_completion": "on_completion: {stage: NAME}",
    "on_condition": "on_condition: {expression: CEL}",
    "on_event": "on_event: {type: TYPE}",
}

EACH_STAGE: Final = " (an item per stage: '- name: ...' in YAML, [[stages]] in TOML)"


SEVERAL_STAGES_HINT: Final = (
    "expected a string, got list (one stage per trigger: triggers: [{on_completion: {stage: "
    "a}}, {on_completion: {stage: b}}], with trigger_mode: all to wait for both)"
)
#: The field a trigger kind's mapping needs, which a newcomer writes as the kind's value.
TRIGGER_FIELD: Final = {"on_completion": "stage", "on_event": "type", "on_condition": "expression"}


def trigger_body_hint(kind: str, body: str | list[Any]) -> str:
    """``expected a mapping, got string (write on_completion: {stage: 'fetch'})`` for a
    trigger written ``on_completion: fetch``, or with a list (``[a, b]``)."""
    field = TRIGGER_FIELD[kind]
    if isinstance(body, list):
        return f"expected a mapping, got list (write {kind}: {{{field}: ...}}, one per trigger)"
    return f"expected a mapping, got string (write {kind}: {{{field}: {quote(body)}}})"


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


def argv_hint(value: Any, path: str) -> str:
    """A command written as a list of arguments (``command: [echo, hi]``, a Dockerfile's or
    GitHub's ``args:`` habit): the one string ``/bin/sh -c`` reads, which the file takes."""
    if not path.endswith(".command") or not isinstance(value, list) or len(value) > 100:
        return ""
    if not value or not all(isinstance(item, str) for item in value):
        return ""
    import shlex  # noqa: PLC0415 - a wrong file only

    return f" (write it as one string, as a shell reads it: {quote(shlex.join(value), 80)})"


def shown_number(text: str) -> str:
    """``text``, a number, as a hint writes it: ``N`` past 20 characters (a file's hostile
    number of a million digits is not echoed whole)."""
    return text if len(text) <= 20 else "N"


def one_of(names: Collection[str]) -> str:
    """``a, b or c``: the names an issue says it expected."""
    names = list(names)
    return ", ".join(names[:-1]) + f" or {names[-1]}" if len(names) > 1 else names[0]


def quote_hint(value: object, file: str) -> str:
    """A hint for a boolean where a string belongs in a YAML file: YAML 1.1, which PyYAML reads,
    takes a bare ``yes``, ``no``, ``on``, ``off``, ``true`` or ``false`` as one, so a stage named
    ``off`` or a ``command: yes`` is refused for a type the author never wrote. JSON and TOML
    write a boolean only as ``true`` or ``false``: no hint there."""
    if isinstance(value, bool) and not file.endswith((".json", ".toml")):
        return " (quote it: YAML reads a bare yes, no, on, off, true or false as a boolean)"
    return ""
