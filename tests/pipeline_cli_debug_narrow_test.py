"""``run``'s progress and the debugger's pause lines on an 80-column terminal (a pty), with a
stage named in 54 characters: no line wider than the terminal, and nothing a reader copies or
came for (a command, an error) cut."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from cli_faults_support import on_a_terminal, read_until
from cli_support import taskdaemon, write
from taskdaemon.pipeline.table_fit import text_columns

STAGE = "load-into-the-warehouse-and-refresh-materialized-views"

#: Escape sequences a terminal program writes (readline's bracketed paste, a cursor move).
_ESCAPES = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
#: A progress line: the clock since the run's start, then a stage's label.
_PROGRESS = re.compile(r" *[0-9]+\.[0-9]{2}s  ")


def _lines(seen: bytearray) -> list[str]:
    """What the terminal showed, line by line, its escape sequences left out."""
    return _ESCAPES.sub("", bytes(seen).decode()).replace("\r\n", "\n").split("\n")


@pytest.mark.slow
def test_a_wait_for_approval_puts_its_command_on_a_line_of_its_own(
    home: Path, tmp_path: Path
) -> None:
    """``run``'s line for a stage waiting for an approval names the command that grants it;
    on 80 columns, with the stage's long name in it, the command goes whole under the line
    (it was one line of 130 columns, wrapped by the terminal over the clock column)."""
    path = write(
        tmp_path / "gated.yaml",
        f"""\
        name: gated
        stages:
          - name: {STAGE}
            command: "true"
            triggers: [{{manual: {{approval_required: true}}}}]
        """,
    )
    with on_a_terminal(home, "run", str(path), columns=80) as run:
        run.wait_for("waiting for approval")
        run_id = run.run_id()
        hint = f"(taskdaemon approve {run_id} {STAGE})"
        run.wait_for(hint)
        approved = taskdaemon(home, "approve", run_id, STAGE)
        run.wait_for(f"run {run_id} success")
        assert 0 == run.process.wait(60)
    lines = _lines(run.seen)
    waiting = next(n for n, line in enumerate(lines) if "waiting for approval" in line)
    progress = [line for line in lines if _PROGRESS.match(line)]
    expected = (0, f"{'':12}{hint}", True, [])
    actual = (
        approved.returncode,
        lines[waiting + 1],
        len(progress) >= 3,  # running, waiting for approval, success
        [line for line in progress if text_columns(line) > 80],
    )
    assert expected == actual, lines


@pytest.mark.slow
def test_the_debuggers_pause_line_wraps_between_words_and_keeps_its_error(
    home: Path, tmp_path: Path
) -> None:
    """``debug FILE --break-on-failure``: the prompt's ``paused at`` and ``run ended`` lines,
    which name the whole error, wrap between words on 80 columns, as the prompt's opening line
    does (they were 160 columns and more, broken mid-word by the terminal). The command's
    stderr under its failure line is its output, whole, as ``logs`` shows it."""
    error = "the warehouse refused the nightly load: 42 rows violate the unique key"
    path = write(
        tmp_path / "failing.yaml",
        f"""\
        name: failing
        stages:
          - name: {STAGE}
            command: "echo '{error}' >&2; exit 3"
            triggers: [{{manual: {{approval_required: false}}}}]
        """,
    )
    with on_a_terminal(home, "debug", str(path), "--break-on-failure", columns=80) as debugged:
        debugged.wait_for("(taskdaemon) ")
        debugged.type(b"continue\n")
        debugged.wait_for("run ended failure")
        # The prompt again, after the run's end (an end of input typed before it was lost).
        ended = bytes(debugged.seen).index(b"run ended failure")
        rest = bytearray(debugged.seen[ended:])
        read_until(debugged.primary, b"(taskdaemon) ", rest)
        debugged.seen[ended:] = rest
        debugged.type(b"\x04")  # the end of the prompt's input
        assert 1 == debugged.process.wait(60)
    lines = _lines(debugged.seen)
    at = next(n for n, line in enumerate(lines) if line.startswith("paused at "))
    paused = " ".join(line.strip() for line in lines[at : at + 3])
    expected = (True, True, [])
    actual = (
        lines[at + 1].startswith("    "),
        error in paused,
        [line for line in lines if text_columns(line) > 80 and not line.startswith(f"{'':12}|")],
    )
    assert expected == actual, lines
