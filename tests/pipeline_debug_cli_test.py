"""``taskdaemon debug``, ``run --break`` and ``debug attach|continue|step|skip`` as real
processes: the prompt fed on a pipe, driven through a pseudo-terminal, and attached from
another process over the control socket."""

from __future__ import annotations

import contextlib
import io
import json
import os
import pty
import select
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cli_support import in_background
from taskdaemon.pipeline.cli import debug as debug_module
from taskdaemon.pipeline.cli import main
from taskdaemon.pipeline.cli._debug_prompt import DebugPrompt
from taskdaemon.pipeline.tracking.store import SpanStore

ROOT = Path(__file__).resolve().parent.parent
TASKDAEMON = str(Path(sys.executable).with_name("taskdaemon"))

PIPELINE = """\
    name: dbg
    stages:
      - name: a
        command: "echo '{\\"x\\": 1}'"
        triggers: [{manual: {approval_required: false}}]
      - name: b
        command: "echo {\\\\\\"got\\\\\\": $TASKDAEMON_INPUT_X}"
        triggers: [{on_completion: {stage: a}}]
        inputs: {x: stages.a.outputs.x}
      - name: c
        command: "exit 3"
        triggers: [{on_completion: {stage: b}}]
"""


@pytest.fixture
def pipeline_file(home: Path) -> Path:
    """The test pipeline: a -> b (reads a's x) -> c (fails)."""
    path = home / "dbg.yaml"
    path.write_text(textwrap.dedent(PIPELINE))
    return path


def environment(home: Path) -> dict[str, str]:
    """This environment with its own home and no exporters."""
    env = dict(os.environ)
    env.update(
        TASKDAEMON_HOME=str(home),
        OTEL_TRACES_EXPORTER="none",
        OTEL_METRICS_EXPORTER="none",
        OTEL_LOGS_EXPORTER="none",
    )
    env.pop("TASKDAEMON_BREAKPOINTS", None)
    return env


def debug(home: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """``taskdaemon debug ARGS`` with ``stdin`` on a pipe, to its end."""
    return subprocess.run(
        [TASKDAEMON, "debug", *args],
        cwd=ROOT,
        env=environment(home),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def attached(home: Path, run_id: str) -> subprocess.Popen[str]:
    """``taskdaemon debug attach RUN`` in the background, its stdin, stdout and stderr pipes."""
    return in_background(home, "debug", "attach", run_id)


def typed(prompt: subprocess.Popen[str], command: str, until: str) -> str:
    """Type ``command`` at the ``attached`` ``prompt``; its first output line holding
    ``until`` (the sync point)."""
    assert prompt.stdin is not None
    assert prompt.stdout is not None
    prompt.stdin.write(command + "\n")
    prompt.stdin.flush()
    return next(line for line in prompt.stdout if until in line)


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
    assert '  [INFO] {"x": 1}' in out  # a's stdout, a log record of its stage
    assert "run ended failure" in out
    run_id = out.split()[2]
    assert outputs_of(home, run_id, "b") == {"got": 5}
    assert out.index("(taskdaemon) where") < out.index("(taskdaemon) inputs b")


@pytest.mark.slow
def test_the_stage_may_be_left_out_when_one_is_paused(home: Path, pipeline_file: Path) -> None:
    """At a breakpoint, ``inputs`` alone said ``usage: inputs STAGE`` where ``continue`` alone
    resumed the paused stage: ``inputs``, ``outputs`` and ``logs`` now take it too."""
    done = debug(
        home, str(pipeline_file), "--break", "b", "-q", stdin="inputs\noutputs\nlogs\ncontinue\n"
    )
    out = done.stdout
    assert '(taskdaemon) inputs\n{"x": 1}' in out, out
    assert "(taskdaemon) outputs\nb (paused): {}" in out, out
    assert "(taskdaemon) logs\n  b.0: paused (1 attempt)" in out, out
    assert "usage" not in out + done.stderr


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
        """Wait for the prompt that follows the last keys typed (readline owns the terminal
        then), then type ``keys``: a Ctrl-D typed before readline switched the terminal to raw
        mode could be lost."""
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


@pytest.fixture
def served(home: Path, pipeline_file: Path) -> Iterator[subprocess.Popen[str]]:
    """``taskdaemon run FILE --break b`` in the background (killed if left running)."""
    process = subprocess.Popen(
        [TASKDAEMON, "run", str(pipeline_file), "--break", "b"],
        cwd=ROOT,
        env=environment(home),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    yield process
    if process.poll() is None:
        process.kill()
    process.communicate()


def _paused_run_id(process: subprocess.Popen[str]) -> str:
    """Read the run's stderr until b pauses; its line names the attach command."""
    assert process.stderr is not None
    seen = []
    for line in process.stderr:
        seen.append(line)
        if "paused:" in line and "taskdaemon debug attach " in line:
            return line.rsplit("taskdaemon debug attach ", 1)[1].strip(" )\n")
    raise AssertionError("the run never paused:\n" + "".join(seen))


@pytest.mark.slow
def test_ctrl_c_at_an_attached_prompt_says_it_left_and_what_it_resumed(
    home: Path, served: subprocess.Popen[str]
) -> None:
    """Ctrl-C (SIGINT) at a ``debug attach`` prompt over b's pause leaves the run as leaving
    does (the pause resumed, the run going on to its end) and says so in one line, exit 130:
    the prompt vanished without a word, and its user could not tell whether the run was
    still paused, cancelled or running."""
    run_id = _paused_run_id(served)
    prompt = attached(home, run_id)
    typed(prompt, "where", "  b  paused")  # at the prompt again
    prompt.send_signal(signal.SIGINT)
    _out, err = prompt.communicate(timeout=60)
    _out, run_err = served.communicate(timeout=60)
    assert 130 == prompt.returncode
    assert [
        f"taskdaemon debug: interrupted: left run {run_id}, resuming 1 paused execution"
    ] == err.splitlines()
    assert "resumed: continue by cli debug attach" in run_err


@pytest.mark.slow
def test_attach_from_another_process_drives_the_run(
    home: Path, served: subprocess.Popen[str]
) -> None:
    """``run --break b`` pauses; ``debug attach RUN`` in another process sees it and
    continues it; the run process then ends with the run's exit code."""
    run_id = _paused_run_id(served)
    attached = debug(home, "attach", run_id[:10], stdin="where\nstep\n")
    assert attached.returncode == 0, attached.stderr
    assert "paused at b.0.1" in attached.stdout
    assert "  b  paused" in attached.stdout
    _out, err = served.communicate(timeout=60)
    assert served.returncode == 1  # c fails
    assert "resumed: step by cli debug attach" in err


@pytest.mark.slow
@pytest.mark.parametrize(
    ("action", "said"),
    [
        ("skip", "skipped b.0.1"),
        ("step", "resumed b.0.1; in step mode, each execution that becomes ready pauses"),
    ],
)
def test_debug_step_and_skip_say_what_they_resumed_in_one_line(
    home: Path, served: subprocess.Popen[str], action: str, said: str
) -> None:
    """``debug skip|step RUN`` names the execution it resumed in one line, as ``continue``
    counts them; they printed the paused execution's whole record as JSON (its epoch
    ``since``, its inputs), which no other answer of the command line does."""
    run_id = _paused_run_id(served)
    done = debug(home, action, run_id)
    debug(home, "continue", run_id)  # out of step mode: the run goes to its end
    served.communicate(timeout=60)
    assert (0, said + "\n", "") == (done.returncode, done.stdout, done.stderr)


@pytest.mark.slow
def test_one_shot_debug_commands_resume_or_refuse_in_one_line(
    home: Path, served: subprocess.Popen[str]
) -> None:
    """``debug retry RUN`` on a stage paused before it starts is refused (exit 1, one line);
    ``debug continue RUN b`` resumes it; an unknown run is one line too, exit 3 as from
    ``approve``."""
    run_id = _paused_run_id(served)
    refused = debug(home, "skip", run_id, "c")
    assert refused.returncode == 1
    assert refused.stderr.strip() == "taskdaemon debug: cannot skip c: stage 'c' is not paused"
    resumed = debug(home, "continue", run_id, "b")
    assert resumed.returncode == 0, resumed.stderr
    served.communicate(timeout=60)
    missing = debug(home, "step", "f" * 32)
    assert missing.returncode == 3
    assert len(missing.stderr.strip().splitlines()) == 1


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
def test_attach_to_a_garbage_run_id_is_one_line_and_reaches_no_socket(home: Path) -> None:
    """``debug attach`` of an id that is a path (``../x``, naming a socket outside the control
    directory) or too long for a file name is refused in one line, exit 3 as from approve (a
    long one was an ``OSError`` traceback, a path was followed)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as elsewhere:
        elsewhere.bind(str(home / "x.sock"))  # where control/../x.sock leads
        answers = [debug(home, "attach", run_id) for run_id in ("../x", "a" * 300)]
    assert [
        (3, ["taskdaemon debug: not a run id: '../x'"]),
        (3, ["taskdaemon debug: not a run id: '" + "a" * 79 + "…'"]),
    ] == [
        (done.returncode, [line.split(" (a run id")[0] for line in done.stderr.splitlines()])
        for done in answers
    ]


#: Runs a command as this (root) user without the power to override file modes.
NO_DAC_OVERRIDE = ("setpriv", "--bounding-set", "-dac_override,-dac_read_search")


@pytest.mark.slow
@pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("setpriv") is None, reason="needs root and setpriv"
)
def test_attach_to_another_users_socket_is_one_line(home: Path) -> None:
    """A run whose socket belongs to another user, attached without the power to override
    file modes (root without CAP_DAC_OVERRIDE, as any other user is), is one line naming the
    refusal, exit 3 as from ``approve`` (it was a ``PermissionError`` traceback)."""
    control = home / "control"
    control.mkdir(mode=0o700)
    run_id = "f" * 32
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as theirs:
        theirs.bind(str(control / f"{run_id}.sock"))
        theirs.listen()
        os.chmod(control / f"{run_id}.sock", 0o600)
        os.chown(control / f"{run_id}.sock", 65534, 65534)
        done = subprocess.run(
            [*NO_DAC_OVERRIDE, TASKDAEMON, "debug", "attach", run_id],
            env=environment(home),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    expected = f"taskdaemon debug: cannot reach run '{run_id}' at {control}/{run_id}.sock: "
    assert (3, [expected + "Permission denied"]) == (done.returncode, done.stderr.splitlines())


def _served_run_id(home: Path, process: subprocess.Popen[str], timeout: float = 30.0) -> str:
    """The id of the run ``process`` serves, once its control socket exists (bounded)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        if sockets := list((home / "control").glob("*.sock")):
            return sockets[0].stem
        time.sleep(0.05)
    raise AssertionError("the run never served its control socket")


def _running(home: Path, definition: str) -> subprocess.Popen[str]:
    """``taskdaemon run -q`` of the pipeline ``definition`` (written under ``home``)."""
    path = home / "running.yaml"
    path.write_text(definition)
    return subprocess.Popen(
        [TASKDAEMON, "run", str(path), "-q"], cwd=ROOT, env=environment(home), text=True
    )


@pytest.mark.slow
def test_attach_to_a_run_with_nothing_paused_prompts_at_once(home: Path) -> None:
    """``debug attach`` of a run busy in a 60 s stage says nothing is paused and takes a
    breakpoint at once (the prompt used to wait, silent, for the next pause or the run's
    end: here a minute, then the run was gone)."""
    process = _running(
        home,
        "name: slow\nstages:\n"
        "  - {name: a, command: 'sleep 60', triggers: [{manual: {approval_required: false}}]}\n"
        "  - {name: b, command: 'true', triggers: [{on_completion: {stage: a}}]}\n",
    )
    try:
        run_id = _served_run_id(home, process)
        attached = subprocess.run(
            [TASKDAEMON, "debug", "attach", run_id],
            env=environment(home),
            input="break b\n",
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    finally:
        process.terminate()  # cancels the run, which ends its sleep
        process.wait(timeout=30)
    assert [
        "run running, nothing paused ('continue' or 'step' waits for the next pause)",
        "(taskdaemon) break b",
        f"breakpoint #1 before b (run {run_id[:8]})",
    ] == attached.stdout.splitlines()[1:]


@pytest.mark.slow
def test_continue_with_nothing_paused_says_it_waits_and_for_what(home: Path) -> None:
    """``continue`` at a prompt attached to a run waiting for an approval, with nothing paused,
    says it waits for the next pause or the run's end, and names the approval the run waits
    for with the command that grants it (the prompt sat silent, as if hung, until someone
    approved); once approved elsewhere, it says the run ended."""
    process = _running(
        home,
        "name: gated\nstages:\n"
        "  - {name: a, command: 'true', triggers: [{manual: {approval_required: true}}]}\n",
    )
    try:
        run_id = _served_run_id(home, process)
        prompt = attached(home, run_id)
        said = typed(prompt, "continue", "nothing was paused")
        approved = subprocess.run(
            [TASKDAEMON, "approve", run_id, "a"],
            env=environment(home),
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        out, _err = prompt.communicate("", timeout=60)
    finally:
        process.terminate()
        process.wait(timeout=30)
    assert 0 == approved.returncode, approved.stderr
    assert (
        "nothing was paused: waiting for the next pause or the run's end "
        f"(a waits for approval: taskdaemon approve {run_id} a)"
    ) in said
    assert "run ended success" in out


@pytest.mark.slow
def test_a_second_attacher_leaving_keeps_the_first_ones_pause_and_breakpoints(
    home: Path, served: subprocess.Popen[str]
) -> None:
    """While one ``debug attach`` prompt is at b's pause with a breakpoint of its own, a second
    attaches, looks and leaves: b stays paused and both breakpoints stay (the second's leaving
    used to delete every breakpoint, ``--break``'s too, and resume the run)."""
    run_id = _paused_run_id(served)
    first = attached(home, run_id)
    typed(first, "break c", "breakpoint #2")  # it is set
    second = debug(home, "attach", run_id, stdin="where\n")
    out, _err = first.communicate("info breakpoints\nwhere\n", timeout=60)
    assert second.returncode == 0, second.stderr
    assert [
        "#1 before b (pipeline dbg)  hits 1",
        f"#2 before c (run {run_id[:8]})  hits 0",
        "  b  paused",
    ] == [line for line in out.splitlines() if line.startswith(("#", "  b "))]


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
    assert [
        "paused at b.0.1 (#1 before b (pipeline big))",
        "(taskdaemon) inputs b",
        json.dumps({"x": "y" * 2_000_000}),
        "(taskdaemon) skip",
        "run ended success",
    ] == lines[1:]


@pytest.mark.slow
def test_dump_at_an_attached_prompt_writes_a_relative_path_where_the_prompt_is(
    home: Path, pipeline_file: Path
) -> None:
    """``dump here.tar.gz`` at a ``debug attach`` prompt started in another directory than the
    run's process writes the archive in the prompt's directory (it was written in the run
    process's), as ``taskdaemon dump -o`` does."""
    (home / "run").mkdir()
    (home / "prompt").mkdir()
    process = subprocess.Popen(
        [TASKDAEMON, "run", str(pipeline_file), "--break", "b"],
        cwd=home / "run",
        env=environment(home),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        attached = subprocess.run(
            [TASKDAEMON, "debug", "attach", _paused_run_id(process)],
            cwd=home / "prompt",
            env=environment(home),
            input="dump here.tar.gz\n",
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        process.communicate(timeout=60)
    finally:
        process.kill()
    assert (f"dump written to {home / 'prompt' / 'here.tar.gz'}", ["here.tar.gz"]) == (
        attached.stdout.splitlines()[-1],
        os.listdir(home / "prompt"),
    )


@pytest.mark.slow
def test_an_attacher_killed_at_the_prompt_does_not_hold_the_run_paused(
    home: Path, served: subprocess.Popen[str]
) -> None:
    """A ``debug attach`` prompt killed (it never detaches) while another is attached: when the
    other leaves, the run is resumed as if it had been the only one, and runs to its end."""
    run_id = _paused_run_id(served)
    killed = subprocess.Popen(
        [TASKDAEMON, "debug", "attach", run_id],
        env=environment(home),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert killed.stdout is not None
    next(line for line in killed.stdout if line.startswith("paused at b.0.1"))  # attached
    killed.kill()
    killed.communicate()
    debug(home, "attach", run_id, stdin="where\n")
    served.communicate(timeout=60)
    assert 1 == served.returncode  # c fails: the run went on to its end


@pytest.mark.parametrize(
    ("resumed", "expected"),
    [(0, "nothing was paused\n"), (1, "resumed 1 execution\n"), (3, "resumed 3 executions\n")],
)
def test_debug_continue_says_what_it_resumed(
    resumed: int,
    expected: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``debug continue RUN`` says how many executions it resumed, or that nothing was paused,
    as ``step`` does, rather than a bare count."""
    monkeypatch.setattr(debug_module, "caller", lambda run_id: lambda request: {"resumed": resumed})
    code = main(["debug", "continue", "abcd"])
    assert (0, expected) == (code, capsys.readouterr().out)


APPROVED = """\
    name: gated
    stages:
      - name: a
        command: "true"
        triggers: [{manual: {approval_required: false}}]
      - name: release
        command: "true"
        triggers: [{on_completion: {stage: a}}, {manual: {approval_required: true}}]
        trigger_mode: all
"""


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
@pytest.mark.parametrize("commands", ["where\nquit\n", ""])
def test_an_attached_prompt_says_the_run_ended_elsewhere(
    home: Path, tmp_path: Path, commands: str
) -> None:
    """``debug attach`` joins a run waiting for an approval; the approval comes from another
    terminal and the run ends. ``where`` then says the run ended (it asked whether its
    ``taskdaemon run`` was still running, with the same home), ``quit`` leaves quietly (it
    printed that error again), and so does the input's end (it exited 3 with it)."""
    (tmp_path / "gated.yaml").write_text(textwrap.dedent(APPROVED))
    run = subprocess.Popen(
        [TASKDAEMON, "run", str(tmp_path / "gated.yaml")],
        cwd=ROOT,
        env=environment(home),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    attach = None
    try:
        assert run.stderr is not None
        line = next(line for line in run.stderr if "waiting for approval" in line)
        run_id = line.split("taskdaemon approve ", 1)[1].split()[0]
        attach = attached(home, run_id)
        assert attach.stdout is not None
        joined = attach.stdout.readline()  # "debugging run ...": joined
        assert "nothing paused" in attach.stdout.readline()
        subprocess.run(
            [TASKDAEMON, "approve", run_id, "release"],
            env=environment(home),
            cwd=ROOT,
            check=True,
            capture_output=True,
            timeout=60,
        )
        run.communicate(timeout=60)  # the run ended, its process gone
        out, err = attach.communicate(commands, timeout=60)
    finally:
        for process in (run, attach):
            if process is not None and process.poll() is None:
                process.kill()
                process.communicate()
    ended = (
        f"error: run {run_id} has ended: its process serves it no more "
        f"('taskdaemon runs show {run_id}' has its record)"
    )
    said = [ended] if commands else []
    expected = (0, True, said, "")
    actual = (
        attach.returncode,
        joined.startswith(f"debugging run {run_id}"),
        [line for line in out.splitlines() if line.startswith("error:")],
        err,
    )
    assert expected == actual, out
