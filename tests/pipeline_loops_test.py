"""Loop types: python handlers, shell commands, the registry and entry points."""

from __future__ import annotations

import asyncio
import functools
import json
import os
import re
import sys
import threading
from collections.abc import Iterator, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

import psutil
import pytest

from taskdaemon.pipeline import group_watchdog
from taskdaemon.pipeline.command_loop import SAMPLE_INTERVAL
from taskdaemon.pipeline.errors import LoopTypeError, StageFailedError
from taskdaemon.pipeline.loops import (
    CommandFailedError,
    LoopRegistry,
    StageContext,
    command_handler,
    python_handler,
)
from taskdaemon.pipeline.model import LoopDef, Manual, Pipeline, Stage


class Recorder:
    """Collects what a handler reports through its context."""

    def __init__(self) -> None:
        self.pids: list[int] = []
        self.usage: list[tuple[float | None, int | None]] = []
        self.events: list[tuple[str, Mapping[str, Any]]] = []
        self.started = asyncio.Event()

    def context(self, **overrides: Any) -> StageContext:
        values: dict[str, Any] = {
            "run_id": "0" * 31 + "1",
            "pipeline": "demo",
            "stage": "work",
            "loop": "command",
            "instance": 0,
            "attempt": 1,
            "inputs": {},
            "publish": lambda kind, payload: self.events.append((kind, payload)),
            "report_process": self._process,
            "report_usage": lambda cpu, mem: self.usage.append((cpu, mem)),
        }
        values.update(overrides)
        return StageContext(**values)

    def _process(self, pid: int) -> None:
        self.pids.append(pid)
        self.started.set()


def stage(name: str = "work", loop: str = "command", **fields: Any) -> Stage:
    """A stage that starts with the run."""
    return Stage(name=name, loop=loop, triggers=(Manual(),), **fields)


def pipeline(*stages: Stage, loops: Mapping[str, LoopDef] | None = None) -> Pipeline:
    """A pipeline of the given stages."""
    return Pipeline(name="demo", stages=stages, loops=dict(loops or {}))


async def run_command(command: str, recorder: Recorder | None = None, **ctx: Any) -> Any:
    """Run a command stage with a fresh context and return its result."""
    recorder = recorder or Recorder()
    return await command_handler(command)(recorder.context(**ctx))


async def wait_for_pids(path: Path, count: int) -> list[int]:
    """Wait until the file lists ``count`` pids (the command writes them as it starts them)."""
    while True:
        text = await asyncio.to_thread(lambda: path.read_text() if path.exists() else "")
        if len(text.split()) >= count:
            return [int(pid) for pid in text.split()]
        await asyncio.sleep(0.01)  # polling for a condition, not ordering by time


def dead(pid: int) -> bool:
    """True if the process is gone (or only a zombie waiting to be reaped)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


# -- command ----------------------------------------------------------------------------------


async def test_command_json_stdout_becomes_outputs() -> None:
    """A command printing a JSON object returns that object as its outputs."""
    result = await run_command("""echo '{"answer": 42, "items": [1, 2]}'""")
    expected = {"answer": 42, "items": [1, 2]}
    assert expected == result


async def test_command_plain_stdout() -> None:
    """A command printing text returns the text (without trailing newlines) and exit code 0."""
    result = await run_command("echo hello; echo world")
    expected = {"stdout": "hello\nworld", "exit_code": 0}
    assert expected == result


async def test_command_json_array_stdout_is_text() -> None:
    """Only a JSON object becomes outputs: a JSON array stays text."""
    result = await run_command("echo '[1, 2]'")
    expected = {"stdout": "[1, 2]", "exit_code": 0}
    assert expected == result


async def test_command_json_nested_past_the_decoder_is_text() -> None:
    """A JSON object nested deeper than ``json`` decodes stays text, as any other output that
    is not an object, rather than failing the stage with a RecursionError."""
    deep = '{"a":' * 5000 + "1" + "}" * 5000
    result = await run_command(f"printf '%s' '{deep}'")
    expected = {"stdout": deep, "exit_code": 0}
    assert expected == result


async def test_command_failure_carries_exit_code_and_stderr_tail() -> None:
    """A non-zero exit raises with the code and the last 20 lines of stderr."""
    script = "for i in $(seq 1 30); do echo line$i >&2; done; exit 3"
    with pytest.raises(CommandFailedError) as caught:
        await run_command(script)
    expected = 3
    assert expected == caught.value.exit_code
    expected_tail = "\n".join(f"line{i}" for i in range(11, 31))
    assert expected_tail == caught.value.stderr_tail
    assert "exited with code 3" in str(caught.value)
    assert "line30" in str(caught.value)
    assert "line10\n" not in str(caught.value)
    assert isinstance(caught.value, StageFailedError)


async def test_command_inputs_in_environment_and_stdin() -> None:
    """Inputs reach the command as TASKDAEMON_INPUT_* variables and as JSON on stdin."""
    script = (
        f"{sys.executable} -c 'import json, os, sys; "
        "print(json.dumps({"
        '"stdin": json.load(sys.stdin), '
        '"env": {k: v for k, v in os.environ.items() if k.startswith("TASKDAEMON_")}}))\''
    )
    result = await run_command(
        script,
        inputs={"goal": "ship it", "spec-data": {"n": 1}, "count": 3},
        environment={"TRACEPARENT": "00-" + "a" * 32 + "-" + "b" * 16 + "-01"},
        attempt=2,
        instance=1,
    )
    expected = {"goal": "ship it", "spec-data": {"n": 1}, "count": 3}
    assert expected == result["stdin"]
    expected_env = {
        "TASKDAEMON_INPUT_GOAL": "ship it",
        "TASKDAEMON_INPUT_SPEC_DATA": '{"n": 1}',
        "TASKDAEMON_INPUT_COUNT": "3",
        "TASKDAEMON_RUN_ID": "0" * 31 + "1",
        "TASKDAEMON_PIPELINE": "demo",
        "TASKDAEMON_STAGE": "work",
        "TASKDAEMON_ATTEMPT": "2",
        "TASKDAEMON_INSTANCE": "1",
    }
    token = result["env"].pop("TASKDAEMON_SPAWN_TOKEN")
    assert expected_env == {k: v for k, v in result["env"].items() if k != "TASKDAEMON_HOME"}
    assert re.fullmatch("[0-9a-f]{32}", token)


async def test_each_spawn_carries_a_token_of_its_own() -> None:
    """Two runs of one command get two different spawn tokens (the watchdog tells their
    processes apart by them)."""
    tokens = [(await run_command("printf %s $TASKDAEMON_SPAWN_TOKEN"))["stdout"] for _ in "ab"]
    assert 2 == len(set(tokens))


async def test_command_traceparent_in_environment() -> None:
    """The context's environment (TRACEPARENT when monitored) reaches the subprocess."""
    traceparent = "00-" + "a" * 32 + "-" + "b" * 16 + "-01"
    result = await run_command("printf %s $TRACEPARENT", environment={"TRACEPARENT": traceparent})
    assert traceparent == result["stdout"]


async def test_command_runs_in_workspace(tmp_path: Path) -> None:
    """The command's working directory is the stage's workspace."""
    workspace = await asyncio.to_thread(os.path.realpath, tmp_path)
    result = await run_command("pwd -P", workspace=workspace)
    assert workspace == result["stdout"]


async def test_command_reports_process_and_usage() -> None:
    """The root pid is reported at start, CPU seconds and peak RSS of the tree at the end.

    The tree is sampled every ``SAMPLE_INTERVAL``, and what it does after the last sample is
    not seen (``process_tree.TreePeaks``): each child spins until it has used 0.6 s of CPU, so
    the 1.2 s the tree uses stays well over what a last interval can hide. Before, two children
    of about 0.1 s each were sometimes read as 0.0 (CI) or 0.09."""
    recorder = Recorder()
    busy = f"{sys.executable} -c 'import time\nwhile time.process_time() < 0.6: pass'"
    await run_command(f"{busy} & {busy}; wait", recorder)
    [_root] = recorder.pids
    [(cpu, peak)] = recorder.usage
    assert cpu is not None
    assert cpu > 1.2 - 2 * 2 * SAMPLE_INTERVAL  # at most two intervals of both children lost
    assert peak is not None
    assert peak > 5_000_000  # two Python interpreters at once weigh more than 5 MB


async def test_cancellation_kills_the_whole_process_group(tmp_path: Path) -> None:
    """Cancelling a command stage kills every process it started, children included."""
    recorder = Recorder()
    pids_file = tmp_path / "pids"
    script = f"sleep 60 & echo $! >> {pids_file}; sleep 60 & echo $! >> {pids_file}; wait"
    task = asyncio.create_task(command_handler(script)(recorder.context()))
    await recorder.started.wait()
    children = await wait_for_pids(pids_file, 2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    survivors = [pid for pid in [*recorder.pids, *children] if not dead(pid)]
    assert not survivors
    [_usage] = recorder.usage


async def test_cancellation_while_spawning_leaves_no_process() -> None:
    """A stage cancelled while its shell is being spawned leaves no process of its group."""
    marker = "61.7"
    handler = command_handler(f"sleep {marker} & sleep {marker}; wait", kill_grace=0.5)
    task = asyncio.create_task(handler(Recorder().context()))
    await asyncio.sleep(0)  # the task runs up to its first await: the spawn
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    leftovers = [
        p.pid
        for p in psutil.process_iter(["cmdline"])
        if marker in " ".join(p.info["cmdline"] or ()) and not dead(p.pid)
    ]
    assert [] == leftovers


async def test_timeout_kills_children() -> None:
    """A timeout around a command stage ends it and its children within the grace period."""
    recorder = Recorder()
    handler = command_handler("sh -c 'sleep 60 & sleep 60' & sleep 60", kill_grace=0.5)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(handler(recorder.context()), 0.5)
    [root] = recorder.pids
    group = [p.pid for p in psutil.process_iter() if _pgid(p.pid) == root and not dead(p.pid)]
    assert not group
    assert dead(root)


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except OSError:
        return None


async def test_sigterm_ignoring_command_is_killed() -> None:
    """A command that ignores SIGTERM is killed with SIGKILL after the grace period."""
    recorder = Recorder()
    handler = command_handler("trap '' TERM; echo ready >&2; sleep 60", kill_grace=0.2)
    task = asyncio.create_task(handler(recorder.context()))
    await recorder.started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert dead(recorder.pids[0])


async def test_a_group_cancelled_twice_stays_listed_until_it_is_gone(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The second cancellation (the run's, after the stage's) ends the stage's wait at once,
    while its group, which ignores SIGTERM, still has its grace: the group stays listed with the
    watchdog until it is gone, or a taskdaemon that dies meanwhile (a second Ctrl-C) would leave
    it running with nobody to end it."""
    unlisted_alive: list[bool] = []
    unlisted = asyncio.Event()

    class Watchdog(group_watchdog.GroupWatchdog):
        def ended(self, pgid: int) -> None:
            unlisted_alive.append(
                any(_pgid(p.pid) == pgid and not dead(p.pid) for p in psutil.process_iter())
            )
            unlisted.set()
            super().ended(pgid)

    watchdog = Watchdog(0.5)
    monkeypatch.setattr(group_watchdog, "_shared", watchdog)
    recorder = Recorder()
    ready = tmp_path / "ready"
    os.mkfifo(ready)
    handler = command_handler(f"trap '' TERM; echo > {ready}; sleep 60", kill_grace=0.5)
    task = asyncio.create_task(handler(recorder.context()))
    try:
        # Cancelled once the trap is set: a SIGTERM before it would end the group at once.
        await asyncio.to_thread(ready.read_text)
        task.cancel()
        await asyncio.sleep(0.05)  # the stage's wait has begun to end its group
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert [] == unlisted_alive  # the second cancellation did not unlist it
        # The group's end goes on, and unlists it once gone.
        await asyncio.wait_for(unlisted.wait(), 30)
        assert [False] == unlisted_alive
    finally:
        watchdog.close()


async def test_command_leaves_no_background_process() -> None:
    """Processes a command leaves running in its group are killed when it exits."""
    recorder = Recorder()
    result = await run_command("sleep 60 >/dev/null 2>&1 & echo $!", recorder)
    assert dead(int(result["stdout"]))


async def test_killed_command_names_the_signal() -> None:
    """A command killed by a signal fails with the signal's name."""
    with pytest.raises(CommandFailedError, match="killed by SIGKILL"):
        await run_command("kill -KILL $$")


# -- python -----------------------------------------------------------------------------------


def sync_handler(ctx: StageContext) -> dict[str, Any]:
    """A sync handler: reports the thread it ran in."""
    return {"doubled": ctx.inputs["n"] * 2, "thread": threading.current_thread().name}


async def async_handler(ctx: StageContext) -> dict[str, Any]:
    """An async handler that publishes an event."""
    ctx.publish("thing.done", {"n": ctx.inputs["n"]})
    await asyncio.sleep(0)
    return {"tripled": ctx.inputs["n"] * 3}


def publishing_sync_handler(ctx: StageContext) -> dict[str, Any]:
    """A sync handler that publishes an event and reports a process."""
    ctx.publish("thing.done", {"n": 1})
    ctx.report_process(12345)
    return {}


def none_handler(ctx: StageContext) -> None:
    """A handler with nothing to return."""


def scalar_handler(ctx: StageContext) -> int:
    """A handler returning a bare value."""
    return 7


NOT_CALLABLE = 3


async def test_python_sync_handler_runs_in_a_thread() -> None:
    """A sync python handler gets the context and runs outside the event loop's thread."""
    work = stage(loop="python", handler=f"{__name__}:sync_handler")
    handler = LoopRegistry().resolve(pipeline(work), work)
    result = await handler(Recorder().context(inputs={"n": 21}))
    expected = 42
    assert expected == result["doubled"]
    assert threading.current_thread().name != result["thread"]


async def test_python_async_handler_is_awaited() -> None:
    """An async python handler is awaited and may publish events."""
    recorder = Recorder()
    work = stage(loop="python", handler=f"{__name__}:async_handler")
    handler = LoopRegistry().resolve(pipeline(work), work)
    result = await handler(recorder.context(inputs={"n": 2}))
    expected = {"tripled": 6}
    assert expected == result
    expected = [("thing.done", {"n": 2})]
    assert expected == recorder.events


class _Doubler:
    """Holds the async method and the awaitable-returning instance of the next test."""

    async def method(self, ctx: StageContext) -> dict[str, Any]:
        return {"thread": threading.current_thread().name}

    def __call__(self, ctx: StageContext) -> Any:
        return self.method(ctx)  # a sync callable that returns a coroutine


async def _where(ctx: StageContext, *, tag: str = "") -> dict[str, Any]:
    return {"thread": threading.current_thread().name, "tag": tag}


async def test_async_callables_are_awaited_on_the_loop_and_others_in_a_thread() -> None:
    """A coroutine function, a bound async method and a partial of a coroutine function run on
    the loop's thread; a sync callable that returns a coroutine runs in a worker thread and its
    coroutine is then awaited on the loop (what ``inspect.iscoroutinefunction`` decides, read
    without importing ``inspect``)."""
    loop_thread = threading.current_thread().name
    ctx = Recorder().context()
    for function in (_where, _Doubler().method, functools.partial(_where, tag="p")):
        result = await python_handler(function)(ctx)
        assert loop_thread == result["thread"], function
    assert {"thread": loop_thread, "tag": "p"} == await python_handler(
        functools.partial(_where, tag="p")
    )(ctx)
    assert loop_thread == (await python_handler(_Doubler())(ctx))["thread"]
    for sync in (sync_handler, functools.partial(sync_handler)):
        result = await python_handler(sync)(Recorder().context(inputs={"n": 1}))
        assert loop_thread != result["thread"]


async def test_sync_handler_callbacks_run_on_the_loop_thread() -> None:
    """A sync handler's publish and report_process run on the event loop's thread."""
    threads: list[str] = []
    recorder = Recorder()

    def publish(kind: str, payload: Mapping[str, Any]) -> None:
        threads.append(threading.current_thread().name)
        recorder.events.append((kind, payload))

    def refuse(pid: int) -> None:
        raise ValueError(f"no process {pid} expected")

    work = stage(loop="python", handler=f"{__name__}:publishing_sync_handler")
    handler = LoopRegistry().resolve(pipeline(work), work)
    with pytest.raises(ValueError, match="no process 12345 expected"):
        await handler(recorder.context(publish=publish, report_process=refuse))
    expected = [threading.current_thread().name]
    assert expected == threads
    assert [("thing.done", {"n": 1})] == recorder.events


@pytest.mark.parametrize(
    ("function", "expected"), [("none_handler", {}), ("scalar_handler", {"result": 7})]
)
async def test_python_return_values(function: str, expected: dict[str, Any]) -> None:
    """None becomes no outputs; a non-mapping value becomes ``{"result": value}``."""
    work = stage(loop="python", handler=f"{__name__}:{function}")
    handler = LoopRegistry().resolve(pipeline(work), work)
    assert expected == await handler(Recorder().context())


async def test_declared_loop_types() -> None:
    """A loop type declared in the file resolves to its handler or its command."""
    py = stage("py", loop="double", description="")
    sh = stage("sh", loop="hello")
    loops = {
        "double": LoopDef("double", handler=f"{__name__}:sync_handler"),
        "hello": LoopDef("hello", command="echo hi"),
    }
    registry = LoopRegistry()
    definition = pipeline(py, sh, loops=loops)
    py_result = await registry.resolve(definition, py)(Recorder().context(inputs={"n": 1}))
    sh_result = await registry.resolve(definition, sh)(Recorder().context())
    expected = 2
    assert expected == py_result["doubled"]
    expected = {"stdout": "hi", "exit_code": 0}
    assert expected == sh_result


async def test_registered_loop_type() -> None:
    """A loop type registered in code resolves for any stage using it."""
    registry = LoopRegistry()
    registry.register("triple", async_handler)
    work = stage(loop="triple")
    result = await registry(pipeline(work), work)(Recorder().context(inputs={"n": 3}))
    expected = {"tripled": 9}
    assert expected == result


def test_file_declaration_overrides_registered_type() -> None:
    """A loop type declared in the pipeline file wins over a registered one of that name."""
    registry = LoopRegistry()
    registry.register("plan", async_handler)
    work = stage(loop="plan")
    definition = pipeline(work, loops={"plan": LoopDef("plan", command="echo file")})
    assert registry.resolve(definition, work) is not registry.resolve(pipeline(work), work)


def test_resolution_is_cached() -> None:
    """Resolving the same stage of the same definition twice gives the same handler."""
    registry = LoopRegistry()
    work = stage(loop="python", handler=f"{__name__}:sync_handler")
    assert registry.resolve(pipeline(work), work) is registry.resolve(pipeline(work), work)


@pytest.mark.parametrize(
    ("target", "message"),
    [
        (
            "no_such_module_xyz:run",
            "stage 'work': loop type 'python': handler 'no_such_module_xyz:run': "
            "cannot import module 'no_such_module_xyz': "
            "ModuleNotFoundError: No module named 'no_such_module_xyz'",
        ),
        (
            f"{__name__}:missing",
            f"stage 'work': loop type 'python': handler '{__name__}:missing': "
            f"module '{__name__}' has no attribute 'missing'",
        ),
        (
            f"{__name__}:NOT_CALLABLE",
            f"stage 'work': loop type 'python': handler '{__name__}:NOT_CALLABLE': "
            "'NOT_CALLABLE' is not callable",
        ),
        (
            "just_a_module",
            "stage 'work': loop type 'python': handler 'just_a_module': expected 'module:function'",
        ),
    ],
)
def test_loop_type_error_messages(target: str, message: str) -> None:
    """A handler that cannot be imported names the stage, the loop type and module:function."""
    work = stage(loop="python", handler=target)
    with pytest.raises(LoopTypeError) as caught:
        LoopRegistry().resolve(pipeline(work), work)
    assert message == str(caught.value)


def test_module_raising_at_import_is_reported(tmp_path: Path, monkeypatch: Any) -> None:
    """An exception raised while importing the handler's module is named in the error."""
    (tmp_path / "broken_loop_mod.py").write_text("raise RuntimeError('boom')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    work = stage("build", loop="plan")
    definition = pipeline(work, loops={"plan": LoopDef("plan", handler="broken_loop_mod:plan")})
    with pytest.raises(LoopTypeError) as caught:
        LoopRegistry().resolve(definition, work)
    expected = (
        "stage 'build': loop type 'plan': handler 'broken_loop_mod:plan': "
        "cannot import module 'broken_loop_mod': RuntimeError: boom "
        f"(raised at {tmp_path / 'broken_loop_mod.py'}:1)"
    )
    assert expected == str(caught.value)


def test_unknown_loop_type() -> None:
    """An unknown loop type is an error listing the known ones."""
    work = stage(loop="mystery")
    with pytest.raises(LoopTypeError) as caught:
        LoopRegistry().resolve(pipeline(work), work)
    expected = "stage 'work': loop type 'mystery': unknown loop type (known: command, python)"
    assert expected == str(caught.value)


@pytest.fixture
def installed_loop_package(tmp_path: Path, monkeypatch: Any) -> Iterator[None]:
    """A tiny real distribution on sys.path declaring a ``taskdaemon.loops`` entry point."""
    (tmp_path / "tiny_loops.py").write_text(
        "def shout(ctx):\n    return {'shout': ctx.inputs['word'].upper()}\n"
    )
    dist_info = tmp_path / "tiny_loops-1.0.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: tiny-loops\nVersion: 1.0\n")
    (dist_info / "entry_points.txt").write_text(
        "[taskdaemon.loops]\nshout = tiny_loops:shout\nbroken = tiny_loops:nothing_here\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield
    sys.modules.pop("tiny_loops", None)


@pytest.mark.usefixtures("installed_loop_package")
async def test_entry_point_loop_type() -> None:
    """A loop type declared by an installed package's entry point resolves and runs."""
    assert "tiny-loops" in {d.metadata["Name"] for d in metadata.distributions()}
    registry = LoopRegistry.default()
    work = stage(loop="shout")
    result = await registry.resolve(pipeline(work), work)(Recorder().context(inputs={"word": "hi"}))
    expected = {"shout": "HI"}
    assert expected == result
    assert {"shout", "broken"} <= set(registry.loop_types)


@pytest.mark.usefixtures("installed_loop_package")
def test_broken_entry_point_names_its_target() -> None:
    """An entry point whose function is missing fails at resolution, naming its target."""
    work = stage(loop="broken")
    with pytest.raises(LoopTypeError) as caught:
        LoopRegistry.default().resolve(pipeline(work), work)
    expected = (
        "stage 'work': loop type 'broken': handler 'tiny_loops:nothing_here': "
        "module 'tiny_loops' has no attribute 'nothing_here'"
    )
    assert expected == str(caught.value)


def test_builtin_types_cannot_be_replaced() -> None:
    """Registering ``python`` or ``command`` is refused."""
    with pytest.raises(LoopTypeError):
        LoopRegistry().register("command", sync_handler)


async def test_command_output_is_json_with_stderr_ignored() -> None:
    """Stderr does not disturb the JSON parsing of stdout."""
    result = await run_command("""echo noise >&2; echo '{"ok": true}'""")
    expected = {"ok": True}
    assert expected == result
    assert json.dumps(result) == '{"ok": true}'
