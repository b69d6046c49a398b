"""``taskdaemon serve --pipeline``'s exit code once a real SIGTERM stops it: 1 when one of its
scheduled runs did not succeed, with one line saying how many and the last, else 0
(``cli/serve.py``'s module docstring). Before, it was 0 whatever its runs had done."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from cli_support import write
from schedule_support import scheduled_serve

#: A stage that fails in the runs ``FAILS`` lists (1 the first), each run a line in ``COUNTED``.
PIPELINE = """\
name: flaky
stages:
  - name: a
    command: >-
      echo x >> "$COUNTED"; n=$(wc -l < "$COUNTED");
      case " $FAILS " in *" $n "*) exit 3;; esac
    triggers: [{manual: {approval_required: false}}]
"""

#: serve's last line after runs that did not succeed.
SAID = "{} of {} scheduled runs did not succeed, the last: run {} failure; exit code 1"


@pytest.mark.slow
@pytest.mark.parametrize(
    ("fails", "runs", "failed", "last"),
    [("1", 1, 1, 1), ("1", 2, 1, 1), ("1 2", 2, 2, 2), ("", 2, 0, 0)],
    ids=["one-failed", "failed-then-succeeded", "both-failed", "both-succeeded"],
)
def test_serve_stopped_by_sigterm_exits_1_after_a_run_that_failed(  # noqa: PLR0917 - columns
    home: Path, tmp_path: Path, fails: str, runs: int, failed: int, last: int
) -> None:
    """A failure followed by a success still exits 1: the exit code never hides a run that
    failed. Both runs succeeded: 0, the stop's own line last."""
    pipeline = write(tmp_path / "flaky.yaml", PIPELINE)
    env = {"COUNTED": str(tmp_path / "counted"), "FAILS": fails}
    options = ("--every", "0.1", "--max-runs", str(runs))
    with scheduled_serve(home, pipeline, *options, **env) as serve:
        ids = [serve.run_id]
        if runs == 2:
            ids.append(serve.line("(2 of 2)").split("run ", 1)[1][:32])
        serve.line("schedule done")
        serve.process.send_signal(signal.SIGTERM)
        _out, stderr = serve.process.communicate(timeout=60)
    said = stderr.splitlines()[-1].split(" ", 3)[-1]  # the message, past time, level, logger
    expected = SAID.format(failed, runs, ids[last - 1]) if failed else "SIGTERM: stopping"
    assert (1 if failed else 0, expected) == (serve.process.returncode, said), stderr
