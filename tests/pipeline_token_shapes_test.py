"""The API key shapes of common services (``token_shapes.py``), as ``redact_text`` masks them:
each fake key is masked where a stage or a person would write it, the words that share a
prefix are kept, and the pre-check lets every text the shapes match through."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from taskdaemon.pipeline import redaction
from taskdaemon.pipeline.redaction import REDACTED, redact_text

#: Fake keys, one per shape (built, so that no scanner takes this file for a leak).
KEYS = {
    "stripe secret": "sk_live_" + "4eC39HqLyjWDarjt" + "T1zd",
    "stripe test": "sk_test_" + "Zq8vR2mN4pL6tY1w",
    "stripe restricted": "rk_live_" + "Zq8vR2mN4pL6tY1w",
    "stripe webhook": "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2La",
    "sk- with a digit": "sk-live-" + "Zq8vR2mN4pL6tY1wX3cB",
    "openai project": "sk-proj-" + "abcdefghijABCDEFGHIJabcdefghijABCDEFGH",
    "anthropic": "sk-ant-api03-" + "Zq8vR2mN4pL6tY1wX3cB",
    "google": "AIza" + "SyD-1234567890abcdefghijklmnopqrstu",
    "npm": "npm_" + "abcdefghijklmnopqrstuvwxyz0123456789",
    "hugging face": "hf_" + "abcdefghijklmnopqrstuvwxyz01234567",
    "pypi": "pypi-" + "AgEIcHlwaS5vcmc" + "CJDAwMDAwMDAwLTAwMDAtMDAwMC0w",
}


@pytest.mark.parametrize("key", KEYS.values(), ids=KEYS.keys())
def test_each_key_is_masked_where_it_is_written(key: str) -> None:
    """In a command line, a log line and JSON: the key goes, what is around it stays. Before,
    each of these showed as it was (``sk-live-…`` typed at the debugger's ``set`` among them)."""
    assert redact_text(f"curl -H 'X-Key: {key}' https://api") == (
        f"curl -H 'X-Key: {REDACTED}' https://api"
    )
    assert redact_text(f"using {key}, retrying") == f"using {REDACTED}, retrying"
    assert redact_text(f'{{"x": "{key}"}}') == f'{{"x": "{REDACTED}"}}'
    assert redaction._may_hold_secret(key)


@pytest.mark.parametrize(
    "text",
    [
        "pk_live_" + "4eC39HqLyjWDarjtT1zd",  # Stripe's publishable key: public by design
        "sk_test_abc",  # too short for a key
        "sk-learn-compatible-estimator",  # a kebab-case word: no digit, under 40
        "task-2020-learn-compatible-estimator",  # sk- inside a word
        "disk_live_" + "4eC39HqLyjWDarjtT1zd",  # sk_live_ inside a word
        "AIza" + "SyD-123",  # too short for a Google key
        "npm_config_cache",
        "hf_hub_download",
    ],
)
def test_words_that_share_a_prefix_are_kept(text: str) -> None:
    assert redact_text(text) == text


_ALPHABET = "aAbBkKsSrRiIzZfFhHpPmMnNyYwWlLvVeEtTcC0123456789-_."
_WORDS = ["sk_live_", "sk_test_", "rk_live_", "whsec_", "sk-", "AIza", "npm_", "hf_"]
_WORDS += ["pypi-AgEIcHlwaS5vcmc", " ", "_", "-"]


@given(st.lists(st.one_of(st.text(_ALPHABET, max_size=40), st.sampled_from(_WORDS)), max_size=6))
@settings(max_examples=2000, deadline=None)
def test_the_pre_check_lets_through_every_text_a_shape_matches(parts: list[str]) -> None:
    """For generated texts around the prefixes: the full pattern matches only where the
    pre-check says maybe (a False there is a key left in a span)."""
    text = "".join(parts)
    if redaction._shapes().search(text) is not None:
        assert redaction._may_hold_secret(text)
