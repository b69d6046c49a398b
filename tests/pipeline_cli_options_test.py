"""A refused command-line value is quoted the house way (``quoting.quote``): at most 40
characters, its control characters escaped (a JSON string: ``quoting``), so a pasted line
break or terminal escape in an argument cannot reach the terminal raw nor split the one-line
error. The real command, in its own process."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli_support import ONE_STAGE_PIPELINE, taskdaemon, write

#: Escape, a line break, then far more than a quote holds.
HOSTILE = "9\x1b[31m\nred" + "x" * 100


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("serve", "--port", HOSTILE), 'argument --port: not a port number: "9\\u001b[31m\\nred'),
        (("ui", "--port", HOSTILE), 'argument --port: not a port number: "9\\u001b'),
        (("serve", "--every", HOSTILE), 'argument --every: not a number of seconds: "9\\u001b'),
        (("serve", "--max-runs", HOSTILE), 'argument --max-runs: not a whole number: "9\\u001b'),
        (("watch", "0" * 32, "--interval", HOSTILE), 'not a number of seconds: "9\\u001b'),
        (("runs", "list", "--source", HOSTILE + "://x"), 'unknown span source scheme "9\\u001b'),
        (("run", "p.yaml", "--serve", HOSTILE), 'expected [HOST:]PORT, got "9\\u001b'),
        (("run", "p.yaml", "--input", HOSTILE), '--input "9\\u001b'),
    ],
    ids=["serve-port", "ui-port", "every", "max-runs", "interval", "source", "run-serve", "input"],
)
def test_a_refused_value_is_quoted_on_one_line(
    args: tuple[str, ...], says: str, home: Path, tmp_path: Path
) -> None:
    write(tmp_path / "p.yaml", ONE_STAGE_PIPELINE)
    done = taskdaemon(home, *args, cwd=tmp_path)
    err = done.stderr
    quoted = err[err.index('"9') : err.index('…"') + 2]
    assert (done.returncode, err.count("\n"), "\x1b" in err, says in err) == (2, 1, False, True)
    # 40 characters of the value, then nothing more, as a JSON string (``quoting``)
    assert json.loads(quoted) == HOSTILE[:39] + "…"


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("runs", "list", "--limit", "３"), "argument --limit: not a whole number: '３'"),
        (("report", "--limit", "３"), "argument --limit: not a whole number: '３'"),
        (("retention", "--keep", "３"), "argument --keep: not a whole number: '３'"),
        (("serve", "--port", "９０９０"), "argument --port: not a port number: '９０９０'"),
        (("serve", "--every", "１.５"), "argument --every: not a number of seconds: '１.５'"),
        (("serve", "--max-runs", "２"), "argument --max-runs: not a whole number: '２'"),
        (("watch", "0" * 32, "--interval", "１"), "not a number of seconds: '１'"),
        (("runs", "list", "--since", "３d"), "not a time: '３d'"),
        (("retention", "--max-age", "３０d"), "not a duration: '３０d'"),
        (("run", "p.yaml", "--serve", "９０９１"), "expected [HOST:]PORT, got '９０９１'"),
    ],
    ids=[
        *("limit", "report-limit", "keep", "port", "every", "max-runs", "interval", "since"),
        *("age", "run-serve"),
    ],
)
def test_a_number_in_other_than_ascii_digits_is_refused(
    args: tuple[str, ...], says: str, home: Path, tmp_path: Path
) -> None:
    """``int`` and ``float`` read full-width digits (``--port ９０９０`` served on 9090):
    every number option now takes ASCII digits only, and says so in one line."""
    write(tmp_path / "p.yaml", ONE_STAGE_PIPELINE)
    done = taskdaemon(home, *args, cwd=tmp_path)
    assert (done.returncode, done.stderr.count("\n"), says in done.stderr) == (2, 1, True), (
        done.stderr
    )
