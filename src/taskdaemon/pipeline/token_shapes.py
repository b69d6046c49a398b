"""The API keys of common services, by their shape: what ``redaction`` masks of them, and the
substrings its fast test looks for first.

``redaction`` knows the shapes of AWS, GitHub, GitLab and Slack tokens and of JWTs; these are
the next most common secrets a pipeline holds or prints, each with a prefix its vendor chose
so that scanners find it. A shape is taken only when it cannot be an ordinary word:

* Stripe: secret and restricted keys (``sk_live_``, ``sk_test_``, ``rk_live_``, ``rk_test_``)
  and webhook signing secrets (``whsec_``), at least 16 characters after the prefix. Its
  publishable keys (``pk_live_``) are public by design and stay.
* ``sk-`` keys (OpenAI's ``sk-…`` and ``sk-proj-…``, Anthropic's ``sk-ant-…``, and the
  ``sk-live-…`` form of others): 20 characters or more after ``sk-`` with a digit among the
  first 20, or 40 or more: a kebab-case word may start with ``sk-`` (``sk-learn-compatible``),
  but holds no digit so early and is seldom that long.
* Google API keys: ``AIza`` and exactly 35 characters.
* npm access tokens (``npm_`` and 36 letters or digits), PyPI upload tokens (``pypi-`` and the
  base64 of their macaroon's ``pypi.org`` location, ``AgEIcHlwaS5vcmc``), Hugging Face tokens
  (``hf_`` and 34 letters or digits).

Each starts only where a run of its characters starts (the lookbehinds), and its repeats are
possessive, as ``redaction``'s own shapes: linear in the text's length. Every shape holds
``_``, ``-`` or ``A``, characters ``redaction``'s first gate already looks for.
"""

from __future__ import annotations

from typing import Final

__all__ = ["VENDOR_TOKEN_SHAPES", "may_hold_vendor_token"]

VENDOR_TOKEN_SHAPES: Final = "|".join(
    (
        r"(?<![A-Za-z0-9_])(?:(?:sk|rk)_(?:live|test)|whsec)_[A-Za-z0-9]{16,255}+",
        r"(?<![A-Za-z0-9_-])sk-(?:(?=[A-Za-z_-]{0,19}[0-9])[A-Za-z0-9_-]{20,255}+"
        r"|[A-Za-z0-9_-]{40,255}+)",
        r"(?<![A-Za-z0-9_-])AIza[A-Za-z0-9_-]{35}(?![A-Za-z0-9_-])",
        r"(?<![A-Za-z0-9_])(?:npm_[A-Za-z0-9]{36}|hf_[A-Za-z0-9]{34})(?![A-Za-z0-9_])",
        r"(?<![A-Za-z0-9_-])pypi-AgEIcHlwaS5vcmc[A-Za-z0-9_-]{16,}+",
    )
)


def may_hold_vendor_token(text: str) -> bool:
    """False when ``text`` lacks every prefix of :data:`VENDOR_TOKEN_SHAPES` (substring tests,
    each cheaper one first: a text holds a substring only if it holds its characters)."""
    if "_" in text and (
        "sk_" in text or "rk_" in text or "whsec_" in text or "npm_" in text or "hf_" in text
    ):
        return True
    if "-" in text and ("sk-" in text or "pypi-" in text):
        return True
    return "AIza" in text
