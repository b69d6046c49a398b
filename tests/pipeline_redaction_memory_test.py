"""What redaction remembers: the key verdicts of a matcher and the texts found clean, each
within its bound."""

from __future__ import annotations

from taskdaemon.pipeline.redaction import CLEAN_TEXTS, redact_text
from taskdaemon.pipeline.secret_keys import KeyMatcher


def test_a_matcher_remembers_each_verdict_under_its_key() -> None:
    """A decided key is kept with its verdict, secret or not, for ``redact``'s walk to read."""
    matcher = KeyMatcher()
    matcher("db_password")
    matcher("passed")
    assert {"db_password": True, "passed": False} == matcher.decided


def test_a_matcher_remembers_at_most_ten_thousand_keys() -> None:
    """Past 10,000 distinct keys, new verdicts are decided without being kept."""
    matcher = KeyMatcher()
    for index in range(10_001):
        matcher(f"field{index}")
    assert 10_000 == len(matcher.decided)


def test_a_clean_text_of_the_longest_remembered_length_is_remembered() -> None:
    """A clean text of 128 characters is kept in ``CLEAN_TEXTS``, one of 129 is not."""
    edge, longer = "q" * 127 + "e", "q" * 128 + "l"
    redact_text(edge)
    redact_text(longer)
    assert (True, False) == (edge in CLEAN_TEXTS, longer in CLEAN_TEXTS)


def test_the_clean_texts_remembered_never_exceed_two_thousand_and_forty_eight() -> None:
    """Remembering more clean texts than the bound empties the memo first."""
    sizes = set()
    for index in range(2_100):
        redact_text(f"clean text {index}")
        sizes.add(len(CLEAN_TEXTS))
    assert 2_048 == max(sizes)
