"""A run said ended is stored ended: ``serve`` logs "run ... ended", and ``serve``, ``run`` and
``debug FILE`` close the run's control socket, only once their span store holds the run's end
(``cli/ended_runs.store_run_end``), so a command that finds no socket and reads the store is
told the run ended, never asked whether its process still runs; and the log writers hold its
last lines. Real processes: ``serve`` and ``run``, and the commands asked at once."""

from __future__ import annotations

import asyncio
import json
import re
import time
from pathlib import Path

import pytest

from cli_support import ended_at_exit, in_background, line_with, taskdaemon, write
from schedule_support import scheduled_serve
from taskdaemon.pipeline.cli.ended_runs import ended_run, store_run_end
from taskdaemon.pipeline.control import send_request
from taskdaemon.pipeline.errors import PipelineError, RunNotFoundError
from taskdaemon.pipeline.log_rows import LogRow
from taskdaemon.pipeline.tracking.log_read import read_logs
from taskdaemon.pipeline.tracking.log_writer import SqliteLogWriter

RUN = "4bf92f3577b34da6a3ce929d0e0e4736"

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


def _until_unserved(home: Path, run_id: str) -> None:
    """Ask the run's control socket until it answered once and then no longer does (the
    explicit sync point: each look is one request; any answer, an error too, is served)."""
    served = False
    while True:
        try:
            send_request(run_id, {"op": "status"}, home=home, timeout=30)
        except RunNotFoundError:
            if served:
                return
        except PipelineError:  # answered (an op this process does not serve), or closing
            served = True
        else:
            served = True


@pytest.mark.slow
def test_a_run_whose_socket_is_gone_is_ended_in_the_store(home: Path) -> None:
    """Read as soon as the control socket of a ``taskdaemon run`` stops answering, the store
    has the run ended: the socket closed first, and the store got the run's end only when
    telemetry shut down after it."""
    pipeline = write(home / "short.yaml", PIPELINE)
    with ended_at_exit(in_background(home, "run", str(pipeline))) as process:
        started = line_with(process.stderr, " started ")
        found = re.search(r"\brun ([0-9a-f]{32}) of ", started)
        assert found is not None, started
        run_id = found.group(1)
        ended_run(run_id, str(home))  # the reading code loaded before the moment it is asked
        _until_unserved(home, run_id)
        said = ended_run(run_id, str(home))
        code = process.wait(timeout=60)
    assert 0 == code
    assert said is not None
    assert said.startswith(f"run {run_id} has ended (success)"), said


def test_a_run_said_ended_has_its_last_log_rows_in_the_store(tmp_path: Path) -> None:
    """``store_run_end`` has the process's log writers write what they hold: a writer lingers
    before a batch (here far longer than the test), and ``taskdaemon logs`` or the API read
    as soon as a run was said ended missed its last lines."""
    store = tmp_path / "spans.db"
    writer = SqliteLogWriter(store, linger=600)
    try:
        writer.write_row(
            LogRow(RUN, time.time_ns(), 9, "INFO", "p", "s", 0, 1, None, "s", "bye", {})
        )
        asyncio.run(store_run_end(RUN))
        stored = [record.body for record in read_logs(store, RUN)]
    finally:
        writer.close()
    assert stored == ["bye"]
