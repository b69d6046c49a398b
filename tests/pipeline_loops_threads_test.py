"""Sync handlers in worker threads: the lazy environment across the hop, results, errors."""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import threading
from collections.abc import Callable, Mapping
from typing import Any

import pytest

from loop_probe_support import probes_in_a_chain
from taskdaemon.pipeline import _threads
from taskdaemon.pipeline._hop_future import HopFuture
from taskdaemon.pipeline._threads import (
    LoopEnvironment,
    call_in_thread,
    hop,
    in_thread,
    thread_safe,
)
from taskdaemon.pipeline.engine import Engine
from taskdaemon.pipeline.events import EngineEvent, StageStarted
from taskdaemon.pipeline.loops import StageContext, python_handler
from taskdaemon.pipeline.model import Manual, OnCompletion, Pipeline, Stage
from taskdaemon.pipeline.state import RunStatus


class EnvObserver:
    """An observer answering ``stage_environment`` and noting the thread it was asked on."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, str]] = []

    def on_event(self, event: EngineEvent) -> None:
        return None

    def stage_environment(self, event: StageStarted) -> dict[str, str]:
        self.asked.append((event.stage, threading.current_thread().name))
        return {"TRACEPARENT": f"tp-{event.stage}"}


class Resolver:
    """Resolves each stage to its handler in ``handlers``."""

    def __init__(self, handlers: Mapping[str, Any]) -> None:
        self.handlers = handlers

    def resolve(self, pipeline: Pipeline, stage: Stage) -> Any:
        return python_handler(self.handlers[stage.name])


def _context(**overrides: Any) -> StageContext:
    values: dict[str, Any] = {
        "run_id": "0" * 31 + "1",
        "pipeline": "demo",
        "stage": "work",
        "loop": "python",
        "instance": 0,
        "attempt": 1,
        "inputs": {},
        "publish": lambda kind, payload: None,
        "report_process": lambda pid: None,
    }
    values.update(overrides)
    return StageContext(**values)


async def test_sync_handler_that_ignores_the_environment_never_resolves_it() -> None:
    """A sync handler that never reads ctx.environment makes no observer answer it (the hop to
    its thread no longer resolves it eagerly), while one that reads it gets the answer,
    resolved on the event loop's thread."""
    seen: list[dict[str, str]] = []

    def ignores(ctx: StageContext) -> None:
        return None

    def reads(ctx: StageContext) -> None:
        seen.append(dict(ctx.environment))
        seen.append({"TRACEPARENT": ctx.environment["TRACEPARENT"]})

    observer = EnvObserver()
    definition = Pipeline(
        name="demo",
        stages=(
            Stage(name="a", loop="python", triggers=(Manual(),)),
            Stage(name="b", loop="python", triggers=(OnCompletion(stage="a"),)),
        ),
    )
    engine = Engine(resolver=Resolver({"a": ignores, "b": reads}), observers=[observer])
    async with engine:
        result = await engine.run(definition)
    assert RunStatus.SUCCESS == result.status
    assert [("b", threading.current_thread().name)] == observer.asked
    assert [{"TRACEPARENT": "tp-b"}, {"TRACEPARENT": "tp-b"}] == seen


class CountingEnvironment(Mapping[str, str]):
    """A mapping that records the thread of every read (``dict()`` of it reads twice: the keys,
    then each value)."""

    def __init__(self) -> None:
        self.threads: list[str] = []

    def _values(self) -> dict[str, str]:
        self.threads.append(threading.current_thread().name)
        return {"K": "v"}

    def __getitem__(self, key: str) -> str:
        return self._values()[key]

    def __iter__(self) -> Any:
        return iter(self._values())

    def __len__(self) -> int:
        return len(self._values())


async def test_loop_environment_resolves_once_on_the_loop() -> None:
    """Read from a worker thread, a LoopEnvironment resolves its source once, on the loop's
    thread, and serves every later read from that answer."""
    source = CountingEnvironment()
    environment = LoopEnvironment(source, asyncio.get_running_loop())

    def read_twice() -> list[dict[str, str]]:
        return [dict(environment), dict(environment)]

    reads = await asyncio.to_thread(read_twice)
    assert [{"K": "v"}, {"K": "v"}] == reads
    # One dict() of the source (its keys, then its value), on the loop, for both reads.
    assert [threading.current_thread().name] * 2 == source.threads


def test_loop_environment_read_after_the_loop_closed_resolves_in_place() -> None:
    """A background thread reading the environment after the run's loop closed gets an answer
    instead of waiting forever for a loop that will never run the call."""
    loop = asyncio.new_event_loop()
    loop.close()
    source = CountingEnvironment()
    assert {"K": "v"} == dict(LoopEnvironment(source, loop))
    assert [threading.current_thread().name] * 2 == source.threads


async def test_in_thread_returns_results_and_raises_errors() -> None:
    """in_thread runs the function off the loop's thread, in the caller's context variables,
    and hands back its result or its exception."""

    def where(ctx: StageContext) -> str:
        return threading.current_thread().name

    def boom(ctx: StageContext) -> None:
        raise ValueError("boom")

    assert threading.current_thread().name != await in_thread(where, _context())
    with pytest.raises(ValueError, match="boom"):
        await in_thread(boom, _context())


async def test_in_thread_cancelled_caller_leaves_the_thread_to_finish() -> None:
    """Cancelling the awaiting task ends the wait at once; the call finishes in the background
    and its late result is dropped without an error."""
    release = threading.Event()
    finished = threading.Event()

    def slow(ctx: StageContext) -> str:
        release.wait(10)
        finished.set()
        return "late"

    task = asyncio.create_task(in_thread(slow, _context()))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    release.set()
    assert await asyncio.to_thread(finished.wait, 10)


def test_a_loop_that_makes_its_own_futures_makes_each_call_in_threads() -> None:
    """``call_in_thread`` asks a loop class that overrides ``create_future`` (as uvloop's
    does) for every future it answers."""
    made: list[asyncio.Future[Any]] = []

    class OwnFutures(asyncio.SelectorEventLoop):
        def create_future(self) -> asyncio.Future[Any]:
            future = super().create_future()
            made.append(future)
            return future

    async def main() -> list[int]:
        return [await call_in_thread(lambda n=n: n + 1) for n in range(2)]

    loop = OwnFutures()
    try:
        assert loop.run_until_complete(main()) == [1, 2]
        assert [future.result() for future in made] == [1, 2]
    finally:
        loop.run_until_complete(loop.shutdown_default_executor())
        loop.close()


class _LoopSafe:
    """Callbacks safe from any thread for ``loop`` (as the engine's ``Callbacks``): each
    call is noted with the thread it ran on."""

    def __init__(self, loop: asyncio.AbstractEventLoop | None) -> None:
        self.loop_safe = loop
        self.calls: list[tuple[str, str]] = []

    def publish(self, kind: str, payload: Any) -> None:
        self.calls.append(("publish", threading.current_thread().name))

    def report_process(self, pid: int) -> None:
        self.calls.append(("report_process", threading.current_thread().name))

    def report_usage(self, cpu: float | None, memory: int | None) -> None:
        self.calls.append(("report_usage", threading.current_thread().name))


class _Unsafe(_LoopSafe):
    """Callbacks that say nothing of the threads they are safe from."""

    def __init__(self) -> None:
        super().__init__(None)
        del self.loop_safe


def _callbacks_of(owner: _LoopSafe, **others: _LoopSafe) -> dict[str, Any]:
    names = ("publish", "report_process", "report_usage")
    return {name: getattr(others.get(name, owner), name) for name in names}


async def test_a_sync_handler_s_callbacks_run_on_the_loop_and_answer_the_handler() -> None:
    """Plain callbacks reach the loop's thread with their arguments; what they return comes
    back to the handler, and what they raise is raised in it."""
    loop_thread = threading.current_thread().name
    seen: list[tuple[str, Any, str]] = []

    def note(name: str, answer: Any) -> Any:
        def callback(*args: Any) -> Any:
            seen.append((name, args, threading.current_thread().name))
            if isinstance(answer, BaseException):
                raise answer
            return answer

        return callback

    ctx = _context(
        publish=note("publish", "published"),
        report_process=note("report_process", 7),
        report_usage=note("report_usage", ValueError("refused")),
    )

    def handler(ctx: StageContext) -> list[Any]:
        answers: list[Any] = [ctx.publish("kind", {"k": 1}), ctx.report_process(42)]
        try:
            ctx.report_usage(0.5, 1024)
        except ValueError as error:
            answers.append(str(error))
        return answers

    answers = await in_thread(handler, ctx)
    assert ["published", 7, "refused"] == answers
    assert [
        ("publish", ("kind", {"k": 1}), loop_thread),
        ("report_process", (42,), loop_thread),
        ("report_usage", (0.5, 1024), loop_thread),
    ] == seen


@pytest.mark.parametrize("unsafe", ["publish", "report_process", "report_usage"])
async def test_a_callback_not_safe_for_the_loop_is_marshalled_onto_it(unsafe: str) -> None:
    """One callback of a context that does not say it is safe for this loop (the others do)
    still runs on the loop's thread when a sync handler calls it."""
    loop = asyncio.get_running_loop()
    safe, other = _LoopSafe(loop), _LoopSafe(None)  # safe for no loop
    ctx = _context(**_callbacks_of(safe, **{unsafe: other}))

    def handler(ctx: StageContext) -> None:
        ctx.publish("kind", {})
        ctx.report_process(1)
        ctx.report_usage(None, None)

    await in_thread(handler, ctx)
    assert [(unsafe, threading.current_thread().name)] == other.calls


async def test_a_context_safe_for_the_loop_reaches_the_handler_unchanged() -> None:
    """Callbacks that say they are safe for this loop, on their object or on themselves, and
    an environment that is a plain mapping or a ``LoopEnvironment`` of this loop: the
    handler gets the very context it was given (no copy, no wrappers)."""
    loop = asyncio.get_running_loop()
    owner = _LoopSafe(loop)

    def own(*args: Any) -> None:
        return None

    own.loop_safe = loop  # type: ignore[attr-defined]
    contexts = [
        _context(**_callbacks_of(owner)),
        _context(publish=own, report_process=own, report_usage=own),
        _context(**_callbacks_of(owner), environment=LoopEnvironment({"K": "v"}, loop)),
    ]
    for ctx in contexts:
        assert thread_safe(ctx, loop) is ctx
        assert await in_thread(lambda seen: seen, ctx) is ctx


async def test_a_context_of_another_loop_or_with_one_unsafe_callback_is_wrapped() -> None:
    """A ``LoopEnvironment`` of another loop, or one callback that says nothing of its
    threads, makes ``thread_safe`` wrap the context, without asking more of the callbacks
    than whether they say so."""
    loop = asyncio.get_running_loop()
    other_loop = asyncio.new_event_loop()
    try:
        owner, unsafe = _LoopSafe(loop), _Unsafe()
        foreign = LoopEnvironment({"K": "v"}, other_loop)
        for name in ("publish", "report_process", "report_usage"):
            ctx = _context(**_callbacks_of(owner, **{name: unsafe}))
            assert thread_safe(ctx, loop) is not ctx
        wrapped = thread_safe(_context(**_callbacks_of(owner), environment=foreign), loop)
        environment = wrapped.environment
        assert isinstance(environment, LoopEnvironment)
        assert (environment is not foreign, environment._loop) == (True, loop)
    finally:
        other_loop.close()


async def test_every_hop_of_a_loop_goes_through_the_pool_the_first_one_installed() -> None:
    """The first hop installs the loop's pool; later hops use it too, their stages awaiting
    the future that resumes them in the turn their result arrives."""
    futures = [hop(lambda ctx: threading.current_thread().name, _context()) for _ in range(2)]
    names = await asyncio.gather(*futures)
    assert [True, True] == [isinstance(future, HopFuture) for future in futures]
    assert names[0].startswith("taskdaemon-sync-")


def test_a_call_on_a_loop_whose_executor_was_shut_down_is_refused() -> None:
    """As ``run_in_executor``: once the loop's default executor was shut down (before any
    hop installed one), a call in a thread raises ``RuntimeError``."""
    loop = asyncio.new_event_loop()

    async def call() -> Any:
        return await call_in_thread(lambda: "ran")

    try:
        loop.run_until_complete(loop.shutdown_default_executor())
        with pytest.raises(RuntimeError, match="shutdown"):
            loop.run_until_complete(call())
    finally:
        loop.close()


async def test_calls_on_another_default_executor_answer_results_and_errors() -> None:
    """A loop whose default executor is a plain ``ThreadPoolExecutor`` runs the calls on it;
    results and exceptions come back to the awaiting task."""
    loop = asyncio.get_running_loop()
    executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="own")
    loop.set_default_executor(executor)
    try:
        result = await asyncio.wait_for(call_in_thread(lambda: threading.current_thread().name), 10)
        with pytest.raises(ZeroDivisionError):
            await asyncio.wait_for(call_in_thread(lambda: 1 / 0), 10)
        falsy = await asyncio.wait_for(call_in_thread(lambda: 0), 10)
    finally:
        executor.shutdown(wait=True)
    assert (True, 0) == (result.startswith("own"), falsy)


def _read_in_a_thread(read: Callable[[], Any]) -> list[Any]:
    """``read()`` on a daemon thread of its own, its result or exception, or nothing when it
    did not end within 10 s."""
    answers: list[Any] = []

    def run() -> None:
        try:
            answers.append(read())
        except Exception as error:  # the reader's error is the answer
            answers.append(error)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(10)
    return answers


def test_loop_environment_of_a_loop_that_stopped_resolves_in_place() -> None:
    """A reader waiting for a loop that is not running (the run is over, the loop not
    closed yet) stops waiting at its next check and resolves the environment itself."""
    loop = asyncio.new_event_loop()
    try:
        source = CountingEnvironment()
        answers = _read_in_a_thread(lambda: dict(LoopEnvironment(source, loop)))
    finally:
        loop.close()
    assert [{"K": "v"}] == answers


class _Refusing(Mapping[str, str]):
    """An environment whose resolution fails."""

    def __getitem__(self, key: str) -> str:
        raise KeyError(key)

    def __iter__(self) -> Any:
        raise LookupError("no environment")

    def __len__(self) -> int:
        return 0


async def test_loop_environment_s_failure_on_the_loop_is_raised_to_its_reader() -> None:
    """What resolving the environment on the loop raises reaches the thread that read it."""
    environment = LoopEnvironment(_Refusing(), asyncio.get_running_loop())
    with pytest.raises(LookupError, match="no environment"):
        await asyncio.to_thread(dict, environment)


class _NoReaders(asyncio.SelectorEventLoop):
    """A loop that watches no file of its caller's (as a loop that is not a selector's):
    the pool it gets has no inbox."""

    def add_reader(self, fd: Any, callback: Callable[..., object], *args: Any) -> None:
        raise NotImplementedError


def test_hops_on_a_loop_without_an_inbox_answer_through_the_loop_s_queue() -> None:
    """Without an inbox the results and exceptions of hops and calls still reach their
    awaiting tasks (through ``call_soon_threadsafe``)."""

    async def main() -> list[Any]:
        answers: list[Any] = [await hop(lambda ctx: ctx.stage, _context())]
        answers.append(await call_in_thread(lambda: 0))
        try:
            await hop(lambda ctx: 1 / 0, _context())
        except ZeroDivisionError as error:
            answers.append(type(error))
        return answers

    loop = _NoReaders()
    try:
        answers = loop.run_until_complete(asyncio.wait_for(main(), 10))
        inbox = loop._default_executor.inbox  # type: ignore[attr-defined]
    finally:
        loop.run_until_complete(loop.shutdown_default_executor())
        loop.close()
    assert (["work", 0, ZeroDivisionError], None) == (answers, inbox)


async def test_an_attribute_error_of_the_call_itself_is_not_taken_for_a_foreign_context(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``hop`` tells the engine's own context by attribute reads in a ``try``; an
    ``AttributeError`` raised by the call that follows (the dispatch) is the caller's: it is
    raised once, and the call is not made a second time through ``thread_safe``."""
    loop = asyncio.get_running_loop()
    ctx = _context(**_callbacks_of(_LoopSafe(loop)))
    handed: list[Any] = []

    def failing_call(loop: Any, function: Any, args: tuple[Any, ...], hop: bool = False) -> Any:
        handed.append(args[0])
        raise AttributeError("from the dispatch")

    monkeypatch.setattr(_threads, "_call", failing_call)
    with pytest.raises(AttributeError, match="from the dispatch"):
        hop(lambda seen: seen, ctx)
    assert [ctx] == handed


async def test_a_sync_stage_does_not_ask_asyncio_for_the_running_loop() -> None:
    """The hop tells the engine's loop from the context it was given, without
    ``asyncio.get_running_loop()`` (a ``getpid`` system call): a chain of 21 sync stages
    probes for the loop as often as a chain of 1."""
    handler = python_handler(lambda ctx: None)
    assert await probes_in_a_chain(21, handler) == await probes_in_a_chain(1, handler)


def test_a_forked_child_does_not_take_its_parent_loop_for_its_own() -> None:
    """The fork check ``asyncio.get_running_loop()`` made is kept: in a forked child, the hop
    no longer trusts a loop's note of its thread (``_threads._forked_child``)."""
    assert _threads._forked_child is False
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.write(write, b"1" if _threads._forked_child else b"0")
        os._exit(0)
    os.close(write)
    try:
        assert os.read(read, 1) == b"1"
    finally:
        os.close(read)
        os.waitpid(pid, 0)
