"""The debugger prompt as a user meets it (``cli/_debug_prompt.py``, ``cli/_prompt.py``):
``taskdaemon debug FILE`` in a pseudo-terminal, keys typed at its readline prompt, and
``debug FILE`` and ``debug attach`` with commands on a pipe."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import select
import subprocess
import termios
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from cli_support import TASKDAEMON, environment, in_background, line_with, taskdaemon
from taskdaemon.pipeline.tracking.store import SpanStore
from terminal_support import on_a_terminal_of

PROMPT = "(taskdaemon) "

PIPELINE = """\
    name: dbgtty
    stages:
      - name: a
        command: "echo '{\\"x\\": 1}'"
        triggers: [{manual: {approval_required: false}}]
      - name: b
        command: "echo '{\\"y\\": 2}'"
        triggers: [{on_completion: {stage: a}}]
        inputs: {x: stages.a.outputs.x}
"""


def _control_terminal() -> None:
    """In the child: make its standard input, the pseudo-terminal, its controlling terminal."""
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class Terminal:
    """``taskdaemon debug ARGS`` on a pseudo-terminal: ``type`` keys at the next prompt,
    ``expect`` text in what the terminal shows."""

    def __init__(self, home: Path, *args: str, progress: bool = False) -> None:
        """With ``progress``, the run's progress lines (stderr) show on the terminal too, an
        ``xterm`` (it erases a line); else ``-q`` on a ``dumb`` terminal."""
        self.controller, terminal = pty.openpty()
        self.process = subprocess.Popen(
            [TASKDAEMON, "debug", *args, *([] if progress else ["-q"])],
            cwd=home,
            env=environment(home, TERM="xterm" if progress else "dumb"),
            stdin=terminal,
            stdout=terminal,
            stderr=terminal if progress else subprocess.DEVNULL,
            close_fds=True,
            # Its own session, the terminal its controlling one: Ctrl-C typed there is a
            # SIGINT to it, as in a shell.
            start_new_session=True,
            preexec_fn=_control_terminal,  # noqa: PLW1509 - the child is single-threaded
        )
        os.close(terminal)
        self.shown = ""
        self._mark = 0  # where the text stood when keys were last typed

    def expect(self, text: str) -> str:
        """Wait until ``text`` shows after the last keys typed; what showed since then."""
        while text not in self.shown[self._mark :]:
            ready, _, _ = select.select([self.controller], [], [], 30.0)
            if not ready:
                raise AssertionError(f"{text!r} never showed; the terminal showed:\n{self.shown}")
            try:
                chunk = os.read(self.controller, 4096)
            except OSError:  # the process ended: its side of the terminal closed
                chunk = b""
            if not chunk:
                raise AssertionError(f"{text!r} never showed; the terminal showed:\n{self.shown}")
            self.shown += chunk.decode(errors="replace").replace("\r\n", "\n")
        return self.shown[self._mark :]

    def type(self, keys: str) -> None:
        """Type ``keys`` once the prompt that follows the last keys is up (readline owns the
        terminal then: keys typed before could be read otherwise)."""
        self.expect(PROMPT)
        self._mark = len(self.shown)
        os.write(self.controller, keys.encode())

    def continue_to_the_end(self) -> None:
        """``continue`` at the prompt, then Ctrl-D once the run succeeded, and the prompt,
        which stays, said how to leave it: exit 0."""
        self.type("continue\n")
        self.expect("run ended success\n'quit' or Ctrl-D leaves this prompt\n")
        self.type("\x04")
        assert 0 == self.process.wait(timeout=30)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        os.close(self.controller)


def screen(shown: str) -> list[str]:
    """The rows a terminal shows after ``shown`` (as ``Terminal.shown`` holds it): text
    overwrites, ``\\r`` returns to the row's start, ``\\b`` steps back, ``ESC [ K`` erases to
    the row's end; other escape sequences (readline's modes) draw nothing."""
    rows, column, at = [""], 0, 0
    while at < len(shown):
        sequence = re.match(r"\x1b(\[[0-9;?]*[@-~]|.)", shown[at:])
        if sequence:
            if sequence.group(1) == "[K":
                rows[-1] = rows[-1][:column]
            at += sequence.end()
            continue
        char, at = shown[at], at + 1
        if char == "\n":
            rows.append("")
            column = 0
        elif char == "\r":
            column = 0
        elif char == "\b":
            column = max(0, column - 1)
        elif char >= " ":
            row = rows[-1].ljust(column)
            rows[-1] = row[:column] + char + row[column + 1 :]
            column += 1
    return rows


ABOVE = """\
    name: above
    stages:
      - name: a
        command: "echo '{{}}'"
        triggers: [{{manual: {{approval_required: false}}}}]
      - name: slow
        command: "while [ ! -e {go} ]; do sleep 0.05; done; echo '{{}}'"
        triggers: [{{manual: {{approval_required: false}}}}]
"""


@pytest.mark.slow
def test_a_progress_line_shows_above_the_prompt_and_what_was_typed(home: Path) -> None:
    """A progress line written while a command is half typed (another stage ending as ``a``
    waits at its breakpoint) shows on a row of its own, and the prompt is drawn again below
    it with the text typed so far, which Enter then runs. It used to land after the typed
    text, on the prompt's row, leaving an empty row where the prompt was."""
    go = home / "go"
    (home / "above.yaml").write_text(textwrap.dedent(ABOVE).format(go=go))
    terminal = Terminal(home, "above.yaml", "--break", "a", progress=True)
    try:
        terminal.expect("paused at a.0.1")
        terminal.expect("slow")  # its running line, written before any key: only its end follows
        terminal.type("inputs a")
        terminal.expect("inputs a")  # readline echoed it: the prompt waits with it typed
        go.touch()  # slow ends: its progress line is written while the prompt waits
        terminal.expect(PROMPT + "inputs a")
        rows = screen(terminal.shown)
        (ended,) = [n for n, row in enumerate(rows) if re.search(r"slow +success in", row)]
        assert re.fullmatch(r" +\d+\.\d\ds  slow +success in .+", rows[ended])
        assert [PROMPT + "inputs a"] == rows[ended + 1 :]
        terminal.type("\n")
        assert "{}" in terminal.expect(PROMPT)  # the typed command ran, whole
        terminal.continue_to_the_end()
    finally:
        terminal.close()


AHEAD = """\
    name: ahead
    stages:
      - name: slow
        command: "while [ ! -e {go} ]; do sleep 0.05; done; echo '{{}}'"
        triggers: [{{manual: {{approval_required: false}}}}]
      - name: b
        command: "echo '{{}}'"
        triggers: [{{on_completion: {{stage: slow}}}}]
"""


@pytest.mark.slow
def test_a_command_typed_before_the_first_pause_waits_for_the_prompt(home: Path) -> None:
    """While the prompt waits for the first pause (``slow`` runs until told to end, ``b``
    then pauses), the terminal does not echo keys: ``where`` typed meanwhile shows at the
    prompt, and runs there. Echoed, it landed among the progress lines, before the pause."""
    go = home / "go"
    (home / "ahead.yaml").write_text(textwrap.dedent(AHEAD).format(go=go))
    terminal = Terminal(home, "ahead.yaml", "--break", "b", progress=True)
    try:
        terminal.expect("debugging run ")
        echoing = _echo_while_the_run_goes(terminal.controller)
        os.write(terminal.controller, b"where\n")
        go.touch()
        terminal.expect("paused at b.0.1")
        terminal.expect("  slow  success")  # where's answer: each stage's state
        shown = terminal.shown
        at_the_prompt = shown.index(PROMPT + "where") + len(PROMPT)
        assert (False, at_the_prompt) == (echoing, shown.index("where")), shown
    finally:
        terminal.close()


def _echo_while_the_run_goes(controller: int) -> bool:
    """Whether the terminal still echoes keys once the prompt's opening has shown, waiting
    up to 10 s for it to stop (the prompt turns echo off just after its opening)."""
    for _ in range(200):
        if not termios.tcgetattr(controller)[3] & termios.ECHO:
            return False
        select.select([], [], [], 0.05)
    return True


@pytest.fixture
def pipeline_file(home: Path) -> Path:
    path = home / "dbgtty.yaml"
    path.write_text(textwrap.dedent(PIPELINE))
    return path


@pytest.fixture
def at_b(home: Path, pipeline_file: Path) -> Iterator[Terminal]:
    """``debug FILE --break b`` on a terminal, paused at b."""
    terminal = Terminal(home, str(pipeline_file), "--break", "b")
    try:
        terminal.expect("paused at b.0.1")
        yield terminal
    finally:
        terminal.close()


@pytest.mark.slow
def test_ctrl_c_at_the_prompt_drops_the_line_and_keeps_the_run(at_b: Terminal) -> None:
    """Ctrl-C while a command is half typed drops it and prompts again, as pdb and gdb do,
    saying how to leave; the run stays paused and, continued, succeeds (exit 0). It used to
    cancel the run: the Ctrl-C that clears a line ended a run that had waited at a
    breakpoint."""
    at_b.type("inputs b\x03")
    assert "interrupted ('quit' cancels the run, Ctrl-D lets it go on)" in at_b.expect(PROMPT)
    at_b.type("where\n")
    assert "  b  paused" in at_b.expect("paused at b.0.1")
    at_b.continue_to_the_end()


FAN_OUT = """\
    name: fan
    stages:
      - name: a
        handler: "fanout:publish"
        emits: [item]
        triggers: [{manual: {approval_required: false}}]
      - name: c
        command: "echo {\\\\\\"got\\\\\\": $TASKDAEMON_INPUT_N}"
        parallel_instances: 3
        triggers: [{on_event: {type: item}}]
        inputs: {n: event.n}
"""
PUBLISHER = """\
def publish(ctx):
    for n in (1, 2, 3):
        ctx.publish("item", {"n": n})
    return {}
"""


@pytest.mark.slow
def test_stage_n_names_one_instance_of_a_fan_out(home: Path) -> None:
    """Paused at three instances of a fanned-out stage, each paused line shows the ``c#N``
    that names it, and ``inputs``, ``set`` and ``step`` act on the instance named (they could
    reach only the first paused one); a stage the run does not have, or an instance not
    paused, is refused in one line rather than waited for."""
    (home / "fanout.py").write_text(PUBLISHER)
    (home / "fan.yaml").write_text(textwrap.dedent(FAN_OUT))
    terminal = Terminal(home, "fan.yaml", "--break", "c")
    try:
        terminal.expect("paused at c.0.1")
        for _ in range(100):  # until all three paused: the first pause is reported at once
            terminal.type("where\n")
            shown = terminal.expect(PROMPT)
            if "paused at c.2.1 [c#2]" in shown:
                break
        assert "paused at c.0.1 [c#0] (#1 before c (pipeline fan))" in shown
        assert "  c  paused  (instances: 3 paused)" in shown  # counted: a fan-out may be 500
        terminal.type("inputs c#1\n")
        # To the next prompt, not to '{"n": ': a read of the terminal can end before the value.
        assert '{"n": 2}' in terminal.expect(PROMPT)
        terminal.type("set c#2 n 30\n")
        terminal.expect("c#2: input n = 30")
        terminal.type("continue nosuch\n")
        assert "error: run " in terminal.expect("has no stage 'nosuch' (stages: a, c)")
        terminal.type("continue c#7\n")
        terminal.expect("error: 'c#7' is not paused ('where' lists what is)")
        terminal.type("step c#2\n")
        after = terminal.expect(PROMPT)
        assert "c.2.1" not in after
        assert "paused at c.0.1 [c#0]" in after
        assert "paused at c.1.1 [c#1]" in after
        terminal.continue_to_the_end()
    finally:
        terminal.close()
    run_id = terminal.shown.split("debugging run ", 1)[1].split()[0]
    with SpanStore(home / "spans.db") as store:
        record = store.get_run(run_id)
    (c,) = [stage for stage in record.stages if stage.name == "c"]
    assert [{"got": 1}, {"got": 2}, {"got": 30}] == sorted(
        (json.loads(attempt.outputs or "null") for attempt in c.attempts), key=str
    )


@pytest.mark.slow
def test_an_attached_skip_that_ends_the_run_says_it_ended(home: Path, pipeline_file: Path) -> None:
    """``skip`` of the last stage at a ``debug attach`` prompt ends the run, and its
    ``taskdaemon run`` process with it, as the prompt waits for the next stop: the prompt says
    the run ended and stays a prompt (exit 0 at the input's end). The wait's connection, cut
    by the ending process, was reported as "closed the connection: Connection reset by
    peer", exit 1."""
    run = in_background(home, "run", str(pipeline_file), "--break", "b")
    try:
        assert run.stderr is not None
        line = line_with(run.stderr, "taskdaemon debug attach ")
        run_id = line.rsplit("taskdaemon debug attach ", 1)[1].split(";")[0]
        attach = taskdaemon(home, "debug", "attach", run_id, cwd=home, stdin="skip\n")
        assert 0 == run.wait(timeout=60)
    finally:
        if run.poll() is None:
            run.kill()
        run.communicate()
    ended = (
        f"run {run_id} has ended: its process serves it no more "
        f"('taskdaemon runs show {run_id}' has its record)"
    )
    assert (0, "") == (attach.returncode, attach.stderr)
    assert attach.stdout.splitlines()[-1] in (ended, "run ended success")


def test_a_failed_commands_error_is_one_line_at_the_prompt(home: Path) -> None:
    """A failed command's error ends with its stderr's last lines: the failure pause, ``logs``
    and the run's end each say it on one line (the stderr lines joined), as the progress and
    the summary do; it broke the prompt's lines in two. The run log records ``logs`` lists
    under them are shown whole (the pause's names the error, its stderr lines below it,
    indented under it: at the margin they read as lines of the prompt's own), the command's
    own lines with their stream, as ``taskdaemon logs`` shows them (they read as taskdaemon's
    records)."""
    (home / "fails.yaml").write_text(
        textwrap.dedent(
            """\
            name: fails
            stages:
              - name: x
                command: "echo one >&2; echo two >&2; exit 4"
                triggers: [{manual: {approval_required: false}}]
            """
        )
    )
    done = taskdaemon(
        home, "debug", "fails.yaml", "--break-on-failure", "-q", cwd=home, stdin="logs\ncontinue\n"
    )
    lines = done.stdout.splitlines()
    said = [line for line in lines if "exited with code 4" in line and "[INFO]" not in line]
    assert 1 == done.returncode, done.stdout + done.stderr
    assert 3 == len(said), done.stdout
    record = next(n for n, line in enumerate(lines) if "[INFO] stage x.0.1 paused: " in line)
    assert [" " * 9 + "one", " " * 9 + "two"] == lines[record + 1 : record + 3], done.stdout
    assert ["  [INFO] [stderr] one", "  [INFO] [stderr] two"] == lines[record - 2 : record]
    assert all(line.endswith("stderr (last lines): one two") for line in said), done.stdout
    for start in ("paused at x.0.1 (failure: ", "  error: command ", "run ended failure: "):
        assert any(line.startswith(start) for line in said), done.stdout


def test_help_lists_the_short_forms_pdb_users_type(home: Path, pipeline_file: Path) -> None:
    """``help`` names the short forms (``c``, ``s``, ``b``...), which worked unsaid, and
    ``w`` and ``exit`` are among them, as in pdb: ``w`` shows where the run stands, ``exit``
    leaves as ``quit`` does (the run cancelled, exit 1)."""
    done = taskdaemon(
        home, "debug", str(pipeline_file), "--break", "b", "-q", cwd=home, stdin="help\nw\nexit\n"
    )
    lines = done.stdout.splitlines()
    assert 1 == done.returncode, done.stdout + done.stderr
    assert "short forms: c=continue s=step b=break w=where q=quit exit=quit h=help ?=help" in lines
    assert "  b  paused" in lines
    assert "run cancelled" in lines


@pytest.mark.slow
def test_continue_after_a_failure_ended_the_run_says_it_ended(home: Path) -> None:
    """While b waits at its breakpoint, c fails and the run ends (b cancelled). ``continue``
    then says how the run ended, at once: it said "nothing was paused: waiting for the next
    pause or the run's end" first, for a run that had ended."""
    (home / "par.yaml").write_text(
        textwrap.dedent(
            """\
            name: par
            error_strategy: fail
            stages:
              - name: a
                command: "echo '{}'"
                triggers: [{manual: {approval_required: false}}]
              - name: b
                command: "echo '{}'"
                triggers: [{on_completion: {stage: a}}]
              - name: c
                command: "exit 5"
                triggers: [{on_completion: {stage: a}}]
            """
        )
    )
    debugged = in_background(home, "debug", str(home / "par.yaml"), "--break", "b")
    try:
        assert debugged.stderr is not None
        line_with(debugged.stderr, "run par ")  # it ended
        out, _err = debugged.communicate("continue\n", timeout=60)
    finally:
        if debugged.poll() is None:
            debugged.kill()
            debugged.communicate()
    said = out.split("(taskdaemon) continue\n", 1)[1].splitlines()[0]  # the summary follows
    assert 1 == debugged.returncode
    assert "run ended failure: stage 'c' failure: command 'exit 5' exited with code 5" == said


@pytest.mark.slow
@pytest.mark.parametrize("columns", [60, 80])
def test_the_opening_and_help_fit_a_narrow_terminal(
    home: Path, pipeline_file: Path, columns: int
) -> None:
    """On a terminal 80 columns wide the prompt's opening (92 columns with its run id) wraps
    between words, and ``help``'s last line (132 columns) is two: the terminal broke them
    mid-word. On 60, each of ``help``'s lines wraps between words too (``continue``'s is 75
    columns). The run id stays whole."""
    code, shown = on_a_terminal_of(
        columns,
        home,
        "debug",
        str(pipeline_file),
        "--break",
        "b",
        "-q",
        streams=("stdout",),
        keys=b"help\nquit\n",
    )
    opening = next(i for i, line in enumerate(shown) if line.startswith("debugging run "))
    run_id = shown[opening].split()[2]
    assert (1, 32) == (code, len(run_id)), shown
    assert [] == [line for line in shown[opening:] if len(line) > columns], shown
    assert "[STAGE] may be left out when one stage is paused" in shown
