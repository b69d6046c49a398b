"""``handler_prints``: what a Python handler prints is also its stage's log lines, read back by
``taskdaemon logs``, and still on the command's stdout."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from cli_support import taskdaemon
from pipeline_engine_support import plain_context
from taskdaemon.pipeline import output_sinks, stage_output
from taskdaemon.pipeline.execution import enter_execution, leave_execution
from taskdaemon.pipeline.handler_prints import capture_prints
from taskdaemon.pipeline.loops import StageContext
from taskdaemon.pipeline.secret_values import remember_secrets

HANDLERS = """
import asyncio


def extract(ctx):
    print("extracted", 3, "rows")
    print("no newline yet", end="")
    return {"rows": 3}


async def load(ctx):
    async def child():
        print("from a task the handler started")

    print("loading", ctx.inputs["rows"])
    await asyncio.create_task(child())
    return {}
"""

PIPELINE = """
name: prints
stages:
  - name: extract
    handler: "etl_prints:extract"
    triggers: [{manual: {approval_required: false}}]
  - name: load
    handler: "etl_prints:load"
    triggers: [{on_completion: {stage: extract}}]
    inputs: {rows: stages.extract.outputs.rows}
"""


@pytest.mark.slow
def test_prints_are_stage_logs(tmp_path: Path, home: Path) -> None:
    """``logs`` shows each print as its stage's stdout line; ``run -q`` still printed them."""
    (tmp_path / "etl_prints.py").write_text(textwrap.dedent(HANDLERS))
    (tmp_path / "prints.yaml").write_text(PIPELINE)
    run = taskdaemon(home, "run", "-q", "prints.yaml", cwd=tmp_path)
    assert (0, "") == (run.returncode, run.stderr)
    *printed_there, run_id = run.stdout.splitlines()
    assert [
        "extracted 3 rows",
        "no newline yetloading 3",
        "from a task the handler started",
    ] == printed_there
    logs = taskdaemon(home, "logs", run_id)
    assert (0, "") == (logs.returncode, logs.stderr)
    printed = [line.split(" ", 2)[2] for line in logs.stdout.splitlines() if "[stdout]" in line]
    assert [
        "extract.0.1 [stdout] extracted 3 rows",
        "load.0.1 [stdout] loading 3",
        "load.0.1 [stdout] from a task the handler started",
        "extract.0.1 [stdout] no newline yet",
    ] == [text.strip() for text in printed]


class _Sink:
    def __init__(self) -> None:
        self.batches: list[stage_output.OutputBatch] = []

    def write_output(self, batch: stage_output.OutputBatch) -> None:
        self.batches.append(batch)


def _context(stage: str) -> StageContext:
    """``plain_context`` of stage ``stage`` in a trace its output batches name."""
    return dataclasses.replace(
        plain_context(),
        run_id="ab" * 16,
        stage=stage,
        environment={"TRACEPARENT": f"00-{'ab' * 16}-{'cd' * 8}-01"},
    )


def test_writes_outside_a_stage_pass_through_and_open_lines_are_bounded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every write reaches the real stdout, a stage's alone is delivered too: a line with no
    newline cut at ``MAX_LINE_BYTES``, its rest when the capture ends."""
    real = io.StringIO()
    monkeypatch.setattr(sys, "stdout", real)
    sink = _Sink()
    output_sinks.add_output_sink(sink)
    try:
        with contextlib.ExitStack() as stack:
            capture_prints(stack)
            capture_prints(stack)  # a second call changes nothing
            print("summary")
            token = enter_execution(_context("s"))
            try:
                sys.stdout.write("x" * (stage_output.MAX_LINE_BYTES + 5))
            finally:
                leave_execution(token)
            assert [("x" * stage_output.MAX_LINE_BYTES,)] == [b.texts for b in sink.batches]
        assert sys.stdout is real
    finally:
        output_sinks.remove_output_sink(sink)
    assert "summary\n" + "x" * (stage_output.MAX_LINE_BYTES + 5) == real.getvalue()
    assert ("xxxxx",) == sink.batches[-1].texts
    assert ("ab" * 16, "cd" * 8, "stdout") == (
        sink.batches[-1].trace_id,
        sink.batches[-1].span_id,
        sink.batches[-1].stream,
    )


@contextlib.contextmanager
def _printing(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[_Sink, io.StringIO]]:
    """Prints captured, as stage s's execution, into the sink it yields; the real stdout is
    the text it yields. The batches are all in when the block ends (the capture ended)."""
    real = io.StringIO()
    monkeypatch.setattr(sys, "stdout", real)
    sink = _Sink()
    output_sinks.add_output_sink(sink)
    try:
        with contextlib.ExitStack() as stack:
            capture_prints(stack)
            entered = enter_execution(_context("s"))
            try:
                yield sink, real
            finally:
                leave_execution(entered)
    finally:
        output_sinks.remove_output_sink(sink)


def test_the_lines_of_one_print_are_one_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    """``print(text)`` writes ``text``, then its line end: ``text``'s lines wait for that end
    and go as one batch (where a secret wrapped over them is found whole); a write that ends
    inside a line left open at the capture's end still gives each of its lines."""
    with _printing(monkeypatch) as (sink, _):
        print("first\nsecond")
        sys.stdout.write("open\nend")
    assert [("first", "second"), ("open", "end")] == [b.texts for b in sink.batches]


def test_a_print_that_may_begin_a_secret_waits_for_the_next(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """While a value is known, a print whose end begins it is delivered with the execution's
    next print, as one batch (``secret_tails``); the console gets each write redacted, each
    piece of 8 characters or more masked at its write's edges (``secret_pieces``)."""
    token = "Tk9vQ2xAbcdEfgh1234567890zyxwvuTSRQPonml"
    remember_secrets({"token": token})
    with _printing(monkeypatch) as (sink, real):
        print("whole", token)
        print(token[:20])
        print(token[20:])
    assert [(f"whole {token}",), (token[:20], token[20:])] == [b.texts for b in sink.batches]
    assert "whole [REDACTED]\n[REDACTED]\n[REDACTED]\n" == real.getvalue()
