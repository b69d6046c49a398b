"""``foreign_text``: a handler's exception's text, taken within a deadline."""

from __future__ import annotations

import logging
import threading

import pytest

from taskdaemon.pipeline import foreign_text
from taskdaemon.pipeline.foreign_text import handler_error_text, settle_message, text_within


class OwnError(Exception):
    def __str__(self) -> str:
        return f"own: {self.args[0]}"


class BlocksError(Exception):
    def __init__(self, release: threading.Event) -> None:
        super().__init__()
        self.release = release

    def __str__(self) -> str:
        self.release.wait()
        return "late"


class Arg:
    def __repr__(self) -> str:
        return "an argument's repr"


def test_a_class_of_its_own_keeps_its_text() -> None:
    """A handler's exception class writes its own message: that is what a failure shows."""
    assert "own: disk full" == handler_error_text(OwnError("disk full"))


def test_an_argument_of_the_handler_s_type_is_written_by_its_code() -> None:
    """``KeyError(obj)`` calls ``obj.__repr__``: taken on the thread, and kept."""
    assert "an argument's repr" == handler_error_text(KeyError(Arg()))


def _no_thread(*_: object) -> None:
    raise AssertionError("a thread was started")


def test_python_s_text_is_taken_on_the_caller_s_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    """A plain ``ValueError`` starts no thread: failures of ordinary code pay nothing more."""
    monkeypatch.setattr(foreign_text, "text_within", _no_thread)
    assert "bad input" == handler_error_text(ValueError("bad input"))


@pytest.mark.slow
def test_a_text_that_does_not_come_is_written_by_the_type() -> None:
    """A ``__str__`` that does not return names the exception's type, after the deadline."""
    release = threading.Event()
    try:
        assert (
            "<pipeline_foreign_text_test.BlocksError: its text did not come within 1s>"
            == handler_error_text(BlocksError(release))
        )
    finally:
        release.set()


def test_text_within_answers_none_past_its_deadline() -> None:
    """``text_within`` gives up after ``seconds`` and leaves the call to its thread."""
    release = threading.Event()
    try:
        assert None is text_within(lambda: "x" if release.wait() else "", 0.01)
    finally:
        release.set()
    assert "y" == text_within(lambda: "y")


def test_a_traceback_python_writes_takes_no_thread_and_one_of_the_handlers_does(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A chain of exceptions whose texts are all Python's is formatted in place (every logged
    error would otherwise start a thread); one holding the handler's ``__str__`` anywhere in
    its chain is taken within the deadline, and written by its type when it never comes."""
    calls: list[str] = []
    real = foreign_text.text_within
    monkeypatch.setattr(
        foreign_text, "text_within", lambda write, *a: calls.append("thread") or real(write, *a)
    )
    try:
        try:
            raise KeyError("k")
        except KeyError as exc:
            raise ValueError("plain") from exc
    except ValueError as plain:
        written = foreign_text.traceback_within(plain)
    assert (calls, written.splitlines()[-1]) == ([], "ValueError: plain")
    release = threading.Event()
    try:
        try:
            raise BlocksError(release)
        except BlocksError:
            raise ValueError("outer")  # noqa: B904 - its context is the point
    except ValueError as outer:
        written = foreign_text.traceback_within(outer, 0.05)
    release.set()
    assert calls == ["thread"]
    assert written == "builtins.ValueError: its text did not come within 0.05s\n"


def _record(msg: object, *args: object) -> logging.LogRecord:
    return logging.LogRecord("handler", logging.INFO, __file__, 1, msg, args, None)


def test_a_log_message_of_plain_values_is_left_to_its_handler(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Text, numbers and containers of them start no thread: the engine's own lines pay
    nothing more, and the record stays as logged."""
    monkeypatch.setattr(foreign_text, "text_within", _no_thread)
    record = _record("%s %r %d", "a", [1, {"k": None}], 3)
    settle_message(record)
    assert ("%s %r %d", ("a", [1, {"k": None}], 3)) == (record.msg, record.args)


def test_a_log_message_of_the_handler_s_values_is_written_once() -> None:
    """A value of the handler's type, or one as the message, is written within the deadline
    into the message, so no handler calls its code again; one that cannot be written is one
    line saying why (logging printed a traceback for each handler), and so is a wrong format
    of plain values, its arguments shown."""
    record = _record("value %s", Arg())
    settle_message(record)
    assert ("value an argument's repr", ()) == (record.msg, record.args)
    alone = _record(Arg())
    settle_message(alone)
    assert ("an argument's repr", ()) == (alone.msg, alone.args)
    wrong = _record("%d", Arg())
    settle_message(wrong)
    said = "%d <its text could not be written: TypeError: %d format: a real number is required"
    assert (said, ()) == (wrong.msg[: len(said)], wrong.args)
    plain = _record("%d", "text")
    settle_message(plain)
    said = "%d <its format does not fit its arguments ('text',): TypeError: %d format: a real"
    assert (said, ()) == (plain.msg[: len(said)], plain.args)


def test_a_log_message_of_plain_values_is_formatted_once_for_every_handler() -> None:
    """The text written while settling is what taskdaemon's handlers take (``message_of``)
    while the template and arguments are those it came from; the record keeps both."""
    record = _record("%s items", 5)
    settle_message(record)
    template, args, text = record.__dict__["_taskdaemon_message"]
    assert ("%s items", (5,), "5 items") == (record.msg, record.args, text)
    record.__dict__["_taskdaemon_message"] = (template, args, "taken as written")
    assert "taken as written" == foreign_text.message_of(record)
    settle_message(record)  # the filter of a second handler: written already
    assert "taken as written" == foreign_text.message_of(record)
    record.msg = "%s items, and more"  # a filter after it changed the template
    assert "5 items, and more" == foreign_text.message_of(record)
