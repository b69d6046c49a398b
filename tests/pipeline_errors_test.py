"""Error wording shared by several front ends (``errors.py``)."""

from __future__ import annotations

from taskdaemon.pipeline.errors import no_such_stage


def test_no_such_stage_names_at_most_twenty_stages() -> None:
    """A run of 23 stages is named by its first 20 and a count of the rest, on one line."""
    stages = [f"s{i}" for i in range(23)]
    expected = f"has no stage 'x' (its stages: {', '.join(stages[:20])} and 3 more)"
    assert expected == no_such_stage("x", stages)
