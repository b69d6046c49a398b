"""Hostile input: every bad file, expression, name or body gets one short error, bounded in time
and memory, never a traceback or a crash.

Where the CLI crashed or hung, the test runs the real console script in a subprocess under an
address-space limit (``RLIMIT_AS``, 1 GiB) and a timeout, and checks its exit code and that
stderr is one line without "Traceback". The rest call the code in-process.
"""

from __future__ import annotations

import json
import logging
import resource
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
import pytest

from cli_support import environment
from pipeline_engine_support import Recorder, Resolver
from pipeline_tracking_support import Backend, serve
from taskdaemon.pipeline.bounded import BoundedInputError, loads_bounded
from taskdaemon.pipeline.cel_limits import COST_BUDGET, estimate_cost
from taskdaemon.pipeline.cel_worker import CelWorker, WorkerError
from taskdaemon.pipeline.cli.inputs import parse_inputs
from taskdaemon.pipeline.config import parse_pipeline
from taskdaemon.pipeline.engine import Engine
from taskdaemon.pipeline.errors import (
    ConfigError,
    ExpressionError,
    RunNotFoundError,
    SpanSourceError,
)
from taskdaemon.pipeline.events import TriggerEvaluated
from taskdaemon.pipeline.expressions import ExpressionLimitError, compile_expression
from taskdaemon.pipeline.model import (
    Manual,
    OnCompletion,
    OnCondition,
    Pipeline,
    Stage,
)
from taskdaemon.pipeline.server import create_app
from taskdaemon.pipeline.tracking import JaegerSource, OtlpJsonSource, TempoSource
from taskdaemon.pipeline.validation import validate_pipeline
from taskdaemon.pipeline.visualization import render_dot, render_mermaid

ROOT = Path(__file__).resolve().parent.parent
TASKDAEMON = str(Path(sys.executable).with_name("taskdaemon"))
MEMORY_LIMIT = 1024**3
ENTRY = (Manual(approval_required=False),)


# --- helpers -------------------------------------------------------------------------------------


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def taskdaemon(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the CLI to its end under 1 GiB of address space and a 60 s timeout."""
    return subprocess.run(
        [TASKDAEMON, *args],
        cwd=ROOT,
        env=environment(home),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        preexec_fn=_limit_memory,
    )


def one_line_error(done: subprocess.CompletedProcess[str]) -> str:
    """The single line the command wrote, after checking there is no traceback (``validate``
    lists issues on stdout, the other commands write errors on stderr)."""
    output = done.stdout + done.stderr
    assert "Traceback" not in output
    lines = output.strip().splitlines()
    assert len(lines) == 1, output[:2000]
    return lines[0]


def laughs(levels: int = 9) -> str:
    """A "billion laughs" document: 9 aliases of the level below at each of ``levels`` levels."""
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for level in range(1, levels):
        lines.append(f"a{level}: &a{level} [" + ",".join([f"*a{level - 1}"] * 9) + "]")
    return "\n".join(lines) + "\n"


def merge_bomb(levels: int = 7) -> str:
    """Mappings each merging ten aliases of the one below (<< expands when loaded)."""
    lines = ["m0: &m0 {a: 1, b: 2}"]
    for level in range(1, levels + 1):
        lines.append(f"m{level}: &m{level} {{<<: [" + ",".join([f"*m{level - 1}"] * 10) + "]}")
    return "\n".join(lines) + "\n"


PIPELINE = """\
name: hostile
stages:
  - name: only
    command: "true"
    triggers: [{manual: {approval_required: false}}]
"""


def condition_pipeline(expression: str) -> str:
    """A valid pipeline whose second stage waits on ``expression``."""
    return PIPELINE + (
        "  - name: gated\n"
        '    command: "true"\n'
        f"    triggers: [{{on_condition: {{expression: {json.dumps(expression)}}}}}]\n"
    )


# --- YAML: alias bombs, merge keys, nesting, TOML ----------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("command", ["validate", "dag", "run"])
def test_billion_laughs_is_refused_in_one_line(home: Path, command: str) -> None:
    """A 9x9 "billion laughs" file is refused by validate, dag and run with one line, exit 2."""
    path = home / "laughs.yaml"
    path.write_text(PIPELINE + laughs())
    done = taskdaemon(home, command, str(path))
    line = one_line_error(done)
    assert (2, True) == (done.returncode, "alias bomb" in line)


@pytest.mark.slow
def test_merge_key_bomb_is_refused_in_one_line(home: Path) -> None:
    """Chained << merges of ten aliases are counted like aliases and refused by validate."""
    path = home / "merge.yaml"
    path.write_text(PIPELINE + merge_bomb())
    done = taskdaemon(home, "validate", str(path))
    line = one_line_error(done)
    assert (2, True) == (done.returncode, "merge keys expand" in line)


@pytest.mark.slow
def test_input_file_alias_bomb_is_refused_before_the_run(home: Path) -> None:
    """An alias bomb given as --input-file is refused in one line (it hung in redaction)."""
    pipeline = home / "ok.yaml"
    pipeline.write_text(PIPELINE)
    inputs = home / "inputs.yaml"
    inputs.write_text(laughs())
    done = taskdaemon(home, "run", str(pipeline), "--input-file", str(inputs))
    line = one_line_error(done)
    assert (2, True) == (done.returncode, line.endswith("is this an alias bomb?)"))


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "expected"),
    [("/dev/zero", "larger than 16 MiB"), ("big.json", "larger than 16777216 bytes")],
)
def test_an_endless_or_huge_input_file_is_refused_at_the_size_limit(
    home: Path, name: str, expected: str
) -> None:
    """--input-file is read up to the 16 MiB limit, never whole: /dev/zero ended in a
    MemoryError traceback under 1 GiB (it was read to its end first), and a JSON file over
    the limit was decoded whole."""
    pipeline = home / "ok.yaml"
    pipeline.write_text(PIPELINE)
    inputs = Path(name) if name.startswith("/") else home / name
    if not name.startswith("/"):
        inputs.write_text('{"x": "' + "a" * (17 * 1024 * 1024) + '"}')
    done = taskdaemon(home, "run", str(pipeline), "--input-file", str(inputs))
    line = one_line_error(done)
    assert (2, f"--input-file {inputs}: {expected}") == (done.returncode, line.split(": ", 1)[1])


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("deep-flow.yaml", "x: " + "[" * 5000 + "]" * 5000, "exceeded maximum nesting depth"),
        ("deep-block.yaml", "".join(" " * i + "k:\n" for i in range(1500)), "nesting depth"),
        ("nested.yaml", "x: " + "[" * 500 + "]" * 500, "nested deeper than 100 levels"),
        ("deep.toml", "x = " + "[" * 5000 + "]" * 5000, "nested deeper than 100 levels"),
    ],
)
def test_deep_nesting_is_one_line(home: Path, name: str, text: str, expected: str) -> None:
    """YAML past libyaml's 1,000 levels, YAML past our 100, and deep TOML give one line, exit 2."""
    path = home / name
    path.write_text(text)
    done = taskdaemon(home, "validate", str(path))
    line = one_line_error(done)
    assert (2, True) == (done.returncode, expected in line)


@pytest.mark.slow
def test_a_toml_key_of_20000_dotted_parts_is_one_line_in_bounded_memory(home: Path) -> None:
    """A 40 KB TOML key of 20,000 dotted parts (tomllib keeps each of its prefixes: 1.6 GB) is
    refused as too deep in one line, within 1 GiB of address space."""
    path = home / "dotted.toml"
    path.write_text('name = "x"\n' + "a." * 20_000 + "b = 1\n")
    done = subprocess.run(
        [TASKDAEMON, "validate", str(path)],
        env=environment(home),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30)),
    )
    line = one_line_error(done)
    assert (2, True) == (done.returncode, line.endswith("nested deeper than 100 levels"))


def test_anchors_and_merges_for_shared_settings_still_load() -> None:
    """A file sharing retry settings through an anchor, an alias and a << merge loads as if the
    settings were written out in each stage."""
    shared = parse_pipeline(
        textwrap.dedent(
            """\
            name: shared
            retry: &retry {max_attempts: 3, backoff: {initial: 1s, factor: 2, max: 10s}}
            stages:
              - &base
                name: a
                command: "true"
                retry: *retry
                triggers: [{manual: {approval_required: false}}]
              - <<: *base
                name: b
                triggers: [{on_completion: {stage: a}}]
            """
        )
    )
    written = parse_pipeline(
        textwrap.dedent(
            """\
            name: shared
            retry: {max_attempts: 3, backoff: {initial: 1s, factor: 2, max: 10s}}
            stages:
              - name: a
                command: "true"
                retry: {max_attempts: 3, backoff: {initial: 1s, factor: 2, max: 10s}}
                triggers: [{manual: {approval_required: false}}]
              - name: b
                command: "true"
                retry: {max_attempts: 3, backoff: {initial: 1s, factor: 2, max: 10s}}
                triggers: [{on_completion: {stage: a}}]
            """
        )
    )
    assert written == shared


def test_alias_budget_scales_with_the_file() -> None:
    """Aliases may add up to four times the file's own nodes: 2,000 stages each naming a shared
    five-node retry mapping load, although the aliases add 10,000 nodes."""
    stages = "".join(
        f"  - {{name: s{i}, command: 'true', retry: *r, triggers: [{{manual: {{}}}}]}}\n"
        for i in range(2000)
    )
    text = f"name: many\nretry: &r {{max_attempts: 2, backoff: {{initial: 1}}}}\nstages:\n{stages}"
    assert 2000 == len(parse_pipeline(text).stages)


def test_input_pairs_with_deep_json_are_one_line_errors() -> None:
    """--input k=<JSON nested 100,000 deep> is a ValueError naming the key; text stays text."""
    with pytest.raises(ValueError, match=r"^--input deep: nested deeper than 100 levels$"):
        parse_inputs(["deep=" + "[" * 100_000 + "]" * 100_000])
    assert {"word": "[not json"} == parse_inputs(["word=[not json"])


# --- JSON bodies, payloads and span files ------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"[" * 100_000 + b"]" * 100_000, "nested deeper than 100 levels"),
        (b"[" * 101 + b"]" * 101, "nested deeper than 100 levels"),
        (b'{"a": "\xff"}', "not UTF-8 (invalid byte at offset 7)"),
        (b'{"a": 1', "not JSON: Expecting ',' delimiter"),
        (b"x" * 11, "larger than 10 bytes"),
    ],
)
def test_loads_bounded_refuses_with_one_line(data: bytes, message: str) -> None:
    """loads_bounded states what is wrong in one line, whatever the input."""
    with pytest.raises(BoundedInputError) as caught:
        loads_bounded(data, max_bytes=10 if data == b"x" * 11 else None)
    assert (message in str(caught.value), 1) == (True, len(str(caught.value).splitlines()))


def test_loads_bounded_accepts_depth_100() -> None:
    """A document nested exactly at the limit is decoded."""
    assert [[[]]] == loads_bounded("[" * 3 + "]" * 3, max_depth=3)
    assert loads_bounded("[" * 100 + "]" * 100) is not None


@pytest.mark.slow
def test_publish_payload_nested_deeply_is_a_usage_error(home: Path) -> None:
    """publish --payload nested 50,000 deep is refused in one line before any connection (an
    argument may not pass 128 KiB)."""
    payload = "[" * 50_000 + "]" * 50_000
    done = taskdaemon(home, "publish", "0" * 32, "note", "--payload", payload)
    line = one_line_error(done)
    assert (2, True) == (done.returncode, "nested deeper than 100 levels" in line)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"type": "' + b"[" * 50_000 + b'"}', None),  # a deep-looking string is fine
        (b'{"type": "x", "payload": ' + b"[" * 50_000 + b"]" * 50_000 + b"}", "nested deeper"),
        (b'{"type": "\xff\xfe"}', "not UTF-8"),
    ],
)
async def test_api_bodies_nested_or_not_utf8_are_400(body: bytes, message: str | None) -> None:
    """A deeply nested or non-UTF-8 API body is a 400 with a one-line error, never a 500."""
    pipeline = Pipeline("api", (Stage("a", "python", (Manual(approval_required=True),)),))
    async with Engine(resolver=Resolver()) as engine:
        handle = await engine.start_run(pipeline, {})
        app = create_app(engine=engine)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            response = await client.post(
                f"/api/runs/{handle.run_id}/events",
                content=body,
                headers={
                    "authorization": f"Bearer {app.state.auth.token}",
                    "content-type": "application/json",
                },
            )
        handle.cancel()
        await handle.wait()
    if message is None:  # decoded fine, refused for its meaning (nobody listens to that type)
        assert 409 == response.status_code
    else:
        assert (400, True) == (response.status_code, message in response.json()["error"])


def test_otlp_json_file_nested_deeply_is_a_source_error(tmp_path: Path) -> None:
    """An OTLP-JSON file nested 100,000 deep raises SpanSourceError naming the file."""
    path = tmp_path / "deep.json"
    path.write_text('{"resourceSpans": ' + "[" * 100_000 + "]" * 100_000 + "}")
    with pytest.raises(SpanSourceError, match=r"deep\.json: nested deeper than 100 levels"):
        OtlpJsonSource(path).get_trace("a" * 32)


def test_otlp_json_lines_nested_deeply_are_skipped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """In a JSON-lines file, a line nested too deeply that may hold the run is skipped with a
    warning, not a crash."""
    path = tmp_path / "lines.json"
    deep = "[" * 5000 + '"' + "a" * 32 + '"' + "]" * 5000
    path.write_text('{"resourceSpans": []}\n' + deep + "\n")
    with caplog.at_level(logging.WARNING), pytest.raises(RunNotFoundError):
        OtlpJsonSource(path).get_trace("a" * 32)
    assert any("nested deeper than 100 levels" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("backend", ["tempo", "jaeger"])
def test_backend_body_nested_deeply_is_a_source_error(backend: str) -> None:
    """A Tempo or Jaeger answer nested 100,000 deep raises SpanSourceError, not RecursionError."""
    run_id = "c" * 32
    body = ("[" * 100_000 + "]" * 100_000).encode()
    with serve(Backend()) as server:
        if backend == "tempo":
            server.route(f"/api/v2/traces/{run_id}", body)
            source: TempoSource | JaegerSource = TempoSource(server.url)
        else:
            server.route(f"/api/v3/traces/{run_id}", body)
            source = JaegerSource(server.url)
        with source, pytest.raises(SpanSourceError, match="nested deeper than 100 levels"):
            source.get_trace(run_id)


# --- CEL: static limits, cost estimate, runtime limit ------------------------------------------


HUNDRED = "[" + ",".join(str(i) for i in range(100)) + "]"
# Every pair of the run's items, allocating nothing: 25 million steps for 5,000 items.
PAIRS = "request.items.exists(a, request.items.exists(b, a + b < 0))"


@pytest.mark.slow
@pytest.mark.parametrize(
    ("expression", "limit"),
    [
        ("+".join(["1"] * 22_000) + " > 0", "characters long"),  # segfaulted (exit 139)
        ("+".join(["1"] * 1_500) + " > 0", "more than 1000 operators"),
        ("request" + ".a" * 21_000 + " == 1", "characters long"),  # segfaulted
        ("request" + ".a" * 100 + " == 1", "member chain longer than 64 steps"),
        ("(" * 100_000 + "true" + ")" * 100_000, "characters long"),  # PanicException
        ("(" * 40 + "true" + ")" * 40, "deeper than 32 levels"),
        (f"{HUNDRED}.map(a, {HUNDRED}.map(b, {HUNDRED}.map(c, a + b + c))).size() > 0", "cost"),
    ],
)
@pytest.mark.parametrize("command", ["validate", "dag"])
def test_cel_over_a_static_limit_is_one_line(
    home: Path, expression: str, limit: str, command: str
) -> None:
    """Expressions that crashed the binding or are over the cost budget are refused by validate
    and dag with one line naming the expression and the limit, exit 2."""
    path = home / "cel.yaml"
    path.write_text(condition_pipeline(expression))
    done = taskdaemon(home, command, str(path))
    line = one_line_error(done)
    assert (2, True, True) == (done.returncode, limit in line, f"'{expression[:20]}" in line)


@pytest.mark.slow
def test_run_refuses_a_crashing_expression(home: Path) -> None:
    """run refuses the 22,000-term expression in one line instead of segfaulting."""
    path = home / "cel.yaml"
    path.write_text(condition_pipeline("+".join(["1"] * 22_000) + " > 0"))
    done = taskdaemon(home, "run", str(path))
    line = one_line_error(done)
    assert (2, True) == (done.returncode, "characters long" in line)


def test_parentheses_that_panicked_the_binding_are_refused_in_process() -> None:
    """100,000 nested parentheses (a PanicException past ``except Exception``) are refused by
    compile_expression before the binding sees them."""
    with pytest.raises(ExpressionLimitError, match="characters long"):
        compile_expression("(" * 100_000 + "true" + ")" * 100_000)
    with pytest.raises(ExpressionLimitError, match="deeper than 32 levels"):
        compile_expression("(" * 33 + "true" + ")" * 33)


def test_cost_estimate_multiplies_nested_comprehensions() -> None:
    """Literal lists count their elements; nested comprehensions multiply; data is assumed 100."""
    one = estimate_cost(f"{HUNDRED}.map(a, a + 1)")
    two = estimate_cost(f"{HUNDRED}.map(a, {HUNDRED}.map(b, a + b))")
    data = estimate_cost("request.items.exists(i, i == 1)")
    found = [(e.cost, e.iterates_data) if e is not None else None for e in (one, two, data)]
    # The list: 1 + 100 elements; the body: the call, the variable, a + 1 (3 steps): 5 x 100.
    assert [(601, False), (60_401, False), (502, True)] == found
    assert 60_401 < COST_BUDGET


def test_cheap_expressions_stay_in_process() -> None:
    """Comparisons, has() and size() are evaluated in-process; a comprehension over the run's
    data, or a costly one, goes to the worker."""
    cheap = compile_expression("has(request.a) && size(request.b) > 2 && request.c == 'x'")
    data = compile_expression("request.items.all(i, i > 0)")
    costly = compile_expression(f"{HUNDRED}.map(a, {HUNDRED}.map(b, a + b)).size() > 0")
    assert (False, True, True) == (cheap.isolated, data.isolated, costly.isolated)


@pytest.mark.slow
def test_a_long_join_of_the_run_s_data_stops_at_the_time_limit(cel_worker: None) -> None:
    """200 copies of a mebibyte of the run's data joined by ``+`` (each ``+`` copying all
    before it) are evaluated in the worker, and stopped at its time limit: in-process they
    held the caller, the engine's loop, until the whole result was built."""
    expression = compile_expression(" + ".join(["event.payload.s"] * 200))
    with pytest.raises(ExpressionError, match="over the time limit"):
        expression.evaluate({"event": {"payload": {"s": "x" * 2**20}}})


@pytest.mark.slow
def test_a_comprehension_over_a_literal_reading_the_run_s_data_stops_at_the_time_limit(
    cel_worker: None,
) -> None:
    """A map over 300 literal elements whose body reads a mebibyte of the run's data (copied at
    each element, and its growing result with it) is evaluated in the worker and stopped at its
    time limit: in-process it held the engine's loop until it was done."""
    elements = ", ".join(str(n) for n in range(300))
    expression = compile_expression(f"[{elements}].map(x, event.payload.s).size() > 0")
    with pytest.raises(ExpressionError, match="over the time limit"):
        expression.evaluate({"event": {"payload": {"s": "x" * 2**20}}})


@pytest.mark.slow
def test_hundreds_of_reads_of_the_run_s_data_stop_at_the_time_limit(cel_worker: None) -> None:
    """A list literal of 800 reads of a mebibyte of the run's data (each read a copy) is
    evaluated in the worker and stopped at its time limit, or ended by its memory cap; in-process
    it held the engine's loop, and its result's size in memory, until it was built."""
    reads = ", ".join(["inputs.s"] * 800)
    expression = compile_expression(f"size([{reads}]) > 0", {"inputs"})
    with pytest.raises(ExpressionError, match=r"over the time limit|the CEL worker died"):
        expression.evaluate({"inputs": {"s": "x" * 2**20}})


def test_over_the_static_budget_names_the_limit() -> None:
    """The [0..99]^3 comprehension is refused before compiling, with its estimated cost."""
    source = f"{HUNDRED}.map(a, {HUNDRED}.map(b, {HUNDRED}.map(c, a + b + c)))"
    with pytest.raises(ExpressionLimitError, match=r"estimated cost [\d,]+ is over the budget"):
        compile_expression(source)


@pytest.mark.slow
def test_worker_stops_a_long_evaluation_and_recovers() -> None:
    """An evaluation over the time limit is killed (WorkerError, its process ended by
    SIGKILL); the next call is answered by a new worker. Without the limit the evaluation runs
    to its end and answers; a kill that hung would hang the test until its timeout."""
    worker = CelWorker(time_limit=0.2)
    try:
        worker.start()
        small = {"request": {"items": [1, 2, 3]}}
        assert 6 == worker.evaluate("request.items.map(i, i * 2)[2]", small)
        running = worker._process  # the process the limit must kill
        assert running is not None
        with pytest.raises(WorkerError, match="over the time limit"):
            worker.evaluate(PAIRS, {"request": {"items": list(range(5000))}})
        assert True is worker.evaluate("request.x.all(i, i > 0)", {"request": {"x": [1]}})
    finally:
        worker.close()
    assert -signal.SIGKILL == running.returncode


@pytest.mark.slow
def test_worker_errors_are_evaluation_errors(cel_worker: None) -> None:
    """A missing key inside an isolated expression is the same ExpressionError as in-process."""
    expression = compile_expression("request.items.exists(i, i.missing == 1)")
    with pytest.raises(ExpressionError, match=r"no such key|missing"):
        expression.evaluate({"request": {"items": [{"present": 1}]}})


@pytest.mark.slow
async def test_condition_over_budget_is_false_with_its_reason(cel_worker: None) -> None:
    """An on_condition over the runtime limit evaluates to false (the stage is skipped when the
    run can no longer change), its TriggerEvaluated detail gives the reason, and the run ends."""
    pipeline = Pipeline(
        "budget",
        (
            Stage("a", "python", ENTRY, handler="m:f"),
            Stage("b", "python", (OnCondition(PAIRS),), handler="m:f"),
        ),
    )
    assert [] == validate_pipeline(pipeline)
    recorder = Recorder()
    async with Engine(resolver=Resolver(), observers=[recorder]) as engine:
        result = await engine.run(pipeline, {"items": list(range(5000))})
    details = [e.detail for e in recorder.of(TriggerEvaluated) if e.trigger_type == "on_condition"]
    assert ("skipped", True) == (
        str(result.stage_status["b"]),
        any("over the time limit" in detail for detail in details),
    )


# --- names and graph labels --------------------------------------------------------------------


@pytest.mark.slow
def test_megabyte_stage_name_is_refused_with_the_limit(home: Path) -> None:
    """A 1 MB stage name fails validation in one short line giving the length and the limit."""
    path = home / "long.yaml"
    path.write_text(PIPELINE.replace("name: only", "name: " + "a" * 1_000_000))
    done = taskdaemon(home, "validate", str(path))
    line = one_line_error(done)
    assert (2, True, True) == (
        done.returncode,
        "is 1000000 characters long (the limit is 128)" in line,
        len(line) < 300,
    )


def test_every_kind_of_name_is_capped() -> None:
    """Pipeline, stage, loop type and event type names over 128 characters are issues."""
    long = "x" * 129
    with pytest.raises(ConfigError) as caught:
        parse_pipeline(
            textwrap.dedent(
                f"""\
                name: {long}
                external_events: [{long}]
                loops: {{{long}: {{command: "true"}}}}
                stages:
                  - name: {long}
                    command: "true"
                    emits: [{long}]
                    triggers: [{{on_event: {{type: {long}}}}}]
                """
            )
        )
    paths = sorted(issue.path for issue in caught.value.issues if "the limit is 128" in str(issue))
    expected = [
        "external_events[0]",
        f"loops.{long}",
        "name",
        "stages[0].emits[0]",
        "stages[0].name",
        "stages[0].triggers[0].on_event.type",
    ]
    assert expected == paths


def test_dot_renders_long_names_and_labels_with_graphviz() -> None:
    """Names, descriptions and conditions far over Graphviz's 16,384-byte strings render with
    the real dot; long text ends with an ellipsis and two long names stay two nodes."""
    first, second = "a" * 20_000 + "1", "a" * 20_000 + "2"
    pipeline = Pipeline(
        "long",
        (
            Stage(first, "python", ENTRY, description="d" * 1_000_000),
            Stage(second, "python", (OnCompletion(first), OnCondition("x" * 30_000))),
        ),
    )
    dot = render_dot(pipeline)
    done = subprocess.run(
        ["dot", "-Tjson"], input=dot, capture_output=True, text=True, timeout=60, check=False
    )
    assert 0 == done.returncode, done.stderr[:500]
    graph = json.loads(done.stdout)
    names = [obj["name"] for obj in graph["objects"]]
    tooltips = [obj.get("tooltip", "") for obj in graph["objects"]]
    assert (True, True, 2) == (
        all(len(name) <= 2000 for name in names),
        any(len(tip) == 2000 and tip.endswith("…") for tip in tooltips),
        len([name for name in names if name.startswith("aaaa")]),
    )


def test_mermaid_cuts_long_labels() -> None:
    """A 20,000-character stage name becomes a label of at most 500 characters and an ellipsis."""
    pipeline = Pipeline("long", (Stage("b" * 20_000, "python", ENTRY),))
    text = render_mermaid(pipeline)
    # The label is the title-cased name over "(python loop)": cut to 499 characters and "…".
    assert (True, True) == ('s0("B' + "b" * 498 + '…")' in text, "b" * 499 not in text)


@pytest.mark.slow
def test_did_you_mean_is_given_for_the_first_twenty_issues_only() -> None:
    """1,000 references to unknown stages are all reported, but only the first 20 get a
    difflib suggestion (each compares with every stage: quadratic for a hostile file)."""
    stages = [Stage(f"s{i}", "python", ENTRY, handler="m:f") for i in range(1000)]
    stages += [
        Stage(f"t{i}", "python", (OnCompletion(f"s{i}x"),), handler="m:f") for i in range(1000)
    ]
    issues = validate_pipeline(Pipeline("typos", tuple(stages)))
    unknown = [issue for issue in issues if "unknown stage" in issue.message]
    hinted = [issue for issue in unknown if "did you mean" in issue.message]
    assert (1000, 20) == (len(unknown), len(hinted))
