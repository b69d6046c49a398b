"""Redaction rules one by one: key words on a fresh matcher, each secret shape on its own, and
the kinds of container the walk enters.

The matchers are shared and remember their verdicts, so a test that only goes through
``redact()`` may be answered from memory; these build their own :class:`KeyMatcher` (see
docs/mutation.md for why that matters to mutation testing).
"""

from __future__ import annotations

import types
from collections import namedtuple
from typing import Any

import pytest

from taskdaemon.pipeline.redaction import (
    DEFAULT_REDACT_PATTERNS,
    REDACTED,
    redact,
    redact_endpoint_passwords,
    redact_text,
)
from taskdaemon.pipeline.secret_keys import KeyMatcher, key_words


@pytest.mark.parametrize(
    ("key", "secret"),
    [
        ("password", True),
        ("db_password", True),
        ("sessionToken", True),
        ("X-Api-Key", True),  # the words "api", "key" joined by "_"
        ("apikey", True),
        ("PRIVATEKEY", True),
        ("private_key_id", True),
        ("a_b_c_d_token", True),  # a secret word late in the key
        ("passed", False),
        ("tokenizer", False),
        ("passage", False),
        ("api_x_key", False),  # the words must be next to each other
        ("key_api", False),
        ("", False),
    ],
)
def test_default_key_words(key: str, secret: bool) -> None:
    """A key is secret when a word of it, or a run of adjacent words, is a secret word."""
    assert secret == KeyMatcher()(key)


def test_custom_patterns_match_words_and_runs_of_up_to_three_words() -> None:
    """A pattern matches, case-insensitively and in full, a word or a run of two or three
    adjacent words joined by ``_`` or by nothing (never a longer run, never an empty one); no
    pattern at all matches nothing."""
    underscored = KeyMatcher(("other", "client_id"))
    joined = KeyMatcher(("clientid",))
    assert [
        underscored("clientId"),
        underscored("CLIENT-ID"),
        underscored("other"),
        joined("client_id"),
        joined("client_secret_id"),
        KeyMatcher(("one_two_three",))("one_two_three"),
        KeyMatcher(("one_two_three_four",))("one_two_three_four"),
        KeyMatcher(())("password"),
        KeyMatcher(("one_two_three_four",))("one_two_three_four_five"),
        KeyMatcher(("SSN",))("ssn"),
        KeyMatcher(("token|",))("name"),  # an empty alternative matches no word
    ] == [True, True, True, True, False, True, False, False, False, True, False]


def test_key_words_are_lowercase() -> None:
    """Keys split on separators and camelCase into lowercase words."""
    assert [["x", "api", "key"], ["session", "token"], ["http", "server", "2"]] == [
        key_words("X-Api-Key"),
        key_words("sessionToken"),
        key_words("HTTPServer2"),
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("id AKIAABCDEFGHIJKLMNOP here", f"id {REDACTED} here"),
        ("id ASIAABCDEFGHIJKLMNOP here", f"id {REDACTED} here"),
        ("id ABIAABCDEFGHIJKLMNOP here", f"id {REDACTED} here"),
        ("id ACCAABCDEFGHIJKLMNOP here", f"id {REDACTED} here"),
        ("AUTH: BEARER abcdef123456", f"AUTH: BEARER {REDACTED}"),
        ("auth: Bearer abcdef123456", f"auth: Bearer {REDACTED}"),
        ("slack xapp-1-A0123456789-abcdef", f"slack {REDACTED}"),
        ("slack xoxb-1234567890-abcdef", f"slack {REDACTED}"),
        ("gh ghp_" + "a" * 36, f"gh {REDACTED}"),
        ("lab glpat-" + "a" * 20, f"lab {REDACTED}"),
        ("db postgres://me:hunter2@db/x", f"db postgres://me:{REDACTED}@db/x"),
    ],
)
def test_each_secret_shape_alone_is_redacted(text: str, expected: str) -> None:
    """Each shape is found in a text that holds no other shape's marker."""
    assert expected == redact_text(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # A program naming a file and its error: the key word ends a path, the value is prose.
        ("cat: /etc/passwd: No such file or directory", None),
        ("open /home/u/.secrets/token: permission denied", None),
        (r"C:\app\secret: missing", None),
        # After a path, ``=`` still assigns, and so does ``:`` with a quoted value.
        ("cfg/password=hunter22 loaded", f"cfg/password={REDACTED} loaded"),
        ('vault/api_key: "k-123456"', f'vault/api_key: "{REDACTED}"'),
        ('{"db/token": "t-123456"}', f'{{"db/token": "{REDACTED}"}}'),
        ('{\\"db/token\\": \\"t-1\\"}', f'{{\\"db/token\\": \\"{REDACTED}\\"}}'),
        # The same key words outside a path keep the plain ``key: value`` rule.
        ("passwd: hunter22", f"passwd: {REDACTED}"),
        ("TOKEN=abc /run/token: ok", f"TOKEN={REDACTED} /run/token: ok"),
    ],
)
def test_a_key_word_ending_a_path_is_assigned_only_by_equals_or_a_quote(
    text: str, expected: str | None
) -> None:
    """``/etc/passwd: No such file`` is an error message, not a password; ``None``: unchanged."""
    assert redact_text(text) == (text if expected is None else expected)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # JSON and ``repr`` escape a quote in the value: the value goes to its closing quote.
        (r'{"token": "vault\"s3cr3t\\x"} ok', f'{{"token": "{REDACTED}"}} ok'),
        (r"{'password': 'it\'s-a-s3cr3t'} ok", f"{{'password': '{REDACTED}'}} ok"),
        # A value that ends with a backslash, unescaped: taken to the first quote, as before.
        ('password="C:\\dir\\" rest', f'password="{REDACTED}" rest'),
    ],
)
def test_a_quoted_value_holding_an_escaped_quote_is_redacted_whole(
    text: str, expected: str
) -> None:
    """What follows an escaped quote inside a quoted secret is the secret too, not text."""
    assert expected == redact_text(text)


def test_plain_text_comes_back_as_it_is() -> None:
    """A string without a secret shape is returned itself."""
    text = "ASIA and Bearer are words here"
    assert redact_text(text) is text


class _Listish(list[Any]):
    pass


def test_the_walk_enters_every_kind_of_container() -> None:
    """Strings at the top level, read-only mappings, list subclasses and named tuples are
    walked like dicts, lists and tuples."""
    pair = namedtuple("pair", "a b")
    bearer = "Bearer abcdef123456"
    assert [
        redact(bearer),
        redact(types.MappingProxyType({"password": "x", "n": 1})),
        redact(_Listish([{"token": "t"}])),
        redact(pair({"secret": 1}, 2)),
        redact(7),
    ] == [
        f"Bearer {REDACTED}",
        {"password": REDACTED, "n": 1},
        [{"token": REDACTED}],
        [{"secret": REDACTED}, 2],
        7,
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "exporting traces to user:s3cret@127.0.0.1:4317, retrying in 1.07s",
            f"exporting traces to user:{REDACTED}@127.0.0.1:4317, retrying in 1.07s",
        ),
        ("user:pw@collector", f"user:{REDACTED}@collector"),  # at the start
        ("(user:pw@h:1) and x=u:p@[::1]:1", f"(user:{REDACTED}@h:1) and x=u:{REDACTED}@[::1]:1"),
        ("git@github.com:org/repo.git", "git@github.com:org/repo.git"),  # no password
        ("user@host:22", "user@host:22"),
        ("at 10:30 @home", "at 10:30 @home"),  # the @ does not end a password
        ("a:b", "a:b"),  # no @ at all
    ],
)
def test_endpoint_passwords_without_a_scheme(text: str, expected: str) -> None:
    """``user:password@host`` with no scheme (how the gRPC exporter names its endpoint) loses
    its password; a user alone, a time or a text without ``@`` stays as it is."""
    assert expected == redact_endpoint_passwords(text)


def test_endpoint_passwords_are_not_a_shape_of_recorded_values() -> None:
    """``redact_text``, which every recorded value passes through, leaves a scheme-less
    ``a:b@c`` alone: only the exporters' log lines are scrubbed of it."""
    assert "note:see@home" == redact_text("note:see@home")


class _Counted(KeyMatcher):
    """A matcher that counts the keys it decides afresh."""

    def __init__(self, patterns: tuple[str, ...] = DEFAULT_REDACT_PATTERNS) -> None:
        super().__init__(patterns)
        self.fresh = 0

    def _decide(self, key: str) -> bool:
        self.fresh += 1
        return super()._decide(key)


@pytest.mark.parametrize(
    "key",
    [
        "1password",
        "db2pass",
        "pass1word",
        "api1key",
        "api_1_key",
        "token42",
        "k123",
        "a1b2c3",
        "password_2fa",
        "2fa_token",
        "sessions9",
        "x9_api_keys",
        "pwd0",
        "0pwd",
        "ssh12pass",
    ],
)
def test_digits_do_not_change_a_default_verdict(key: str) -> None:
    """Under the default patterns a key is decided by its shape, its digits as ``0``: the
    verdict is the one its own words give, for any digits."""
    matcher = KeyMatcher()
    assert [matcher._decide(variant) for variant in (key, key.replace("1", "987"))] == [
        matcher(key),
        matcher(key.replace("1", "987")),
    ]


def test_keys_that_differ_in_digits_alone_are_decided_once() -> None:
    """A result of keys ``item_0`` ... ``item_999`` is one decision under the default
    patterns (it was a thousand, on the engine's loop); a pattern list of one's own is
    decided key by key, since a pattern may name digits."""
    default, own = _Counted(), _Counted(("item_7",))
    keys = [f"item_{n}" for n in range(1000)]
    verdicts = [[default(key) for key in keys], [own(key) for key in keys]]
    assert (default.fresh, own.fresh) == (1, 1000)
    assert verdicts == [[False] * 1000, [key == "item_7" for key in keys]]
