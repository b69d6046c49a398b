"""The reads of a command's output with a deadline (``cli_support.line_with``), over a real
subprocess."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from cli_support import Served, line_with


@pytest.fixture
def one_line_then_silent() -> Iterator[subprocess.Popen[str]]:
    """A process that prints ``first`` and then hangs, printing nothing more: killed after."""
    code = "import time; print('first', flush=True); time.sleep(600)"
    process = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True
    )
    yield process
    process.kill()
    process.communicate(timeout=30)


def test_a_line_that_never_comes_fails_at_the_deadline_with_what_was_read(
    one_line_then_silent: subprocess.Popen[str],
) -> None:
    """A command that hangs after one line fails the wait for a second line at its deadline,
    quoting the line read: a loop over the pipe waited for pytest's limit and said nothing."""
    began = time.monotonic()
    with pytest.raises(AssertionError) as failed:
        line_with(one_line_then_silent.stdout, "second", timeout=1)
    waited = time.monotonic() - began
    expected = "'second' never came (not within 1 s); the output read:\nfirst\n"
    assert (expected, True) == (str(failed.value), waited < 30)


def test_output_that_ends_first_fails_at_once_with_what_was_read() -> None:
    """Output that ends before the line waited for fails the wait, quoting what it held."""
    code = "print('first'); print('last')"
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    with pytest.raises(AssertionError) as failed:
        line_with(process.stdout, "second")
    process.communicate(timeout=30)
    expected = "'second' never came (the output ended); the output read:\nfirst\nlast\n"
    assert expected == str(failed.value)


@pytest.mark.parametrize("needle", ["irs", re.compile(r"^f\w+t$")])
def test_the_line_waited_for_is_returned_and_every_line_read_kept(
    one_line_then_silent: subprocess.Popen[str], needle: str | re.Pattern[str]
) -> None:
    """The line holding the needle (text it holds, or a pattern it matches) is returned and,
    with the lines before it, added to ``seen``."""
    seen = ["earlier\n"]
    found = line_with(one_line_then_silent.stdout, needle, seen=seen)
    assert ("first\n", ["earlier\n", "first\n"]) == (found, seen)


def test_closing_a_served_command_that_exited_closes_its_pipes() -> None:
    """A served command that exited before its test read its end has its pipes closed and is
    reaped by ``Served.close``: left open, the collector closed them with a ResourceWarning
    in a later test."""
    code = "import sys; print('out'); print('err', file=sys.stderr)"
    process = subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    served = Served(process)
    served.wait_for_line("err")
    process.wait(timeout=30)
    served.close()
    assert (0, True, True) == (process.returncode, process.stdout.closed, process.stderr.closed)
