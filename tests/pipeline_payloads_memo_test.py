"""PayloadCapture remembers the captures of short whole JSON texts, bounded."""

from __future__ import annotations

import hashlib

from taskdaemon.pipeline import payloads
from taskdaemon.pipeline.payloads import PayloadCapture


def test_a_repeated_short_payload_is_captured_once() -> None:
    """Equal short payloads share one capture, whose size and digest are the JSON's."""
    capture = PayloadCapture()
    first = capture.capture({"b": 1, "a": [1, 2]})
    again = capture.capture({"a": [1, 2], "b": 1})
    assert again is first
    data = b'{"a":[1,2],"b":1}'
    assert (first.json, first.size, first.truncated) == (data.decode(), len(data), False)
    assert first.sha256 == hashlib.sha256(data).hexdigest()


def test_a_cut_capture_is_not_shared_with_a_whole_one() -> None:
    """A capture cut by a smaller cap is its own: the remembered whole one is not returned."""
    whole = PayloadCapture().capture({"key": "value"})
    cut = PayloadCapture(max_bytes=4).capture({"key": "value"})
    assert whole.truncated is False
    assert (cut.json, cut.truncated, cut.size, cut.sha256) == (
        '{"ke',
        True,
        whole.size,
        whole.sha256,
    )


def test_the_memo_stays_bounded_and_skips_long_texts() -> None:
    """Many distinct payloads never grow the memo past its cap; long ones are not kept."""
    capture = PayloadCapture()
    for index in range(payloads._SMALL_MAX_ENTRIES * 3):
        capture.capture({"n": index})
        assert len(payloads._small) <= payloads._SMALL_MAX_ENTRIES
    long = capture.capture({"text": "x" * payloads._SMALL_MAX_BYTES})
    assert long.json.encode() not in payloads._small
    assert long is not capture.capture({"text": "x" * payloads._SMALL_MAX_BYTES})
