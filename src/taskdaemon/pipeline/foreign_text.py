"""Taking the text of an exception that a stage's code raised, which may never come.

A failed attempt's error is its exception's text (``str(exc)``): what the person who wrote the
handler put there, and what they want to see in the run's result, its spans, views and reports.
But that text is the handler's code when its class defines ``__str__`` (or when its arguments
are objects whose ``__str__``/``__repr__`` ``BaseException.__str__`` calls), and a ``__str__``
that never returns (``while True: pass``, ``time.sleep(1e9)``) hung the run on the engine's
loop, deaf to SIGTERM's grace.

Decision: keep the user's message, bound the wait. An exception whose text is written by
Python or a standard module (its ``__str__`` defined there, its arguments plain text, numbers
or None: ``raise ValueError("bad input")``, ``class MyError(Exception): pass``) is written by
``str`` as before, with no thread. Any other (a class's own ``__str__``, an argument of the
handler's type) is written by ``str`` on a daemon thread, awaited :data:`TEXT_DEADLINE_SECONDS`
at most; past that its text is ``<module.Type: its text did not come within 1s>``, the stage
fails with that error and the run goes on to its end. Not the rule of a result's values
(``payloads.value_text``, which never calls a handler's ``__str__``): an error's message is
what a failure is read for, and a user's exception class exists to write it. A thread cannot
stop a ``__str__`` that spins: it is left running as a daemon (one a hung exception, and only
for such an exception), and the process's exit does not wait for it.

A ``SystemExit`` a handler raised (``sys.exit(3)``) is said as the call it was, ``the handler
called sys.exit(3)``, not as its bare text (``3``, or nothing for ``sys.exit()``), which read
as an error message nobody wrote (:func:`exit_call`, whose words ``stage_leftovers`` says of
a stage's thread too).

A log record's message is the same kind of text (``logger.info("%s", obj)`` calls ``obj``'s
``__str__``), taken by the same rule before any log handler takes its lock
(:func:`settle_message`).
"""

from __future__ import annotations

import logging
import sys
import threading
import traceback
from collections.abc import Callable
from typing import Any, Final

from taskdaemon.pipeline.descriptor_reserve import exhaustion_text, starved
from taskdaemon.pipeline.errors import exception_text
from taskdaemon.pipeline.quoting import quote
from taskdaemon.pipeline.terminal_text import shown

__all__ = [
    "MESSAGE_MAX_CHARS",
    "PLAIN_ARGS",
    "TEXT_DEADLINE_SECONDS",
    "defining_class",
    "exit_call",
    "handler_error_text",
    "message_of",
    "settle_message",
    "text_within",
    "traceback_within",
]

#: How long a handler's ``__str__`` may take to write its exception's text: far more than any
#: message takes, and little enough that a run whose stage raised one that never returns ends.
TEXT_DEADLINE_SECONDS: Final = 1.0

#: Characters of a log record's message kept, and how far past them a secret the cut would
#: split is looked for. A handler that logged a 50 MB text (``log.info("%s", blob)``, a
#: ``__str__`` returning it) had it printed whole, redacted and stored whole, and the store's
#: writer, busy with it, lost the records behind it. A message is one row, not lines cut into
#: pieces as printed output is: 64 KiB keeps any message written to be read (a JSON object
#: dumped, a long SQL statement).
MESSAGE_MAX_CHARS: Final = 65_536
_CUT_LOOK_CHARS: Final = 4_096

#: Argument types whose text ``BaseException.__str__`` writes without calling anyone's code
#: (also the values ``payloads.value_text`` writes as they are).
PLAIN_ARGS: Final = frozenset({str, int, float, bool, type(None)})


def defining_class(cls: type, name: str) -> type:
    """The class of ``cls``'s MRO that defines ``name``: whose code ``str``/``repr`` runs."""
    return next(klass for klass in cls.__mro__ if name in vars(klass))


def handler_error_text(error: BaseException) -> str:
    """``str(error)``; ``<Type: str() failed>`` when its ``__str__`` raises; and when its text
    is the handler's code, taken within :data:`TEXT_DEADLINE_SECONDS` or written
    ``<module.Type: its text did not come within 1s>``; a plain ``SystemExit``'s, ``the
    handler called sys.exit(3)`` (see the module docstring)."""
    if type(error) is SystemExit:
        return f"the handler called {exit_call(error)}"
    if _python_writes(error):
        return exhaustion_text(error) if starved(error) else exception_text(error)
    text = text_within(lambda: exception_text(error))
    if text is None:
        return f"<{_type_name(error)}: its text did not come within {TEXT_DEADLINE_SECONDS:g}s>"
    return text


def exit_call(exit: BaseException | None) -> str:
    """``sys.exit(3)``: the call that raised ``exit``, its code written with no code of the
    stage's run (its ``repr`` is not called): an int as it is, a str quoted, none as ``()``,
    any other object ``<TypeName>``."""
    code = getattr(exit, "code", None)
    if code is None or type(code) is int:
        asked = "" if code is None else str(code)
    else:
        asked = quote(code) if type(code) is str else shown(f"<{type(code).__name__}>")
    return f"sys.exit({asked})"


def text_within(write: Callable[[], str], seconds: float = TEXT_DEADLINE_SECONDS) -> str | None:
    """``write()`` called on a daemon thread, its answer if it comes within ``seconds``, else
    None (the thread is left to its fate). ``write`` must not raise."""
    answer: list[str] = []
    done = threading.Event()

    def call() -> None:
        answer.append(write())
        done.set()

    try:
        threading.Thread(target=call, name="taskdaemon-exception-text", daemon=True).start()
    except RuntimeError:  # no new thread at interpreter shutdown: an exception logged at exit
        return write()
    return answer[0] if done.wait(seconds) else None


def traceback_within(exception: BaseException, seconds: float = TEXT_DEADLINE_SECONDS) -> str:
    """``traceback.format_exception(exception)`` joined, taken within
    ``seconds``; when the texts it takes (each exception's ``__str__`` in its
    chain or group, its notes) do not come by then, the exception's type and a line saying so.
    For a span's stack trace and a logged exception alike: a handler that logged its own such
    exception held the logging handler's lock, and the engine's next log line blocked the run's
    loop for good. A chain whose every text Python writes is formatted here, with no thread."""
    if _python_writes_chain(exception):
        return "".join(traceback.format_exception(exception))
    written = text_within(lambda: "".join(traceback.format_exception(exception)), seconds)
    if written is not None:
        return written
    return f"{_type_name(exception)}: its text did not come within {seconds:g}s\n"


def settle_message(record: logging.LogRecord) -> None:
    """Write ``record``'s message once, within :data:`TEXT_DEADLINE_SECONDS`, into
    ``record.msg`` (``args`` emptied), so that no log handler calls anyone's code under its
    lock. ``logger.info("%s", obj)``, ``logger.info(obj)`` and ``%r`` call ``obj``'s
    ``__str__``/``__repr__``; one that never returned held the handler's lock, and with it
    every other stage's logging and the engine's next log line, for good. The same decision as
    an exception's text: the handler's message is kept when it comes in time, else the line is
    its template and ``<its text did not come within 1s: module.Type>``. A message whose
    template is text and whose arguments are plain (:data:`PLAIN_ARGS`, also inside a list,
    tuple or dict) is written here, with no thread, and kept beside ``msg`` and ``args`` for
    taskdaemon's handlers (:func:`message_of`): each record is formatted once, whatever the
    number of handlers, and other handlers and filters still see its template and arguments.
    Such a message whose ``%`` format does not fit its values (``log.info("%d items", "x")``,
    ``log.info("%s %s", 1)``) is its template, its arguments and the error, in one line:
    ``%d items <its format does not fit its arguments ('x',): TypeError: ...>``, where logging
    printed its traceback to stderr for each handler and the store lost the record. One whose
    writing raises (``__str__`` raising) is its template and ``<its text could not be written:
    Type: message>``: one line, stored, where logging printed a traceback for each handler."""
    if isinstance(record.msg, str) and _plain_args(record.args):
        if record.msg.__class__ is str and _WRITTEN not in record.__dict__:
            try:  # as getMessage: no % without arguments
                written = record.msg % record.args if record.args else record.msg
                record.__dict__[_WRITTEN] = (record.msg, record.args, _bounded(written))
            except Exception as error:  # any error of % is the format's
                shown = _args_shown(record.args)
                record.msg = (
                    f"{record.msg[:1000]} <its format does not fit its arguments {shown}: "
                    f"{type(error).__qualname__}: {handler_error_text(error)}>"
                )
                record.args = ()
        return
    failed: list[str] = []

    def write() -> str:
        try:
            return record.getMessage()
        except Exception as error:
            failed.append(f"{type(error).__qualname__}: {handler_error_text(error)}")
            return ""

    text = text_within(write)
    if failed:
        template = record.msg[:1000] if isinstance(record.msg, str) else _type_name(record.msg)
        text = f"{template} <its text could not be written: {failed[0][:1000]}>"
    elif text is None:
        values = record.args if isinstance(record.args, tuple) else (record.args,)
        named = ", ".join(
            sorted({_type_name(value) for value in values if type(value) not in PLAIN_ARGS})
        )
        late = f"its text did not come within {TEXT_DEADLINE_SECONDS:g}s"
        if isinstance(record.msg, str):
            text = f"{record.msg[:1000]} <{late}: {named}>"
        else:
            text = f"<{_type_name(record.msg)}: {late}>"
    record.msg, record.args = _bounded(text), ()


def message_of(record: logging.LogRecord) -> str:
    """``record.getMessage()``, taken from what :func:`settle_message` wrote when the record's
    template and arguments are still those it wrote it from (a filter after it may change them)."""
    try:  # no call on the way: this runs for every record and handler
        template, args, text = record.__dict__[_WRITTEN]
    except KeyError:
        return record.getMessage()
    return text if template is record.msg and args is record.args else record.getMessage()


#: The record attribute :func:`settle_message` keeps a written message in: its ``_`` keeps it
#: out of the fields the formatters and the store take for ``extra`` ones.
_WRITTEN: Final = "_taskdaemon_message"


def _bounded(text: str) -> str:
    """``text`` when at most :data:`MESSAGE_MAX_CHARS` long, else its start, redacted before
    the cut (a secret cut short would no longer be found, and its start shown), and how long it
    was: :data:`MESSAGE_MAX_CHARS` in all, so that the filter of a second handler keeps it."""
    if len(text) <= MESSAGE_MAX_CHARS:
        return text
    from taskdaemon.pipeline.redaction import redact_text  # noqa: PLC0415 - long texts only

    said = f"… <a message of {len(text):,} characters, cut>"
    kept = redact_text(text[: MESSAGE_MAX_CHARS + _CUT_LOOK_CHARS])
    return kept[: MESSAGE_MAX_CHARS - len(said)] + said


def _args_shown(args: object) -> str:
    """``repr(args)`` cut to 1,000 characters, or the types of its values when ``repr``
    raises: an int past ``sys.get_int_max_str_digits()`` (4,300 digits) has no text, and its
    ``ValueError`` raised out of the log filter into the handler's ``log.info``, failing the
    stage that logged it."""
    try:
        return repr(args)[:1000]
    except ValueError:  # plain values only: an int too long to write
        values = args.values() if isinstance(args, dict) else args
        kinds = ", ".join(type(value).__name__ for value in values)  # type: ignore[attr-defined]
        return f"<values of types {kinds}>"


def _plain_args(args: object, budget: int = 100) -> bool:
    """Whether ``%`` writes ``args`` without calling anyone's code: plain values, or lists,
    tuples and dicts of them (the exact built-in types), ``budget`` values at most."""
    pending: list[Any] = [args]
    while pending:
        value = pending.pop()
        kind = type(value)
        if kind in PLAIN_ARGS:
            continue
        budget -= 1
        if budget < 0 or kind not in (tuple, list, dict):
            return False
        pending.extend(value.items() if kind is dict else value)
    return True


def _type_name(value: object) -> str:
    cls = type(value)
    return f"{cls.__module__}.{cls.__qualname__}"


def _python_writes(error: BaseException) -> bool:
    """Whether ``str(error)`` runs no code of the handler's: the class that defines its
    ``__str__`` is Python's or a standard module's, and its arguments are plain."""
    module = defining_class(type(error), "__str__").__module__.partition(".")[0]
    if module != "builtins" and module not in sys.stdlib_module_names:
        return False
    return all(type(arg) in PLAIN_ARGS for arg in error.args)


def _python_writes_chain(exception: BaseException) -> bool:
    """Whether ``traceback.format_exception(exception)`` runs no code of the handler's: each
    exception of its chain is one :func:`_python_writes` answers for, none a group or noted."""
    seen: set[int] = set()
    current: BaseException | None = exception
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if (
            isinstance(current, BaseExceptionGroup)
            or getattr(current, "__notes__", None)
            or not _python_writes(current)
        ):
            return False
        current = current.__cause__ or (
            None if current.__suppress_context__ else current.__context__
        )
    return True
