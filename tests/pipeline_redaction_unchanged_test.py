"""Texts without a secret come back themselves, and the one-check verdict of
``mappings_unchanged`` holds for the common texts that resemble no secret's shape."""

from __future__ import annotations

import uuid

import pytest

from taskdaemon.pipeline.redaction import (
    mappings_unchanged,
    redact_endpoint_passwords,
    redact_lines,
)
from taskdaemon.pipeline.secret_keys import key_matcher


def test_clean_lines_come_back_as_the_same_list() -> None:
    """``redact_lines`` returns the list it was given when no line holds a secret."""
    lines = ["compiling", "done in 3 steps"]
    assert lines is redact_lines(lines)


def test_an_endpoint_whose_password_is_already_hidden_comes_back_itself() -> None:
    """A ``user:[REDACTED]@host`` text, which redacting changes in no character, is returned
    itself rather than as an equal copy."""
    text = "exporting to ops:[REDACTED]@collector:4317"
    assert text is redact_endpoint_passwords(text)


@pytest.mark.parametrize(
    "text",
    [
        "plain words",  # none of the characters any shape needs
        "mail ops@example.org",  # "@" without "://"
        "Job 7",  # "J" without "eyJ"
        "build_step",  # "_" without "gh" or "github_pat_"
        "re-run",  # "-" without "gl", "xox" or "xapp"
        "Alpha",  # "A" without an AWS key prefix
        "size=3",  # an assignment of no secret key word
    ],
)
def test_a_text_resembling_no_secret_is_shown_unchanged_at_once(text: str) -> None:
    """A flat mapping whose only text holds a shape's character but not the rest of it is
    found unchanged by the single check."""
    assert True is mappings_unchanged([{"attr": text}])


def test_a_secret_key_decided_for_the_first_time_is_refused() -> None:
    """A key no walk has decided yet is decided now: one naming a secret is not shown."""
    key = f"ledger_passwd_{uuid.uuid4().hex}"  # new on every run in one process (as mutmut's)
    assert (False, False) == (key in key_matcher().decided, mappings_unchanged([{key: "x"}]))


def test_a_list_of_texts_and_every_scalar_is_unchanged() -> None:
    """A list value mixing a text with numbers, a bool, None and bytes is shown as it is."""
    assert True is mappings_unchanged([{"attr": [1, 0.5, True, None, b"raw", "s1"]}])


def test_a_secret_text_in_a_list_mixed_with_numbers_is_not_shown() -> None:
    """The texts of a mixed list are checked: an assigned password among numbers is seen."""
    assert False is mappings_unchanged([{"attr": [1, "password=hunter2"]}])


def test_a_secret_text_beside_a_list_is_not_shown() -> None:
    """A text value is checked whatever list values the mapping holds besides it."""
    assert False is mappings_unchanged([{"note": "password=hunter2", "tags": ["a"]}])
