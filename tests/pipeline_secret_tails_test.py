"""A one-line secret printed wrapped over two reads of a command's pipe, or two ``print()``
calls of a handler (``secret_tails``): the line that may begin it waits for the stream's next
batch, so the sinks mask both pieces together; and what a handler prints reaches ``run``'s
own stdout redacted."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from redaction_support import run_key_handler, run_with_key, shown_and_stored
from taskdaemon.pipeline import secret_tails
from taskdaemon.pipeline.redaction import REDACTED
from taskdaemon.pipeline.secret_tails import HOLD_SECONDS, MAX_HELD_LINES, TailHold, begins_value
from taskdaemon.pipeline.secret_values import remember_secrets

TOKEN = "Tk9vQ2xAbcdEfgh1234567890zyxwvuTSRQPonml"  # 40 characters, no shape of its own
PIECES = (TOKEN[:20], TOKEN[20:])


def test_a_line_that_may_begin_a_value_is_held_for_the_next_batch() -> None:
    """Held while its end is a proper start of a value, and sent first with the next batch;
    a line ending the value whole, or unlike its start, goes at once; the held line goes
    alone when the stream ends."""
    assert [True, True, False, False, False] == [
        begins_value(line, [TOKEN, "two\nlines-secret"])
        for line in (f"key: {TOKEN[:20]}", "T", f"{TOKEN} done", "nothing here", "two")
    ]
    remember_secrets({"token": TOKEN})
    sent: list[tuple[list[str], int]] = []
    hold = TailHold(lambda texts, when: sent.append((texts, when)))
    hold.send(["first", PIECES[0]], 1)
    assert [(["first"], 1)] == sent
    hold.send([PIECES[1], "after"], 2)
    hold.send([f"again {PIECES[0]}"], 3)
    hold.close()
    assert [
        (["first"], 1),
        ([PIECES[0], PIECES[1], "after"], 1),
        ([f"again {PIECES[0]}"], 3),
    ] == sent


def test_a_held_line_leaves_alone_after_the_bound_and_its_end_masks_the_next_piece() -> None:
    """No next batch within ``HOLD_SECONDS``: the line goes alone, and the piece that then
    continues it is masked in the next batch."""
    remember_secrets({"token": TOKEN})
    sent: list[list[str]] = []
    hold = TailHold(lambda texts, _when: sent.append(texts))
    hold.send([f"key: {PIECES[0]}"], 1)
    deadline = time.monotonic() + HOLD_SECONDS + 5
    while not sent and time.monotonic() < deadline:
        time.sleep(0.05)
    hold.send([f"{PIECES[1]} done", "next"], 2)
    hold.close()
    assert [[f"key: {PIECES[0]}"], [f"{REDACTED} done", "next"]] == sent


def test_a_value_over_three_batches_is_held_until_its_pieces_meet() -> None:
    """A value's first piece, then its middle, then its end, each in its own batch: the first
    two stay held while they glue to a start of it, and all three go in one batch; a start
    followed by more than ``MAX_HELD_LINES`` blank lines is not held. Before, the middle piece
    went out with the first, each shown."""
    remember_secrets({"token": TOKEN})
    sent: list[list[str]] = []
    hold = TailHold(lambda texts, _when: sent.append(texts))
    hold.send(["first", f"key: {TOKEN[:10]}"], 1)
    hold.send([f"  {TOKEN[10:25]}"], 2)
    hold.send([TOKEN[25:], "after"], 3)
    hold.send([TOKEN[:10], *[""] * (MAX_HELD_LINES + 5)], 4)
    hold.close()
    assert [
        ["first"],
        [f"key: {TOKEN[:10]}", f"  {TOKEN[10:25]}", TOKEN[25:], "after"],
        [TOKEN[:10], *[""] * (MAX_HELD_LINES + 5)],
    ] == sent


def test_a_stream_holding_at_every_batch_starts_one_thread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each of 500 batches ends with a value's start, so each holds a line the next one takes:
    one thread serves every hold's deadline, lines go in order and none is lost, and the
    stream's end ends it. A thread that wakes to no held line ends by itself. Before, each
    batch cancelled a ``threading.Timer`` and started another."""
    remember_secrets({"token": TOKEN})
    started: list[str] = []
    start = threading.Thread.start

    def counted(thread: threading.Thread) -> None:
        started.append(thread.name)
        start(thread)

    monkeypatch.setattr(threading.Thread, "start", counted)
    # A bound no stall of a loaded machine between two batches reaches: no line leaves alone.
    monkeypatch.setattr(secret_tails, "HOLD_SECONDS", 600.0)
    sent: list[str] = []
    hold = TailHold(lambda texts, _when: sent.extend(texts))
    batches = [[f"line {n}", f"key {n}: {PIECES[0]}"] for n in range(500)]
    for batch in batches:
        hold.send(batch, 1)
    hold.send(["last"], 2)
    assert ["taskdaemon-secret-tail"] == started
    hold.close()
    assert [] == _senders()
    assert [*(line for batch in batches for line in batch), "last"] == sent

    monkeypatch.setattr(secret_tails, "HOLD_SECONDS", HOLD_SECONDS)
    hold = TailHold(lambda texts, _when: None)
    hold.send([PIECES[0]], 3)
    hold.send([PIECES[1]], 4)  # takes the held line and holds none
    deadline = time.monotonic() + HOLD_SECONDS + 5
    while _senders() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert [] == _senders()
    assert 2 == len(started)
    hold.close()


def _senders() -> list[threading.Thread]:
    """The hold threads running now."""
    return [t for t in threading.enumerate() if t.name == "taskdaemon-secret-tail"]


#: The request's token on stdout and on stderr, its first 20 characters and a line break in
#: one read, then (after a pause longer than the capture's cadence) the rest in another.
COMMAND = """\
    name: tails
    stages:
      - name: show
        command: >-
          printf '%s' "$TASKDAEMON_INPUT_API_KEY" | head -c 20; echo; sleep 0.2;
          printf '%s\\n' "$TASKDAEMON_INPUT_API_KEY" | cut -c 21-;
          printf '%s' "$TASKDAEMON_INPUT_API_KEY" | head -c 20 >&2; echo >&2; sleep 0.2;
          printf '%s\\n' "$TASKDAEMON_INPUT_API_KEY" | cut -c 21- >&2
        inputs: {api_key: request.api_key}
        triggers: [{manual: {approval_required: false}}]
"""


@pytest.mark.slow
def test_a_secret_wrapped_over_two_reads_shows_no_piece(home: Path, tmp_path: Path) -> None:
    """No piece of the token is in the run's output, ``logs``, ``runs show --json`` or the
    store; ``logs`` has both lines of each stream, masked."""
    shown = run_with_key(home, tmp_path, COMMAND, TOKEN)
    assert ([], 2, 2) == (
        [piece for piece in PIECES if any(piece in text for text in shown)],
        shown[2].count(f"[stdout] {REDACTED}"),
        shown[2].count(f"[stderr] {REDACTED}"),
    )


#: The request's token on stdout in three reads: 15 characters, 15 more, the rest.
THREE_READS = """\
    name: tails
    stages:
      - name: show
        command: >-
          printf '%s' "$TASKDAEMON_INPUT_API_KEY" | cut -c 1-15; sleep 0.15;
          printf '%s' "$TASKDAEMON_INPUT_API_KEY" | cut -c 16-30; sleep 0.15;
          printf '%s' "$TASKDAEMON_INPUT_API_KEY" | cut -c 31-
        inputs: {api_key: request.api_key}
        triggers: [{manual: {approval_required: false}}]
"""
THREE_PIECES = (TOKEN[:15], TOKEN[15:30], TOKEN[30:])


@pytest.mark.slow
def test_a_secret_wrapped_over_three_reads_shows_no_piece(home: Path, tmp_path: Path) -> None:
    """No piece of the token, the middle one included, is in the run's output, ``logs``,
    ``runs show --json`` or the store; ``logs`` has its three lines masked (before: the
    middle piece and the first were shown, only the last masked)."""
    shown = run_with_key(home, tmp_path, THREE_READS, TOKEN)
    assert ([], 3) == (
        [piece for piece in THREE_PIECES if any(piece in text for text in shown)],
        shown[2].count(f"[stdout] {REDACTED}"),
    ), shown[2]


HANDLER = """\
import time


def show(ctx):
    token = ctx.inputs["api_key"]
    print("whole", token)
    print(token[:20])
    time.sleep(0.1)
    print(token[20:])
    return {}
"""


@pytest.mark.slow
def test_a_handler_printing_a_secret_in_two_prints_shows_no_piece(
    home: Path, tmp_path: Path
) -> None:
    """A handler prints the token whole, then in two ``print()`` calls: ``logs``, ``runs show
    --json`` and the store hold no piece of it; ``run``'s own stdout has the whole token
    masked (each write is redacted there as it is made, so the pieces of two writes are not
    found: docs/redaction.md)."""
    done = run_key_handler(home, tmp_path, HANDLER, TOKEN)
    shown = shown_and_stored(home, done.stdout.split()[-1])
    assert ([], [f"whole {REDACTED}"], 3) == (
        [piece for piece in PIECES if any(piece in text for text in shown)],
        done.stdout.splitlines()[:1],
        shown[0].count(f"[stdout] {REDACTED}") + shown[0].count(f"[stdout] whole {REDACTED}"),
    )
