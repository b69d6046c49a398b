"""``read_unseen`` (``cli/hidden_value.py``) in this process, on a real pseudo-terminal put on
file descriptor 0: the line typed once the question shows is the value, nothing of it is echoed,
and each way of setting nothing is one line. The debugger's own tests
(``pipeline_cli_hidden_value_test.py``) run it in a subprocess, which mutation testing credits
nothing; these read the same function here."""

from __future__ import annotations

import contextlib
import os
import pty
import select
import signal
import termios
from collections.abc import Iterator

import pytest

from taskdaemon.pipeline.cli.hidden_value import read_unseen
from taskdaemon.pipeline.cli.sigterm import Terminated
from taskdaemon.pipeline.errors import PipelineError

QUESTION = "value for x (hidden): "


class Screen:
    """The prompt's output: what is written, and the keys typed on the terminal the moment the
    question is flushed (as a person types once it shows)."""

    def __init__(self, controller: int, keys: bytes) -> None:
        self.controller, self.keys = controller, keys
        self.written = ""

    def write(self, text: str) -> int:
        self.written += text
        return len(text)

    def flush(self) -> None:
        if self.written.endswith(QUESTION) and self.keys:
            os.write(self.controller, self.keys)
            self.keys = b""


#: Seconds a read may wait before the test fails: keys typed are read at once, so only a read
#: that waits for keys never typed meets it.
READ_BOUND = 10.0


def _never_came(signum: int, frame: object) -> None:
    raise AssertionError(f"the read still waited after {READ_BOUND:g}s")


@pytest.fixture
def terminal() -> Iterator[int]:
    """A pseudo-terminal on file descriptor 0 (this process's own put back after); its
    controller's end. Ctrl-C raises KeyboardInterrupt, as at the prompt (a runner may have
    had SIGINT ignored), and a read that waits for keys never typed fails the test."""
    controller, side = pty.openpty()
    saved = os.dup(0)
    os.dup2(side, 0)
    os.close(side)
    interrupt = signal.signal(signal.SIGINT, signal.default_int_handler)
    alarm = signal.signal(signal.SIGALRM, _never_came)
    signal.setitimer(signal.ITIMER_REAL, READ_BOUND)
    try:
        yield controller
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, alarm)
        signal.signal(signal.SIGINT, interrupt)
        os.dup2(saved, 0)
        os.close(saved)
        with contextlib.suppress(OSError):
            os.close(controller)


def _echoed(controller: int) -> bytes:
    """What the terminal has shown so far (its echo), without waiting."""
    shown = b""
    while select.select([controller], [], [], 0)[0]:
        try:
            chunk = os.read(controller, 4096)
        except OSError:
            break
        if not chunk:
            break
        shown += chunk
    return shown


def test_the_line_typed_is_the_value_and_never_shows(terminal: int) -> None:
    """Typed after the question: the value is the line as typed, spaces and all, less its
    line end; the terminal echoed nothing, the question and a line end were written, and the
    terminal's settings are those of before."""
    before = termios.tcgetattr(0)
    screen = Screen(terminal, b"  pw-Zq8vR2 mN4\n")
    assert read_unseen(QUESTION, screen, interactive=True) == "  pw-Zq8vR2 mN4"
    assert screen.written == QUESTION + "\n"
    assert _echoed(terminal) == b""
    assert termios.tcgetattr(0) == before


def test_the_terminal_s_line_editing_applies_while_it_is_typed(terminal: int) -> None:
    """Line mode: a Backspace typed removes the character before it from the value, and the
    read ends at the line end."""
    attrs = termios.tcgetattr(0)
    attrs[3] &= ~termios.ICANON
    termios.tcsetattr(0, termios.TCSANOW, attrs)  # the prompt's key-at-a-time mode
    screen = Screen(terminal, b"secreX\x7ft\n")
    assert read_unseen(QUESTION, screen, interactive=True) == "secret"


def test_bytes_that_are_not_utf8_set_nothing(terminal: int) -> None:
    screen = Screen(terminal, b"ab\xffc\n")
    with pytest.raises(PipelineError, match=r"^not set: the value typed is not UTF-8 text: "):
        read_unseen(QUESTION, screen, interactive=True)


@pytest.mark.parametrize("keys", [b"\n", b"\x04"], ids=["empty line", "Ctrl-D"])
def test_nothing_typed_sets_nothing(terminal: int, keys: bytes) -> None:
    screen = Screen(terminal, keys)
    with pytest.raises(PipelineError, match=r"^not set: no value typed$"):
        read_unseen(QUESTION, screen, interactive=True)
    assert screen.written == QUESTION + "\n"


def test_a_ctrl_c_while_it_waits_sets_nothing(terminal: int) -> None:
    """A SIGINT that lands during the read (``waiting`` is where the prompt lets it reach the
    read): one line, the line end written, and the terminal's settings put back."""
    before = termios.tcgetattr(0)

    @contextlib.contextmanager
    def ctrl_c() -> Iterator[None]:
        signal.raise_signal(signal.SIGINT)
        yield

    screen = Screen(terminal, b"")
    try:
        with pytest.raises(PipelineError, match=r"^not set: interrupted$") as caught:
            read_unseen(QUESTION, screen, interactive=True, waiting=ctrl_c)
    except KeyboardInterrupt:  # it would stop the debugger, not the question
        pytest.fail("the Ctrl-C went on up")
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__
    assert screen.written == QUESTION + "\n"
    assert termios.tcgetattr(0) == before


def test_a_sigterm_while_it_waits_stops_the_command(terminal: int) -> None:
    """SIGTERM and SIGHUP arrive as subclasses of KeyboardInterrupt: they go on up, as
    anywhere else, and are not read as a Ctrl-C."""

    @contextlib.contextmanager
    def terminated() -> Iterator[None]:
        raise Terminated
        yield

    with pytest.raises(Terminated):
        read_unseen(QUESTION, Screen(terminal, b""), interactive=True, waiting=terminated)


def test_a_read_that_fails_sets_nothing(terminal: int) -> None:
    """The read of the terminal fails (here its file descriptor is gone as the read starts;
    at a shell, a terminal that hung up reads EIO): one line, and the line end still written."""

    @contextlib.contextmanager
    def gone() -> Iterator[None]:
        os.close(0)
        yield

    screen = Screen(terminal, b"")
    with pytest.raises(PipelineError, match=r"^not set: the terminal went away$") as caught:
        read_unseen(QUESTION, screen, interactive=True, waiting=gone)
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__
    assert screen.written == QUESTION + "\n"


def test_a_screen_that_fails_at_the_line_end_still_gives_the_value(terminal: int) -> None:
    """The line end after the value is written to an output that may be gone by then: the
    value typed is kept all the same."""

    class Closing(Screen):
        def write(self, text: str) -> int:
            if text == "\n":
                raise BrokenPipeError
            return super().write(text)

    assert read_unseen(QUESTION, Closing(terminal, b"v\n"), interactive=True) == "v"


def test_without_a_terminal_it_is_refused_and_asks_nothing() -> None:
    """stdin no terminal: refused in one line that says how to give the value instead."""
    screen = Screen(-1, b"")
    with pytest.raises(PipelineError) as caught:
        read_unseen(QUESTION, screen, interactive=False)
    assert str(caught.value) == (
        "no value given, and stdin is no terminal to type it unseen: give it on the line "
        "(set --secret [STAGE] INPUT JSON), which every output masks"
    )
    assert screen.written == ""


def test_a_terminal_whose_echo_cannot_be_turned_off_is_refused() -> None:
    """Said interactive, but file descriptor 0 is no terminal this process may change (here a
    pipe; at a shell, the terminal of a process in its background): one line, nothing asked."""
    read_end, write_end = os.pipe()
    saved = os.dup(0)
    os.dup2(read_end, 0)
    try:
        screen = Screen(-1, b"")
        with pytest.raises(PipelineError) as caught:
            read_unseen(QUESTION, screen, interactive=True)
    finally:
        os.dup2(saved, 0)
        for fd in (saved, read_end, write_end):
            os.close(fd)
    assert str(caught.value) == (
        "no value given, and the terminal's echo cannot be turned off from the background: "
        "give it on the line (set --secret [STAGE] INPUT JSON), which every output masks"
    )
    assert screen.written == ""
