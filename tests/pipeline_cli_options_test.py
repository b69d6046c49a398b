"""A refused command-line value is quoted the house way (``ellipsis.quote``): at most 40
characters, its control characters escaped, so a pasted line break or terminal escape in an
argument cannot reach the terminal raw nor split the one-line error. The real command, in its
own process."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli_support import ONE_STAGE_PIPELINE, taskdaemon, write

#: Escape, a line break, then far more than a quote holds.
HOSTILE = "9\x1b[31m\nred" + "x" * 100


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("serve", "--port", HOSTILE), "argument --port: not a port number: '9\\x1b[31m\\nred"),
        (("ui", "--port", HOSTILE), "argument --port: not a port number: '9\\x1b"),
        (("serve", "--every", HOSTILE), "argument --every: not a number of seconds: '9\\x1b"),
        (("serve", "--max-runs", HOSTILE), "argument --max-runs: not a whole number: '9\\x1b"),
        (("watch", "0" * 32, "--interval", HOSTILE), "not a number of seconds: '9\\x1b"),
        (("runs", "list", "--source", HOSTILE + "://x"), "unknown span source scheme '9\\x1b"),
        (("run", "p.yaml", "--serve", HOSTILE), "expected [HOST:]PORT, got '9\\x1b"),
        (("run", "p.yaml", "--input", HOSTILE), "--input '9\\x1b"),
    ],
    ids=["serve-port", "ui-port", "every", "max-runs", "interval", "source", "run-serve", "input"],
)
def test_a_refused_value_is_quoted_on_one_line(
    args: tuple[str, ...], says: str, home: Path, tmp_path: Path
) -> None:
    write(tmp_path / "p.yaml", ONE_STAGE_PIPELINE)
    done = taskdaemon(home, *args, cwd=tmp_path)
    err = done.stderr
    quoted = err[err.index("'9") : err.index("…'") + 2]
    assert (done.returncode, err.count("\n"), "\x1b" in err, says in err) == (2, 1, False, True)
    assert quoted == repr(HOSTILE[:39] + "…")  # 40 characters of the value, then nothing more
