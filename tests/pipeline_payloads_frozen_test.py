"""A frozen payload (a stage's inputs) is captured exactly as the equal plain dict is."""

from __future__ import annotations

from types import MappingProxyType

import pytest

from taskdaemon.pipeline.payloads import PayloadCapture

CASES = [
    {},
    {"b": 2, "a": [1, "x"], "nested": MappingProxyType({"z": 1, "y": {"k": None}})},
    {"password": "hunter2", "url": "https://user:pw@example.com/x", 3: "non-str key"},
    {"big": "x" * 5000},
]


@pytest.mark.parametrize("payload", CASES)
def test_a_mapping_proxy_is_captured_as_its_dict(payload: dict[object, object]) -> None:
    """The capture of a read-only view of a mapping (JSON, size, hash, truncation) and its
    redaction flag are those of the plain dict it shows."""
    capture = PayloadCapture(max_bytes=4096)
    assert capture.capture_flagged(MappingProxyType(payload)) == capture.capture_flagged(payload)
