"""Text of a ``str`` subclass (a ``StrEnum`` member, a library's own string type) is redacted
like any text, wherever it sits in a structure."""

from __future__ import annotations

import enum

from taskdaemon.pipeline.redaction import REDACTED, redact

TOKEN = "ghp_" + "T3st" * 9  # a GitHub token's shape, not a real one


class Text(str):
    """A string type of some library."""


class Kind(enum.StrEnum):
    SECRET = TOKEN
    PLAIN = "plain"


def test_str_subclasses_are_redacted_in_mappings_sequences_and_alone() -> None:
    for value in (Text(TOKEN), Kind.SECRET, Text(f"Bearer {TOKEN}")):
        assert TOKEN not in repr(redact(value))
        assert TOKEN not in repr(redact({"note": value}))
        assert TOKEN not in repr(redact([value, "x"]))
        assert TOKEN not in repr(redact(("x", {"nested": [value]})))
    assert redact({"note": Text(TOKEN)}) == {"note": REDACTED}


def test_clean_str_subclasses_come_back_as_they_are() -> None:
    plain = {"kind": Kind.PLAIN, "text": Text("nothing to hide")}
    assert redact(plain) is plain
    assert redact(Kind.PLAIN) is Kind.PLAIN
