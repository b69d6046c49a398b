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
from taskdaemon.pipeline.secret_pieces import MIN_PIECE_CHARS
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
