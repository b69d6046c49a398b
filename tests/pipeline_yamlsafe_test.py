"""The composing loader (yamlsafe._ComposingLoader): remembered scalar tags, its lifetime."""

from __future__ import annotations

import gc
import weakref

import pytest
import yaml

from taskdaemon.pipeline import yamlsafe
from taskdaemon.pipeline.yamlsafe import compose_bounded

TEXT = """\
a: true
b: "true"
c: true
d: 12
e: '12'
f: 12
g: [true, 'true', null, "null", 1.5, '1.5']
"""


def _tags(node: yaml.Node) -> list[str]:
    """The tags of every node, depth first, keys and values."""
    if isinstance(node, yaml.MappingNode):
        return [node.tag] + [t for pair in node.value for part in pair for t in _tags(part)]
    if isinstance(node, yaml.SequenceNode):
        return [node.tag] + [t for item in node.value for t in _tags(item)]
    return [node.tag]


def test_a_repeated_scalar_keeps_the_tag_its_quoting_gives() -> None:
    """The same text plain and quoted resolves to two tags, as PyYAML's own loader says."""
    node = compose_bounded(TEXT)
    assert node is not None
    expected = yaml.compose(TEXT, Loader=yaml.SafeLoader)
    assert _tags(node) == _tags(expected)
    values = {key.value: value.tag for key, value in node.value}
    assert values["a"] == values["c"] == "tag:yaml.org,2002:bool"
    assert values["b"] == "tag:yaml.org,2002:str"
    assert values["d"] == values["f"] == "tag:yaml.org,2002:int"
    assert values["e"] == "tag:yaml.org,2002:str"


def test_a_composing_loader_is_freed_without_the_cyclic_collector(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The tag memo refers to its loader; ``dispose`` drops it, so the loader (and its parser's
    buffers) goes when ``compose`` returns, not at the next collection."""
    loaders: list[weakref.ref[yamlsafe._ComposingLoader]] = []
    original = yamlsafe._ComposingLoader.__init__

    def remembering(self: yamlsafe._ComposingLoader, stream: str) -> None:
        original(self, stream)
        loaders.append(weakref.ref(self))

    monkeypatch.setattr(yamlsafe._ComposingLoader, "__init__", remembering)
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        node = compose_bounded(TEXT)
        assert node is not None
        assert [ref() for ref in loaders] == [None]
    finally:
        if was_enabled:
            gc.enable()
