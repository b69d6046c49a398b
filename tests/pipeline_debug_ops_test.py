"""The debugger's requests and answers (``debug_ops.py``), on one run: each action's answer and
refusals, what it does to the run, and run data held as the spans hold it: secrets redacted,
whatever the transport (the prompt of ``taskdaemon debug``, the control socket, HTTP). Prompts
attaching and detaching: ``pipeline_debug_ops_prompts_test.py``; several runs on one engine:
``pipeline_debug_ops_runs_test.py``."""

from __future__ import annotations

import asyncio
import logging
import textwrap
from pathlib import Path
from typing import Any

import pytest

from cli_support import taskdaemon
from pipeline_debug_ops_support import FORKED, Debugged, Hits, debugged
from pipeline_engine_support import Recorder, fail, pipeline, stage
from taskdaemon.pipeline.debug_ops import ACTIONS
from taskdaemon.pipeline.events import BreakpointResumed, InputOverridden
from taskdaemon.pipeline.model import OnEvent

SECRET = "S3KR1Tdbg42value"


PIPELINE = """\
    name: leaky
    stages:
      - name: a
        command: 'echo "{\\"client_secret\\": \\"$TASKDAEMON_INPUT_API_KEY\\"}"'
        triggers: [{manual: {approval_required: false}}]
        inputs: {api_key: request.api_key}
      - name: b
        command: "true"
        triggers: [{on_completion: {stage: a}}]
        inputs: {api_key: request.api_key}
"""


@pytest.mark.slow
def test_the_prompts_inputs_outputs_and_set_show_no_secret(home: Path) -> None:
    """At a breakpoint, ``inputs`` (twice), ``outputs`` and the answer to ``set`` show a secret
    input, a secret output and a secret override as ``[REDACTED]``, as the spans hold them."""
    path = home / "leaky.yaml"
    path.write_text(textwrap.dedent(PIPELINE))
    commands = f'inputs b\noutputs b\nset b api_key "{SECRET}-set"\ninputs b\ncontinue\n'
    done = taskdaemon(
        home, "debug", str(path), "--break", "b", "-q", "-i", f"api_key={SECRET}", stdin=commands
    )
    assert "run ended success" in done.stdout, done.stdout + done.stderr
    answers = "\n".join(  # on a pipe the prompt echoes each command typed: not an answer
        line for line in done.stdout.splitlines() if not line.startswith("(taskdaemon)")
    )
    assert (0, 4) == (answers.count(SECRET), answers.count("[REDACTED]")), done.stdout


async def test_an_unknown_action_is_refused_with_the_list_of_actions() -> None:
    """An action not in ACTIONS answers not ok, naming it and every action there is."""
    async with debugged() as run:
        answer = await run.ops({"action": "jump"})
    assert {"ok": False, "error": f"unknown action 'jump' ({', '.join(ACTIONS)})"} == answer


async def test_a_long_unknown_action_is_quoted_cut() -> None:
    """A 100,000-character action is quoted by its first 39 characters and an ellipsis
    (``quoting.quote``), as every refusal quotes, not sent back whole."""
    async with debugged() as run:
        answer = await run.ops({"action": "j" * 100_000})
    error = f"unknown action '{'j' * 39}…' ({', '.join(ACTIONS)})"
    assert {"ok": False, "error": error} == answer


async def test_state_answers_the_sessions_state_and_whether_the_run_ended() -> None:
    """``state`` is the debug session's view of the run and ``done``, with ``ok``."""
    async with debugged() as run:
        answer = await run.ops({"action": "state"})
        expected = {"ok": True, "state": run.engine.with_debug(True).state(run.run_id)}
    assert {**expected, "done": False} == answer


async def test_an_empty_text_field_is_as_if_absent() -> None:
    """``stage`` given as an empty string resumes whatever is paused, as no stage does."""
    async with debugged() as run:
        await run.paused_at("a")
        answer = await run.ops({"action": "continue", "stage": ""})
    assert {"ok": True, "resumed": 1} == answer


async def test_a_text_field_of_another_type_is_refused() -> None:
    """A ``stage`` that is not a string answers not ok, naming the field."""
    async with debugged() as run:
        answer = await run.ops({"action": "inspect", "stage": 3})
    assert {"ok": False, "error": "'stage' must be a string"} == answer


async def test_continue_records_who_resumed() -> None:
    """``continue`` with ``by`` resumes the pause and records ``by`` on its resume event."""
    recorder = Recorder()
    async with debugged(recorder) as run:
        await run.paused_at("a")
        answer = await run.ops({"action": "continue", "stage": "a", "by": "ann"})
        await run.handle.wait()
    resumed = [(e.stage, e.action, e.by) for e in recorder.of(BreakpointResumed)]
    assert ({"ok": True, "resumed": 1}, [("a", "continue", "ann")]) == (answer, resumed)


async def test_a_resume_without_by_is_recorded_as_the_debuggers() -> None:
    """A ``continue`` that does not say who is recorded as by ``debugger``."""
    recorder = Recorder()
    async with debugged(recorder) as run:
        await run.paused_at("a")
        await run.ops({"action": "continue"})
        await run.handle.wait()
    assert ["debugger"] == [e.by for e in recorder.of(BreakpointResumed)]


@pytest.mark.parametrize("action", ["step", "skip"])
async def test_step_and_skip_answer_the_execution_they_resumed(action: str) -> None:
    """``step`` and ``skip`` of a stage answer the paused execution they resumed, and record
    the action and who on its resume event."""
    recorder = Recorder()
    async with debugged(recorder) as run:
        await run.paused_at("a")
        (paused,) = run.engine.with_debug(True).paused(run.run_id)
        answer = await run.ops({"action": action, "stage": "a", "by": "bo"})
        run.engine.with_debug(False)
        await run.handle.wait()
    resumed = [(e.task_run_id, e.action, e.by) for e in recorder.of(BreakpointResumed)]
    expected = {"ok": True, "resumed": paused.as_dict()}
    assert (expected, [("a.0.1", action, "bo")]) == (answer, resumed)


async def test_retry_answers_the_failed_execution_it_resumed() -> None:
    """``retry`` of a stage paused at its failure answers that execution and records the retry
    and who on its resume event."""
    recorder = Recorder()
    async with debugged(recorder, {"a": fail}) as run:
        await run.ops({"action": "break", "stage": "a", "on": "failure"})
        run.release()
        await run.engine.with_debug(True).wait_paused(run.run_id)
        (paused,) = run.engine.with_debug(True).paused(run.run_id)
        answer = await run.ops({"action": "retry", "stage": "a", "by": "di"})
        run.engine.with_debug(False)
        await run.handle.wait()
    resumed = [(e.task_run_id, e.action, e.by) for e in recorder.of(BreakpointResumed)]
    expected = {"ok": True, "resumed": paused.as_dict()}
    assert (expected, [("a.0.1", "retry", "di")]) == (answer, resumed)


async def test_a_step_with_nothing_paused_is_refused() -> None:
    """``step`` when nothing is paused answers not ok with the session's reason."""
    async with debugged() as run:
        answer = await run.ops({"action": "step", "stage": "a"})
    error = f"stage 'a' of run {run.run_id} is not paused"
    assert {"ok": False, "error": error} == answer


async def test_set_overrides_the_input_and_answers_it_redacted() -> None:
    """``set`` gives the paused stage the new value, records who set it, and answers the input
    as the stage will see it, redacted by its name."""
    seen: dict[str, Any] = {}

    async def a(ctx: Any) -> None:
        seen.update(ctx.inputs)

    recorder = Recorder()
    async with debugged(recorder, {"a": a}, redact_patterns=("n",)) as run:
        await run.paused_at("a")
        answer = await run.ops(
            {"action": "set", "stage": "a", "input": "n", "value": 7, "by": "cy"}
        )
        await run.ops({"action": "continue"})
        await run.handle.wait()
    overridden = [(e.name, e.new, e.by) for e in recorder.of(InputOverridden)]
    assert ({"ok": True, "inputs": {"n": "[REDACTED]"}}, {"n": 7}, [("n", 7, "cy")]) == (
        answer,
        seen,
        overridden,
    )


@pytest.mark.parametrize(
    ("request_fields", "error"),
    [({"value": 1}, "'input' is required"), ({"input": "n"}, "'value' is required")],
)
async def test_set_without_its_input_or_value_is_refused(
    request_fields: dict[str, Any], error: str
) -> None:
    """``set`` without ``input``, or without ``value``, answers not ok naming the field."""
    async with debugged() as run:
        await run.paused_at("a")
        answer = await run.ops({"action": "set", "stage": "a", **request_fields})
    assert {"ok": False, "error": error} == answer


async def test_inspect_answers_the_sessions_view_of_the_stage() -> None:
    """``inspect`` answers what the debug session says of the stage."""
    async with debugged() as run:
        await run.paused_at("a")
        answer = await run.ops({"action": "inspect", "stage": "a"})
        expected = run.engine.with_debug(True).inspect(run.run_id, "a")
    assert {"ok": True, "stage": expected} == answer


async def test_break_adds_a_breakpoint_of_this_run() -> None:
    """``break`` answers the new breakpoint, on this run, with its condition and kind."""
    async with debugged() as run:
        answer = await run.ops(
            {"action": "break", "stage": "a", "when": "inputs.n > 0", "on": "failure"}
        )
        (bp,) = run.engine.with_debug(True).breakpoints(run.run_id)
    assert {"ok": True, "breakpoint": bp.as_dict()} == answer
    assert ("a", "failure", "inputs.n > 0", run.run_id) == (bp.stage, bp.on, bp.when, bp.run_id)


async def test_a_breakpoint_without_on_is_before_the_start() -> None:
    """``break`` without ``on`` sets a breakpoint on the stage's start."""
    async with debugged() as run:
        answer = await run.ops({"action": "break", "stage": "a"})
    assert "start" == answer["breakpoint"]["on"]


async def test_a_breakpoint_on_an_unknown_stage_is_refused_naming_the_stages() -> None:
    """``break`` on a stage the pipeline lacks answers not ok with the stages there are."""
    async with debugged() as run:
        answer = await run.ops({"action": "break", "stage": "zz"})
    assert {"ok": False, "error": "no stage 'zz' (stages: hold, a, b)"} == answer


async def test_an_event_breakpoint_no_stage_of_the_run_listens_for_is_refused() -> None:
    """``break`` on an event type that starts no stage of the run (none listens for it) could
    never pause: it is refused, naming the types the stages listen for, as an unknown stage is
    (it was accepted, and the user waited for a pause that could not come)."""
    async with debugged() as run:
        answer = await run.ops({"action": "break", "on": "event:no.such"})
        of_stage = await run.ops({"action": "break", "stage": "a", "on": "event:no.such"})
        left = run.session.breakpoints()
    assert {"ok": False, "error": "no stage listens for event 'no.such' (events: none)"} == answer
    error = "stage 'a' does not listen for event 'no.such' (it listens for: none)"
    assert {"ok": False, "error": error} == of_stage
    assert [] == left


async def test_an_event_breakpoint_of_a_type_a_stage_listens_for_is_set() -> None:
    """``break`` on an event type a stage listens for is set, for any stage or for that one."""
    listening = pipeline(stage("hold"), stage("a", OnEvent("go")), stage("b", OnEvent("go")))
    async with debugged(definition=listening) as run:
        anywhere = await run.ops({"action": "break", "on": "event:go"})
        of_stage = await run.ops({"action": "break", "stage": "b", "on": "event:go"})
        elsewhere = await run.ops({"action": "break", "stage": "hold", "on": "event:go"})
    assert ["event:go", "event:go"] == [anywhere["breakpoint"]["on"], of_stage["breakpoint"]["on"]]
    error = "stage 'hold' does not listen for event 'go' (it listens for: none)"
    assert {"ok": False, "error": error} == elsewhere


@pytest.mark.parametrize(
    ("stage", "when", "error"),
    [
        (
            "b",
            "stages.zz.outputs.x == 1",
            "breakpoint condition reads stage 'zz', which the pipeline",
        ),
        (
            None,
            "stages['zz'].status == 'x'",
            "breakpoint condition reads stage 'zz', which the pipeline",
        ),
        ("a", "inputs.nosuch == 1", "breakpoint condition reads input 'nosuch', which stage 'a'"),
        ("a", "inputs.nosuch ==", "breakpoint condition 'inputs.nosuch ==': does not compile"),
    ],
)
async def test_a_condition_reading_what_the_run_lacks_is_refused(
    stage: str | None, when: str, error: str
) -> None:
    """A condition that reads a stage the run does not have, or an input the breakpoint's
    stage does not declare, could never hold: refused, naming what there is (it was set, and
    its evaluation error was known only to ``info breakpoints`` after a pause that never
    came)."""
    async with debugged() as run:
        answer = await run.ops({"action": "break", "stage": stage, "when": when})
        left = run.session.breakpoints()
    assert (False, []) == (answer["ok"], left)
    assert answer["error"].startswith(error), answer["error"]


async def test_a_condition_reading_what_the_run_has_is_set() -> None:
    """Conditions over the run's stages and the stage's declared inputs are set."""
    async with debugged() as run:
        answers = [
            await run.ops({"action": "break", "stage": "a", "when": when})
            for when in ("inputs.n > 0 && stages.hold.status == 'success'", "size(inputs) > 0")
        ]
    assert [True, True] == [answer["ok"] for answer in answers]


async def test_delete_by_id_deletes_that_breakpoint_only() -> None:
    """``delete`` with an id deletes that breakpoint and answers one deleted."""
    async with debugged() as run:
        first = (await run.ops({"action": "break", "stage": "a"}))["breakpoint"]["id"]
        await run.ops({"action": "break", "stage": "b"})
        answer = await run.ops({"action": "delete", "id": first})
        left = [bp.stage for bp in run.engine.with_debug(True).breakpoints(run.run_id)]
    assert ({"ok": True, "deleted": 1}, ["b"]) == (answer, left)


async def test_delete_without_id_deletes_every_breakpoint_of_the_run() -> None:
    """``delete`` without an id deletes all of this run's breakpoints and answers how many."""
    async with debugged() as run:
        await run.ops({"action": "break", "stage": "a"})
        await run.ops({"action": "break", "stage": "b"})
        answer = await run.ops({"action": "delete"})
        left = run.engine.with_debug(True).breakpoints(run.run_id)
    assert ({"ok": True, "deleted": 2}, []) == (answer, left)


@pytest.mark.parametrize("number", ["1", True, 1.0])
async def test_delete_with_an_id_that_is_not_an_integer_is_refused(number: object) -> None:
    """An ``id`` that is a string, a bool or a float answers not ok, and nothing is deleted."""
    async with debugged() as run:
        await run.ops({"action": "break", "stage": "a"})
        answer = await run.ops({"action": "delete", "id": number})
        left = len(run.engine.with_debug(True).breakpoints(run.run_id))
    assert ({"ok": False, "error": "'id' must be an integer"}, 1) == (answer, left)


async def test_sync_flushes_the_root_loggers_handlers_past_a_failing_one() -> None:
    """``sync`` flushes every root handler, a handler whose flush raises included, and
    answers ok."""
    flushed: list[str] = []

    class Handler(logging.Handler):
        def __init__(self, name: str, broken: bool) -> None:
            super().__init__()
            self.label, self.broken = name, broken

        def emit(self, record: logging.LogRecord) -> None:
            pass

        def flush(self) -> None:
            flushed.append(self.label)
            if self.broken:
                raise OSError("disk gone")

    handlers = [Handler("first", True), Handler("second", False)]
    root = logging.getLogger()
    for handler in handlers:
        root.addHandler(handler)
    try:
        async with debugged() as run:
            answer = await run.ops({"action": "sync"})
    finally:
        for handler in handlers:
            root.removeHandler(handler)
    assert ({"ok": True}, ["first", "second"]) == (answer, flushed)


async def test_dump_without_a_writer_is_refused() -> None:
    """``dump`` in a process that cannot write dumps answers not ok, saying so."""
    async with debugged() as run:
        answer = await run.ops({"action": "dump"})
    assert {"ok": False, "error": "this process cannot write debug dumps"} == answer


async def test_dump_answers_the_path_the_writer_wrote() -> None:
    """``dump`` calls the writer with the run and the path asked for, and answers its path."""
    calls: list[tuple[str, str | None]] = []

    async def write(run_id: str, path: str | None) -> dict[str, str]:
        calls.append((run_id, path))
        return {"path": "/dumps/x.tar.gz"}

    async with debugged(dump=write) as run:
        answer = await run.ops({"action": "dump", "path": "here.tar.gz"})
    assert ({"ok": True, "path": "/dumps/x.tar.gz"}, [(run.run_id, "here.tar.gz")]) == (
        answer,
        calls,
    )


async def test_settling_answers_the_writers_bound_and_none_without_one() -> None:
    """``settling`` answers how long a dump asked now would first wait (the writer's
    ``settling``), 0 for a writer that never waits and in a process without dumps."""

    async def write(run_id: str, path: str | None) -> dict[str, str]:
        return {"path": "/dumps/x.tar.gz"}

    class Waits:
        settling = staticmethod(lambda: 60.0)

        async def __call__(self, run_id: str, path: str | None) -> dict[str, str]:
            return await write(run_id, path)

    answers = []
    for dump in (Waits(), write, None):
        async with debugged(dump=dump) as run:
            answers.append(await run.ops({"action": "settling"}))
    assert [60.0, 0, 0] == [answer.pop("seconds") for answer in answers]
    assert [{"ok": True}] * 3 == answers


async def test_an_error_text_is_redacted_by_shape() -> None:
    """A refusal quoting a secret-shaped text answers it redacted."""
    token = "ghp_" + "a1B2" * 9
    async with debugged() as run:
        answer = await run.ops({"action": "break", "stage": token})
    assert {"ok": False, "error": "no stage '[REDACTED]' (stages: hold, a, b)"} == answer


async def test_run_data_is_redacted_by_key_and_stage_names_are_not() -> None:
    """In an answer, run data (``inputs``) is redacted by key while a map keyed by stage names
    keeps a stage named like a secret."""
    async with debugged(redact_patterns=("n", "a")) as run:
        await run.paused_at("a")
        answer = await run.ops({"action": "state"})
    stages = answer["state"]["stages"]
    paused_inputs = [p["inputs"] for p in answer["state"]["paused"]]
    assert (True, [{"n": "[REDACTED]"}]) == ("a" in stages, paused_inputs)


async def test_wait_answers_the_pause_once_there_is_one() -> None:
    """``wait`` returns once a stage is paused, with the pause, the run not done, its status
    and no error."""
    async with debugged() as run:
        await run.ops({"action": "break", "stage": "a"})
        waiting = asyncio.ensure_future(run.ops({"action": "wait"}))
        run.release()
        answer = await waiting
        (paused,) = run.engine.with_debug(True).paused(run.run_id)
    expected = {"ok": True, "paused": [paused.as_dict()], "done": False, "error": None}
    assert {**expected, "status": "paused"} == answer


async def test_wait_with_a_zero_timeout_answers_at_once() -> None:
    """``wait`` with timeout 0 and nothing paused answers the running run without a pause."""
    async with debugged() as run:
        answer = await run.ops({"action": "wait", "timeout": 0})
    assert {"ok": True, "paused": [], "done": False, "status": "running", "error": None} == answer


async def test_wait_on_a_failed_run_answers_its_error() -> None:
    """``wait`` on a run that ended in failure answers done, its status and its error."""
    async with debugged(handlers={"a": fail}) as run:
        run.release()
        await run.handle.wait()
        answer = await run.ops({"action": "wait", "timeout": 0})
        error = run.handle.snapshot().error
    assert {"ok": True, "paused": [], "done": True, "status": "failure", "error": error} == answer
    assert error is not None


@pytest.mark.parametrize("seconds", [-1, True, "5"])
async def test_wait_with_a_bad_timeout_is_refused(seconds: object) -> None:
    """A negative, boolean or text ``timeout`` answers not ok."""
    async with debugged() as run:
        answer = await run.ops({"action": "wait", "timeout": seconds})
    assert {"ok": False, "error": "'timeout' must be a number of seconds"} == answer


async def test_done_says_whether_the_run_ended() -> None:
    """``done()`` is False while the run goes on and True once it ended."""
    async with debugged() as run:
        before = run.ops.done()
        run.release()
        await run.handle.wait()
        after_end = run.ops.done()
    assert (False, True) == (before, after_end)


async def _last_paused(run: Debugged) -> str:
    """The stage of ``FORKED`` paused last, once ``a`` and ``c`` both are."""
    await run.paused_at("a", "c")
    return run.session.paused(run.run_id)[-1].stage


async def test_continue_of_a_stage_resumes_that_stage_only() -> None:
    """``continue`` naming one of two paused stages resumes that one only."""
    async with debugged(definition=FORKED) as run:
        last = await _last_paused(run)
        answer = await run.ops({"action": "continue", "stage": last})
    assert {"ok": True, "resumed": 1} == answer


async def test_skip_of_a_stage_skips_that_stage() -> None:
    """``skip`` naming a stage skips that stage's pause, not the one paused first."""
    async with debugged(definition=FORKED) as run:
        last = await _last_paused(run)
        answer = await run.ops({"action": "skip", "stage": last})
    assert f"{last}.0.1" == answer["resumed"]["task_run_id"]


async def test_retry_of_a_stage_retries_that_stage() -> None:
    """``retry`` naming a stage retries that stage's failed execution, not the one paused
    first."""
    async with debugged(handlers={"a": fail, "c": fail}, definition=FORKED) as run:
        await run.ops({"action": "break", "stage": "a", "on": "failure"})
        await run.ops({"action": "break", "stage": "c", "on": "failure"})
        hits = Hits(run.run_id, 2)
        run.engine.add_observer(hits)
        run.release()
        await hits.reached.wait()
        last = run.session.paused(run.run_id)[-1].stage
        answer = await run.ops({"action": "retry", "stage": last})
    assert f"{last}.0.1" == answer["resumed"]["task_run_id"]


async def test_step_with_nothing_paused_and_no_stage_resumes_nothing() -> None:
    """``step`` without a stage when nothing is paused answers that nothing was resumed."""
    async with debugged() as run:
        answer = await run.ops({"action": "step"})
    assert {"ok": True, "resumed": None} == answer


async def test_set_without_a_stage_overrides_the_one_paused() -> None:
    """``set`` that names no stage acts on the one stage paused, as ``env`` and the prompt's
    ``set`` do. It was refused with ``nothing is paused``, untrue with ``a`` paused."""
    async with debugged() as run:
        await run.paused_at("a")
        answer = await run.ops({"action": "set", "input": "n", "value": 7})
    assert {"ok": True, "inputs": {"n": 7}} == answer


async def test_inspect_without_a_stage_is_refused() -> None:
    """``inspect`` that names no stage answers not ok: the run has no stage ''."""
    async with debugged() as run:
        answer = await run.ops({"action": "inspect"})
    error = f"run {run.run_id} of pipeline 'p' has no stage '' (stages: hold, a, b)"
    assert {"ok": False, "error": error} == answer


async def test_a_breakpoint_condition_is_redacted_by_shape_in_the_answer() -> None:
    """A breakpoint whose condition quotes a secret-shaped text answers it redacted, in its
    condition and in its description."""
    token = "ghp_" + "a1B2" * 9
    async with debugged() as run:
        answer = await run.ops({"action": "break", "stage": "a", "when": f'"{token}" != ""'})
    written = answer["breakpoint"]
    assert (False, False) == (token in written["when"], token in written["description"])
