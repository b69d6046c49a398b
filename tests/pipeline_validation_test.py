"""``validate_pipeline``'s issues, path and message, for a stage of each kind of mistake.

The validator formats a stage's path only for an issue and tests a stage name inline before
calling ``name``; this pins every per-stage path and message (at several indexes, so a path
built from the wrong number shows) to what the validator said when it formatted each path
up front.
"""

from __future__ import annotations

import math

from taskdaemon.pipeline.model import (
    Backoff,
    InputMapping,
    LoopDef,
    Manual,
    OnCompletion,
    OnCondition,
    OnEvent,
    OutputMapping,
    Pipeline,
    RetryPolicy,
    Stage,
)
from taskdaemon.pipeline.validation import validate_pipeline


def test_each_stage_issue_has_its_path_and_message() -> None:
    """Every per-stage check that fails, at stage indexes 0 to 5: the same issues, in the
    same order, as the validator that built each stage's path before its checks."""
    bad_retry = RetryPolicy(0, Backoff(0.0, 0.5, 0.0))
    stages = (
        Stage("a", "command", (Manual(),), command="true", emits=("ok", "x" * 129)),
        Stage("Bad Name", "python", (OnCompletion("a"),), command="true", timeout=0.0),
        Stage(
            "b" * 129,
            "command",
            (),
            handler="nope",
            parallel_instances=0,
            timeout=-1.0,
            retry=bad_retry,
        ),
        Stage(
            "a",
            "lint",
            (OnEvent("missing"), OnCondition("stages.a.ok =="), Manual(True, 0.0)),
            handler="not-a-handler",
            command=" ",
            inputs=(InputMapping("x", "request.x"), InputMapping("x", "stages.zz")),
            outputs=(OutputMapping("y", "result.y"),),
            emits=("e",),
        ),
        Stage(
            "c",
            "python",
            (OnCompletion("b"), OnEvent("ok", "event.x ==")),
            handler="m:f",
            emits=("ok", "y" * 200),
        ),
        Stage("d", "ralph", (Manual(),), handler="m:f"),
    )
    pipeline = Pipeline("demo", stages, loops={"lint": LoopDef("lint", command="x")})
    expected = [
        "stages[0].emits[1]: event type 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx…' is "
        "129 characters long (the limit is 128)",
        "stages[1].name: invalid name 'Bad Name' (expected [a-z0-9][a-z0-9_.-]*: write 'bad-name')",
        "stages[1].handler: required for loop 'python'",
        "stages[1].command: not used by loop 'python'",
        "stages[1].timeout: must be > 0, got 0",
        "stages[2].name: name 'bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb…' is 129 "
        "characters long (the limit is 128)",
        "stages[2].command: required for loop 'command'",
        "stages[2].handler: not used by loop 'command'",
        "stages[2].handler: invalid handler 'nope' (expected module:function)",
        "stages[2].parallel_instances: must be >= 1, got 0",
        "stages[2].timeout: must be > 0, got -1",
        "stages[2].retry.max_attempts: must be >= 1, got 0",
        "stages[2].retry.backoff.initial: must be > 0, got 0",
        "stages[2].retry.backoff.factor: must be >= 1, got 0.5",
        "stages[2].retry.backoff.max: must be > 0, got 0",
        "stages[2].triggers: must not be empty (an entry stage has triggers: [{manual: "
        "{approval_required: false}}])",
        "stages[3].name: duplicate stage name 'a' (first at stages[0]: rename one)",
        "stages[3].handler: invalid handler 'not-a-handler' (expected module:function)",
        "stages[3].command: must not be empty",
        "stages[3].triggers[0].on_event.type: no stage emits 'missing' and it is not in "
        "external_events (add it to the emits of the stage that publishes it, or write "
        "external_events: ['missing'] for one published from outside the run)",
        "stages[3].triggers[1].on_condition.expression: syntax error at column 15: "
        "the expression ends at '==', with nothing after it",
        "stages[3].triggers[2].manual.timeout: must be > 0, got 0",
        "stages[3].inputs.x: duplicate input name",
        "stages[3].inputs.x.from: reads unknown stage 'zz' (the stages: 'a', 'Bad Name', "
        "'bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb…', 'c', 'd')",
        "stages[4].emits[1]: event type 'yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy…' is "
        "200 characters long (the limit is 128)",
        "stages[4].triggers[0].on_completion.stage: unknown stage 'b' (the stages: 'a', "
        "'Bad Name', 'bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb…', 'c', 'd')",
        "stages[4].triggers[1].on_event.filter: syntax error at column 11: the expression "
        "ends at '==', with nothing after it",
        "stages[5].loop: unknown loop type 'ralph' (known: command, lint, python)",
    ]
    assert expected == [f"{i.path}: {i.message}" for i in validate_pipeline(pipeline)]


def _issues(pipeline: Pipeline, *, ran: bool = False) -> list[str]:
    return [f"{i.path}: {i.message}" for i in validate_pipeline(pipeline, ran=ran)]


_PIPELINE_ISSUES = [
    "external_events[0]: event type 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx…' is 129 "
    "characters long (the limit is 128)",
    "concurrency: must be >= 1, got 0",
    "timeout: must be finite, got inf",
    "retry.max_attempts: must be >= 1, got 0",
    "retry.backoff.initial: must be > 0, got -1",
    "retry.backoff.factor: must be >= 1, got 0.5",
    "retry.backoff.max: must be finite, got inf",
]


def _faulty_pipeline() -> Pipeline:
    """Every pipeline-level mistake once, and a stage whose names are exactly as long as
    allowed."""
    long_loop = "l" * 129
    loops = {
        "python": LoopDef("python", handler="m:f"),
        "both": LoopDef("both", handler="m:f", command="x"),
        "neither": LoopDef("neither"),
        "bad": LoopDef("bad", handler="nope"),
        "blank": LoopDef("blank", command=" "),
        long_loop: LoopDef(long_loop, command="x"),
    }
    stage = Stage("a" * 128, "command", (Manual(),), command="true", emits=("e" * 128,))
    return Pipeline(
        "demo",
        (stage,),
        concurrency=0,
        timeout=math.inf,
        retry=RetryPolicy(0, Backoff(-1.0, 0.5, math.inf)),
        loops=loops,
        external_events=("x" * 129, "ok"),
    )


def test_each_pipeline_issue_has_its_path_and_message() -> None:
    """The pipeline's own fields and its ``loops:`` have their issues at their own paths
    (no stage's); names of 128 characters pass."""
    expected = [
        *_PIPELINE_ISSUES,
        "loops.python: shadows the built-in loop type 'python'",
        "loops.both: expected exactly one of 'handler' or 'command'",
        "loops.neither: expected exactly one of 'handler' or 'command'",
        "loops.bad.handler: invalid handler 'nope' (expected module:function)",
        "loops.blank.command: must not be empty",
        f"loops.{'l' * 129}: loop type 'lllllllllllllllllllllllllllllllllllllll…' is 129 "
        "characters long (the limit is 128)",
    ]
    assert expected == _issues(_faulty_pipeline())
    assert ["stages: must not be empty"] == _issues(Pipeline("demo", ()))


def test_a_definition_that_ran_is_checked_only_for_what_every_run_obeys() -> None:
    """``ran``: the pipeline's ranges and names still, but neither its ``loops:`` nor its
    entry stage nor its events, which a pipeline built in code need not declare."""
    no_entry = Pipeline(
        "demo",
        (
            Stage("b", "command", (OnCompletion("a"),), command="true"),
            Stage("a", "command", (OnEvent("ok"),), command="true"),
        ),
    )
    assert _PIPELINE_ISSUES == _issues(_faulty_pipeline(), ran=True)
    assert [] == _issues(no_entry, ran=True)
    assert [
        "stages[1].triggers[0].on_event.type: no stage emits 'ok' and it is not in external_events"
        " (add it to the emits of the stage that publishes it, or write external_events: ['ok'] "
        "for one published from outside the run)",
        "stages: no entry stage (a stage with no upstream stages and a manual, on_condition "
        "or external on_event trigger: give the first stage triggers: [{manual: {}}])",
    ] == _issues(no_entry)


def test_a_single_operator_says_what_cel_writes() -> None:
    """``=``, ``&``, ``|``, ``and`` and ``or``, as other languages write them, are CEL syntax
    errors; the issue says what CEL writes, in plain words. Before, only the parser's words
    (``token recognition error at: '= '``, ``mismatched input 'and'``)."""
    conditions = [
        "stages.a.status = 'success'",
        "true & true",
        "true | false",
        "true and true",
        "true or false",
    ]
    stages = [Stage("a", "command", (Manual(),), command="true")]
    stages += [
        Stage(f"s{index}", "command", (OnCondition(source),), command="true")
        for index, source in enumerate(conditions)
    ]
    found = [issue.message for issue in validate_pipeline(Pipeline("ops", tuple(stages)))]
    assert [
        "syntax error at column 17: '=' (CEL compares with ==)",
        "syntax error at column 6: '&' (CEL's and is &&)",
        "syntax error at column 6: '|' (CEL's or is ||)",
        "syntax error at column 6: unexpected 'and' (CEL's and is &&)",
        "syntax error at column 6: unexpected 'or' (CEL's or is ||)",
    ] == found
