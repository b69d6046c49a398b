"""The run record's own rules: which approval waits approval records make."""

from __future__ import annotations

from taskdaemon.pipeline.records import ApprovalWait, approval_waits


def test_approval_waits_pair_each_request_with_its_stages_next_resolution() -> None:
    """Two stages' requests interleave: each wait ends at its own stage's resolution; a
    repeated request while one is open adds nothing, a resolution with none open is dropped,
    and a request still unanswered is an open wait."""
    records = [
        ("a", True, 1.0),
        ("b", True, 2.0),
        ("a", True, 2.5),
        ("b", False, 3.0),
        ("b", False, 3.5),
        ("a", False, 4.0),
        ("a", True, 5.0),
    ]
    assert (
        ApprovalWait("a", 1.0, 4.0),
        ApprovalWait("b", 2.0, 3.0),
        ApprovalWait("a", 5.0),
    ) == approval_waits(records)
