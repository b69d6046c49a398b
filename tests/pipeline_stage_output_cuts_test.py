"""Where the capture cuts a line longer than ``MAX_LINE_BYTES``: never through a secret it can
see (a shape of ``redaction`` or a value known as a secret), never inside a UTF-8 character,
and nothing lost, however the pipe's reads fall."""

from __future__ import annotations

import dataclasses

from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline_engine_support import plain_context
from pipeline_stage_output_support import Sink, captured_in_reads
from taskdaemon.pipeline.loops import command_handler
from taskdaemon.pipeline.redaction import redact_lines
from taskdaemon.pipeline.secret_values import remember_secrets
from taskdaemon.pipeline.stage_output import MAX_LINE_BYTES

_TOKEN = "ghp_" + "aB3dE5gH7jK9mN1pQ3sT5vX7zA9cE1gI3kM5"
_KNOWN = "plain-looking-value-77"
#: What each case prints inside a long line, and the part of it no sink may show.
_SECRETS = [
    (_TOKEN, _TOKEN),
    ("password=hunter2-hunter2", "hunter2-hunter2"),
    ('"api_key": "k3y-value-k3y"', "k3y-value-k3y"),
    (f"DB_URL=postgres://app:{_KNOWN}@db/app", _KNOWN),
]


def _captured(data: bytes, cuts: list[int]) -> list[list[str]]:
    """The texts of each batch a capture delivers of ``data`` read in pieces cut at ``cuts``."""
    return [list(batch.texts) for batch in captured_in_reads(data, cuts)]


@settings(max_examples=120, deadline=None)
@given(
    case=st.sampled_from(_SECRETS),
    boundary=st.integers(min_value=1, max_value=2),
    offset=st.integers(min_value=0, max_value=40),
    filler=st.sampled_from(["x", "ab, cd ", "é"]),
    tail=st.integers(min_value=0, max_value=3 * MAX_LINE_BYTES),
    cuts=st.lists(st.integers(min_value=0, max_value=4 * MAX_LINE_BYTES), max_size=5),
)
def test_a_long_line_is_never_cut_through_a_secret(
    *,
    case: tuple[str, str],
    boundary: int,
    offset: int,
    filler: str,
    tail: int,
    cuts: list[int],
) -> None:
    """A secret printed across where a long line would be cut (``offset`` bytes before the
    ``boundary``-th piece's end) is in one piece whole, so the sinks' ``redact_lines`` finds it;
    the pieces together are the line, each at most ``MAX_LINE_BYTES``."""
    remember_secrets({"db_password": _KNOWN})
    printed, hidden = case
    head = boundary * MAX_LINE_BYTES - offset
    before = (filler * head).encode()[:head].decode("utf-8", "ignore") + " "
    line = before + printed + " " + (filler * tail)[:tail]
    batches = _captured((line + "\nend\n").encode(), cuts)
    pieces = [text for texts in batches for text in texts]
    shown = [text for texts in batches for text in redact_lines(texts)]
    assert ([], line, []) == (
        [piece for piece in shown if hidden in piece],
        "".join(pieces[:-1]),
        [len(p.encode()) for p in pieces if len(p.encode()) > MAX_LINE_BYTES],
    )
    assert "end" == pieces[-1]


def test_a_cut_never_falls_inside_a_character() -> None:
    """A long line of two-byte characters after a one-byte one, read whole or in odd-sized
    reads, is cut between characters: no piece holds a replacement character, and together
    they are the line."""
    line = "a" + "é" * (MAX_LINE_BYTES + 7)
    data = line.encode() + b"\n"
    for cuts in ([], list(range(4_097, len(data), 4_097))):
        pieces = [text for texts in _captured(data, cuts) for text in texts]
        assert (line, []) == ("".join(pieces), [p for p in pieces if "\ufffd" in p])


async def test_a_command_printing_a_token_across_a_cut_shows_no_part_of_it(sink: Sink) -> None:
    """A real command prints a long line with a token where the line is cut, pausing inside the
    token (two reads): the lines the sink gets, redacted as stored, hold no part of it."""
    head = MAX_LINE_BYTES - len(_TOKEN) // 2
    script = (
        "import sys, time; w = sys.stdout.write; f = sys.stdout.flush; "
        f"w('x' * {head} + ' ' + {_TOKEN[:20]!r}); f(); time.sleep(0.2); "
        f"w({_TOKEN[20:]!r} + ' ' + 'y' * {MAX_LINE_BYTES} + '\\n'); f()"
    )
    context = dataclasses.replace(plain_context("command"), command=f"python3 -c {script!r}")
    await command_handler()(context)
    shown = "".join(redact_lines(sink.lines()))
    parts = (_TOKEN[:20] in shown, _TOKEN[20:] in shown)
    assert ((False, False), True) == (parts, "[REDACTED]" in shown)
