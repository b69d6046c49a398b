"""Payload capture on its own: what redaction hides, how capping cuts, what the hash covers.

The monitor tests show capture on real spans; these pin the rules mutation testing found loose
(docs/mutation.md): secrets below the top level, cuts inside a character, redaction switched
off, non-string keys, and the default key words (module constants are not mutated).
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from datetime import date
from pathlib import PurePosixPath
from typing import Any

import pytest

from taskdaemon.pipeline import redaction
from taskdaemon.pipeline import telemetry as t
from taskdaemon.pipeline.payloads import (
    REDACTED,
    CapturedPayload,
    PayloadCapture,
    value_text,
)


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ({"cfg": {"password": "hunter2"}}, '{"cfg":{"password":"[REDACTED]"}}'),
        ({"token": "t"}, '{"token":"[REDACTED]"}'),
        ({"a": 1, "b": [{"c": ({"secret": 2},)}]}, '{"a":1,"b":[{"c":[{"secret":"[REDACTED]"}]}]}'),
        ([{"x": 1}, {"Session": "s"}], '[{"x":1},{"Session":"[REDACTED]"}]'),
        (({"cookie": "c"},), '[{"cookie":"[REDACTED]"}]'),
        (
            {"outer": {"inner": {"api_key": "k", "n": 1}}},
            '{"outer":{"inner":{"api_key":"[REDACTED]","n":1}}}',
        ),
    ],
)
def test_a_secret_at_any_depth_is_redacted(payload: Any, expected: str) -> None:
    """A secret key is redacted wherever it is: alone, nested in mappings, lists or tuples,
    below keys and items that are not secret."""
    assert expected == PayloadCapture().capture(payload).json


def test_payload_without_secrets_is_returned_uncopied() -> None:
    """redact() hands back the payload itself when no key matches, at any depth."""
    payload = {"a": [{"b": (1, {"c": "d"})}], "e": "password is a value here, not a key"}
    assert PayloadCapture().redact(payload) is payload


def test_the_secret_value_never_reaches_the_json_or_the_hash() -> None:
    """Two payloads that differ only in a secret give the same JSON and sha256."""
    capture = PayloadCapture()
    first = capture.capture({"cfg": {"password": "hunter2"}, "n": 1})
    second = capture.capture({"cfg": {"password": "correct horse"}, "n": 1})
    assert ("hunter2" not in first.json, first) == (True, second)


@pytest.mark.parametrize(
    "key",
    [
        "password",
        "PASSWORD",
        "db_passwd",
        "client_secret",
        "access_token",
        "api_key",
        "api-key",
        "APIKEY",
        "Authorization",
        "credentials",
        "private_key",
        "privatekey",
        "Set-Cookie",
        "session_id",
    ],
)
def test_default_patterns_match_secret_keys(key: str) -> None:
    """Each default pattern catches the keys it is there for, in any case."""
    assert f'{{"{key}":"{REDACTED}"}}' == PayloadCapture().capture({key: "v"}).json


@pytest.mark.parametrize("key", ["user", "pass", "key", "public", "auth", "id", "path"])
def test_default_patterns_leave_ordinary_keys(key: str) -> None:
    """Ordinary keys are kept: the patterns are not so broad that payloads become useless."""
    assert f'{{"{key}":"v"}}' == PayloadCapture().capture({key: "v"}).json


def test_capture_uses_the_one_redaction_list() -> None:
    """Payload capture redacts with the same key list as every other recording point (the
    redaction module's), not a copy of its own."""
    assert redaction.DEFAULT_REDACT_PATTERNS == PayloadCapture().redact_patterns


def test_redaction_switched_off_keeps_every_value() -> None:
    """``redact_patterns=()`` redacts nothing, at any depth."""
    payload = {"password": "x", "cfg": {"token": "y"}}
    capture = PayloadCapture(redact_patterns=())
    assert (payload, '{"cfg":{"token":"y"},"password":"x"}') == (
        capture.redact(payload),
        capture.capture(payload).json,
    )


def test_custom_patterns_and_replacement() -> None:
    """Patterns are searched (not anchored unless they say so) and the replacement is used."""
    capture = PayloadCapture(redact_patterns=("ssn", "^pin$"), replacement="***")
    assert '{"my_ssn_no":"***","pin":"***","pincode":1,"token":2}' == (
        capture.capture({"my_ssn_no": 1, "pin": 0, "pincode": 1, "token": 2}).json
    )


def test_verdicts_stay_right_for_many_distinct_keys() -> None:
    """Past the remembered keys, each key is still judged on its own."""
    capture = PayloadCapture(max_bytes=1_000_000)
    payload = {f"field{n}": n for n in range(10_050)} | {"zz_token": "t"}
    captured = capture.capture(payload)
    assert ('"zz_token":"[REDACTED]"' in captured.json, '"field10049":10049' in captured.json) == (
        True,
        True,
    )
    assert '{"field5":5}' == capture.capture({"field5": 5}).json


def test_non_string_keys_are_written_as_json_strings() -> None:
    """Integer, float and None keys become JSON object keys (not a repr of the whole payload),
    and a mapping under such a key is still redacted."""
    captured = PayloadCapture().capture({1: "a", 2.5: "b", None: "c", 3: {"token": "t"}})
    assert '{"1":"a","2.5":"b","3":{"token":"[REDACTED]"},"null":"c"}' == captured.json


@pytest.mark.parametrize(
    ("text", "max_bytes", "kept"),
    [
        ("é" * 100, 12, '{"text":"é'),  # the cut falls inside the second é
        ("é" * 100, 11, '{"text":"é'),  # ... and exactly after the first
        ("😀" * 10, 11, '{"text":"'),  # inside a four-byte character
        ("😀" * 10, 13, '{"text":"😀'),
        ("日本語", 14, '{"text":"日'),
    ],
)
def test_capping_never_cuts_inside_a_character(text: str, max_bytes: int, kept: str) -> None:
    """The kept text ends before a character that the byte cap would split."""
    full = f'{{"text":"{text}"}}'.encode()
    captured = PayloadCapture(max_bytes=max_bytes).capture({"text": text})
    assert CapturedPayload(kept, len(full), hashlib.sha256(full).hexdigest(), True) == captured


def test_cap_boundaries() -> None:
    """JSON of exactly max_bytes is kept whole; one byte over is cut; zero keeps nothing."""
    data = '{"a":"bc"}'
    digest = hashlib.sha256(data.encode()).hexdigest()
    assert [
        PayloadCapture(max_bytes=10).capture({"a": "bc"}),
        PayloadCapture(max_bytes=9).capture({"a": "bc"}),
        PayloadCapture(max_bytes=0).capture({"a": "bc"}),
    ] == [
        CapturedPayload(data, 10, digest, False),
        CapturedPayload(data[:9], 10, digest, True),
        CapturedPayload("", 10, digest, True),
    ]


def test_negative_cap_is_refused() -> None:
    """A negative max_bytes is a configuration error, said at construction."""
    with pytest.raises(ValueError, match=r"max_bytes must be >= 0, got -1"):
        PayloadCapture(max_bytes=-1)


def test_unwritable_payload_falls_back_to_its_repr_with_non_ascii_text() -> None:
    """A payload JSON cannot hold (a lone surrogate) is captured as its repr, with readable
    non-ASCII text and the surrogate as its escape, never an error."""
    captured = PayloadCapture().capture({"name": "é", "bad": "\ud800"})
    assert "\"{'name': 'é', 'bad': '\\\\ud800'}\"" == captured.json


def test_span_event_attributes() -> None:
    """A captured payload becomes the four ``taskdaemon.payload.*`` attributes."""
    captured = PayloadCapture().capture({"a": 1})
    assert {
        t.PAYLOAD_JSON: '{"a":1}',
        t.PAYLOAD_SIZE: 7,
        t.PAYLOAD_SHA256: hashlib.sha256(b'{"a":1}').hexdigest(),
        t.PAYLOAD_TRUNCATED: False,
    } == captured.attributes()


def test_a_text_that_utf8_cannot_hold_is_captured_with_a_replacement() -> None:
    """Capture never raises: when even the fallback repr holds a lone surrogate (a path's
    text, which capture writes by ``str``), that character is replaced by ``?``."""
    captured = PayloadCapture().capture({"v": PurePosixPath("a\ud800b")})
    assert "\"{'v': a?b}\"" == captured.json


class _Forever:
    """A value whose text never comes: its ``__repr__`` (and so its ``__str__``) sleeps."""

    def __repr__(self) -> str:
        time.sleep(1e9)
        raise AssertionError


def test_a_handlers_own_text_is_never_called() -> None:
    """A value of the handler's own type is written by its type, its ``__repr__`` never
    called (it hung the run's end on the monitor's thread); a standard one by ``str``, also
    in the fallback repr of a payload JSON cannot hold."""
    mine = f"<{__name__}._Forever object>"
    assert (
        f'{{"d":"2026-12-06","v":"{mine}"}}'
        == PayloadCapture().capture({"v": _Forever(), "d": date(2026, 12, 6)}).json
    )
    captured = PayloadCapture().capture({"v": [_Forever(), ValueError("x")], "s": "\ud800"})
    assert f"\"{{'v': [{mine}, x], 's': '\\\\ud800'}}\"" == captured.json
    assert "<builtins.ValueError object>" == value_text(ValueError(_Forever()))


@dataclass
class _Point:
    x: int
    tags: list[Any]
    hidden: str = field(default="h", repr=False)


@dataclass(slots=True)
class _Slotted:
    name: str
    inner: Any = None


@dataclass
class _OwnRepr:
    x: int

    def __repr__(self) -> str:
        time.sleep(1e9)
        raise AssertionError


def test_a_dataclass_is_written_as_its_generated_repr_without_its_code() -> None:
    """A dataclass is written field by field, as the ``__repr__`` dataclasses made writes it
    (a handler's own values inside as any other), one holding itself with ``...``; one whose
    class body writes its own ``__repr__`` is the handler's code, and written by its type."""
    point = _Point(1, [date(2026, 12, 6), _Forever()])
    forever = f"<{__name__}._Forever object>"
    assert f"_Point(x=1, tags=[2026-12-06, {forever}])" == value_text(point)
    cycle = _Slotted("a")
    cycle.inner = [cycle, _Slotted("b")]
    assert "_Slotted(name='a', inner=[..., _Slotted(name='b', inner=None)])" == value_text(cycle)
    assert f"<{__name__}._OwnRepr object>" == value_text(_OwnRepr(1))
    # JSON writes a dataclass as an object of every field, before any text is needed.
    captured = PayloadCapture().capture({"p": _Point(2, [])})
    assert '{"p":{"x":2,"tags":[],"hidden":"h"}}' == captured.json
