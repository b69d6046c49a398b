"""The API key shapes of common services (``token_shapes.py``), as ``redact_text`` masks them:
each fake key is masked where a stage or a person would write it, the words that share a
prefix are kept, and the pre-check lets every text the shapes match through."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from taskdaemon.pipeline import secret_shapes
from taskdaemon.pipeline.redaction import REDACTED, redact_text

#: Fake keys, one per shape (built, so that no scanner takes this file for a leak). None holds
#: what the pre-check looks for of another shape (``gh``, ``gl``, ``xox``, ``eyJ``, ``AKIA``…):
#: an ``npm_`` key spelt ``…abcdefghij…`` passed the pre-check by its ``gh``, so a pre-check
#: that missed ``npm_`` left every test green (mut52).
KEYS = {
    "stripe secret": "sk_live_" + "4eC39HqLyjWDarjt" + "T1zd",
    "stripe test": "sk_test_" + "Zq8vR2mN4pL6tY1w",
    "stripe restricted": "rk_live_" + "Zq8vR2mN4pL6tY1w",
    "stripe webhook": "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2La",
    "sk- with a digit": "sk-live-" + "Zq8vR2mN4pL6tY1wX3cB",
    "openai project": "sk-proj-" + "abcdefghijABCDEFGHIJabcdefghijABCDEFGH",
    "anthropic": "sk-ant-api03-" + "Zq8vR2mN4pL6tY1wX3cB",
    "google": "AIza" + "SyD-1234567890abcdefghijklmnopqrstu",
    "npm": "npm_" + "0123456789abcdefABCDEF0123456789abcd",
    "hugging face": "hf_" + "0123456789abcdefABCDEF0123456789ab",
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
    assert secret_shapes.may_hold_secret(key)


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
    if secret_shapes.shapes().search(text) is not None:
        assert secret_shapes.may_hold_secret(text)


_LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


@pytest.mark.parametrize(
    ("key", "shorter"),
    [
        ("sk_live_" + "4eC39HqLyjWDarjt", "sk_live_" + "4eC39HqLyjWDarj"),
        ("sk-" + _LETTERS[:19] + "1", "sk-" + _LETTERS[:18] + "1"),
        ("sk-" + _LETTERS[:40], "sk-" + _LETTERS[:39]),
        (
            "npm_" + "0123456789abcdefABCDEF0123456789abcd",
            "npm_" + "0123456789abcdefABCDEF0123456789abc",
        ),
        ("hf_" + "0123456789abcdefABCDEF0123456789ab", "hf_" + "0123456789abcdefABCDEF0123456789a"),
        ("pypi-AgEIcHlwaS5vcmc" + "CJDAwMDAwMDAwLTA", "pypi-AgEIcHlwaS5vcmc" + "CJDAwMDAwMDAwLT"),
    ],
    ids=["stripe 16", "sk- 20 with a digit", "sk- 40", "npm 36", "hugging face 34", "pypi 16"],
)
def test_a_shape_is_a_key_from_its_documented_length_on(key: str, shorter: str) -> None:
    """At the least length the module's docstring gives, a key; one character shorter, a word
    (a shape that asked for more would leave the shortest keys in clear, one that asked for
    less would mask words)."""
    assert redact_text(f"using {key}, retrying") == f"using {REDACTED}, retrying"
    assert redact_text(f"using {shorter}, retrying") == f"using {shorter}, retrying"


@pytest.mark.parametrize(
    "text",
    [
        "sk-" + _LETTERS[:20] + "1",  # its first digit is the 21st character, and under 40
        "AIza" + "SyD-1234567890abcdefghijklmnopqrst",  # 34: Google's are exactly 35
        "AIza" + "SyD-1234567890abcdefghijklmnopqrstuv",  # 36
        "npm_" + "abcdefghijklmnopqrstuvwxyz01234567890",  # 37: npm's are exactly 36
        "hf_" + "abcdefghijklmnopqrstuvwxyz012345678",  # 35: Hugging Face's are exactly 34
        "xsk-live-" + "Zq8vR2mN4pL6tY1wX3cB",  # each shape starts where its run starts
        "xAIza" + "SyD-1234567890abcdefghijklmnopqrstu",
        "xnpm_" + "abcdefghijklmnopqrstuvwxyz0123456789",
        "xhf_" + "abcdefghijklmnopqrstuvwxyz01234567",
        "xpypi-AgEIcHlwaS5vcmc" + "CJDAwMDAwMDAwLTAwMDAtMDAwMC0w",
    ],
)
def test_a_run_longer_than_a_shape_or_inside_a_word_is_kept(text: str) -> None:
    assert redact_text(f"using {text}, retrying") == f"using {text}, retrying"
