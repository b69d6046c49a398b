"""Error wording shared by several front ends (``errors.py``)."""

from __future__ import annotations

from taskdaemon.pipeline.errors import (
    CLOSE_STAGES,
    REDACTION_REACH,
    bounded_text,
    no_such_stage,
    redacted_bounded_text,
)
from taskdaemon.pipeline.redaction import redact_text
from taskdaemon.pipeline.wording import CLOSE_NAME


def test_no_such_stage_names_at_most_twenty_stages() -> None:
    """A run of 23 stages is named by its first 20 and a count of the rest, on one line."""
    stages = [f"s{i}" for i in range(23)]
    expected = f"has no stage 'x' (its stages: {', '.join(stages[:20])} and 3 more)"
    assert expected == no_such_stage("x", stages)


def test_no_such_stage_says_the_stage_meant_within_its_bounds() -> None:
    """A misspelt stage gets the stage meant among up to :data:`CLOSE_STAGES` stages and up
    to ``wording.CLOSE_NAME`` characters; past either, the list alone (each comparison costs the
    product of the two names' lengths)."""
    stages = ["build", *(f"n{i:04d}" for i in range(CLOSE_STAGES - 1))]
    long = "b" * (CLOSE_NAME + 1)
    said = [
        no_such_stage("biuld", stages).endswith("; did you mean 'build'?"),
        no_such_stage("biuld", [*stages, "more"]).endswith(" more)"),
        no_such_stage(long, [*stages[:-1], long[:-1]]).endswith(" more)"),
    ]
    assert [True, True, True] == said


def test_a_long_text_is_redacted_at_its_kept_ends_only() -> None:
    """Only the kept ends of a long text, and :data:`REDACTION_REACH` past each, are redacted:
    a secret cut at a kept end is still redacted whole (its key lies past the cut), and the cut
    counts the characters of the text; a short text is redacted, then cut, as before."""
    text = f"password=hunter2 {'m' * 3 * REDACTION_REACH} password=hunter3"
    cut = f"…[{len(text) - 20} characters cut]…"
    assert f"password=[{cut}[REDACTED]" == redacted_bounded_text(text, redact_text, limit=20)
    short = "a password=x b"
    assert bounded_text(redact_text(short), 8) == redacted_bounded_text(short, redact_text, 8)
