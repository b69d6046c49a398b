"""``taskdaemon serve``'s schedule arguments: refused at once with one line when they make no
schedule."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import re
import signal
import socket
from pathlib import Path

import pytest

from cli_support import ended_at_exit, in_background, read_line, taskdaemon
from pipeline_monitor_support import scope_labels
from taskdaemon.pipeline.cli import main
from taskdaemon.pipeline.cli.serve import _schedule
from taskdaemon.pipeline.config import parse_pipeline
from taskdaemon.pipeline.engine import Engine

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "feature_delivery.yaml"


@pytest.fixture(autouse=True)
def own_home(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The schedule serves each run on a control socket under the home: the test's own, not a
    ``.taskdaemon`` in the working directory (the checkout)."""
    monkeypatch.setenv("TASKDAEMON_HOME", str(home))


@pytest.mark.parametrize(
    ("option", "value"),
    [("--every", "nan"), ("--every", "inf"), ("--max-runs", "-1")],
    ids=["every-nan", "every-inf", "negative-max-runs"],
)
def test_a_schedule_argument_that_makes_no_schedule_exits_2_before_serving(
    option: str,
    value: str,
    home: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A NaN or infinite --every, or a negative --max-runs, exits 2 without serving or running
    anything (NaN ran the pipeline back to back, -1 ran it for ever as "1 of -1"): a usage
    error in one line, while the arguments are parsed."""
    monkeypatch.setenv("TASKDAEMON_HOME", str(home))
    with pytest.raises(SystemExit) as exited:
        main(["serve", "--port", "0", "--pipeline", str(EXAMPLE), option, value])
    err = capsys.readouterr().err
    expected = (2, 1, f"taskdaemon serve: error: argument {option}: ", [])
    actual = (exited.value.code, len(err.splitlines()), err[: len(expected[2])])
    assert expected == (*actual, sorted(p.name for p in home.iterdir()))


def test_a_port_in_use_is_one_line(home: Path) -> None:
    """A taken port was a timestamped ``ERROR taskdaemon.serve:`` log line, where refusals are
    ``taskdaemon COMMAND: why``: now ``taskdaemon serve: cannot serve on HOST:PORT: why``. In
    a process of its own: this one's telemetry, set by other tests, would log about itself."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = taskdaemon(home, "serve", "--port", str(port))
    said = f"taskdaemon serve: cannot serve on 127.0.0.1:{port}: Address already in use"
    assert (done.returncode, done.stderr.splitlines()) == (1, [said])


@pytest.mark.parametrize("command", ["serve", "ui"])
def test_a_host_that_cannot_be_served_on_is_said_escaped(command: str, home: Path) -> None:
    """The line quotes ``--host`` as given: an ESC in it drove the reader's terminal (both
    printed their own line, unescaped). Now ``cli/refusal.py``'s, as every command's. glibc
    refuses such a name itself: no DNS query leaves the machine."""
    token = "t" * 32  # beyond loopback the API needs one: refused before binding otherwise
    done = taskdaemon(
        home, command, "--port", "0", "--host", "bad\x1b[31mhost", TASKDAEMON_API_TOKEN=token
    )
    said = f"taskdaemon {command}: cannot serve on bad\\x1b[31mhost:0: Name or service not known"
    assert (done.returncode, done.stderr.splitlines()) == (1, [said])


async def test_a_scheduled_run_that_cannot_start_is_one_error_and_serving_goes_on(
    tmp_path: Path,
) -> None:
    """A run whose workspace cannot be made (a read-only home) is one error line; the schedule
    goes on to its end instead of a traceback that stops the server."""
    (tmp_path / "file").write_text("not a directory")
    pipeline = parse_pipeline(
        "name: one\nstages:\n  - {name: a, command: 'true', triggers: [{manual: {}}]}\n"
    )
    stop = asyncio.Event()
    records: list[logging.LogRecord] = []

    class Recorder(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)
            stop.set()  # after its only run, the schedule would serve until a signal

    logger = logging.getLogger("taskdaemon.serve")
    recorder = Recorder(logging.ERROR)
    logger.addHandler(recorder)
    try:
        async with Engine(workspace=tmp_path / "file" / "ws") as engine:
            args = argparse.Namespace(max_runs=1, every=60.0)
            await _schedule(engine, pipeline, {}, args, stop)
    finally:
        logger.removeHandler(recorder)
    errors = [
        re.sub("[0-9a-f]{32}", "RUN", r.getMessage()) for r in records if r.levelno >= logging.ERROR
    ]
    workspace = tmp_path / "file" / "ws" / "RUN"
    expected = [
        f"run 1 of one could not start: cannot create the workspace {workspace}: Not a directory"
    ]
    assert expected == errors


async def test_each_scheduled_run_is_said_when_it_starts_and_when_it_ends(
    tmp_path: Path,
) -> None:
    """The schedule says each run's id when it starts, not only when it ends: an operator
    reaches a run waiting for an approval by that id (`taskdaemon approve`, the API). Each line
    carries the run's `run_id` and `pipeline` as fields (a JSON log line's, an exported log
    record's), as the run's own records do: a query for one run's lines finds them."""
    pipeline = parse_pipeline(
        "name: one\nstages:\n  - {name: a, command: 'true', triggers: [{manual: {}}]}\n"
    )
    stop = asyncio.Event()
    records: list[str] = []
    fields: list[bool] = []

    class Recorder(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            message = record.getMessage()
            records.append(re.sub("[0-9a-f]{32}", "RUN", message))
            run_id = message.split()[1]
            fields.append(
                (run_id, "one")
                == (getattr(record, "run_id", None), getattr(record, "pipeline", None))
            )
            if " ended " in records[-1] and "(2 of 2)" in records[-1]:
                stop.set()  # after its last run, the schedule would serve until a signal

    logger = logging.getLogger("taskdaemon.serve")
    recorder = Recorder(logging.INFO)
    logger.addHandler(recorder)
    level = logger.level
    logger.setLevel(logging.INFO)
    try:
        async with Engine(workspace=tmp_path / "ws") as engine:
            args = argparse.Namespace(max_runs=2, every=0.001)
            await _schedule(engine, pipeline, {}, args, stop)
    finally:
        logger.setLevel(level)
        logger.removeHandler(recorder)
    expected = [
        "run RUN of one started (1 of 2)",
        "run RUN of one ended success (1 of 2)",
        "run RUN of one started (2 of 2)",
        "run RUN of one ended success (2 of 2)",
    ]
    assert (expected, [True] * 4) == (records, fields)


async def test_scheduled_runs_that_cannot_start_are_counted_per_pipeline(tmp_path: Path) -> None:
    """Each scheduled run whose workspace cannot be made adds one to
    taskdaemon_runs_not_started_total for its pipeline, whose series is there at 0 before."""
    from opentelemetry.exporter.prometheus import PrometheusMetricReader
    from opentelemetry.sdk.metrics import MeterProvider
    from prometheus_client import CollectorRegistry

    from taskdaemon.pipeline.cli.serve import not_started_counter

    (tmp_path / "file").write_text("not a directory")
    pipeline = parse_pipeline(
        "name: one\nstages:\n  - {name: a, command: 'true', triggers: [{manual: {}}]}\n"
    )
    registry = CollectorRegistry()
    meters = MeterProvider(metric_readers=[PrometheusMetricReader(registry=registry)])
    count = not_started_counter(meters, "one")
    before = registry.get_sample_value(
        "taskdaemon_runs_not_started_total", scope_labels(pipeline="one")
    )
    stop = asyncio.Event()
    counted: list[str] = []

    def not_started(name: str) -> None:
        count(name)
        counted.append(name)
        if len(counted) == 3:
            stop.set()  # after its last run, the schedule would serve until a signal

    try:
        async with Engine(workspace=tmp_path / "file" / "ws") as engine:
            args = argparse.Namespace(max_runs=3, every=0.001)
            await _schedule(engine, pipeline, {}, args, stop, not_started=not_started)
        sample = registry.get_sample_value(
            "taskdaemon_runs_not_started_total", scope_labels(pipeline="one")
        )
    finally:
        meters.shutdown()
    assert (0.0, 3.0) == (before, sample)


@pytest.mark.slow
async def test_serve_shows_its_runs_that_could_not_start_on_metrics(home: Path) -> None:
    """`taskdaemon serve` in a home where no workspace can be made serves the count of its
    scheduled runs that could not start on /metrics."""
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    from cli_support import TASKDAEMON, environment, free_port, write
    from prometheus_support import stop, until

    (home / "workspaces").write_text("not a directory")
    pipeline = write(
        home / "one.yaml",
        "name: one\nstages:\n  - {name: a, command: 'true', triggers: [{manual: {}}]}\n",
    )
    port = free_port()
    daemon = await asyncio.create_subprocess_exec(
        *(TASKDAEMON, "serve", "--port", str(port), "--pipeline", str(pipeline)),
        *("--every", "0.1", "--max-runs", "2"),
        env=environment(home, OTEL_METRICS_EXPORTER="prometheus"),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:

            async def counted() -> float | None:
                text = (await client.get("/metrics")).text
                families = text_string_to_metric_families(text)
                samples = [
                    s
                    for f in families
                    for s in f.samples
                    if s.labels == scope_labels(pipeline="one")
                ]
                values = [s.value for s in samples if s.name == "taskdaemon_runs_not_started_total"]
                return values[0] if values and values[0] >= 2 else None

            value = await until(counted, limit=30, what="two runs counted as not started")
    finally:
        await stop(daemon)
    assert 2.0 == value


@pytest.mark.slow
async def test_the_first_scheduled_run_that_cannot_start_fires_its_alert(
    home: Path, tmp_path: Path
) -> None:
    """A real Prometheus with the shipped rules scrapes `serve` while its first run waits for
    an approval; the home then loses its workspaces (a file in their place) and the next run
    cannot start: `TaskdaemonRunsNotStarted` answers for that one run."""
    from cli_support import environment, write
    from prometheus_support import (
        alert_expression,
        answers,
        approve_the_run,
        free_port,
        rules_prometheus,
        serving,
        until,
    )

    pipeline = write(
        tmp_path / "gated.yaml",
        "name: gated\nstages:\n"
        "  - {name: a, command: 'true', triggers: [{manual: {approval_required: true}}]}\n",
    )
    port = free_port()
    env = environment(home, OTEL_METRICS_EXPORTER="prometheus")
    async with (
        rules_prometheus(tmp_path, [f"127.0.0.1:{port}"]) as prometheus,
        serving(port, pipeline, env, "--every", "0.1", "--max-runs", "2"),
    ):
        await until(
            lambda: answers(prometheus, 'pipeline_active_executions{pipeline="gated"} == 1'),
            limit=60,
            what="the waiting run scraped",
        )
        (home / "workspaces").rename(home / "workspaces.gone")
        (home / "workspaces").write_text("not a directory")
        await approve_the_run(home, port, "a")
        await until(
            lambda: answers(prometheus, "taskdaemon_runs_not_started_total > 0"),
            limit=60,
            what="the run that could not start scraped",
        )
        fired = await answers(prometheus, alert_expression("TaskdaemonRunsNotStarted"))
    assert [{"pipeline": "gated", "instance": f"127.0.0.1:{port}"}] == [
        series["metric"] for series in fired
    ]


@pytest.mark.slow
def test_the_command_line_reaches_a_scheduled_run(home: Path, tmp_path: Path) -> None:
    """`taskdaemon status` and `taskdaemon approve` reach a run `serve` scheduled, as they reach
    a `taskdaemon run`'s (they answered "no run is served here", exit 3, while it waited): the
    run ends approved, by the name `approve` gave."""
    from cli_support import taskdaemon, write
    from schedule_support import scheduled_serve

    pipeline = write(
        tmp_path / "gated.yaml",
        "name: gated\nstages:\n"
        "  - {name: a, command: 'true', triggers: [{manual: {approval_required: true}}]}\n",
    )
    with scheduled_serve(home, pipeline) as serve:
        run_id = serve.run_id
        status = taskdaemon(home, "status", run_id[:8])
        approved = taskdaemon(home, "approve", run_id[:8], "a", "--by", "ops")
        ended = serve.line(" ended ")
    shown = json.loads(taskdaemon(home, "runs", "show", run_id, "--json").stdout)
    expected = (0, "waiting", 0, f"run {run_id} of gated ended success", "success")
    assert expected == (
        status.returncode,
        json.loads(status.stdout)["stages"]["a"] if status.returncode == 0 else status.stderr,
        approved.returncode,
        ended.split(": ", 1)[1].split(" (")[0],
        shown["status"],
    ), approved.stderr


@pytest.mark.slow
def test_a_scheduled_run_waiting_for_someone_is_said_with_the_command_to_reach_it(
    home: Path, tmp_path: Path
) -> None:
    """A scheduled run that waits for an approval, or pauses at a breakpoint, is one line on
    serve's log naming the stage or execution and ``taskdaemon approve RUN STAGE`` or
    ``taskdaemon debug attach RUN`` (serve said nothing: the run waited unseen), and a
    resumption one more; all are structured records with the run's fields. The commands they
    name reach the run."""
    from cli_support import taskdaemon, write
    from schedule_support import scheduled_serve

    pipeline = write(
        tmp_path / "gated.yaml",
        "name: gated\nstages:\n"
        "  - {name: a, command: 'true', triggers: [{manual: {approval_required: true}}]}\n"
        "  - {name: b, command: 'true', triggers: [{on_completion: {stage: a}}]}\n",
    )
    with scheduled_serve(home, pipeline, "--max-runs=1", TASKDAEMON_LOG_FORMAT="json") as serve:
        run_id = serve.run_id
        serve.api("PUT", f"/api/runs/{run_id}/debug/breakpoints", {"stage": "b"})
        waits = json.loads(serve.line(" waits for approval "))
        approved = taskdaemon(home, *waits["msg"].rsplit(": ", 1)[1].split()[1:])
        paused = json.loads(serve.line(" paused "))
        named = paused["msg"].rsplit(": ", 1)[1].split()
        attached = taskdaemon(home, *named[1:], stdin="continue\n")
        resumed = json.loads(serve.line(" resumed "))
        ended = serve.line(" ended ")
    expected_paused = (
        f"run {run_id} of gated paused at b.0.1 (#1 before b (run {run_id[:8]})) "
        "for 600s at most unless a debugger is attached: "
        f"taskdaemon debug attach {run_id}"
    )
    expected_waits = f"run {run_id} of gated waits for approval of a: taskdaemon approve {run_id} a"
    assert (expected_waits, "INFO", 0) == (waits["msg"], waits["level"], approved.returncode)
    assert (expected_paused, "WARNING") == (paused["msg"], paused["level"])
    assert f"run {run_id} of gated resumed b.0.1: continue by cli debug attach" == resumed["msg"]
    for record in (waits, paused, resumed):
        assert (run_id, "gated", None) == (
            record["run_id"],
            record["pipeline"],
            record.get("stage"),  # serve's line, not one of the stage's log records
        )
    assert (0, "") == (attached.returncode, attached.stderr)
    assert "ended success" in ended


def test_serve_says_its_address_once(home: Path) -> None:
    """``serve`` starts with one line naming its address and where its token is; it said the
    address three times (the HTTP thread's, the sign-in line, its own)."""
    with ended_at_exit(in_background(home, "serve", "--port", "0")) as served:
        first = read_line(served.stderr)
        served.send_signal(signal.SIGTERM)
        _out, rest = served.communicate(timeout=60)
    found = re.search(r"API: (http://127\.0\.0\.1:\d+)/ \(token in \S+\)$", first.strip())
    assert found is not None, first + rest
    assert (0, 1) == (served.returncode, (first + rest).count(found.group(1))), first + rest


@pytest.mark.slow
def test_a_signal_that_stops_serve_cancels_its_run_for_that_signal(
    home: Path, tmp_path: Path
) -> None:
    """SIGTERM to ``serve`` while its scheduled run runs cancels the run for SIGTERM, as a
    signal to ``run`` does: the stage it ended, the one it skipped and the run say so (they
    read ``run cancelled``, as if nobody had asked), and serve exits 0."""
    from cli_support import wait_until_stored, write
    from schedule_support import scheduled_serve

    why = "run cancelled by SIGTERM"
    pipeline = write(
        tmp_path / "held.yaml",
        "name: held\nstages:\n"
        "  - {name: a, command: 'sleep 60', triggers: [{manual: {approval_required: false}}]}\n"
        "  - {name: b, command: 'true', triggers: [{on_completion: {stage: a}}]}\n",
    )
    with scheduled_serve(home, pipeline, "--max-runs=1") as serve:
        wait_until_stored(home, serve.run_id, "a")
        serve.process.send_signal(signal.SIGTERM)
        serve.line(" ended cancelled ")
        code = serve.process.wait(timeout=60)
    logs = taskdaemon(home, "logs", serve.run_id).stdout.splitlines()
    shown = json.loads(taskdaemon(home, "runs", "show", serve.run_id, "--json").stdout)
    stages = {s["name"]: s for s in shown["stages"]}
    assert (
        0,
        "cancelled",
        (f"cancelled: {why}", why),
        ("skipped", why),
        [
            f"stage a.0.1 finished: cancelled: {why}",
            f"stage b skipped: {why}",
            f"run {serve.run_id} finished: cancelled: {why}",
        ],
    ) == (
        code,
        shown["status"],
        (stages["a"]["attempts"][-1]["error"], stages["a"]["cancel_reason"]),
        (stages["b"]["status"], stages["b"]["skip_reason"]),
        [line.split(None, 2)[2] for line in logs if why in line],
    )
