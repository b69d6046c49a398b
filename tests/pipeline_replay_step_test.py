"""``taskdaemon replay RUN --step``: the debugger's prompt over a recorded run (next, prev,
goto, where, inputs, outputs, logs at the current instant), from several span sources."""

from __future__ import annotations

import io
import os
import pty
import select
import shutil
import signal
import subprocess
import tempfile
import termios
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from cli_faults_support import on_a_terminal
from cli_support import TASKDAEMON, environment, taskdaemon
from pipeline_tracking_support import Backend, serve
from taskdaemon.pipeline.cli._step_prompt import StepPrompt
from taskdaemon.pipeline.errors import PipelineError
from taskdaemon.pipeline.replay.walk import RecordedWalk
from taskdaemon.pipeline.tracking import encode_traces
from taskdaemon.pipeline.tracking.dump_logs import decode_logs
from taskdaemon.pipeline.tracking.log_read import StoredLog
from taskdaemon.pipeline.tracking.otlp_logs import encode_logs
from taskdaemon.pipeline.tracking.spans import SpanRecord
from taskdaemon.pipeline.tracking.store import SpanStore

PIPELINE = """\
    name: demo
    stages:
      - name: plan
        command: "echo '{\\"n\\": 2}'; echo planning >&2"
        triggers: [{manual: {}}]
      - name: build
        command: "echo '{\\"at\\": 1}'"
        inputs: {n: stages.plan.outputs.n}
        triggers: [{on_completion: {stage: plan}}]
"""


@pytest.fixture(scope="module")
def recorded() -> Iterator[tuple[Path, str]]:
    """A home whose store holds one real run of PIPELINE (by the CLI), and the run's id."""
    home = Path(tempfile.mkdtemp(prefix="td-step-", dir="/tmp"))
    (home / "p.yaml").write_text(textwrap.dedent(PIPELINE))
    done = subprocess.run(
        [TASKDAEMON, "run", str(home / "p.yaml"), "-q"],
        env=environment(home, TERM="dumb"),
        cwd=home,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    yield home, done.stdout.strip()
    shutil.rmtree(home, ignore_errors=True)


def _spans(home: Path, run_id: str) -> list[SpanRecord]:
    with SpanStore(home / "spans.db") as store:
        return store.get_trace(run_id)


def _walk_to(walk: RecordedWalk, what: str) -> None:
    """Move ``walk`` to the first event whose text is ``what``."""
    walk.index = [event.what for event in walk.events].index(what)


@pytest.mark.slow
def test_the_walk_answers_at_the_current_instant(recorded: tuple[Path, str]) -> None:
    """Inputs show once a stage started, outputs only once it ended; before it started both
    are a one-line refusal; the state is the state of that instant."""
    walk = RecordedWalk(_spans(*recorded))
    _walk_to(walk, "plan started")
    assert "running" == walk.stage("plan").status
    with pytest.raises(PipelineError, match=r"^build \(pending\) has not started at \+"):
        walk.inputs("build")
    _walk_to(walk, "build started")
    assert [("build.0.1", {"n": 2})] == walk.inputs("build")
    assert [("build.0.1", "running", None)] == walk.outputs("build")
    assert [("plan.0.1", "success", {"n": 2})] == walk.outputs("plan")
    walk.goto("1h")
    assert walk.event.what == "run ended: success"
    assert [("build.0.1", "success", {"at": 1})] == walk.outputs("build")
    with pytest.raises(PipelineError, match="no stage 'nope' \\(stages: plan, build\\)"):
        walk.stage("nope")


@pytest.mark.slow
def test_the_walk_stops_at_both_ends_and_goto_clamps(recorded: tuple[Path, str]) -> None:
    """prev at the first event and next at the last are refusals that do not move, each
    saying how to move the other way (prev's said nothing); goto before the start lands on the
    first event, past the end on the last; a bad time is one line naming goto."""
    walk = RecordedWalk(_spans(*recorded))
    with pytest.raises(PipelineError) as at_start:
        walk.prev()
    assert "start of the recorded run ('next' or 'goto T' to go on)" == str(at_start.value)
    walk.goto("1h")
    last = walk.index
    assert last == len(walk.events) - 1
    with pytest.raises(PipelineError) as at_end:
        walk.next()
    assert "end of the recorded run ('prev' or 'goto T' to go back)" == str(at_end.value)
    assert last == walk.index
    walk.goto("0")
    assert 0 == walk.index
    walk.next()
    assert 1 == walk.index
    with pytest.raises(ValueError, match=r"^goto 'soon': expected a time") as caught:
        walk.goto("soon")
    assert "\n" not in str(caught.value)


@pytest.mark.slow
def test_the_prompt_on_a_pipe_reads_logs_up_to_the_instant(recorded: tuple[Path, str]) -> None:
    """Fed on a pipe: an empty line is next, unknown commands and bad arguments are one
    ``error:`` line, ``logs`` shows only the records written by the current instant."""
    home, run_id = recorded
    rows = [
        StoredLog(1, run_id, 0, 9, "INFO", "demo", "plan", 0, 1, None, "t", "early"),
        StoredLog(2, run_id, 2**62, 9, "INFO", "demo", "plan", 0, 1, None, "t", "late"),
    ]
    out = io.StringIO()
    prompt = StepPrompt(
        RecordedWalk(_spans(home, run_id)),
        logs=lambda run, stage: [r for r in rows if r.run_id == run and r.stage == stage],
        stdin=io.StringIO("\nxyzzy\ninputs\nlogs plan\nquit\nnext\n"),
        stdout=out,
    )
    prompt.run()
    lines = out.getvalue().splitlines()
    assert lines[1].startswith("[1/")
    assert "run demo started" in lines[1]
    assert lines[4].startswith("[2/")  # the empty line moved on
    assert "error: unknown command 'xyzzy' ('help' lists them)" in lines
    assert "error: usage: inputs STAGE" in lines
    assert "  [INFO] early" in lines
    assert "  [INFO] late" not in lines
    assert "(replay) quit" == lines[-1]  # nothing read after quit


@pytest.mark.slow
def test_the_debuggers_words_typed_by_habit_say_what_to_type_instead(
    recorded: tuple[Path, str],
) -> None:
    """``step`` (``s``), what a debugger's user types to go on in a ``--step`` walk, is
    ``next``; ``continue``, ``c``, ``set``, ``break`` act on a live run and are each refused
    saying that nothing runs here and how to move. They all read ``unknown command``, as a
    typo would (the CLI on a pipe, its commands one a line)."""
    home, run_id = recorded
    done = taskdaemon(
        home, "replay", run_id, "--step", stdin="step\ns\ncontinue\nc\nset n 1\nbreak b\n"
    )
    lines = done.stdout.splitlines()
    assert 0 == done.returncode, done.stderr
    moved = [lines[lines.index(f"(replay) {word}") + 1][:3] for word in ("step", "s")]
    assert ["[2/", "[3/"] == moved, lines
    instead = (
        "acts on a live run; a recorded run is only walked here: 'next' goes to the next event, "
        "'goto T' to an instant ('help' lists the commands)"
    )
    assert [f"error: '{word}' {instead}" for word in ("continue", "c", "set", "break")] == [
        line for line in lines if line.startswith("error:")
    ]


def _read_until(fd: int, needle: str, seen: list[str], start: int = 0) -> str:
    """Read the terminal until ``needle`` appears after offset ``start`` of what it showed;
    returns the text from ``start``."""
    while needle not in "".join(seen)[start:]:
        ready, _, _ = select.select([fd], [], [], 30.0)
        if not ready:
            raise AssertionError(f"{needle!r} never came; the terminal showed:\n{''.join(seen)}")
        try:
            seen.append(os.read(fd, 4096).decode(errors="replace"))
        except OSError:  # the child closed the terminal
            raise AssertionError(f"{needle!r} never came:\n{''.join(seen)}") from None
    return "".join(seen)[start:]


def _source(kind: str, home: Path, run_id: str, backend: Backend) -> list[str]:
    """The ``--source`` arguments of ``kind``: the default store, Tempo v2 or a dump."""
    if kind == "store":
        return []
    if kind == "tempo":
        spans = _spans(home, run_id)
        body = {"trace": encode_traces(spans, ids="base64", enums="int"), "status": "COMPLETE"}
        backend.route(f"/api/v2/traces/{run_id}", body)
        return ["--source", f"tempo+{backend.url}"]
    dump = home / f"{run_id}.tar.gz"
    subprocess.run(
        [TASKDAEMON, "dump", run_id, "-o", str(dump)],
        env=environment(home, TERM="dumb"),
        cwd=home,
        capture_output=True,
        timeout=120,
        check=True,
    )
    return ["--source", f"dump://{dump}"]


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["store", "tempo", "dump"])
def test_the_prompt_on_a_terminal_from_each_source(
    recorded: tuple[Path, str], kind: str, tmp_path: Path
) -> None:
    """Through a pseudo-terminal, spans from the store, a Tempo-format server or a dump:
    ``help``, Tab completion of a command and a stage, a one-line refusal, ``goto``,
    ``inputs``, ``outputs``, ``logs`` and ``prev`` answer from the record; Ctrl-D leaves
    with 0 and the history is saved."""
    home, run_id = recorded
    history = home / "step_history"
    history.unlink(missing_ok=True)
    with serve(Backend()) as backend:
        source = _source(kind, home, run_id, backend)
        controller, terminal = pty.openpty()
        process = subprocess.Popen(
            [TASKDAEMON, "replay", run_id, "--step", *source],
            cwd=home,
            env=environment(home, TERM="dumb"),
            stdin=terminal,
            stdout=terminal,
            stderr=subprocess.DEVNULL,
            close_fds=True,
        )
        os.close(terminal)
        seen: list[str] = []

        mark = [0]  # where the terminal's text stood when the last keys were typed

        def type_at_prompt(keys: bytes, then: str) -> str:
            """Wait for the prompt that follows the last keys typed (readline owns the
            terminal then), type ``keys``, and read until ``then`` shows after them."""
            _read_until(controller, "(replay) ", seen, mark[0])
            mark[0] = len("".join(seen))
            os.write(controller, keys)
            return _read_until(controller, then, seen, mark[0])

        try:
            _read_until(controller, "run demo started", seen)
            type_at_prompt(b"help\n", "quit: leave")
            answer = type_at_prompt(b"inp\tbu\t\n", "error: build (pending) has not started")
            assert "inputs build" in answer
            type_at_prompt(b"goto 1h\n", "run ended: success")
            type_at_prompt(b"inputs build\n", '{"n": 2}')
            answer = type_at_prompt(b"outputs build\n", 'upstream plan (success): {"n": 2}')
            assert 'build (success): {"at": 1}' in answer
            answer = type_at_prompt(b"logs plan\n", "[INFO] [stderr] planning")
            assert "plan.0.1: success" in answer
            type_at_prompt(b"prev\n", "build success")
            type_at_prompt(b"\x04", "\n")  # Ctrl-D: end of input
            assert 0 == process.wait(timeout=30)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
            os.close(controller)
    text = history.read_text()
    assert "goto 1h" in text
    assert "inputs build" in text


@pytest.mark.slow
def test_sigterm_at_the_prompt_gives_the_terminal_back(recorded: tuple[Path, str]) -> None:
    """SIGTERM while the prompt reads a line (readline has the echo off) leaves as Ctrl-C
    leaves ``debug FILE``'s prompt: exit 143, the echo back, the history saved. Its default
    action left the terminal without its echo and the history unsaved."""
    home, run_id = recorded
    history = home / "step_history"
    history.unlink(missing_ok=True)
    with on_a_terminal(home, "replay", run_id, "--step") as terminal:
        terminal.wait_for("(replay) ")
        terminal.seen.clear()  # the next prompt is the one after ``where``
        terminal.type(b"where\n")
        terminal.wait_for("(replay) ")
        terminal.process.send_signal(signal.SIGTERM)
        code = terminal.process.wait(60)
        echoes = bool(termios.tcgetattr(terminal.primary)[3] & termios.ECHO)
    assert (143, True) == (code, echoes)
    assert "where" in history.read_text()


def test_dump_log_records_read_back_as_written() -> None:
    """``decode_logs`` is the inverse of ``encode_logs`` for the fields a dump keeps; a
    foreign or broken body gives no records, not an error."""
    rows = [
        StoredLog(0, "a" * 32, 5, 9, "INFO", "demo", "plan", 0, 1, "b" * 16, "td", "hi", {"k": 1}),
        StoredLog(0, "a" * 32, 3, 13, "WARNING", "demo", None, None, None, None, "py", "w"),
        StoredLog(0, "a" * 32, 4, 9, "INFO", "demo", "plan", 0, 1, "b" * 16, "td", "again"),
    ]
    # The order given (the store's), not time order; "td" twice: two scope entries.
    assert rows == decode_logs(encode_logs(rows))
    for foreign in (None, [], {"resourceLogs": [1, {"scopeLogs": [2, {"logRecords": [3]}]}]}):
        assert [] == decode_logs(foreign)


FAN_OUT = """\
    name: fan
    stages:
      - name: a
        handler: "fanout:publish"
        emits: [item]
        triggers: [{manual: {approval_required: false}}]
      - name: c
        command: "true"
        parallel_instances: 3
        triggers: [{on_event: {type: item}}]
"""


@pytest.mark.slow
def test_where_counts_a_fan_out_s_instances_as_the_debugger_does(home: Path) -> None:
    """``where`` in ``replay --step`` counts a fanned-out stage's instances by status, in the
    words of the debugger's ``where`` (``instances: 3 paused``): it said ``3 instances``."""
    (home / "fanout.py").write_text(
        "def publish(ctx):\n    for n in (1, 2, 3):\n        ctx.publish('item', {'n': n})\n"
        "    return {}\n"
    )
    (home / "fan.yaml").write_text(textwrap.dedent(FAN_OUT))
    ran = taskdaemon(home, "run", "fan.yaml", "-q", cwd=home)
    assert 0 == ran.returncode, ran.stderr
    stepped = taskdaemon(
        home, "replay", ran.stdout.strip(), "--step", cwd=home, stdin="goto 1h\nwhere\n"
    )
    assert "  c  success  (instances: 3 success)" in stepped.stdout.splitlines(), stepped.stdout
