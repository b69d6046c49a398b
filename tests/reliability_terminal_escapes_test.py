"""A run read from a span file someone else wrote: its names reach the terminal escaped.

A span source is anyone's text: an OTLP JSON file handed over (``otlp-json:///PATH``), a
Tempo or Jaeger shared with others. The run's pipeline and stage names there may hold ESC,
BEL and U+202E, which, printed as they are, set the reader's terminal title, clear its screen
or reverse the rest of a line (``terminal_text``). A real run's spans are exported (its
dump's ``spans.otlp.json``), their names rewritten as such a file would have them, and every
reading command run on the file in a real subprocess must print them escaped.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from cli_support import taskdaemon
from reliability_support import renamed_span_file

pytestmark = pytest.mark.slow

#: What a name ends with in the rewritten file: an OSC title, BEL, a screen clear, U+202E.
HOSTILE = "\x1b]0;title\x07\x1b[2J\u202e"


@pytest.fixture(scope="module")
def hostile_spans(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """An ``otlp-json:///`` source of one finished run whose names end in :data:`HOSTILE`,
    and the run's id."""
    return renamed_span_file(tmp_path_factory.mktemp("spans"), HOSTILE)


@pytest.mark.parametrize(
    "command",
    [
        ["runs", "list"],
        ["runs", "show", "RUN"],
        ["report"],
        ["watch", "RUN"],
        ["replay", "RUN", "--dry-run"],
        ["dag", "--run", "RUN"],
        ["dag", "--run", "RUN", "-f", "json"],
    ],
    ids=" ".join,
)
def test_a_span_file_s_names_are_printed_escaped(
    home: Path, hostile_spans: tuple[str, str], command: list[str]
) -> None:
    """The command reads the run (exit 0) and prints its names with their control and bidi
    characters escaped (DOT's controls as spaces, which Graphviz takes): ``watch`` and
    ``replay --dry-run`` printed them raw, ``dag``'s DOT and JSON the U+202E (JSON as its
    ``\\u202e`` escape now: the same value to a program)."""
    source, run_id = hostile_spans
    args = [run_id if word == "RUN" else word for word in command]
    done = taskdaemon(home, *args, "--source", source)
    printed = done.stdout + done.stderr
    raw = sorted({char for char in "\x1b\x07\u202e" if char in printed})
    assert (0, [], True) == (done.returncode, raw, "]0;title" in printed), printed
