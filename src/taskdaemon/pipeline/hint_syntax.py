"""The code a hint says to write, in the syntax of the file it is about.

An issue that says what to write (``config_hints``, ``other_tools``, ``validation``) writes it
as the author would in the file: ``triggers: [{on_completion: {stage: 'a'}}]`` in YAML,
``triggers = [{on_completion = {stage = 'a'}}]`` in TOML, ``"triggers": [{"on_completion":
{"stage": "a"}}]`` in JSON. A TOML author told to write YAML's flow mapping would write a line
TOML refuses. Each hint builds its value as plain Python data and :func:`written` or
:func:`setting` renders it:

* a string (a name the file gave) quoted by ``quoting.quote``, redacted and cut: ``'a'``, or a
  JSON string when it holds a quote. Both are TOML strings; JSON gets its double quotes always;
* a :class:`Word` (a placeholder such as ``NAME`` or ``CEL``, or a word YAML takes bare, such as
  ``all``): bare in YAML, a string in TOML and JSON, where a bare word is no value;
* booleans, integers, lists and mappings as each format writes them inline.
"""

from __future__ import annotations

import json
from typing import Literal, TypeAlias

from taskdaemon.pipeline.quoting import QUOTED, quote

__all__ = ["Syntax", "Word", "setting", "syntax_of", "written"]

#: The format of the file a hint is written for.
Syntax: TypeAlias = Literal["yaml", "json", "toml"]


class Word(str):
    """A word written bare in YAML (``NAME``, ``all``), quoted in TOML and JSON."""

    __slots__ = ()


def syntax_of(fmt: str) -> Syntax:
    """``fmt`` (a loader's format name) as a :data:`Syntax`: YAML unless TOML or JSON."""
    return "toml" if fmt == "toml" else "json" if fmt == "json" else "yaml"


def written(value: object, syntax: Syntax, limit: int = QUOTED) -> str:
    """``value`` as the file's format writes it inline (see the module docstring); a string
    cut to ``limit`` characters."""
    if isinstance(value, Word):
        return str(value) if syntax == "yaml" else json.dumps(str(value))
    if isinstance(value, str):
        shown = quote(value, limit)
        if syntax == "json" and shown.startswith("'"):  # quote's own form: as written
            return json.dumps(shown[1:-1], ensure_ascii=False)
        return shown
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(written(item, syntax, limit) for item in value) + "]"
    if isinstance(value, dict):
        pairs = ", ".join(setting(key, item, syntax, limit) for key, item in value.items())
        return "{" + pairs + "}"
    return str(value)


def setting(key: str, value: object, syntax: Syntax, limit: int = QUOTED) -> str:
    """``key: value`` (YAML), ``key = value`` (TOML) or ``"key": value`` (JSON)."""
    shown = written(value, syntax, limit)
    if syntax == "toml":
        return f"{key} = {shown}"
    return f"{json.dumps(key)}: {shown}" if syntax == "json" else f"{key}: {shown}"
