"""``taskdaemon debug`` and ``run --break`` as real processes: the prompt fed on a pipe and
driven through a pseudo-terminal (attaching from another process is
``pipeline_debug_cli_attach_test.py``)."""

from __future__ import annotations

import contextlib
import io
import json
import os
import pty
import re
import select
import subprocess
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cli_support import ROOT, TASKDAEMON, taskdaemon
from pipeline_debug_cli_support import (
    APPROVED,
    debug,
    environment,
    write_pipeline,
)
from taskdaemon.pipeline.cli._debug_prompt import DebugPrompt
from taskdaemon.pipeline.durations import format_duration
from taskdaemon.pipeline.tracking.store import SpanStore


@pytest.fixture
def pipeline_file(home: Path) -> Path:
    """The test pipeline: a -> b (reads a's x) -> c (fails)."""
    return write_pipeline(home)


def outputs_of(home: Path, run_id: str, stage: str) -> Any:
    """The stored outputs of ``stage``'s last attempt in run ``run_id``."""
    with SpanStore(home / "spans.db") as store:
        record = store.get_run(run_id)
    (found,) = [s for s in record.stages if s.name == stage]
    text = found.attempts[-1].outputs
    return json.loads(text) if text else None


@pytest.mark.slow
def test_commands_on_a_pipe_run_in_order_and_the_exit_code_is_the_runs(
    home: Path, pipeline_file: Path
) -> None:
    """Fed on a pipe, the prompt shows the pause, the inputs, takes an override and runs on;
    the run's failure (stage c) is the exit code, and b ran with the overridden input."""
    done = debug(
        home,
        str(pipeline_file),
        "--break",
        "b",
        "-q",
        stdin="where\ninputs b\nset b x 5\ninfo breakpoints\nlogs a\ncontinue\n",
    )
    assert done.returncode == 1, done.stderr
    out = done.stdout
    assert "paused at b.0.1 (#1 before b (pipeline dbg))" in out
    assert "  b  paused" in out
    assert '(taskdaemon) inputs b\n{"x": 1}' in out
    assert "#1 before b (pipeline dbg)  hits 1" in out
    assert '  [INFO] [stdout] {"x": 1}' in out  # a's stdout, a log record of its stage
    assert "run ended failure" in out
    run_id = out.split()[2]
    assert outputs_of(home, run_id, "b") == {"got": 5}
    assert out.index("(taskdaemon) where") < out.index("(taskdaemon) inputs b")


@pytest.mark.slow
def test_where_after_a_step_ran_the_run_to_its_end_says_no_step_mode(
    home: Path, pipeline_file: Path
) -> None:
    """``step`` at b, then at c, runs the run to its end (c fails); ``where`` then reads
    ``run RUN failure``: it read ``failure, step mode``, a mode nothing can pause in any more."""
    done = debug(home, str(pipeline_file), "--break", "b", "-q", stdin="where\nstep\nstep\nwhere\n")
    wheres = [
        line for line in done.stdout.splitlines() if line.startswith("run ") and "slots" in line
    ]
    assert 1 == done.returncode, done.stderr
    assert [("paused", ""), ("failure", "")] == [
        (line.split()[2].rstrip(";,"), ", step mode" * ("step mode" in line)) for line in wheres
    ], wheres


@pytest.mark.slow
def test_the_stage_may_be_left_out_when_one_is_paused(home: Path, pipeline_file: Path) -> None:
    """At a breakpoint, ``inputs`` alone said ``usage: inputs STAGE`` where ``continue`` alone
    resumed the paused stage: ``inputs``, ``outputs`` and ``logs`` now take it too, and so
    does ``set INPUT JSON`` (it said ``usage: set STAGE INPUT JSON``); b runs with it."""
    typed = "inputs\noutputs\nlogs\nset x 7\ncontinue\n"
    done = debug(home, str(pipeline_file), "--break", "b", "-q", stdin=typed)
    out = done.stdout
    assert '(taskdaemon) inputs\n{"x": 1}' in out, out
    assert "(taskdaemon) outputs\nb (paused): {}" in out, out
    assert "(taskdaemon) logs\n  b.0: paused (1 attempt)" in out, out
    assert "(taskdaemon) set x 7\nb: input x = 7" in out, out
    assert "usage" not in out + done.stderr
    assert {"got": 7} == outputs_of(home, out.split()[2], "b")


@pytest.mark.slow
def test_a_failure_breakpoint_and_retry_then_quit_cancels(home: Path, pipeline_file: Path) -> None:
    """``--break-on-failure`` pauses c with its error; ``quit`` cancels the run: exit 1."""
    done = debug(home, str(pipeline_file), "--break-on-failure", "-q", stdin="where\nquit\n")
    assert done.returncode == 1, done.stderr
    assert "paused at c.0.1 (failure: #1 on failure of any stage (pipeline dbg))" in done.stdout
    assert "run cancelled" in done.stdout
    assert "run ended cancelled" in done.stdout


@pytest.mark.slow
def test_taskdaemon_breakpoints_sets_breakpoints_from_the_environment(
    home: Path, pipeline_file: Path
) -> None:
    """``TASKDAEMON_BREAKPOINTS=STAGE[:CEL];...`` pauses like ``--break``; a bad entry is one
    line and exit 2."""
    env = environment(home) | {"TASKDAEMON_BREAKPOINTS": "a:request.n == 1; b"}
    done = subprocess.run(
        [TASKDAEMON, "debug", str(pipeline_file), "-q", "--input", "n=1"],
        cwd=ROOT,
        env=env,
        input="continue\ncontinue\n",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert "paused at a.0.1 (#1 before a if request.n == 1 (pipeline dbg))" in done.stdout
    assert "paused at b.0.1 (#2 before b (pipeline dbg))" in done.stdout
    assert done.returncode == 1  # c fails
    env["TASKDAEMON_BREAKPOINTS"] = "zz"
    bad = subprocess.run(
        [TASKDAEMON, "debug", str(pipeline_file), "-q"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert bad.returncode == 2
    assert bad.stderr.strip() == (
        "taskdaemon debug: TASKDAEMON_BREAKPOINTS 'zz': no stage 'zz' (stages: a, b, c)"
    )


@pytest.mark.slow
def test_a_bad_breakpoint_is_one_line_and_exit_2(home: Path, pipeline_file: Path) -> None:
    """An unknown stage or a condition that does not compile: one line on stderr, exit 2."""
    for spec, reason in (("nope", "no stage 'nope'"), ("b:inputs.x >", "does not compile")):
        done = debug(home, str(pipeline_file), "--break", spec, "-q")
        assert done.returncode == 2
        assert reason in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1
        assert "Traceback" not in done.stderr


def _read_until(fd: int, needle: str, seen: list[str], timeout: float = 30.0) -> str:
    """Read the pty until ``needle`` appears (the explicit sync point); returns all so far."""
    text = "".join(seen)
    while needle not in text:
        ready, _, _ = select.select([fd], [], [], timeout)
        if not ready:
            raise AssertionError(f"{needle!r} never came; the terminal showed:\n{text}")
        try:
            chunk = os.read(fd, 4096).decode(errors="replace")
        except OSError:  # the child closed the terminal
            raise AssertionError(f"{needle!r} never came; the terminal showed:\n{text}") from None
        seen.append(chunk)
        text += chunk
    return text


@contextlib.contextmanager
def _debug_on_a_terminal(
    home: Path, pipeline_file: Path
) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """``taskdaemon debug FILE --break b`` on a pseudo-terminal: the process and the
    terminal's controlling side; the process is killed if still running, the terminal
    closed."""
    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        [TASKDAEMON, "debug", str(pipeline_file), "--break", "b", "-q"],
        cwd=ROOT,
        env=environment(home) | {"TERM": "dumb"},
        stdin=terminal,
        stdout=terminal,
        stderr=subprocess.DEVNULL,
        close_fds=True,
    )
    os.close(terminal)
    try:
        yield process, controller
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(controller)


@pytest.mark.slow
def test_the_prompt_on_a_terminal_completes_stage_names_and_keeps_history(
    home: Path, pipeline_file: Path
) -> None:
    """Through a pseudo-terminal: ``help`` answers, Tab completes a command and a stage name,
    ``continue`` runs to the end, Ctrl-D leaves with the run's exit code, history is saved."""
    with _debug_on_a_terminal(home, pipeline_file) as (process, controller):
        _complete_and_keep_history(process, controller)
    history = (home / "debug_history").read_text()
    assert "help" in history
    assert "inputs b" in history


def _complete_and_keep_history(process: subprocess.Popen[bytes], controller: int) -> None:
    """Type ``help``, a Tab-completed ``inputs b``, ``outputs a``, ``continue`` and Ctrl-D,
    each at its prompt, checking each answer."""
    seen: list[str] = []
    mark = [0]  # where the terminal's text stood when the last keys were typed

    def at_prompt(keys: bytes) -> None:
        """Wait for the prompt that follows the last keys typed (their answer shown in
        full), then type ``keys``."""
        while "(taskdaemon) " not in "".join(seen)[mark[0] :]:
            ready, _, _ = select.select([controller], [], [], 30.0)
            if not ready:
                raise AssertionError("no prompt came; the terminal showed:\n" + "".join(seen))
            seen.append(os.read(controller, 4096).decode(errors="replace"))
        mark[0] = len("".join(seen))
        os.write(controller, keys)

    at_prompt(b"help\n")
    _read_until(controller, "quit: cancel the run", seen)
    at_prompt(b"inp\tb\n")  # Tab completes "inputs "
    text = _read_until(controller, '{"x": 1}', seen)
    assert "inputs b" in text
    at_prompt(b"outputs a\n")
    _read_until(controller, 'a (success): {"x": 1}', seen)
    at_prompt(b"continue\n")
    _read_until(controller, "run ended failure", seen)
    at_prompt(b"\x04")  # Ctrl-D: end of input
    assert process.wait(timeout=30) == 1


@pytest.mark.slow
def test_the_history_file_keeps_no_secret_typed_at_the_prompt(
    home: Path, pipeline_file: Path
) -> None:
    """A breakpoint whose condition compares a token with its literal value, typed through a
    pseudo-terminal, is saved in the history with the value redacted: the file outlives the
    session, and nothing else taskdaemon writes holds the value."""
    seen: list[str] = []
    with _debug_on_a_terminal(home, pipeline_file) as (process, controller):
        _read_until(controller, "(taskdaemon) ", seen)
        os.write(controller, b'break c if request.token == "TypedSecret-77665544"\n')
        _read_until(controller, "#2", seen)
        os.write(controller, b"quit\n")
        assert process.wait(timeout=30) == 1
    history = (home / "debug_history").read_text()
    assert (True, False) == (
        'break c if request.token == "[REDACTED]"' in history,
        "TypedSecret" in history,
    ), history


@pytest.mark.slow
def test_a_secret_typed_on_a_pipe_is_not_echoed_back(home: Path, pipeline_file: Path) -> None:
    """Fed on a pipe, the prompt echoes each command after itself, and echoed a token typed in
    a breakpoint's condition into the transcript (a CI job's log): it is redacted there as in
    the history, and appears nowhere in the output."""
    typed = 'break c if request.token == "TypedSecret-77665544"\ncontinue\n'
    done = debug(home, str(pipeline_file), "--break", "b", "-q", stdin=typed)
    assert (True, False) == (
        '(taskdaemon) break c if request.token == "[REDACTED]"' in done.stdout,
        "TypedSecret" in done.stdout + done.stderr,
    ), done.stdout


@pytest.mark.slow
def test_a_breakpoint_comparing_a_secret_is_redacted_where_it_pauses(
    home: Path, pipeline_file: Path
) -> None:
    """A ``--break`` whose condition compares the request's token with its value pauses the
    run, and the progress line saying why quoted the condition whole: it names it redacted, as
    the prompt does, and the value appears nowhere in the output."""
    secret = "GivenSecret-55443322"
    done = debug(
        home,
        str(pipeline_file),
        "--break",
        f'b:request.token == "{secret}"',
        "-i",
        f"token={secret}",
        stdin="continue\n",
    )
    paused = [line.split(None, 2)[2] for line in done.stderr.splitlines() if "paused" in line]
    expected = ['paused: #1 before b if request.token == "[REDACTED]" (pipeline dbg)']
    assert (expected, False) == (paused, secret in done.stdout + done.stderr), done.stderr


@pytest.mark.slow
def test_a_stage_skipped_at_a_breakpoint_never_ran_in_the_summary_and_progress(
    home: Path, pipeline_file: Path
) -> None:
    """``skip`` at ``b``'s breakpoint: the summary shows no instance or attempt for ``b`` (it
    never started) with the skip's reason, and the progress says ``b`` skipped once."""
    done = debug(home, str(pipeline_file), "--break", "b", stdin="skip\n")
    assert done.returncode == 0, done.stderr
    row = next(line for line in done.stdout.splitlines() if line.startswith("b "))
    assert row.split(None, 4) == ["b", "skipped", "-", "-", row.split(None, 4)[4]]
    assert row.endswith("skipped at a breakpoint by cli debug")
    progress = [line.split(None, 2)[1:] for line in done.stderr.splitlines()]
    assert [what for stage, what in progress if stage == "b" and "skipped" in what] == [
        "skipped: skipped at a breakpoint by cli debug"
    ]


@pytest.mark.slow
def test_quit_at_a_start_breakpoint_says_who_cancelled(home: Path, pipeline_file: Path) -> None:
    """``quit`` at ``b``'s breakpoint cancels the run for the prompt's user, as ``continue``
    and ``skip`` are attributed: the pause read ``resumed: cancel by engine`` and the run
    ``run cancelled``, as if nobody had asked. ``b`` never started: it ends ``cancelled``
    with that reason and no attempt, in the progress and in its log record (docs/run-state.md,
    "Rules")."""
    done = debug(home, str(pipeline_file), "--break", "b", stdin="quit\n")
    run_id = done.stdout.split()[2]
    progress = [line.split(None, 2)[1:] for line in done.stderr.splitlines()]
    logs = taskdaemon(home, "logs", run_id, "--stage", "b").stdout.splitlines()
    expected = (
        1,
        [
            ["b", "paused: #1 before b (pipeline dbg)"],
            ["b", "resumed: cancel by cli debug"],
            ["b", "cancelled: run cancelled by cli debug"],
        ],
        [
            "stage b.0.1 paused: #1 before b (pipeline dbg)",
            "stage b.0.1 resumed: cancel by cli debug after TIME",
            "stage b.0.1 finished: cancelled: run cancelled by cli debug",
        ],
    )
    assert expected == (
        done.returncode,
        [words for words in progress if words[0] == "b"],
        [re.sub(r" after \S+$", " after TIME", line.split(None, 2)[2]) for line in logs],
    ), done.stdout + done.stderr


@pytest.mark.slow
def test_the_logs_of_failure_pauses_read_in_the_order_things_happened(
    home: Path, pipeline_file: Path
) -> None:
    """``retry`` at ``c``'s failure pause, then ``continue`` at its second attempt's: ``logs``
    gives each attempt's failure (its pause names the error), pause, resumption and outcome in
    that order, its times never going back: the attempt's end, written when its pause is
    resumed, was read after the resumption but stamped back at the failure."""
    done = debug(home, str(pipeline_file), "--break-on-failure", "-q", stdin="retry\ncontinue\n")
    run_id = done.stdout.split()[2]
    logs = taskdaemon(home, "logs", run_id, "--stage", "c").stdout.splitlines()
    error = "command 'exit 3' exited with code 3"
    paused = f"paused: failure: #1 on failure of any stage (pipeline dbg): {error}"
    expected = [
        "stage c.0.1 started (attempt 1)",
        f"stage c.0.1 {paused}",
        "stage c.0.1 resumed: retry by cli debug after TIME",
        f"stage c.0.1 finished: failure: {error}",
        "stage c.0.1 retried: attempt 2 in 0.000s",
        "stage c.0.2 started (attempt 2)",
        f"stage c.0.2 {paused}",
        "stage c.0.2 resumed: continue by cli debug after TIME",
        f"stage c.0.2 finished: failure: {error}",
    ]
    times = [line.split()[0] for line in logs]
    assert (1, expected, sorted(times)) == (
        done.returncode,
        [re.sub(r" after \S+$", " after TIME", line.split(None, 2)[2]) for line in logs],
        times,
    ), done.stdout + done.stderr


@pytest.mark.slow
def test_runs_show_says_how_long_a_stage_was_paused_beside_its_duration(
    home: Path, pipeline_file: Path
) -> None:
    """``b`` held at a start breakpoint, ``c`` at a failure pause, retried, and at its second
    attempt's: ``runs show`` writes each one's paused time (its attempts' ``paused_time``
    summed) beside its DURATION, which a pause between two attempts lies inside; nothing beside
    ``a``'s, never paused."""
    typed = "continue\nretry\ncontinue\n"
    done = debug(home, str(pipeline_file), "--break", "b", "--break-on-failure", "-q", stdin=typed)
    run_id = done.stdout.split()[2]
    shown = taskdaemon(home, "runs", "show", run_id).stdout.splitlines()
    stages = json.loads(taskdaemon(home, "runs", "show", run_id, "--json").stdout)["stages"]
    expected = {"a": None}
    for stage in stages[1:]:
        paused = sum(attempt["paused_time"] for attempt in stage["attempts"])
        expected[stage["name"]] = f"(paused {format_duration(paused)})"
    said = {}
    for line in shown:
        if line.split()[:1] in (["a"], ["b"], ["c"]):
            found = re.search(r"\(paused \S+\)", line)
            said[line.split()[0]] = found.group() if found else None
    assert (1, expected) == (done.returncode, said), "\n".join(shown)


def test_quit_after_the_run_ended_elsewhere_does_not_say_cancelled() -> None:
    """``quit`` at a prompt whose run another client resumed to its end sends no cancel and
    does not claim to have cancelled it."""
    sent: list[str] = []
    paused = {"task_run_id": "b.0.1", "reason": "#1 before b", "stage": "b"}

    def call(request: dict[str, Any]) -> dict[str, Any]:
        sent.append(request["action"])
        if request["action"] == "wait":  # the first stop, before the other client resumed
            return {"paused": [paused], "done": False, "status": "paused", "error": None}
        state = {"stages": {"a": "success", "b": "success"}, "run_id": "r1", "pipeline": "p"}
        return {"state": state, "done": len(sent) > 2}

    out = io.StringIO()
    DebugPrompt(call, stdin=io.StringIO("quit\n"), stdout=out).run()
    assert (["state", "wait", "state"], False) == (sent, "run cancelled" in out.getvalue())


def test_set_with_a_value_nested_too_deep_is_one_error_line() -> None:
    """``set`` with a JSON value nested 100,000 deep is one error line naming the depth limit,
    and nothing is sent to the run (it used to leave the debugger hung on a RecursionError)."""
    sent: list[str] = []
    paused = {"task_run_id": "b.0.1", "reason": "#1 before b", "stage": "b"}

    def call(request: dict[str, Any]) -> dict[str, Any]:
        sent.append(request["action"])
        if request["action"] == "wait":
            return {"paused": [paused], "done": False, "status": "paused", "error": None}
        state = {"stages": {"a": "success", "b": "paused"}, "run_id": "r1", "pipeline": "p"}
        return {"state": state, "done": False}

    out = io.StringIO()
    deep = "[" * 100_000 + "]" * 100_000
    DebugPrompt(call, stdin=io.StringIO(f"set b x {deep}\n"), stdout=out).run()
    errors = [line for line in out.getvalue().splitlines() if line.startswith("error:")]
    assert (["error: value nested deeper than 100 levels"], ["state", "wait"]) == (errors, sent)


@pytest.mark.slow
def test_a_breakpoint_condition_keeps_the_quotes_of_its_cel_strings(
    home: Path, pipeline_file: Path
) -> None:
    """``break c if request.env == "prod"`` sets that condition as typed (the prompt's
    argument split used to drop the quotes, making ``prod`` an unknown variable), and it
    pauses c."""
    done = debug(
        home,
        str(pipeline_file),
        "--break",
        "b",
        "-q",
        "--input",
        "env=prod",
        stdin='break c if request.env == "prod"\ncontinue\ncontinue\n',
    )
    run = done.stdout.split()[2][:8]
    condition = f'#2 before c if request.env == "prod" (run {run})'
    assert [f"breakpoint {condition}", f"paused at c.0.1 ({condition})"] == [
        line for line in done.stdout.splitlines() if condition in line
    ]


@pytest.mark.slow
def test_set_takes_a_json_object_with_quoted_keys_as_typed(home: Path, pipeline_file: Path) -> None:
    """``set b x {"k": "v w"}`` overrides x with that object (the argument split used to
    make it ``{k: v w}``, not JSON), and b runs with it."""
    done = debug(
        home, str(pipeline_file), "--break", "b", "-q", stdin='set b x {"k": "v w"}\ncontinue\n'
    )
    assert '(taskdaemon) set b x {"k": "v w"}\nb: input x = {"k": "v w"}\n' in done.stdout
    assert {"got": {"k": "v w"}} == outputs_of(home, done.stdout.split()[2], "b")


@pytest.mark.slow
def test_a_breakpoint_condition_with_an_escape_is_refused_with_the_escape_shown(
    home: Path, pipeline_file: Path
) -> None:
    """``--break`` with an ESC in its condition, to ``debug`` and to ``run``: the one-line
    refusal shows it as ``\\x1b`` (the CEL parser's message quoted it raw, to the terminal)."""
    spec = "b:\x1b]0;owned\x07 == 1"
    refusals = [
        subprocess.run(
            [TASKDAEMON, command, str(pipeline_file), "--break", spec, "-q"],
            env=environment(home),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        for command in ("debug", "run")
    ]
    assert [(2, 1, False), (2, 1, False)] == [
        (done.returncode, len(done.stderr.splitlines()), "\x1b" in done.stderr) for done in refusals
    ]


@pytest.mark.slow
def test_a_replay_names_what_the_debugger_did_that_it_does_not_repeat(
    home: Path, pipeline_file: Path
) -> None:
    """A run whose b ran with an input overridden at a breakpoint and whose c was retried at
    its failure: ``replay --dry-run`` notes both (it said nothing, and the replay's b then
    differed from the original's)."""
    done = debug(
        home,
        str(pipeline_file),
        "--break",
        "b",
        "--break-on-failure",
        "-q",
        stdin="set b x 5\ncontinue\nretry\ncontinue\n",
    )
    replay = subprocess.run(
        [TASKDAEMON, "replay", done.stdout.split()[2], "--dry-run"],
        env=environment(home),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    at = "at a breakpoint in the original (by cli debug): the replay runs"
    assert [
        f"note: b.0.1 had its input x overridden {at} b as its definition says, so it may "
        "differ there",
        f"note: c.0.1 was retried {at} c as its definition says, so it may differ there",
    ] == replay.stderr.splitlines()


BIG_OUTPUT = """\
name: big
stages:
  - name: a
    command: >-
      python3 -c 'import json; print(json.dumps({"x": "y" * 2000000}))'
    triggers: [{manual: {approval_required: false}}]
  - name: b
    command: "true"
    triggers: [{on_completion: {stage: a}}]
    inputs: {x: stages.a.outputs.x}
"""


@pytest.mark.slow
def test_a_pause_with_an_input_over_a_mebibyte_keeps_the_prompt(home: Path) -> None:
    """b paused with a 2 MB input: the prompt reports the pause and ``inputs b`` prints the
    value whole (the answer was over the control socket's 1 MiB: the prompt failed at the
    pause and cancelled the run)."""
    path = home / "big.yaml"
    path.write_text(BIG_OUTPUT)
    done = debug(home, str(path), "--break", "b", "-q", stdin="inputs b\nskip\n")
    lines = done.stdout.splitlines()
    assert (
        [
            "paused at b.0.1 (#1 before b (pipeline big))",
            "(taskdaemon) inputs b",
            json.dumps({"x": "y" * 2_000_000}),
            "(taskdaemon) skip",
            "run ended success",
            lines[0].split()[2],  # -q: the run id, last
        ]
        == lines[1:]
    )


@pytest.mark.slow
def test_debug_auto_approve_grants_the_approval_a_pipe_cannot(home: Path) -> None:
    """``debug FILE --auto-approve`` fed an empty pipe runs through an approval stage to
    success, the approval granted by the command line."""
    path = home / "gated.yaml"
    path.write_text(textwrap.dedent(APPROVED))
    done = debug(home, str(path), "--auto-approve")
    assert (0, True) == (done.returncode, "approved by cli --auto-approve" in done.stderr)


def test_debug_approve_of_a_stage_without_approval_is_one_line_and_exit_2(
    home: Path, pipeline_file: Path
) -> None:
    """``debug FILE --approve a`` for a stage with no approval trigger: one line, exit 2."""
    done = debug(home, str(pipeline_file), "--approve", "a", "-q")
    expected = (2, ["taskdaemon debug: --approve 'a': the stage has no manual approval trigger"])
    assert expected == (done.returncode, done.stderr.strip().splitlines())


@pytest.mark.slow
def test_quiet_ends_with_the_run_id_alone(home: Path, pipeline_file: Path) -> None:
    """``debug FILE -q`` means what ``run -q`` means: no progress lines, and the run id alone
    at the end of stdout instead of the summary table (it printed nothing there), the failed
    run's reason its one line on stderr; the prompt's lines stay."""
    loud, quiet = (debug(home, str(pipeline_file), *q) for q in ((), ("-q",)))
    run_id = quiet.stdout.split()[2]  # "debugging run ID ..."
    assert ([True, False], [True, True], run_id, 1) == (
        ["STAGE  STATUS" in done.stdout for done in (loud, quiet)],
        ["run ended failure" in done.stdout for done in (loud, quiet)],
        quiet.stdout.splitlines()[-1],
        len(quiet.stderr.splitlines()),
    ), quiet.stdout + quiet.stderr
    assert quiet.stderr.startswith(f"taskdaemon debug: run {run_id} failure: "), quiet.stderr


@pytest.mark.slow
def test_the_runs_logs_say_what_the_debugger_did(home: Path, pipeline_file: Path) -> None:
    """``taskdaemon logs`` of a debugged run said b started late and ran with an input its
    definition never gave it, with no word of why: the pause, the override (a warning, with
    the value) and the resumption (who, how, after how long) are its records now, in order."""
    done = debug(home, str(pipeline_file), "--break", "b", "-q", stdin="set b x 5\ncontinue\n")
    run_id = done.stdout.split()[2]
    logs = taskdaemon(home, "logs", run_id, "--stage", "b", "--json")
    records = [json.loads(line) for line in logs.stdout.splitlines()]
    said = [(r["level"], r["msg"]) for r in records if r["logger"] == "taskdaemon.run.lifecycle"]
    resumed = said[2][1].removeprefix("stage b.0.1 resumed: continue by cli debug after ")
    assert (1, 0) == (done.returncode, logs.returncode), done.stderr + logs.stderr
    assert [
        ("INFO", "stage b.0.1 paused: #1 before b (pipeline dbg)"),
        ("WARNING", 'stage b.0.1 input overridden by cli debug: {"x": 5}'),
        ("INFO", f"stage b.0.1 resumed: continue by cli debug after {resumed}"),
        ("INFO", "stage b.0.1 started (attempt 1)"),
        ("INFO", "stage b.0.1 finished: success"),
    ] == said
    assert resumed.endswith(("ms", "s")), said


@pytest.mark.slow
def test_log_level_debug_adds_the_engine_s_decisions(home: Path, pipeline_file: Path) -> None:
    """``debug FILE --log-level debug`` logs the engine's decisions as ``run`` and ``replay``
    do (``debug`` had no ``--log-level``: only ``TASKDAEMON_LOG_LEVEL`` gave them); a level
    it does not know is argparse's one line, exit 2, as theirs, naming the levels in the words
    ``TASKDAEMON_LOG_LEVEL``'s refusal has."""

    def decision_loggers(*options: str) -> set[str]:
        done = debug(home, str(pipeline_file), "-q", *options)
        assert 1 == done.returncode, done.stderr  # c fails
        logs = taskdaemon(home, "logs", done.stdout.split()[2], "--json", "--level", "debug")
        return {json.loads(line)["logger"] for line in logs.stdout.splitlines()} & {
            "taskdaemon.run.decision"
        }

    wrong = debug(home, str(pipeline_file), "--log-level", "loud")
    assert (set(), {"taskdaemon.run.decision"}) == (
        decision_loggers(),
        decision_loggers("--log-level", "DEBUG"),
    )
    assert (2, 1) == (wrong.returncode, len(wrong.stderr.splitlines())), wrong.stderr
    assert (
        "--log-level: must be one of trace, debug, info, warning, error, critical, not 'loud'"
        in wrong.stderr
    )
