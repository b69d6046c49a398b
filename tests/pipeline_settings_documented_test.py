"""The defaults docs/architecture.md, "Settings", gives each variable are the code's.

A reader sizes a deployment by that table (``TASKDAEMON_EXPORT_TIMEOUT`` 5 s, 64 KiB captured per
value): a default changed in ``settings.py`` alone would leave the page promising another
bound. Each row whose default is one literal in code marks (``5``, ``text``, ``./.taskdaemon``)
is read against the default of the ``Settings`` field that the variable sets; rows that say it
in words (``none``, ``generated at start``, ``built-in list``) are left to their prose.
"""

from __future__ import annotations

import re
from pathlib import Path

from taskdaemon.pipeline.settings import _FIELDS, Settings
from taskdaemon.pipeline.tracking._remote import RemoteLimits

ROOT = Path(__file__).resolve().parent.parent
_ROW = re.compile(r"^\| `(TASKDAEMON_[A-Z_]+)` \| `([^`]+)`", re.MULTILINE)
#: The span source bounds: checked with the settings, kept by every source (``RemoteLimits``).
_SOURCE_BOUNDS = {
    "TASKDAEMON_SOURCE_TIMEOUT": "deadline",
    "TASKDAEMON_SOURCE_MAX_BYTES": "max_bytes",
}


def documented_defaults(markdown: str) -> dict[str, str]:
    """Each variable of the settings table whose default column starts with a code literal."""
    section = markdown.split("\n## Settings\n", 1)[1].split("\n## ", 1)[0]
    return dict(_ROW.findall(section))


def wrong_defaults(documented: dict[str, str]) -> list[str]:
    """``VARIABLE: documented X, code Y`` for each documented default the code does not have."""
    field_of = {variable: name for name, (variable, _) in _FIELDS.items()}
    defaults = Settings()
    wrong = []
    for variable, written in documented.items():
        if variable in _SOURCE_BOUNDS:
            value = getattr(RemoteLimits(), _SOURCE_BOUNDS[variable])
        else:
            value = getattr(defaults, field_of[variable])
        text = written.replace("$TASKDAEMON_HOME", str(defaults.home))
        if variable == "TASKDAEMON_SPAN_SOURCE":  # None in the field: derived from the home
            value = defaults.span_source
        if isinstance(value, Path):
            same = Path(text) == value
        elif isinstance(value, int | float):
            same = re.fullmatch(r"\d+(?:\.\d+)?", text) is not None and float(text) == value
        else:
            same = text == value
        if not same:
            wrong.append(f"{variable}: documented {written}, code {value}")
    return wrong


def test_the_settings_table_gives_the_code_defaults() -> None:
    """Every literal default of the table is the ``Settings`` default, and the table has them
    (the numeric ones at least: a table whose rows the pattern no longer reads fails too)."""
    documented = documented_defaults((ROOT / "docs" / "architecture.md").read_text())
    assert {"TASKDAEMON_EXPORT_TIMEOUT", "TASKDAEMON_CAPTURE_MAX_BYTES", *_SOURCE_BOUNDS} <= set(
        documented
    )
    assert [] == wrong_defaults(documented)


def test_a_drifted_default_is_named() -> None:
    """A default the page gives otherwise than the code is reported, each kind of value."""
    documented = {
        "TASKDAEMON_EXPORT_TIMEOUT": "10",
        "TASKDAEMON_LOG_FORMAT": "json",
        "TASKDAEMON_HOME": "./state",
        "TASKDAEMON_METRICS_PORT": "9090",
        "TASKDAEMON_SPAN_SOURCE": "sqlite:///$TASKDAEMON_HOME/runs.db",
        "TASKDAEMON_SOURCE_TIMEOUT": "60",
    }
    assert wrong_defaults(documented) == [
        "TASKDAEMON_EXPORT_TIMEOUT: documented 10, code 5.0",
        "TASKDAEMON_LOG_FORMAT: documented json, code text",
        "TASKDAEMON_HOME: documented ./state, code .taskdaemon",
        "TASKDAEMON_SPAN_SOURCE: documented sqlite:///$TASKDAEMON_HOME/runs.db,"
        " code sqlite:///.taskdaemon/spans.db",
        "TASKDAEMON_SOURCE_TIMEOUT: documented 60, code 30.0",
    ]
