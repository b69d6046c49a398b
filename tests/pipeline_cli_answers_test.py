"""CLI answers that must not mislead: ``run -q`` keeps the failure reason, a closed pipe ends
quietly, a cut ``runs list`` says so, ATTEMPTS and durations mean and read the same in every
view, ``/api`` answers, ``/api/runs`` shows every instance with its times, help texts are plain
text, a stage without triggers is told the entry-stage form, and DOT and Mermaid draw each gate
kind with the same shape family."""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import subprocess
import tempfile
import textwrap
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from cli_support import (
    ONE_STREAM,
    ROOT,
    TASKDAEMON,
    environment,
    pythonpath_with,
    read_one_line,
    taskdaemon,
)
from pipeline_tracking_support import T0, S, make_provider, write_example_run
from taskdaemon.pipeline.cli import build_parser, main
from taskdaemon.pipeline.config import parse_pipeline
from taskdaemon.pipeline.engine import Engine
from taskdaemon.pipeline.events import EngineEvent, StageStarted
from taskdaemon.pipeline.loops import StageContext
from taskdaemon.pipeline.model import Pipeline, Stage
from taskdaemon.pipeline.server import create_app
from taskdaemon.pipeline.tracking import RetentionPolicy, SqliteSpanProcessor
from taskdaemon.pipeline.visualization import dag_snapshot, render_dot, render_mermaid
from taskdaemon.pipeline.visualization._snapshot import gates

EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, what a shell reports for a command a closed pipe ended

#: Every duration any view writes: the one formatter's grammar.
DURATION = re.compile(r"\d+ms|\d+\.\ds|\d+m\d\ds|\d+h\d\dm")
#: Anything that looks like a duration, in any of the styles the views used to mix.
DURATION_LIKE = re.compile(r"(?<![\w.:])\d+(?:\.\d+)?\s?(?:ms|s|min|m|h)(?![\w])")


# --- a fan-out run through the real CLI, then every view of it -----------------------------------

FANOUT_LOOPS = """
def emit(ctx):
    for n in range(3):
        ctx.publish("item", {"n": n})
    return {}
"""

FANOUT = """\
name: fanout
loops:
  emit: {handler: "fanout_loops:emit"}
stages:
  - name: source
    loop: emit
    emits: [item]
    triggers: [{manual: {approval_required: false}}]
  - name: work
    loop: command
    command: "true"
    triggers: [{on_event: {type: item}}]
"""


@dataclass
class Views:
    """The outputs of one fan-out run: ``run``'s summary and progress, ``runs list``,
    ``runs show`` and the DAG of the stored run."""

    run: subprocess.CompletedProcess[str]
    runs_list: str
    runs_show: str
    dot: str
    mermaid: str


@pytest.fixture(scope="module")
def views() -> Iterator[Views]:
    """Run the fan-out pipeline once with the CLI, then read it back through each view."""
    home = Path(tempfile.mkdtemp(prefix="td-", dir="/tmp"))
    try:
        (home / "fanout_loops.py").write_text(FANOUT_LOOPS)
        (home / "fanout.yaml").write_text(FANOUT)
        extra = {"PYTHONPATH": pythonpath_with(home)}
        run = taskdaemon(home, "run", str(home / "fanout.yaml"), **extra)
        run_id = run.stdout.strip().splitlines()[-1].split()[1]
        yield Views(
            run=run,
            runs_list=taskdaemon(home, "runs", "list").stdout,
            runs_show=taskdaemon(home, "runs", "show", run_id).stdout,
            dot=taskdaemon(home, "dag", str(home / "fanout.yaml"), "--run", run_id).stdout,
            mermaid=taskdaemon(
                home, "dag", str(home / "fanout.yaml"), "--run", run_id, "-f", "mermaid"
            ).stdout,
        )
    finally:
        shutil.rmtree(home, ignore_errors=True)


def _row(table: str, stage: str, header_start: str = "STAGE") -> dict[str, str]:
    lines = table.splitlines()
    header = next(line for line in lines if line.startswith(header_start))
    row = next(line for line in lines if line.startswith(f"{stage} "))
    # Columns are aligned under their header: cut each row where each heading starts.
    starts = [match.start() for match in re.finditer(r"\S+", header)]
    cells = [row[a:b].strip() for a, b in zip(starts, [*starts[1:], None], strict=True)]
    return dict(zip(header.split(), cells, strict=True))


@pytest.mark.slow
def test_attempts_and_instances_mean_the_same_in_run_and_runs_show(views: Views) -> None:
    """The three-instance stage reads INSTANCES 3, ATTEMPTS 1 in both tables."""
    summary = _row(views.run.stdout, "work")
    shown = _row(views.runs_show, "work")
    assert (summary["INSTANCES"], summary["ATTEMPTS"], shown["INSTANCES"], shown["ATTEMPTS"]) == (
        "3",
        "1",
        "3",
        "1",
    )


@pytest.mark.slow
def test_every_view_writes_durations_with_the_one_formatter(views: Views) -> None:
    """Each duration in the run summary, progress lines (after the clock column), runs list,
    runs show and the DAG labels follows one grammar (no ``0.02s`` beside ``24ms``)."""
    progress = "\n".join(line.split(None, 1)[1] for line in views.run.stderr.splitlines()[1:])
    labels = " ".join(re.findall(r'label="([^"]*)"', views.dot))
    texts = {
        "run": views.run.stdout,
        "progress": progress,
        "runs list": views.runs_list,
        "runs show": views.runs_show,
        "dot": labels,
        "mermaid": views.mermaid,
    }
    found = {name: DURATION_LIKE.findall(text) for name, text in texts.items()}
    odd = {name: [d for d in ds if not DURATION.fullmatch(d)] for name, ds in found.items()}
    assert all(found.values()), found  # each view does show durations
    assert odd == {name: [] for name in texts}


# --- run -q --------------------------------------------------------------------------------------


@pytest.mark.slow
def test_quiet_run_prints_the_failure_reason_on_stderr(tmp_path: Path) -> None:
    """``run -q`` of a failing pipeline: the run id alone on stdout, the reason on stderr."""
    (tmp_path / "f.yaml").write_text(
        textwrap.dedent(
            """\
            name: failing
            stages:
              - name: broken
                loop: command
                command: "sh -c 'echo kaputt >&2; exit 3'"
                triggers: [{manual: {approval_required: false}}]
            """
        )
    )
    done = taskdaemon(tmp_path / "home", "run", "-q", str(tmp_path / "f.yaml"))
    assert (done.returncode, len(done.stdout.split()), "exited with code 3" in done.stderr) == (
        1,
        1,
        True,
    )
    assert done.stdout.split()[0] in done.stderr  # the reason names the run


# --- runs list: a closed pipe, a cut list --------------------------------------------------------

RUNS = 400  # --json writes ~280 bytes a run: well past a pipe's 64 KiB buffer


@pytest.fixture(scope="module")
def crowded_store() -> Iterator[str]:
    """An embedded store with RUNS finished runs; yields its source URL."""
    directory = Path(tempfile.mkdtemp(prefix="td-"))
    processor = SqliteSpanProcessor(directory / "spans.db", retention=RetentionPolicy())
    provider, _ = make_provider(processor)
    for index in range(RUNS):
        write_example_run(provider, t0=T0 + index * S)
    provider.shutdown()
    yield f"sqlite:///{directory / 'spans.db'}"
    shutil.rmtree(directory, ignore_errors=True)


@pytest.mark.slow
@pytest.mark.parametrize("attempt", range(4))
def test_a_reader_that_stops_early_gets_no_traceback(crowded_store: str, attempt: int) -> None:
    """``runs list --json | head -1``: the reader takes one line and closes the pipe while the
    command still has ~100 KB to write; it exits 141 with nothing on stderr."""
    del attempt  # repeated: the old failure showed in some tries only
    first, code, stderr = read_one_line(
        Path(tempfile.gettempdir()),
        *("runs", "list", "--json", "--limit", str(RUNS), "--source", crowded_store),
    )
    assert (first.strip(), code, stderr) == ("[", EXIT_BROKEN_PIPE, "")


def test_output_its_encoding_cannot_hold_is_escaped_not_a_traceback(tmp_path: Path) -> None:
    """Under ``PYTHONIOENCODING=ascii`` (or a Latin-1 locale), a Spanish file name and a
    U+202E in an error line were a ``UnicodeEncodeError`` traceback; they are the line,
    escaped."""
    done = taskdaemon(tmp_path, "validate", "año\u202e.yaml", PYTHONIOENCODING="ascii")
    expected = (2, "a\\xf1o\\u202e.yaml: cannot read the file: no such file or directory\n", "")
    assert expected == (done.returncode, done.stdout, done.stderr)


@pytest.mark.slow
@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs Linux's /dev/full")
def test_a_full_disk_on_stdout_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    """``dag FILE > /dev/full`` (stdout on a full disk) exits 1 with one line on stderr."""
    with open("/dev/full", "w", encoding="utf-8") as full:
        done = subprocess.run(
            [TASKDAEMON, "dag", "examples/feature_delivery.yaml"],
            cwd=ROOT,
            env=environment(tmp_path),
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            check=False,
        )
    expected = (1, "taskdaemon: cannot write the output: No space left on device\n")
    assert expected == (done.returncode, done.stderr)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("closes", "args", "expected"),
    [
        (
            ">&-",
            ["runs", "list"],
            (1, "", "taskdaemon: cannot write the output: stdout is closed\n"),
        ),
        ("2>&-", ["dag", "examples/feature_delivery.yaml", "--format", "dot"], (0, "digraph", "")),
    ],
    ids=["stdout", "stderr"],
)
def test_a_stream_closed_before_the_command_is_one_line_not_a_traceback(
    tmp_path: Path, closes: str, args: list[str], expected: tuple[int, str, str]
) -> None:
    """``runs list >&-`` was an AttributeError traceback (Python makes a closed stdout None),
    and a command with stderr closed (``2>&-``) that succeeded exited 1. The command does its
    work, and a closed stdout is said in one line, exit 1."""
    done = subprocess.run(
        ["sh", "-c", f'exec "$@" {closes}', "sh", TASKDAEMON, *args],
        cwd=ROOT,
        env=environment(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    code, out, err = expected
    assert (code, err) == (done.returncode, done.stderr)
    assert done.stdout.startswith(out)


def test_a_cut_list_says_how_many_runs_match(
    crowded_store: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The default limit shows 20 rows and says on stderr that 400 match; a limit that holds
    them all says nothing."""
    assert main(["runs", "list", "--source", crowded_store]) == 0
    cut = capsys.readouterr()
    assert main(["runs", "list", "--source", crowded_store, "--limit", str(RUNS)]) == 0
    whole = capsys.readouterr()
    assert (len(cut.out.splitlines()), cut.err, len(whole.out.splitlines()), whole.err) == (
        21,
        f"20 of {RUNS} runs; --limit N for more\n",
        RUNS + 1,
        "",
    )


@pytest.mark.slow
def test_runs_list_says_its_note_after_its_answer_in_one_log(
    crowded_store: str, tmp_path: Path
) -> None:
    """``runs list > log 2>&1``: the stderr line (the list is cut) follows the answer, as on a
    terminal. The answer, held in stdout's buffer (a pipe, a file) until exit, came after it."""
    command = ("runs", "list", "--source", crowded_store)
    apart = taskdaemon(tmp_path, *command)
    together = taskdaemon(tmp_path, *command, launcher=ONE_STREAM)
    assert (True, 1) == (bool(apart.stdout), apart.stderr.count("\n")), apart.stderr
    assert (0, apart.stdout + apart.stderr) == (together.returncode, together.stdout)


# --- /api ----------------------------------------------------------------------------------------

API_PIPELINE = """\
name: api-fanout
concurrency: 4
stages:
  - name: source
    loop: python
    handler: "x:y"
    emits: [item]
    triggers: [{manual: {approval_required: false}}]
  - name: work
    loop: python
    handler: "x:y"
    parallel_instances: 3
    triggers: [{on_event: {type: item}}]
"""


class FanOut:
    """``source`` publishes three items; each ``work`` instance holds until released."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.started = 0
        self.all_started = asyncio.Event()

    def resolve(self, pipeline: Pipeline, stage: Stage) -> Any:
        async def source(ctx: StageContext) -> Mapping[str, Any]:
            for n in range(3):
                ctx.publish("item", {"n": n})
            return {}

        async def work(ctx: StageContext) -> Mapping[str, Any]:
            await self.release.wait()
            return {}

        return source if stage.name == "source" else work

    def on_event(self, event: EngineEvent) -> None:
        if isinstance(event, StageStarted) and event.stage == "work":
            self.started += 1
            if self.started == 3:
                self.all_started.set()


def _client(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://127.0.0.1",
        headers={"authorization": f"Bearer {app.state.auth.token}"},
    )


async def test_api_index_lists_every_route() -> None:
    """GET /api (advertised in the server's log line) answers a JSON index of the app's routes,
    each with a description."""
    app = create_app()
    async with _client(app) as client:
        response = await client.get("/api")
    routes = response.json()["routes"]
    served = {route.path for route in app.routes}
    assert (response.status_code, {r["path"] for r in routes}) == (200, served)
    assert [r["path"] for r in routes if not r["doc"] or not r["methods"]] == []


async def test_api_runs_lists_every_instance_with_its_times() -> None:
    """A finished stage keeps its start and end; each of the three running instances is listed."""
    fan = FanOut()
    async with Engine(resolver=fan, observers=[fan]) as engine:
        app = create_app(engine=engine)
        handle = await engine.start_run(parse_pipeline(API_PIPELINE))
        await fan.all_started.wait()
        async with _client(app) as client:
            (run,) = (await client.get("/api/runs")).json()["runs"]
        fan.release.set()
        await handle.wait()
    (source,) = [s for s in run["stages"] if s["stage"] == "source"]
    work = [s for s in run["stages"] if s["stage"] == "work"]
    assert (source["status"], source["started_at"] is not None, source["ended_at"] is not None) == (
        "success",
        True,
        True,
    )
    assert sorted((s["instance"], s["status"], s["started_at"] is not None) for s in work) == [
        (0, "running", True),
        (1, "running", True),
        (2, "running", True),
    ]


# --- help texts ----------------------------------------------------------------------------------


def _parsers(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _parsers(sub, (*path, name))


def test_no_help_text_shows_rest_markup() -> None:
    """No --help of any command or sub-command shows ``literal`` quotes or :role:`x` markup."""
    markup = re.compile(r"``|:[a-z]+:`")
    found = {
        " ".join(path) or "taskdaemon": markup.findall(parser.format_help())
        for path, parser in _parsers(build_parser())
    }
    assert len(found) > 10  # every sub-command was reached
    assert {path: hits for path, hits in found.items() if hits} == {}


def test_approve_help_says_it_works_on_any_run_in_progress() -> None:
    """approve --help no longer limits itself to "served" runs: any taskdaemon run serves one."""
    text = " ".join(dict(_parsers(build_parser()))[("approve",)].format_help().split())
    assert ("served run" in text, "every taskdaemon run serves" in text) == (False, True)


# --- a stage without triggers --------------------------------------------------------------------

HINT = "(an entry stage has triggers: [{manual: {approval_required: false}}])"


@pytest.mark.parametrize("triggers", ["", "    triggers: []\n"])
@pytest.mark.usefixtures("process_state_put_back")  # validate in-process sets sys.path
def test_a_stage_without_triggers_is_shown_the_entry_form(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], triggers: str
) -> None:
    """Missing and empty ``triggers`` both end with the entry-stage hint."""
    path = tmp_path / "p.yaml"
    path.write_text(
        f"name: p\nstages:\n  - name: a\n    loop: command\n    command: 'true'\n{triggers}"
    )
    code = main(["validate", str(path)])
    captured = capsys.readouterr()
    err = (captured.out + captured.err).strip()
    (line,) = [line for line in err.splitlines() if "stages[0].triggers:" in line]
    assert (code, line.endswith(HINT)) == (2, True)


# --- gate shapes ---------------------------------------------------------------------------------

#: Shape families of the DOT shapes and Mermaid brackets a gate may use.
DOT_FAMILY = {
    "diamond": "rhombus",
    "hexagon": "hexagon",
    "note": "note",
    "cds": "flag",
    "invtrapezium": "inverted trapezoid",
    "trapezium": "trapezoid",
    "parallelogram": "parallelogram",
}
MERMAID_FAMILY = {
    ("{", "}"): "rhombus",
    ("{{", "}}"): "hexagon",
    (">", "]"): "flag",
    ("[\\", "/]"): "inverted trapezoid",
    ("[/", "\\]"): "trapezoid",
    ("[/", "/]"): "parallelogram",
}

GATED = """\
name: gated
external_events: [outside.ping]
stages:
  - name: a
    loop: command
    command: "true"
    triggers: [{manual: {approval_required: false}}]
  - name: b
    loop: command
    command: "true"
    trigger_mode: all
    triggers:
      - on_completion: {stage: a}
      - on_condition: {expression: "stages.a.status == 'success'"}
      - manual: {approval_required: true}
      - on_event: {type: outside.ping}
"""


def test_dot_and_mermaid_draw_each_gate_kind_with_the_same_shape_family() -> None:
    """Condition, approval and external-event gates get one family each, the same in both
    formats, and the three families differ."""
    pipeline = parse_pipeline(GATED)
    kinds = [gate.kind for gate in gates(dag_snapshot(pipeline))]
    dot = {
        match[1]: DOT_FAMILY[match[2]]
        for match in re.finditer(r'^  "(\w+):b:\d+" \[.*?shape=(\w+)', render_dot(pipeline), re.M)
    }
    mermaid = {
        kinds[int(match[1])]: MERMAID_FAMILY[(match[2], match[3])]
        for match in re.finditer(
            r'^  g(\d+)(\{\{|\{|\[/|\[\\|>)".*"(\}\}|\}|/\]|\\\]|\])$',
            render_mermaid(pipeline),
            re.M,
        )
    }
    assert sorted(kinds) == ["approval", "condition", "external_event"]
    assert (dot, len(set(dot.values()))) == (mermaid, 3)
