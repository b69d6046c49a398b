"""A signal that ``cli/sigterm.py`` turns into an exception never raises inside the import
machinery, where it would leave a module's lock held for ever (a hung-up ``debug`` waited
for a telemetry load blocked on that lock): it is sent again and raises once out. The end to
end case (a terminal hung up as ``debug`` shows its prompt) is ``pipeline_cli_hangup_test.py``'s;
it hung there about once in ten runs under load, a race no test can aim at. Here the signal
comes, for real, while a frame of the import machinery's file runs."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator

import pytest

from taskdaemon.pipeline.cli.sigterm import Terminated, sigterm_raises

#: Sends the signal to this thread and checks for it at once, in a frame of FILE.
_SEND = "signal.pthread_kill(threading.get_ident(), signum)\nsent.append(signum)"


@pytest.fixture(autouse=True)
def hangup_handler_put_back() -> Iterator[None]:
    """A stop leaves SIGHUP only detaching the terminal, for the rest of the process (a late
    hang-up must not end a command that is stopping): put back for the next test."""
    previous = signal.getsignal(signal.SIGHUP)
    yield
    signal.signal(signal.SIGHUP, previous)


def _send_in_a_frame_of(file: str, signum: int, sent: list[int]) -> None:
    code = compile(_SEND, file, "exec")
    exec(code, {"signal": signal, "threading": threading, "signum": signum, "sent": sent})


@pytest.mark.parametrize(
    ("signum", "raised"), [(signal.SIGTERM, Terminated), (signal.SIGINT, KeyboardInterrupt)]
)
def test_a_signal_inside_the_import_machinery_raises_once_out_of_it(
    signum: int, raised: type[BaseException]
) -> None:
    sent: list[int] = []
    with sigterm_raises():
        _send_in_a_frame_of("<frozen importlib._bootstrap>", signum, sent)
        assert [signum] == sent  # the frame ran to its end: nothing raised inside it
        with pytest.raises(raised):
            time.sleep(10)  # the signal comes again a moment later, and raises here


@pytest.mark.parametrize(
    ("signum", "raised"), [(signal.SIGTERM, Terminated), (signal.SIGINT, KeyboardInterrupt)]
)
def test_a_signal_elsewhere_raises_where_it_comes(signum: int, raised: type[BaseException]) -> None:
    sent: list[int] = []
    with sigterm_raises(), pytest.raises(raised):
        _send_in_a_frame_of("stage.py", signum, sent)
    assert [] == sent
