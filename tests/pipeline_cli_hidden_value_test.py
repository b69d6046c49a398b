"""A secret's value typed unseen at the debug prompt (``cli/hidden_value.py``): ``set --secret
x`` with no value asks ``value for x (hidden):`` on the real terminal (a pty) with its echo
off; the value never shows there, nor reaches readline's history (recalled by Up, or saved),
while the stage runs with it. With no terminal (a pipe) it is refused in one line."""

from __future__ import annotations

import contextlib
import fcntl
import os
import pty
import select
import subprocess
import termios
import textwrap
from pathlib import Path

import pytest

from cli_support import TASKDAEMON, environment, taskdaemon

PROMPT = "(taskdaemon) "
#: No known shape: only ``--secret`` masks it.
TYPED = "pw-Zq8vR2mN4pL6tY1wX3cB"

PIPELINE = """\
    name: unseen
    stages:
      - name: a
        command: "echo '{{\\"x\\": \\"plain-value-1\\"}}'"
        triggers: [{{manual: {{approval_required: false}}}}]
      - name: b
        command: "printf %s \\"$TASKDAEMON_INPUT_X\\" > {ran_with}; echo got $TASKDAEMON_INPUT_X"
        triggers: [{{on_completion: {{stage: a}}}}]
        inputs: {{x: stages.a.outputs.x}}
"""


def _control_terminal() -> None:
    """In the child: its standard input, the pseudo-terminal, is its controlling terminal."""
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class Terminal:
    """``taskdaemon debug FILE --break b -q`` on a pseudo-terminal of its own session (Ctrl-C
    is a SIGINT to it): ``type`` keys, ``expect`` text among what it shows after them."""

    def __init__(self, home: Path, pipeline: Path) -> None:
        self.controller, terminal = pty.openpty()
        self.process = subprocess.Popen(
            [TASKDAEMON, "debug", str(pipeline), "--break", "b", "-q"],
            cwd=home,
            env=environment(home, TERM="dumb"),
            stdin=terminal,
            stdout=terminal,
            stderr=subprocess.DEVNULL,
            close_fds=True,
            start_new_session=True,
            preexec_fn=_control_terminal,  # noqa: PLW1509 - the child is single-threaded
        )
        os.close(terminal)
        self.shown = ""
        self._mark = 0

    def expect(self, text: str) -> str:
        """Wait until ``text`` shows after the last keys typed; what showed since then."""
        while text not in self.shown[self._mark :]:
            ready, _, _ = select.select([self.controller], [], [], 30.0)
            chunk = b""
            if ready:
                # (the process ended: its side of the terminal closed)
                with contextlib.suppress(OSError):
                    chunk = os.read(self.controller, 4096)
            if not chunk:
                raise AssertionError(f"{text!r} never showed; the terminal showed:\n{self.shown}")
            self.shown += chunk.decode(errors="replace").replace("\r\n", "\n")
        return self.shown[self._mark :]

    def type(self, keys: str | bytes, after: str = PROMPT) -> None:
        """Type ``keys`` once ``after`` (the prompt) shows after the last keys typed."""
        self.expect(after)
        self._mark = len(self.shown)
        os.write(self.controller, keys if isinstance(keys, bytes) else keys.encode())

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        os.close(self.controller)


def _pipeline(home: Path, ran_with: Path) -> Path:
    path = home / "unseen.yaml"
    path.write_text(textwrap.dedent(PIPELINE.format(ran_with=ran_with)))
    return path


@pytest.mark.slow
def test_a_secret_typed_unseen_never_shows_and_the_stage_runs_with_it(
    home: Path, tmp_path: Path
) -> None:
    """``set --secret x``, then the value at ``value for x (hidden):``: nothing of it shows
    on the terminal, ``inputs`` says ``[REDACTED]``, the history file holds only the command,
    and ``b`` ran with the value. A Ctrl-C at that question sets nothing. Before:
    ``error: usage: set [--secret] [STAGE] INPUT JSON``."""
    ran_with = tmp_path / "ran_with"
    terminal = Terminal(home, _pipeline(home, ran_with))
    try:
        terminal.expect("paused at b.0.1")
        terminal.type("set --secret x\n")
        terminal.type("\x03", after="value for x (hidden): ")  # changed my mind
        assert "error: not set: interrupted" in terminal.expect(PROMPT)
        terminal.type("set --secret x\n")
        terminal.type(f"{TYPED}\n", after="value for x (hidden): ")
        assert 'b: input x = "[REDACTED]"' in terminal.expect(PROMPT)
        terminal.type("inputs\n")
        assert '{"x": "[REDACTED]"}' in terminal.expect(PROMPT)
        terminal.type("continue\n")
        terminal.type("\x04", after="run ended success")
        assert terminal.process.wait(timeout=30) == 0
    finally:
        terminal.close()
    assert TYPED not in terminal.shown, terminal.shown
    history = (home / "debug_history").read_text()
    assert (TYPED in history, "set --secret x" in history) == (False, True), history
    assert ran_with.read_text() == TYPED


@pytest.mark.slow
def test_a_secret_typed_on_the_line_is_recalled_masked(home: Path, tmp_path: Path) -> None:
    """``set --secret x "VALUE"`` typed whole (its value shows as typed): Up recalls the
    line masked, never the value, and the line recalled, run, is refused (``[REDACTED]`` is
    not JSON). Before: Up drew the line back with the value in clear (the history was masked
    only as the prompt saved it, at its end)."""
    terminal = Terminal(home, _pipeline(home, tmp_path / "ran_with"))
    try:
        terminal.expect("paused at b.0.1")
        terminal.type(f'set --secret x "{TYPED}"\n')
        terminal.type("\x1b[A", after='b: input x = "[REDACTED]"\n' + PROMPT)  # Up
        since = len(terminal.shown)
        terminal.expect("set --secret x [REDACTED]")
        terminal.type("\n", after="[REDACTED]")
        assert "error: not JSON: '[REDACTED]'" in terminal.expect(PROMPT)
        assert TYPED not in terminal.shown[since:], terminal.shown[since:]
        terminal.type("continue\n")
        terminal.type("\x04", after="run ended success")
        assert terminal.process.wait(timeout=30) == 0
    finally:
        terminal.close()


@pytest.mark.slow
def test_with_no_terminal_a_secret_without_its_value_is_refused(home: Path, tmp_path: Path) -> None:
    """On a pipe, ``set --secret x`` cannot ask for the value unseen: one line says so and
    how to give it; ``x`` keeps its value."""
    done = taskdaemon(
        home,
        "debug",
        str(_pipeline(home, tmp_path / "ran_with")),
        "--break",
        "b",
        stdin="set --secret x\ninputs\ncontinue\n",
    )
    assert done.returncode == 0, done.stderr
    assert (
        "(taskdaemon) set --secret x\nerror: no value given, and stdin is no terminal to type "
        "it unseen: give it on the line (set --secret [STAGE] INPUT JSON), which every output "
        'masks\n(taskdaemon) inputs\n{"x": "plain-value-1"}\n'
    ) in done.stdout


@pytest.mark.slow
@pytest.mark.parametrize(
    ("keys", "refused"),
    [
        (
            f"{TYPED}\nsecond-{TYPED}".encode(),
            "the value holds a line break; what followed its first line was dropped, unseen",
        ),
        (f"{TYPED * 200}\n".encode(), "the line reached the terminal's 4095 characters"),
        (f"{TYPED}\xff\n".encode("latin-1"), "the value typed is not UTF-8 text"),
    ],
    ids=["paste-of-two-lines", "past-the-line-length", "not-utf-8"],
)
def test_a_value_not_as_typed_is_refused_unseen(
    home: Path, tmp_path: Path, keys: bytes, refused: str
) -> None:
    """A paste of two lines, a line past what the terminal keeps, a byte that is no UTF-8:
    ``x`` keeps its value, and nothing typed shows or reaches the history. Before: the second
    line ran as a command, shown (``unknown command 'second-…'``) and saved in the history;
    the first 4095 characters, or U+FFFD for the byte, were set, unseen."""
    ran_with = tmp_path / "ran_with"
    terminal = Terminal(home, _pipeline(home, ran_with))
    try:
        terminal.expect("paused at b.0.1")
        terminal.type("set --secret x\n")
        terminal.type(keys, after="value for x (hidden): ")
        assert f"error: not set: {refused}" in terminal.expect(PROMPT)
        terminal.type("continue\n")
        terminal.type("\x04", after="run ended success")
        assert terminal.process.wait(timeout=30) == 0
    finally:
        terminal.close()
    assert TYPED not in terminal.shown, terminal.shown
    assert TYPED not in (home / "debug_history").read_text()
    assert "plain-value-1" == ran_with.read_text()
