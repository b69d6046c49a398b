"""The substring pre-check of ``redact_text`` never skips a text the full pattern would change.

``redact_text`` and ``redact_lines`` run the full shapes pattern only on texts the cheap
pre-check (``secret_shapes.may_hold_secret``) lets through, so the pre-check must answer True for
every text the pattern matches: a False for such a text is a secret left in a span or a log.
"""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from taskdaemon.pipeline import secret_shapes
from taskdaemon.pipeline.redaction import REDACTED, redact_lines, redact_text

CREDENTIAL = "abcd1234efgh5678ijkl"


def _casings(word: str) -> list[str]:
    """Every upper/lower casing of ``word``."""
    pairs = [(c.lower(), c.upper()) for c in word]
    return ["".join(p) for p in itertools.product(*pairs)]


@pytest.mark.parametrize("scheme", _casings("bearer"))
def test_a_bearer_credential_in_any_casing_is_redacted(scheme: str) -> None:
    """The bearer shape matches the scheme word in any casing ("BeArEr"), and so must the
    pre-check: it looked for "earer" or "EARER" only, so "BeArEr <credential>" passed as clean."""
    text = f"{scheme} {CREDENTIAL}"
    assert secret_shapes.shapes().search(text) is not None
    assert secret_shapes.may_hold_secret(text)
    assert redact_text(text) == f"{scheme} {REDACTED}"
    assert redact_lines(["plain", text]) == ["plain", f"{scheme} {REDACTED}"]


# Texts made of the characters the shapes are built from, so that a good share of them hold a
# shape: the pre-check must let every one of those through.
_ALPHABET = "aAbBeErRsSkKiIcCgGhHlLpPtTxXoOuyJ0123456789 \t-_:=@/.\"'"
_WORDS = ["AKIA", "ASIA", "ghp_", "github_pat_", "glpat-", "xoxb-", "xapp-", "eyJ", "bearer", "@"]
_WORDS += ["-----BEGIN RSA PRIVATE KEY-----", "https://", "password", "api_key", "DSN", "BeArEr "]
_WORDS += [" --token ", " -secret "]


@given(st.lists(st.one_of(st.text(_ALPHABET, max_size=24), st.sampled_from(_WORDS)), max_size=8))
@settings(max_examples=3000, deadline=None)
def test_the_pre_check_lets_through_every_text_the_pattern_matches(parts: list[str]) -> None:
    """For generated texts: the full pattern matches only where the pre-check says maybe."""
    text = "".join(parts)
    if secret_shapes.shapes().search(text) is not None:
        assert secret_shapes.may_hold_secret(text)


# One text per shape, holding nothing but the shape (and no character another shape needs
# where it can be avoided): the pre-check's first pass must let each of them through.
_ALONE = [
    "AKIA" + "Q" * 16,
    "ghp" + "_" + "a" * 36,
    "glpat" + "-" + "a" * 20,
    "xoxb" + "-" + "1" * 12,
    "eyJ" + "a" * 8 + ".eyJ" + "a" * 8 + ".sig",
    "bearer abcd1234efgh",
    "-----BEGIN RSA PRIVATE KEY-----\nMIIB\n-----END RSA PRIVATE KEY-----",
    "https://user:pw@host",
    "password=x",
    "token: x",
    "--token x",
    "--token\tx",
]


@pytest.mark.parametrize("text", _ALONE)
def test_each_shape_alone_passes_the_pre_check(text: str) -> None:
    """Each shape, alone in its text, is matched by the pattern and let through."""
    assert secret_shapes.shapes().search(text) is not None
    assert secret_shapes.may_hold_secret(text)
    assert redact_text(text) != text
