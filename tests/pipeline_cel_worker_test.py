"""The CEL worker: its answers and errors, its limits, and a worker that misbehaves.

The worker's own loop (``_serve``) runs here in-process over in-memory streams, with the
address-space limit recorded rather than applied; the parent side talks to a real worker, or
to a stand-in program (``sys.executable`` replaced) that never starts, never answers, sends
garbage or dies.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import pickle
import resource
import signal
import struct
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from taskdaemon.pipeline import cel_worker
from taskdaemon.pipeline.cel_worker import MEMORY_LIMIT, CelWorker, WorkerError

HEADER = struct.Struct(">I")


@pytest.fixture
def worker() -> Iterator[CelWorker]:
    """A worker of the test's own, stopped at teardown."""
    made = CelWorker(time_limit=5.0)
    yield made
    made.close()


def _serve(requests: list[Any], monkeypatch: pytest.MonkeyPatch) -> tuple[bytes, list[Any]]:
    """What the worker's loop writes for ``requests``: its ready byte and its replies."""
    monkeypatch.setattr(resource, "setrlimit", lambda *limit: None)
    frames = [pickle.dumps(request) for request in requests]
    stdin = io.BytesIO(b"".join(HEADER.pack(len(frame)) + frame for frame in frames))
    stdout = io.BytesIO()
    monkeypatch.setattr(sys, "stdin", SimpleNamespace(buffer=stdin))
    monkeypatch.setattr(sys, "stdout", SimpleNamespace(buffer=stdout))
    cel_worker._serve()
    written = stdout.getvalue()
    replies, at = [], 1
    while at < len(written):
        (size,) = HEADER.unpack_from(written, at)
        replies.append(pickle.loads(written[at + 4 : at + 4 + size]))
        at += 4 + size
    return written[:1], replies


class _Program:
    """A compiled program stand-in whose ``execute`` returns or raises ``outcome``."""

    def __init__(self, outcome: Any) -> None:
        self.outcome = outcome

    def execute(self, context: Any) -> Any:
        if isinstance(self.outcome, BaseException):
            raise self.outcome
        return self.outcome


def _compiling_to(outcome: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cel_worker.cel, "compile", lambda source: _Program(outcome))


# -- the worker's loop ---------------------------------------------------------------------------


def test_the_worker_caps_its_address_space(monkeypatch: pytest.MonkeyPatch) -> None:
    """Before it reads a request, the worker limits its address space to MEMORY_LIMIT."""
    limits: list[tuple[Any, ...]] = []
    monkeypatch.setattr(sys, "stdin", SimpleNamespace(buffer=io.BytesIO()))
    monkeypatch.setattr(sys, "stdout", SimpleNamespace(buffer=io.BytesIO()))
    monkeypatch.setattr(resource, "setrlimit", lambda *limit: limits.append(limit))
    cel_worker._serve()
    assert [(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))] == limits


def test_the_worker_is_ready_then_answers_each_request(monkeypatch: pytest.MonkeyPatch) -> None:
    """The worker writes its ready byte, then one ``("ok", value)`` per request, in order,
    the same source compiled once and evaluated over each context."""
    requests = [("a + 1", {"a": 1}), ("a + 1", {"a": 41}), ("'x' + b", {"b": "y"})]
    assert (b"R", [("ok", 2), ("ok", 42), ("ok", "xy")]) == _serve(requests, monkeypatch)


def test_a_missing_key_is_sent_as_a_key_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """A KeyError of the evaluation is sent as its kind and its key."""
    _ready, replies = _serve([('a["k"]', {"a": {}})], monkeypatch)
    assert [("error", "KeyError", "k")] == replies


def test_a_key_error_without_a_key_is_sent_with_an_empty_message(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A KeyError that names no key is sent with an empty message."""
    _compiling_to(KeyError(), monkeypatch)
    _ready, replies = _serve([("x", {})], monkeypatch)
    assert [("error", "KeyError", "")] == replies


def test_an_evaluation_error_is_sent_as_its_type_and_message(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Any other error of the evaluation is sent as its type's name and its message."""
    _ready, replies = _serve([("1 / 0", {})], monkeypatch)
    assert [("error", "ZeroDivisionError", "division by zero in CEL expression")] == replies


def test_an_error_without_a_message_is_named_by_its_type(monkeypatch: pytest.MonkeyPatch) -> None:
    """An error with no message is sent with its type's name as the message."""
    _compiling_to(RuntimeError(), monkeypatch)
    _ready, replies = _serve([("x", {})], monkeypatch)
    assert [("error", "RuntimeError", "RuntimeError")] == replies


def test_a_result_that_cannot_be_sent_is_a_type_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """A value pickle refuses is answered as a TypeError naming it, and the loop goes on."""
    _compiling_to(threading.Lock(), monkeypatch)
    _ready, replies = _serve([("x", {}), ("x", {})], monkeypatch)
    kinds = [(reply[0], reply[1], reply[2].startswith("unpicklable result: ")) for reply in replies]
    assert [("error", "TypeError", True)] * 2 == kinds


# -- the parent side, with a real worker ---------------------------------------------------------


def test_an_evaluation_error_is_a_value_error_with_the_binding_s_message(
    worker: CelWorker,
) -> None:
    """An error in the worker is raised in the caller as ValueError with its message."""
    with pytest.raises(ValueError, match="division") as raised:
        worker.evaluate("1 / 0", {})
    assert "division by zero in CEL expression" == str(raised.value)


def test_a_missing_key_is_a_key_error_in_the_caller(worker: CelWorker) -> None:
    """A KeyError in the worker is raised in the caller as KeyError with its key."""
    with pytest.raises(KeyError) as raised:
        worker.evaluate('a["k"]', {"a": {}})
    assert ("k",) == raised.value.args


def test_a_context_that_cannot_be_sent_is_a_value_error(worker: CelWorker) -> None:
    """A context pickle refuses is refused before it reaches the worker, in one line."""
    with pytest.raises(ValueError, match="cannot be sent") as raised:
        worker.encode("a", {"a": threading.Lock()})
    assert str(raised.value).startswith("the context cannot be sent to the CEL worker: ")


def test_a_result_larger_than_a_pipe_s_buffer_arrives_whole(worker: CelWorker) -> None:
    """An answer the worker's pipe hands over in several reads is put back together."""
    text = "x" * (1 << 20)
    assert text + "y" == worker.evaluate("s + 'y'", {"s": text})


def test_closing_a_worker_twice_is_harmless(worker: CelWorker) -> None:
    """A second ``close`` (the interpreter's exit after a test's) finds nothing to stop, and
    the next call starts a worker again."""
    before = worker.evaluate("1 + 1", {})
    worker.close()
    worker.close()
    assert (2, 3) == (before, worker.evaluate("1 + 2", {}))


async def test_async_requests_are_answered_one_at_a_time_on_the_worker_s_thread() -> None:
    """``evaluate_async`` runs each request on one ``taskdaemon-cel`` thread of the worker's
    own: two at once queue there rather than taking two threads."""
    worker = CelWorker()
    release = threading.Event()
    names: list[str] = []

    def answer(request: bytes) -> bytes:
        release.wait()
        names.append(threading.current_thread().name)
        return request

    worker.evaluate_encoded = answer  # type: ignore[method-assign]
    try:
        calls = [asyncio.ensure_future(worker.evaluate_async(bytes([n]))) for n in range(2)]
        # Queued after both calls' first steps, which hand their requests to the thread.
        asyncio.get_running_loop().call_soon(release.set)
        answers = await asyncio.gather(*calls)
    finally:
        worker.close()
    assert ([b"\x00", b"\x01"], ["taskdaemon-cel_0"] * 2) == (answers, names)


# -- the parent side, with a worker that misbehaves ----------------------------------------------


def _stand_in(script: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the worker's command run the shell ``script`` instead (its arguments ignored)."""
    program = tmp_path / "worker.sh"
    program.write_text(f"#!/bin/sh\n{script}\n")
    program.chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(program))


def test_a_worker_that_does_not_start_in_time_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker that sends nothing within STARTUP_LIMIT is a WorkerError saying so."""
    _stand_in("exec sleep 60", tmp_path, monkeypatch)
    monkeypatch.setattr(cel_worker, "STARTUP_LIMIT", 0.2)
    worker = CelWorker()
    try:
        with pytest.raises(WorkerError, match="start") as raised:
            worker.evaluate("1", {})
    finally:
        worker.close()
    assert "the CEL worker did not start in time" == str(raised.value)


def test_a_worker_that_does_not_answer_in_time_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker that is ready but silent is a WorkerError once the time limit has passed."""
    _stand_in("printf R; exec sleep 60", tmp_path, monkeypatch)
    worker = CelWorker(time_limit=0.2)
    try:
        with pytest.raises(WorkerError, match="time limit") as raised:
            worker.evaluate("1", {})
    finally:
        worker.close()
    assert "over the time limit of 0.2 s" == str(raised.value)


def _wake(pid: int) -> None:
    """``SIGCONT`` to ``pid``, unless it was killed while stopped."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGCONT)


@pytest.mark.slow
def test_a_worker_not_given_the_cpu_past_the_time_limit_still_answers() -> None:
    """A worker stopped past the time limit, as a loaded machine leaves one waiting for a CPU,
    has not used the time the limit gives it: its answer is waited for, not an error of the
    machine's load (a fed stage's input failed a replay so: endings58). A silent worker that
    sleeps is still an error at the limit (``test_a_worker_that_does_not_answer_in_time_...``),
    and an evaluation that used its time is still stopped (``reliability_hostile_input_test``)."""
    worker = CelWorker(time_limit=0.2)
    try:
        assert 6 == worker.evaluate(
            "request.items.map(i, i * 2)[2]", {"request": {"items": [1, 2, 3]}}
        )
        process = worker._process
        assert process is not None
        os.kill(process.pid, signal.SIGSTOP)
        woken = threading.Timer(0.6, _wake, (process.pid,))
        begun = time.monotonic()  # before the timer: it wakes the worker 0.6 s after this
        woken.start()
        try:
            answer = worker.evaluate(
                "request.items.map(i, i * 3)[1]", {"request": {"items": [1, 2]}}
            )
            waited = time.monotonic() - begun
        finally:
            woken.join()
        assert (6, True, None) == (answer, waited >= 0.5, process.poll())
        assert process is worker._process  # the same worker: it was not killed
    finally:
        worker.close()


def test_a_worker_that_sends_garbage_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker whose first byte is not the ready byte is a WorkerError saying so."""
    _stand_in("printf X; exec sleep 60", tmp_path, monkeypatch)
    worker = CelWorker()
    try:
        with pytest.raises(WorkerError, match="garbage") as raised:
            worker.evaluate("1", {})
    finally:
        worker.close()
    assert "the CEL worker sent garbage" == str(raised.value)


def test_a_worker_whose_answer_is_not_a_pickle_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker that answers four bytes that do not unpickle is a WorkerError, not the
    ``pickle.UnpicklingError`` of its answer."""
    header = "".join(f"\\{byte:03o}" for byte in cel_worker._HEADER.pack(4))
    _stand_in(f"printf 'R{header}abcd'; exec sleep 60", tmp_path, monkeypatch)
    worker = CelWorker()
    try:
        with pytest.raises(WorkerError, match="failed") as raised:
            worker.evaluate("1", {})
    finally:
        worker.close()
    assert "the CEL worker failed: unpickling stack underflow" == str(raised.value)


def test_a_worker_that_dies_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker that exits before it is ready is a WorkerError naming the likely cause."""
    _stand_in("exit 0", tmp_path, monkeypatch)
    worker = CelWorker()
    try:
        with pytest.raises(WorkerError, match="died") as raised:
            worker.evaluate("1", {})
    finally:
        worker.close()
    assert "the CEL worker died (over its memory limit?)" == str(raised.value)


def test_a_ctrl_c_on_the_terminal_does_not_reach_the_worker(worker: CelWorker) -> None:
    """The worker leads a session of its own, so a SIGINT to taskdaemon's process group (a
    Ctrl-C) does not kill it under an evaluation in flight."""
    assert 2 == worker.evaluate("a + 1", {"a": 1})
    process = worker._process
    assert process is not None
    assert process.pid == os.getsid(process.pid)
