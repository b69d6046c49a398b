"""The parser's event of a YAML scalar, for the tests of ``yaml_places``."""

from __future__ import annotations

from typing import Any

from yaml.events import ScalarEvent

from taskdaemon.pipeline.yamlsafe import parser_of


def scalar_event(text: str, key: str) -> Any:
    """The event of the scalar that is the value of ``key`` (a key of one mapping)."""
    parser = parser_of(text)
    try:
        before = None
        while (event := parser.get_event()) is not None:  # type: ignore[no-untyped-call]
            if isinstance(event, ScalarEvent):
                if before == key:
                    return event
                before = event.value
    finally:
        parser.dispose()
    raise AssertionError(key)
