"""A secret value holding line breaks (a multi-line password, a key file's text) is masked line
by line too (``secret_values.written_forms``): a program that writes it a line at a time (a
line-buffered stream, a loop, a log record per line) never puts it whole in one read or one
record, and each of its lines was shown."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli_support import taskdaemon, write
from redaction_support import shown_and_stored
from taskdaemon.pipeline.redaction import REDACTED, redact_text
from taskdaemon.pipeline.secret_values import MASK_MAX_LINES, remember_secrets

FIRST, SECOND = "first-line-s3cr3t", "second-line-s3cr3t"


def test_each_line_of_a_value_is_masked_alone() -> None:
    """Each line of a value holding line breaks is masked where it stands alone, CRLF or LF,
    its blanks around it dropped; a line shorter than ``MASK_MIN_CHARS`` is not (a common
    word), nor a start of a line shorter than that (``secret_pieces``)."""
    remember_secrets({"password": f"{FIRST}\r\n  {SECOND}  \nshort\n"})
    assert [f"a {REDACTED} b", f"{REDACTED}.", "short first"] == [
        redact_text(f"a {FIRST} b"),
        redact_text(f"{SECOND}."),
        redact_text("short first"),
    ]


def test_the_lines_masked_alone_are_bounded() -> None:
    """The first ``MASK_MAX_LINES`` lines of a value are masked alone, not the next one (each
    is one more search for every text redacted); the whole value still is. (The next line is
    looked at inside other text: alone, it is an end of the value's escaped written form,
    a piece ``secret_pieces`` masks.)"""
    lines = [f"line-{n:04d}-s3cr3t" for n in range(MASK_MAX_LINES + 1)]
    value = "\n".join(lines)
    remember_secrets({"password": value})
    assert [REDACTED, f"a {lines[-1]} b", REDACTED] == [
        redact_text(lines[MASK_MAX_LINES - 1]),
        redact_text(f"a {lines[-1]} b"),
        redact_text(value),
    ]


#: Prints the request's secret as it is, on stdout and stderr, and fails.
SPANNING = """\
    name: spanning
    stages:
      - name: show
        command: >-
          printf 'key: %s\\n' "$TASKDAEMON_INPUT_API_KEY";
          printf 'err %s\\n' "$TASKDAEMON_INPUT_API_KEY" >&2; exit 3
        inputs: {api_key: request.api_key}
        triggers: [{manual: {approval_required: false}}]
"""

#: Prints the request's secret a line at a time, a pause between (two reads of the pipe), on
#: stdout, then on stderr, and fails.
LINE_BY_LINE = """\
    name: lines
    stages:
      - name: show
        command: >-
          printf '%s\\n' "$TASKDAEMON_INPUT_API_KEY" |
          while IFS= read -r line; do echo "out $line"; echo "err $line" >&2; sleep 0.3; done;
          exit 3
        inputs: {api_key: request.api_key}
        triggers: [{manual: {approval_required: false}}]
"""


def _run_shown(home: Path, pipeline: Path) -> tuple[list[str], list[str]]:
    """Run ``pipeline`` with the request's ``api_key`` the two lines ``FIRST`` and ``SECOND``:
    what the run, ``logs``, ``runs show --json`` and the store's rows show, and which of the two
    lines any of them holds."""
    done = taskdaemon(home, "run", str(pipeline), "--input", f"api_key={FIRST}\n{SECOND}")
    run_id = done.stdout.split("\nrun ", 1)[1].split()[0]
    shown = [done.stdout, done.stderr, *shown_and_stored(home, run_id)]
    return shown, [text for text in (FIRST, SECOND) if any(text in s for s in shown)]


@pytest.mark.slow
def test_a_value_holding_a_line_break_is_masked_across_the_lines_it_spans(
    home: Path, tmp_path: Path
) -> None:
    """A request's secret written over two lines, printed on stdout and stderr by a command
    that then fails: neither of its lines is in the run's summary, the console's stderr tail,
    ``logs``, ``runs show --json`` or the store; the lines around it are there, masked."""
    shown, leaks = _run_shown(home, write(tmp_path / "p.yaml", SPANNING))
    said = [f"key: {REDACTED}", f"err {REDACTED}"]
    assert ([], [True, True], 1) == (
        leaks,
        [line in shown[2] for line in said],
        shown[1].count(f"| err {REDACTED}"),
    )


@pytest.mark.slow
def test_a_secret_printed_a_line_at_a_time_is_masked_everywhere(home: Path, tmp_path: Path) -> None:
    """The same secret printed one line per read of the pipe on stdout and stderr: neither of
    its lines is shown anywhere; the lines that said them are there, masked."""
    shown, leaks = _run_shown(home, write(tmp_path / "p.yaml", LINE_BY_LINE))
    assert ([], 2, 2) == (
        leaks,
        shown[2].count(f"[stdout] out {REDACTED}"),
        shown[2].count(f"[stderr] err {REDACTED}"),
    )
