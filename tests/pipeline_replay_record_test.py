"""Recorded values: why a value read back from spans is not the exact one."""

from __future__ import annotations

import hashlib

from taskdaemon.pipeline.replay.record import RecordedValue

FULL = '{"command": "echo password=hunter2secret"}'


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def test_a_value_redacted_on_its_way_to_the_store_is_not_called_cut() -> None:
    """A definition whose stored text had a secret replaced by ``[REDACTED]`` (it no longer
    hashes to its sha256) is reported as redacted, not as cut by a backend's size limit."""
    stored = FULL.replace("hunter2secret", "[REDACTED]")
    value = RecordedValue(stored, size=len(FULL), sha256=_sha256(FULL), redacted=False)
    expected = "redacted before it was stored (a secret in it became [REDACTED])"
    assert expected == value.problem()


def test_a_value_cut_on_its_way_is_still_called_cut() -> None:
    """A stored text shorter than the value, without ``[REDACTED]``, was cut on the way."""
    value = RecordedValue(FULL[:20], size=len(FULL), sha256=_sha256(FULL), redacted=False)
    assert f"cut on the way to the span source (20 of {len(FULL)} bytes kept)" == value.problem()
