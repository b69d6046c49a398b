"""``foreign_text``'s edges: which texts are written in place and which on a thread (chains,
groups, notes, containers of values up to its budget), the 1000-character bounds of what a
log line quotes, and the lines that say a log message's text did not come."""

from __future__ import annotations

import json
import logging
import threading
import traceback
import urllib.error
from collections.abc import Callable, Iterator
from email.message import Message
from typing import Any

import pytest

from taskdaemon.pipeline import foreign_text
from taskdaemon.pipeline.foreign_text import handler_error_text, settle_message, traceback_within

HERE = __name__


class OwnError(Exception):
    def __str__(self) -> str:
        return f"own: {self.args[0]}"


class Arg:
    def __repr__(self) -> str:
        return "an argument's repr"


class Broken:
    def __str__(self) -> str:
        raise RuntimeError("no text " + "e" * 2000)


class Hangs:
    """A value whose text comes once ``release`` is set (the test sets it at its end)."""

    release = threading.Event()

    def __str__(self) -> str:
        self.release.wait()
        return "late"

    __repr__ = __str__


class AlsoHangs(Hangs):
    pass


@pytest.fixture
def threads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """One entry each time a text is taken on a thread (``text_within``), the real one after."""
    calls: list[str] = []
    real = foreign_text.text_within

    def counted(write: Callable[[], str], *args: float) -> str | None:
        calls.append("thread")
        return real(write, *args)

    monkeypatch.setattr(foreign_text, "text_within", counted)
    return calls


@pytest.fixture
def released() -> Iterator[None]:
    """``Hangs``'s texts wait until the test ends."""
    Hangs.release = threading.Event()
    try:
        yield
    finally:
        Hangs.release.set()


def _record(msg: object, *args: object) -> logging.LogRecord:
    return logging.LogRecord("handler", logging.INFO, __file__, 1, msg, args, None)


def _raised(make: Callable[[], None]) -> BaseException:
    try:
        make()
    except BaseException as exc:
        return exc
    raise AssertionError("nothing raised")


def test_a_standard_module_s_exception_takes_no_thread(threads: list[str]) -> None:
    """An exception whose ``__str__`` is a standard package's submodule's (``urllib.error``)
    is Python's, as one of ``BaseException``'s (``json.decoder``'s error) is."""
    error = _raised(lambda: json.loads("{"))
    assert handler_error_text(error).startswith("Expecting property name")
    http = urllib.error.HTTPError("http://x", 404, "Not Found", Message(), None)
    assert handler_error_text(http) == "HTTP Error 404: Not Found"
    assert threads == []


def test_python_s_class_with_an_argument_of_the_handler_s_takes_a_thread(
    threads: list[str],
) -> None:
    assert handler_error_text(ValueError(Arg())) == "an argument's repr"
    assert threads == ["thread"]


def _from_own() -> None:
    try:
        raise OwnError("cause")
    except OwnError as own:
        raise ValueError("outer") from own


def _context_own() -> None:
    try:
        raise OwnError("context")
    except OwnError:
        raise ValueError("outer")  # noqa: B904 - its context is the point


def _suppressed_own() -> None:
    try:
        raise OwnError("context")
    except OwnError:
        raise ValueError("outer") from None


def _grouped() -> None:
    raise ExceptionGroup("several", [KeyError("k")])


def _noted() -> None:
    error = ValueError("outer")
    error.add_note("a note")
    raise error


@pytest.mark.parametrize(
    ("make", "thread", "shown"),
    [
        (_from_own, True, "own: cause"),
        (_context_own, True, "own: context"),
        (_suppressed_own, False, "ValueError: outer"),
        (_noted, True, "a note"),
        (_grouped, True, "KeyError: 'k'"),
    ],
    ids=["cause", "context", "context suppressed", "note", "group"],
)
def test_a_traceback_is_taken_on_a_thread_when_any_text_of_its_chain_may_be_the_handler_s(
    threads: list[str], make: Callable[[], None], thread: bool, shown: str
) -> None:
    """The cause, the context (unless suppressed: it is not printed), a note, a group's
    members: each is a text the traceback writes. Taken in time, the traceback is whole."""
    error = _raised(make)
    written = traceback_within(error)
    assert (threads == ["thread"], shown in written) == (thread, True), written
    assert written == "".join(traceback.format_exception(error))


def test_a_cycle_of_contexts_is_walked_once(threads: list[str]) -> None:
    """Exceptions that are each other's context (a handler can set ``__context__``) end the
    walk, and are formatted in place, as Python formats them."""
    first, second = ValueError("first"), KeyError("second")
    first.__context__, second.__context__ = second, first
    written = traceback_within(first)
    assert ([], "".join(traceback.format_exception(first))) == (threads, written)


@pytest.mark.slow
def test_a_text_slower_than_the_default_deadline_comes_within_the_one_given() -> None:
    """``traceback_within``'s ``seconds`` is its deadline, not the default second."""
    slow = threading.Event()
    timer = threading.Timer(1.5, slow.set)

    class SlowError(Exception):
        def __str__(self) -> str:
            slow.wait()
            return "came late"

    timer.start()
    try:
        written = traceback_within(SlowError(), 60.0)
    finally:
        timer.cancel()
        slow.set()
    assert written.endswith(f"{HERE}.{SlowError.__qualname__}: came late\n"), written


def test_the_thread_left_to_a_text_that_never_comes_keeps_no_process(released: None) -> None:
    """A ``__str__`` that never returns is left on a daemon thread named for what it does: the
    process's exit does not wait for it, and a thread list says what it is."""
    assert foreign_text.text_within(lambda: str(Hangs()), 0.01) is None
    left = [t for t in threading.enumerate() if t.name == "taskdaemon-exception-text"]
    assert left
    assert all(t.daemon for t in left)


def test_a_message_with_no_arguments_is_not_formatted(threads: list[str]) -> None:
    """``log.info("100% done")``: no ``%`` is applied, as logging does."""
    record = _record("100% done")
    settle_message(record)
    assert (foreign_text.message_of(record), record.args, threads) == ("100% done", (), [])


@pytest.mark.parametrize("depth", [99, 100])
def test_plain_values_are_written_in_place_up_to_100_containers(depth: int) -> None:
    """The arguments' tuple and 99 lists in it: plain, left as logged; one more list, and
    they are written on a thread (the record then holds the text alone)."""
    nested: Any = 1
    for _ in range(depth):
        nested = [nested]
    record = _record("%s", nested)
    settle_message(record)
    assert record.msg == ("%s" if depth == 99 else str(nested))
    assert (record.args == ()) == (depth == 100)


@pytest.mark.parametrize(
    ("msg", "args", "text"),
    [
        ("%s and %s", (Arg(), 1), "an argument's repr and 1"),
        ("%(k)s", ({"k": Arg()},), "an argument's repr"),
    ],
    ids=["last value plain", "in a dict"],
)
def test_a_value_of_the_handler_s_among_plain_ones_is_written(
    msg: str, args: tuple[object, ...], text: str
) -> None:
    record = _record(msg, *args)  # made here: settling changes it
    settle_message(record)
    assert (record.msg, record.args) == (text, ())


def test_what_a_log_line_quotes_is_bounded_to_1000_characters() -> None:
    """A template, its arguments, and an error, each cut at 1000 characters where the line
    says the text could not be written."""
    template = "%d" + "t" * 5000
    wrong = _record(template, "a" * 5000)
    settle_message(wrong)
    shown = repr(("a" * 5000,))[:1000]
    assert wrong.msg.startswith(
        f"{template[:1000]} <its format does not fit its arguments {shown}:"
    )
    broken = _record(template.replace("%d", "%s"), Broken())
    settle_message(broken)
    said = f"RuntimeError: no text {'e' * 2000}"[:1000]
    assert (
        broken.msg
        == f"{template.replace('%d', '%s')[:1000]} <its text could not be written: {said}>"
    )


def test_a_message_object_that_cannot_be_written_is_named_by_its_type() -> None:
    record = _record(Broken())
    settle_message(record)
    assert record.msg.startswith(f"{HERE}.Broken <its text could not be written: RuntimeError")


@pytest.mark.slow
def test_a_log_message_whose_text_does_not_come_names_the_types_it_waited_for(
    released: None,
) -> None:
    """After the deadline: the template (cut at 1000) and the types of the values whose text
    is the handler's, sorted, once each; or the message object's type."""
    late = "its text did not come within 1s"
    template = "%s %s %s %s" + "t" * 2000
    record = _record(template, AlsoHangs(), "plain", Hangs(), AlsoHangs())
    alone = _record(Hangs())
    mapped = _record("%(k)s", {"k": Hangs()})
    for each in (record, alone, mapped):
        settle_message(each)
    assert record.msg == f"{template[:1000]} <{late}: {HERE}.AlsoHangs, {HERE}.Hangs>"
    assert (alone.msg, alone.args) == (f"<{HERE}.Hangs: {late}>", ())
    assert mapped.msg == f"%(k)s <{late}: builtins.dict>"
