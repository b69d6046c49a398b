"""A secret whose pieces land in separate records (``secret_pieces``): a handler's
``logging.info(token[:10])`` then ``logging.info(token[10:])``, a command's stderr lines
further apart than a hold waits. A record that ends with a long enough start of a value known
as a secret, or begins with a long enough end of one, or is wholly a long enough piece of one,
has that piece masked, in the run's output, ``logs``, ``runs show --json`` and the store."""

from __future__ import annotations

from pathlib import Path

import pytest

from redaction_support import run_key_handler, run_with_key, shown_and_stored
from taskdaemon.pipeline.redaction import REDACTED, redact_text
from taskdaemon.pipeline.secret_pieces import (
    MIN_PIECE_CHARS,
    masked_pieces,
    may_hold_pieces,
    value_start,
)
from taskdaemon.pipeline.secret_values import forget_secrets, remember_secrets

TOKEN = "Tk9vQ2xAbcdEfgh1234567890zyxwvuTSRQPonml"  # 40 characters, no shape of its own


def test_a_texts_edge_piece_is_masked_when_long_enough() -> None:
    """The end of a text that starts the value, the start of one that ends it, a whole text
    that is a piece of it, each of ``MIN_PIECE_CHARS`` or more: masked; shorter, or a piece
    inside a text with other text on both sides: kept."""
    remember_secrets({"token": TOKEN})
    try:
        cut = MIN_PIECE_CHARS
        assert [
            f"key: {REDACTED}",
            f"{REDACTED} done",
            REDACTED,
            f"  {REDACTED}",
            f"key: {TOKEN[: cut - 1]}",
            f"{TOKEN[-cut + 1 :]} done",
            f"a {TOKEN[5:25]} b",
        ] == [
            redact_text(text)
            for text in (
                f"key: {TOKEN[:cut]}",
                f"{TOKEN[-cut:]} done",
                TOKEN[10:30],
                f"  {TOKEN[12:28]}",
                f"key: {TOKEN[: cut - 1]}",
                f"{TOKEN[-cut + 1 :]} done",
                f"a {TOKEN[5:25]} b",
            )
        ]
    finally:
        forget_secrets()


def test_a_value_s_proper_start_ends_a_text_and_its_end_starts_one() -> None:
    """``value_start``: where the longest proper start of a value that ends the text begins
    (a start one character short of the longest value too), none for a whole value unless a
    longer one starts with it; read reversed, a value's end that starts the text. Values of
    several lines, and empty ones, are never looked for."""
    assert 5 == value_start(f"key: {TOKEN[:-1]}", (TOKEN,))
    assert 0 == value_start(TOKEN[:10], (TOKEN,))
    assert 5 == value_start(f"key: {TOKEN[:3]}", ("x" * 5, TOKEN))
    assert None is value_start(f"key: {TOKEN}", (TOKEN,))
    assert 5 == value_start(f"key: {TOKEN}", (TOKEN, f"{TOKEN}z"))
    assert 5 == value_start(f"{TOKEN[-12:]} done"[::-1], (TOKEN,), backwards=True)
    assert None is value_start(f"{TOKEN[-12:]} done"[::-1], (TOKEN,))
    assert None is value_start("key: ab", ("",))
    assert None is value_start("key: ab", ())
    assert 5 == value_start("key: ab", ("a\nb", "abc"))
    assert None is value_start("key: ab", ("a\nbc",))


def test_only_a_text_whose_edge_is_in_a_value_may_hold_a_piece() -> None:
    """``may_hold_pieces``: true when a text, blanks around it aside, ends or starts with
    ``MIN_PIECE_CHARS`` characters of a value, with few values (their pieces of 8 as a set)
    and with many (the values joined searched instead); false for shorter edges, and, with
    few values, for a text shorter than a piece."""
    cut = MIN_PIECE_CHARS
    many = tuple(f"{index:06d}{TOKEN}" for index in range(2000))  # beyond the set's bound
    for values, value in (((TOKEN,), TOKEN), (many, many[1500])):
        assert may_hold_pieces(["no", f"key: {value[:cut]}  "], values)
        assert may_hold_pieces([f"\t{value[-cut:]} done"], values)
        assert not may_hold_pieces([f"key: {value[: cut - 1]}", f"{value[1 - cut :]} x"], values)
        assert "key: R" == masked_pieces(f"key: {value[:12]}", values, "R")
        assert "R done" == masked_pieces(f"{value[-12:]} done", values, "R")
        assert "R" == masked_pieces(value[20:40], values, "R")
    assert not may_hold_pieces(["", TOKEN[-7:]], (TOKEN,))  # shorter than a piece
    spanning = f"{many[0][-5:]}\0{many[1][:5]}"  # the values joined hold it, no value does
    assert spanning == masked_pieces(spanning, many, "R")


def test_pieces_at_both_edges_and_pieces_that_meet() -> None:
    """A value's end starting a text and its start ending it: both masked, the text between
    shown; when the two pieces are the whole text, one replacement for all of it. Blanks
    around a text are kept (a form feed is no blank), a text shorter than a piece is kept
    whole, one of a piece's length is masked, and a middle piece spanning two values (the
    NUL that joins them) is no piece of either."""
    assert "R mid R" == masked_pieces(f"{TOKEN[-9:]} mid {TOKEN[:9]}", (TOKEN,), "R")
    assert f"R mid {TOKEN[:7]}" == masked_pieces(f"{TOKEN[-9:]} mid {TOKEN[:7]}", (TOKEN,), "R")
    assert "R" == masked_pieces(TOKEN[-10:] + TOKEN[:10], (TOKEN,), "R")
    assert " \tR\r\n" == masked_pieces(f" \t{TOKEN[5:20]}\r\n", (TOKEN,), "R")
    assert "\f" + TOKEN[5:20] == masked_pieces("\f" + TOKEN[5:20], (TOKEN,), "R")
    assert TOKEN[:7] == masked_pieces(TOKEN[:7], (TOKEN,), "R")
    assert "R" == masked_pieces(TOKEN[10 : 10 + MIN_PIECE_CHARS], (TOKEN,), "R")
    assert "R done" == masked_pieces(f"{TOKEN[1:]} done", (TOKEN,), "R")  # the longest end
    text = "ghij\0klmn"
    assert text == masked_pieces(text, ("abcdefghij", "klmnopqrst"), "R")


def test_a_value_of_several_lines_gives_no_piece() -> None:
    """A value holding a line break is masked line by line (``secret_values``), not here:
    neither a start of it ending a text nor a middle piece of it is masked, even beside a
    one-line value that holds the same characters."""
    several = "Secr3tPiece\nsecond line"
    assert "key: Secr3tPie" == masked_pieces("key: Secr3tPie", (several, "xxSecr3tPiecexx"), "R")
    assert "Secr3tPiec" == masked_pieces("Secr3tPiec", (several, TOKEN), "R")


def test_other_values_are_looked_for_once_given() -> None:
    """Each call looks for the values it is given, not for those of the call before."""
    other = "Zq8pW3vLmN7rT2sXkY5u"
    assert "key: R" == masked_pieces(f"key: {TOKEN[:10]}", (TOKEN,), "R")
    assert f"key: {TOKEN[:10]}" == masked_pieces(f"key: {TOKEN[:10]}", (other,), "R")
    assert "key: R" == masked_pieces(f"key: {other[:10]}", (other,), "R")
    assert 5 == value_start(f"key: {other[:10]}", (other,))
    assert None is value_start(f"key: {other[:10]}", (TOKEN,))


HANDLER = """\
import logging
import time


def show(ctx):
    token = ctx.inputs["api_key"]
    log = logging.getLogger("key")
    log.warning("key: %s", token[:10])
    log.warning(token[10:30])
    log.warning("%s end", token[30:])
    print(token[:12])
    time.sleep(0.7)
    print(token[12:])
    return {}
"""

PIECES = (TOKEN[:10], TOKEN[10:30], TOKEN[30:], TOKEN[:12], TOKEN[12:])


@pytest.mark.slow
def test_a_secret_logged_in_three_records_shows_no_piece(home: Path, tmp_path: Path) -> None:
    """Three log records hold the token's start, middle and end; two prints, further apart
    than a held line waits, its start and the rest: no piece is in the run's output,
    ``logs``, ``runs show --json`` or the store (before: the first two records' pieces and
    the first print were shown)."""
    done = run_key_handler(home, tmp_path, HANDLER, TOKEN)
    shown = [done.stdout, done.stderr, *shown_and_stored(home, done.stdout.split()[-1])]
    assert [] == [
        (piece, i) for piece in PIECES for i, text in enumerate(shown) if piece in text
    ], shown[2]


#: The request's token on stderr: its first 20 characters and a line break, then, later
#: than a held line waits, the rest.
COMMAND = """\
    name: pieces
    stages:
      - name: show
        command: >-
          printf '%s' "$TASKDAEMON_INPUT_API_KEY" | head -c 20 >&2; echo >&2; sleep 0.7;
          printf '%s\\n' "$TASKDAEMON_INPUT_API_KEY" | cut -c 21- >&2
        inputs: {api_key: request.api_key}
        triggers: [{manual: {approval_required: false}}]
"""


@pytest.mark.slow
def test_a_secret_in_two_stderr_lines_far_apart_shows_no_piece(home: Path, tmp_path: Path) -> None:
    """A command's stderr line holding the token's first 20 characters, and 0.7 s later the
    next with the rest: neither piece is shown anywhere (before: the first was)."""
    shown = run_with_key(home, tmp_path, COMMAND, TOKEN)
    assert [] == [
        piece for piece in (TOKEN[:20], TOKEN[20:]) if any(piece in text for text in shown)
    ], shown[2]
