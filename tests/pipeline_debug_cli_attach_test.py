"""``taskdaemon debug attach`` and ``debug continue|step|skip`` as real processes: a prompt
attached to a run that another process serves over its control socket, and the one-shot
commands that resume it."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cli_support import ROOT, TASKDAEMON, ended_at_exit, line_with, read_line
from pipeline_debug_cli_support import (
    APPROVED,
    attached,
    debug,
    environment,
    typed,
    write_pipeline,
)
from taskdaemon.pipeline.cli import debug as debug_module
from taskdaemon.pipeline.cli import main


@pytest.fixture
def pipeline_file(home: Path) -> Path:
    """The test pipeline: a -> b (reads a's x) -> c (fails)."""
    return write_pipeline(home)


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
    line = line_with(process.stderr, "taskdaemon debug attach ")  # only a pause's line says it
    return line.rsplit("taskdaemon debug attach ", 1)[1].split(";")[0]


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_ctrl_c_at_an_attached_prompt_says_it_left_and_what_it_resumed(
    home: Path, served: subprocess.Popen[str], signum: signal.Signals
) -> None:
    """Ctrl-C (SIGINT) at a ``debug attach`` prompt over b's pause leaves the run as leaving
    does (the pause resumed, the run going on to its end) and says so in one line, exit 130:
    the prompt vanished without a word, and its user could not tell whether the run was
    still paused, cancelled or running. SIGTERM and SIGHUP leave so too (143, 129): their
    default action left the run paused at the prompt's breakpoints."""
    run_id = _paused_run_id(served)
    prompt = attached(home, run_id)
    typed(prompt, "where", "  b  paused")  # at the prompt again
    prompt.send_signal(signum)
    _out, err = prompt.communicate(timeout=60)
    _out, run_err = served.communicate(timeout=60)
    assert 128 + signum == prompt.returncode
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
def test_quit_at_an_attached_prompt_cancels_the_run_and_exits_1(
    home: Path, served: subprocess.Popen[str]
) -> None:
    """``quit`` at a ``debug attach`` prompt cancels the run, as at ``debug FILE``'s, and
    exits 1 as a cancelled run does everywhere: it exited 0, telling a script all went well."""
    run_id = _paused_run_id(served)
    attached = debug(home, "attach", run_id, stdin="quit\n")
    _out, err = served.communicate(timeout=60)
    assert (1, "run cancelled", 1) == (
        attached.returncode,
        attached.stdout.splitlines()[-1],
        served.returncode,
    ), attached.stderr
    assert "resumed: cancel by cli debug attach" in err


@pytest.mark.slow
def test_the_end_of_input_at_an_attached_prompt_lets_the_run_go_on_and_says_so(
    home: Path, served: subprocess.Popen[str]
) -> None:
    """The input of a ``debug attach`` prompt ending (a script's commands ran out) leaves the
    run as Ctrl-C does, never as ``quit`` does: b's pause resumed, the run going on to its
    own end (c fails, exit 1, not cancelled), the prompt exiting 0 with one line saying so
    (it left in silence, and a script could not tell resumed from cancelled)."""
    run_id = _paused_run_id(served)
    attached = debug(home, "attach", run_id, stdin="where\n")
    _out, err = served.communicate(timeout=60)
    assert (0, f"left run {run_id}, resuming 1 paused execution", "") == (
        attached.returncode,
        attached.stdout.splitlines()[-1],
        attached.stderr,
    )
    assert (1, True, False) == (
        served.returncode,
        "resumed: continue by cli debug attach" in err,
        "cancel" in err,
    ), err


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
        f"left run {run_id}, resuming nothing",
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
        attached.stdout.splitlines()[-2],  # the last says the prompt left the run
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
    with ended_at_exit(killed):
        line_with(killed.stdout, "paused at b.0.1")  # attached
        killed.kill()
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
        line = line_with(run.stderr, "waiting for approval")
        run_id = line.split("taskdaemon approve ", 1)[1].split()[0]
        attach = attached(home, run_id)
        assert attach.stdout is not None
        joined = read_line(attach.stdout)  # "debugging run ...": joined
        assert "nothing paused" in read_line(attach.stdout)
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
