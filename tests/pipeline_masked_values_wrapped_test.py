"""A one-line secret a program prints wrapped, its pieces on consecutive lines (``tok[:20]``
then ``tok[20:]``, ``fold``, base64 cut at 64 or 76 columns), is masked piece by piece
(``masked_values.masked_wrapped``, from ``redaction.redact_lines``): no piece alone is the
value, so each line was shown as it was."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli_support import taskdaemon, write
from redaction_support import run_key_handler, run_with_key, shown_and_stored
from taskdaemon.pipeline.masked_values import masked_wrapped
from taskdaemon.pipeline.redaction import REDACTED, redact_lines, redact_text
from taskdaemon.pipeline.secret_values import remember_secrets

TOKEN = "Tk9vQ2xAbcdEfgh1234567890zyxwvuTSRQPonml"  # 40 characters, no shape of its own
PIECES = (TOKEN[:20], TOKEN[20:], TOKEN[:16], TOKEN[16:32], TOKEN[32:])


def test_a_value_wrapped_over_lines_has_each_piece_masked() -> None:
    """Cut in two with text around it, or over three lines: each piece is masked, the text
    around it stays; lines that hold only the value's start, or only its end, not glued to
    the rest, are masked as pieces at a text's edge are (``secret_pieces``). A text of
    several lines (a stage's ``stdout`` result) is masked alike."""
    remember_secrets({"token": TOKEN})
    assert [
        ["pre [REDACTED]", "[REDACTED] post", "after"],
        [REDACTED, REDACTED, REDACTED],
        [REDACTED, "and then", REDACTED],
        [f"a {REDACTED} b", REDACTED],
    ] == [
        redact_lines([f"pre {TOKEN[:20]}", f"{TOKEN[20:]} post", "after"]),
        redact_lines(list(PIECES[2:])),
        redact_lines([TOKEN[:20], "and then", TOKEN[20:]]),
        redact_lines([f"a {TOKEN} b", TOKEN[:20]]),
    ]
    assert f"{REDACTED}\n{REDACTED}\n" == redact_text(f"{TOKEN[:20]}\n{TOKEN[20:]}\n")


#: A command stage printing the request's token cut at 20 columns on stdout, at 16 on stderr.
COMMAND = """\
    name: wrapped
    stages:
      - name: show
        command: >-
          printf '%s\\n' "$TASKDAEMON_INPUT_API_KEY" | fold -w 20;
          printf '%s\\n' "$TASKDAEMON_INPUT_API_KEY" | fold -w 16 >&2
        inputs: {api_key: request.api_key}
        triggers: [{manual: {approval_required: false}}]
"""

HANDLER = """\
import textwrap


def show(ctx):
    print(textwrap.fill(ctx.inputs["api_key"], 20))
    return {}
"""


@pytest.mark.slow
def test_a_command_printing_a_secret_wrapped_shows_no_piece(home: Path, tmp_path: Path) -> None:
    """``fold`` cuts the request's token on stdout and stderr: no piece of it is in the run's
    output, ``logs``, ``runs show --json`` or the store; ``logs`` has each line, masked."""
    pipeline = write(tmp_path / "p.yaml", COMMAND)
    done = taskdaemon(home, "run", str(pipeline), "--input", f"api_key={TOKEN}")
    run_id = done.stdout.split("\nrun ", 1)[1].split()[0]
    shown = [done.stdout, done.stderr, *shown_and_stored(home, run_id)]
    assert ([], 2, 3) == (
        [piece for piece in PIECES if any(piece in text for text in shown)],
        shown[2].count(f"[stdout] {REDACTED}"),
        shown[2].count(f"[stderr] {REDACTED}"),
    )


@pytest.mark.slow
def test_a_python_stage_printing_a_secret_wrapped_shows_no_piece(
    home: Path, tmp_path: Path
) -> None:
    """A handler prints the token wrapped at 20 columns: ``logs``, ``runs show --json`` and the
    store hold no piece of it, nor ``run``'s own stdout (each write redacted there:
    docs/stage-logs.md); ``logs`` has both lines, masked."""
    done = run_key_handler(home, tmp_path, HANDLER, TOKEN)
    shown = [*shown_and_stored(home, done.stdout.split()[-1]), done.stdout]
    assert ([], 2) == (
        [piece for piece in PIECES[:2] if any(piece in text for text in shown)],
        shown[0].count(f"[stdout] {REDACTED}"),
    )


def test_a_value_wrapped_with_an_indent_before_each_piece_is_masked() -> None:
    """``fold``, then ``sed 's/^/  /'`` (or a tab): the blanks that start a line are laid out
    around the value, not in it, and stay; a prefix other than blanks keeps the pieces apart
    (docs/redaction.md): only the first, a start of the value ending its line, is masked, as a
    piece at a text's edge (``secret_pieces``)."""
    remember_secrets({"token": TOKEN})
    assert [
        [f"  {REDACTED}", f"  {REDACTED}"],
        [f"key: {REDACTED}", f"\t\t{REDACTED} end"],
        [f"log: {REDACTED}", f"log: {TOKEN[20:]}"],
    ] == [
        redact_lines([f"  {TOKEN[:20]}", f"  {TOKEN[20:]}"]),
        redact_lines([f"key: {TOKEN[:20]}", f"\t\t{TOKEN[20:]} end"]),
        redact_lines([f"log: {TOKEN[:20]}", f"log: {TOKEN[20:]}"]),
    ]
    assert f"  {REDACTED}\n    {REDACTED}" == redact_text(f"  {TOKEN[:20]}\n    {TOKEN[20:]}")


@pytest.mark.slow
def test_a_command_printing_a_secret_wrapped_and_indented_shows_no_piece(
    home: Path, tmp_path: Path
) -> None:
    """``fold -w 20 | sed 's/^/  /'``: no piece of the token is in the run's output, ``logs``,
    ``runs show --json`` or the store; ``logs`` has both lines, masked, their indent kept."""
    indented = COMMAND.replace("| fold -w 20;", "| fold -w 20 | sed 's/^/  /';")
    shown = run_with_key(home, tmp_path, indented, TOKEN)
    assert ([], 2) == (
        [piece for piece in PIECES if any(piece in text for text in shown)],
        shown[2].count(f"[stdout]   {REDACTED}"),
    )


def test_each_place_wrapped_is_masked_on_every_line_it_reaches() -> None:
    """``masked_wrapped`` itself: a value cut one character before its end is masked on both
    lines; a value whole on one line is left to ``masked_text`` (the lines come back as they
    are); two places may share a line, a place may begin on a line's first character, and a
    shorter value inside a longer one does not hide the place after it on its line."""
    assert [
        ["pre R", "R post"],
        ["a SECRET", "b"],
        ["xR", "RxR", "Rx"],
        ["ab", "R", "Ry"],
        ["pre R", "R mid R", "R post"],
        ["aR", "Rb", "cR", "Rd", "e"],
    ] == [
        masked_wrapped(["pre SECRE", "T post"], ["SECRET"], "R"),
        masked_wrapped(["a SECRET", "b"], ["SECRET"], "R"),
        masked_wrapped(["xSE", "CxSE", "Cx"], ["SEC"], "R"),
        masked_wrapped(["ab", "SE", "Cy"], ["SEC"], "R"),
        masked_wrapped(["pre ABCD", "EF mid ABCD", "EF post"], ["ABCDEF", "BCDE"], "R"),
        masked_wrapped(["aS", "ECb", "cS", "ECd", "e"], ["SEC"], "R"),
    ]
