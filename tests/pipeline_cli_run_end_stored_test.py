"""A run said ended is stored ended: ``serve`` logs "run ... ended", and closes the run's
control socket, only once its span store holds the run's end (``cli/ended_runs.store_run_end``),
so a command that finds no socket and reads the store is told the run ended, never asked
whether its process still runs. Real processes: ``serve``, and the commands asked at once."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli_support import taskdaemon, write
from schedule_support import scheduled_serve
from taskdaemon.pipeline.cli.ended_runs import ended_run

#: Its one stage outlasts the span store writer's batch interval many times: the run's end
#: then reaches a writer that has written its start already and waits idle, which commits the
#: end only once its next interval is over, unless it is flushed; and the test asks the store
#: once while the run goes.
PIPELINE = """\
    name: short
    stages:
      - name: only
        command: "sleep 1"
        triggers: [{manual: {approval_required: false}}]
"""


@pytest.mark.slow
def test_a_run_serve_says_ended_is_ended_in_the_store_at_once(home: Path) -> None:
    """Read as soon as ``serve`` logs the scheduled run ended (and not while it runs), the
    store has it ended: the answer ``approve`` and ``debug attach`` give from it says so,
    those commands say it in one line (exit 3), and ``runs show`` shows the run's status,
    ``success``."""
    pipeline = write(home / "short.yaml", PIPELINE)
    with scheduled_serve(home, pipeline, "--max-runs=1") as serve:
        # Asked once while the run goes (its answer then, and the reading code loaded: the
        # answer below is read within a writer interval of the line).
        running = ended_run(serve.run_id, str(home))
        ended = serve.line(" ended ")
        said = ended_run(serve.run_id, str(home))  # at once: no process start in between
        attach = taskdaemon(home, "debug", "attach", serve.run_id)
        approve = taskdaemon(home, "approve", serve.run_id, "only")
        shown = taskdaemon(home, "runs", "show", serve.run_id, "--json")
    run_id = serve.run_id
    assert running is None
    assert f"run {run_id} of short ended success" in ended
    assert said is not None
    assert said.startswith(f"run {run_id} has ended (success)"), said
    for refused in (attach, approve):
        assert 3 == refused.returncode, refused.stderr
        (line,) = refused.stderr.splitlines()
        assert f"run {run_id} has ended (success)" in line, line
    assert "success" == json.loads(shown.stdout)["status"]
