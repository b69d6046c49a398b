"""yaml_values: the converter's issues: a key that is no string."""

from __future__ import annotations

from typing import Any

import pytest

from taskdaemon.pipeline.errors import ValidationIssue
from taskdaemon.pipeline.yaml_values import NodeConverter
from taskdaemon.pipeline.yamlsafe import compose_bounded


def _convert(text: str, max_depth: int = 100) -> tuple[Any, list[ValidationIssue]]:
    """The converter's value of ``text`` and the issues it reported, file ``f``."""
    node = compose_bounded(text)
    assert node is not None
    converter = NodeConverter("f", max_depth=max_depth)
    return converter.value(node, "", None), converter.issues


def _issues(text: str, max_depth: int = 100) -> list[tuple[str, str, int | None]]:
    """Path, message and line of each issue the converter reports on ``text``."""
    return [(i.path, i.message, i.line) for i in _convert(text, max_depth)[1]]


@pytest.mark.parametrize(("key", "kind"), [("[a]", "list"), ("{a: 1}", "mapping")])
def test_a_collection_as_a_key_is_named_by_its_kind(key: str, kind: str) -> None:
    """A list or mapping used as a key is reported as a list or a mapping, not as null."""
    assert [("", f"keys must be strings, got {kind}", 1)] == _issues(f"? {key}\n: 1\n")
