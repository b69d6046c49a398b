"""The definition's canonical JSON, written directly (``stage_payload.stage_json``), against the
texts the general way (a payload of dicts through ``json.dumps``) wrote before: the same bytes,
so the same definition hash, for stages a file loads to and for odd values built in code."""

from __future__ import annotations

import json

import pytest

from taskdaemon.pipeline import stage_payload as payloads
from taskdaemon.pipeline.config import parse_pipeline
from taskdaemon.pipeline.model import (
    Backoff,
    ErrorStrategy,
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
    TriggerMode,
)


def _cases() -> dict[str, Pipeline]:
    entry = Stage(name="a", loop="python", handler="m:f", triggers=(Manual(),))
    full = Stage(
        name="build",
        loop="python",
        triggers=(
            Manual(approval_required=True, timeout=60.0),
            OnCompletion(stage="a", success_only=False),
            OnEvent(type="spec.ready", filter="event.ok"),
            OnEvent(type="spec.done"),
            OnCondition(expression='stages["a"].ok && "x" != "\\u00e9"'),
        ),
        trigger_mode=TriggerMode.ALL,
        inputs=(InputMapping("goal", "request.goal"), InputMapping("n", "1", required=False)),
        outputs=(OutputMapping("out", "result.x"), OutputMapping("z", "result.z", False)),
        parallel_instances=3,
        timeout=2.5,
        retry=RetryPolicy(max_attempts=3, backoff=Backoff(initial=0.5, factor=3.0, max=9.0)),
        emits=("done", "spec.ready"),
        command=None,
        handler="pkg.mod:run",
        description='all of it: "quotes", \\ back, tab\t, new\nline, \x00 \x1f \x7f é ü 日本 😀',
    )
    odd = Stage(
        name="odd",
        loop="command",
        command="echo 'ünï' && exit 0",
        triggers=(OnCompletion(stage="build"),),
        outputs=(),
        timeout=1e-07,
        retry=RetryPolicy(),
        description="",
    )
    big = Stage(
        name="big",
        loop="command",
        command="true",
        triggers=(Manual(approval_required=False, timeout=None),),
        parallel_instances=10**20,
        timeout=1e16,
        retry=RetryPolicy(max_attempts=7, backoff=Backoff(initial=0.1, factor=1.5, max=1e300)),
    )
    # Values no loaded file holds (a pipeline built in code, unvalidated): the general way.
    built = [
        Stage(name="inf", loop="command", command="x", triggers=(Manual(timeout=float("inf")),)),
        Stage(name="nan", loop="command", command="x", triggers=(Manual(),), timeout=float("nan")),
        Stage(name="ti", loop="command", command="x", triggers=(Manual(),), timeout=5),
        Stage(name="neg", loop="command", command="x", triggers=(Manual(),), timeout=-1.0),
        Stage(
            name="bool", loop="command", command="x", triggers=(Manual(),), parallel_instances=True
        ),  # type: ignore[arg-type]
        Stage(name="fl", loop="command", command="x", triggers=(Manual(),), parallel_instances=2.0),  # type: ignore[arg-type]
        Stage(
            name="lists",
            loop="command",
            command="x",
            triggers=[Manual()],
            emits=["e"],
            inputs=[InputMapping("i", "1")],
        ),  # type: ignore[arg-type]
        Stage(
            name="strmode", loop="command", command="x", triggers=(Manual(),), trigger_mode="all"
        ),  # type: ignore[arg-type]
        Stage(
            name="nums",
            loop="command",
            command="x",
            triggers=(Manual(approval_required=1),),
            retry=RetryPolicy(2, Backoff(1, 2, 3)),
        ),  # type: ignore[arg-type]
        Stage(
            name="nonstr",
            loop="command",
            command=5,
            triggers=(OnEvent(type="t", filter=7),),
            description=None,
            emits=("e", None),
        ),  # type: ignore[arg-type]
        Stage(
            name="none", loop="command", command="x", triggers=(Manual(),), inputs=None, emits="ab"
        ),  # type: ignore[arg-type]
        Stage(
            name="obj",
            loop="command",
            command="x",
            triggers=(Manual(),),
            handler=ErrorStrategy.RETRY,
            retry=Backoff(),
        ),  # type: ignore[arg-type]
        Stage(
            name="dict",
            loop="command",
            command="x",
            triggers=(Manual(),),
            inputs=({"b": 1, "a": (2,)},),
        ),  # type: ignore[arg-type]
        Stage(
            name="ftimeout",
            loop="command",
            command="x",
            triggers=(OnCompletion("a", success_only=0),),
        ),  # type: ignore[arg-type]
    ]
    return {
        "one": Pipeline(name="one", stages=(entry,)),
        "full": Pipeline(
            name="full",
            stages=(entry, full, odd, big),
            description="d \u2028 é",
            concurrency=2,
            timeout=3600.0,
            error_strategy=ErrorStrategy.CONTINUE,
            retry=RetryPolicy(max_attempts=2, backoff=Backoff(initial=2.0)),
            loops={"zed": LoopDef("zed", command="z"), "alpha": LoopDef("alpha", handler="a:b")},
            external_events=("push", "tag"),
        ),
        "built": Pipeline(name="built", stages=tuple(built), timeout=7),  # type: ignore[arg-type]
        "empty": Pipeline(name="", stages=()),
    }


#: Each case's canonical JSON as the code before ``stage_json`` wrote it (kept, not recomputed).
EXPECTED = {
    "one": (
        '{"concurrency":4,"description":"","error_strategy":"fail","external_events":[]'
        ',"loops":{},"name":"one","retry":{"backoff":{"factor":2.0,"initial":1.0,"max":'
        '30.0},"max_attempts":1},"stages":[{"command":null,"description":"","emits":[],'
        '"handler":"m:f","inputs":[],"loop":"python","name":"a","outputs":null,"paralle'
        'l_instances":1,"retry":null,"timeout":null,"trigger_mode":"any","triggers":[{"'
        'manual":{"approval_required":false,"timeout":null}}]}],"timeout":null}'
    ),
    "full": (
        '{"concurrency":2,"description":"d \\u2028 \\u00e9","error_strategy":"continue"'
        ',"external_events":["push","tag"],"loops":{"alpha":{"command":null,"handler":"'
        'a:b","name":"alpha"},"zed":{"command":"z","handler":null,"name":"zed"}},"name"'
        ':"full","retry":{"backoff":{"factor":2.0,"initial":2.0,"max":30.0},"max_attemp'
        'ts":2},"stages":[{"command":null,"description":"","emits":[],"handler":"m:f","'
        'inputs":[],"loop":"python","name":"a","outputs":null,"parallel_instances":1,"r'
        'etry":null,"timeout":null,"trigger_mode":"any","triggers":[{"manual":{"approva'
        'l_required":false,"timeout":null}}]},{"command":null,"description":"all of it:'
        ' \\"quotes\\", \\\\ back, tab\\t, new\\nline, \\u0000 \\u001f \\u007f \\u00e9 '
        '\\u00fc \\u65e5\\u672c \\ud83d\\ude00","emits":["done","spec.ready"],"handler"'
        ':"pkg.mod:run","inputs":[{"name":"goal","required":true,"source":"request.goal'
        '"},{"name":"n","required":false,"source":"1"}],"loop":"python","name":"build",'
        '"outputs":[{"name":"out","required":true,"source":"result.x"},{"name":"z","req'
        'uired":false,"source":"result.z"}],"parallel_instances":3,"retry":{"backoff":{'
        '"factor":3.0,"initial":0.5,"max":9.0},"max_attempts":3},"timeout":2.5,"trigger'
        '_mode":"all","triggers":[{"manual":{"approval_required":true,"timeout":60.0}},'
        '{"on_completion":{"stage":"a","success_only":false}},{"on_event":{"filter":"ev'
        'ent.ok","type":"spec.ready"}},{"on_event":{"filter":null,"type":"spec.done"}},'
        '{"on_condition":{"expression":"stages[\\"a\\"].ok && \\"x\\" != \\"\\\\u00e9\\'
        '""}}]},{"command":"echo \'\\u00fcn\\u00ef\' && exit 0","description":"","emits'
        '":[],"handler":null,"inputs":[],"loop":"command","name":"odd","outputs":[],"pa'
        'rallel_instances":1,"retry":{"backoff":{"factor":2.0,"initial":1.0,"max":30.0}'
        ',"max_attempts":1},"timeout":1e-07,"trigger_mode":"any","triggers":[{"on_compl'
        'etion":{"stage":"build","success_only":true}}]},{"command":"true","description'
        '":"","emits":[],"handler":null,"inputs":[],"loop":"command","name":"big","outp'
        'uts":null,"parallel_instances":100000000000000000000,"retry":{"backoff":{"fact'
        'or":1.5,"initial":0.1,"max":1e+300},"max_attempts":7},"timeout":1e+16,"trigger'
        '_mode":"any","triggers":[{"manual":{"approval_required":false,"timeout":null}}'
        ']}],"timeout":3600.0}'
    ),
    "built": (
        '{"concurrency":4,"description":"","error_strategy":"fail","external_events":[]'
        ',"loops":{},"name":"built","retry":{"backoff":{"factor":2.0,"initial":1.0,"max'
        '":30.0},"max_attempts":1},"stages":[{"command":"x","description":"","emits":[]'
        ',"handler":null,"inputs":[],"loop":"command","name":"inf","outputs":null,"para'
        'llel_instances":1,"retry":null,"timeout":null,"trigger_mode":"any","triggers":'
        '[{"manual":{"approval_required":false,"timeout":Infinity}}]},{"command":"x","d'
        'escription":"","emits":[],"handler":null,"inputs":[],"loop":"command","name":"'
        'nan","outputs":null,"parallel_instances":1,"retry":null,"timeout":NaN,"trigger'
        '_mode":"any","triggers":[{"manual":{"approval_required":false,"timeout":null}}'
        ']},{"command":"x","description":"","emits":[],"handler":null,"inputs":[],"loop'
        '":"command","name":"ti","outputs":null,"parallel_instances":1,"retry":null,"ti'
        'meout":5,"trigger_mode":"any","triggers":[{"manual":{"approval_required":false'
        ',"timeout":null}}]},{"command":"x","description":"","emits":[],"handler":null,'
        '"inputs":[],"loop":"command","name":"neg","outputs":null,"parallel_instances":'
        '1,"retry":null,"timeout":-1.0,"trigger_mode":"any","triggers":[{"manual":{"app'
        'roval_required":false,"timeout":null}}]},{"command":"x","description":"","emit'
        's":[],"handler":null,"inputs":[],"loop":"command","name":"bool","outputs":null'
        ',"parallel_instances":true,"retry":null,"timeout":null,"trigger_mode":"any","t'
        'riggers":[{"manual":{"approval_required":false,"timeout":null}}]},{"command":"'
        'x","description":"","emits":[],"handler":null,"inputs":[],"loop":"command","na'
        'me":"fl","outputs":null,"parallel_instances":2.0,"retry":null,"timeout":null,"'
        'trigger_mode":"any","triggers":[{"manual":{"approval_required":false,"timeout"'
        ':null}}]},{"command":"x","description":"","emits":["e"],"handler":null,"inputs'
        '":[{"name":"i","required":true,"source":"1"}],"loop":"command","name":"lists",'
        '"outputs":null,"parallel_instances":1,"retry":null,"timeout":null,"trigger_mod'
        'e":"any","triggers":[{"manual":{"approval_required":false,"timeout":null}}]},{'
        '"command":"x","description":"","emits":[],"handler":null,"inputs":[],"loop":"c'
        'ommand","name":"strmode","outputs":null,"parallel_instances":1,"retry":null,"t'
        'imeout":null,"trigger_mode":"all","triggers":[{"manual":{"approval_required":f'
        'alse,"timeout":null}}]},{"command":"x","description":"","emits":[],"handler":n'
        'ull,"inputs":[],"loop":"command","name":"nums","outputs":null,"parallel_instan'
        'ces":1,"retry":{"backoff":{"factor":2,"initial":1,"max":3},"max_attempts":2},"'
        'timeout":null,"trigger_mode":"any","triggers":[{"manual":{"approval_required":'
        '1,"timeout":null}}]},{"command":5,"description":null,"emits":["e",null],"handl'
        'er":null,"inputs":[],"loop":"command","name":"nonstr","outputs":null,"parallel'
        '_instances":1,"retry":null,"timeout":null,"trigger_mode":"any","triggers":[{"o'
        'n_event":{"filter":7,"type":"t"}}]},{"command":"x","description":"","emits":"a'
        'b","handler":null,"inputs":null,"loop":"command","name":"none","outputs":null,'
        '"parallel_instances":1,"retry":null,"timeout":null,"trigger_mode":"any","trigg'
        'ers":[{"manual":{"approval_required":false,"timeout":null}}]},{"command":"x","'
        'description":"","emits":[],"handler":"retry","inputs":[],"loop":"command","nam'
        'e":"obj","outputs":null,"parallel_instances":1,"retry":{"factor":2.0,"initial"'
        ':1.0,"max":30.0},"timeout":null,"trigger_mode":"any","triggers":[{"manual":{"a'
        'pproval_required":false,"timeout":null}}]},{"command":"x","description":"","em'
        'its":[],"handler":null,"inputs":[{"a":[2],"b":1}],"loop":"command","name":"dic'
        't","outputs":null,"parallel_instances":1,"retry":null,"timeout":null,"trigger_'
        'mode":"any","triggers":[{"manual":{"approval_required":false,"timeout":null}}]'
        '},{"command":"x","description":"","emits":[],"handler":null,"inputs":[],"loop"'
        ':"command","name":"ftimeout","outputs":null,"parallel_instances":1,"retry":nul'
        'l,"timeout":null,"trigger_mode":"any","triggers":[{"on_completion":{"stage":"a'
        '","success_only":0}}]}],"timeout":7}'
    ),
    "empty": (
        '{"concurrency":4,"description":"","error_strategy":"fail","external_events":[]'
        ',"loops":{},"name":"","retry":{"backoff":{"factor":2.0,"initial":1.0,"max":30.'
        '0},"max_attempts":1},"stages":[],"timeout":null}'
    ),
}

#: ``test_a_loaded_file_hashes_as_before``'s text and hash, as the code before wrote them.
LOADED = (
    '{"concurrency":4,"description":"","error_strategy":"fail","external_events":["'
    'push"],"loops":{"shell":{"command":"sh -c","handler":null,"name":"shell"}},"na'
    'me":"hashed","retry":{"backoff":{"factor":2.0,"initial":1.0,"max":30.0},"max_a'
    'ttempts":1},"stages":[{"command":null,"description":"","emits":["done"],"handl'
    'er":"m:f","inputs":[],"loop":"python","name":"a","outputs":null,"parallel_inst'
    'ances":1,"retry":null,"timeout":null,"trigger_mode":"any","triggers":[{"manual'
    '":{"approval_required":false,"timeout":null}}]},{"command":null,"description":'
    '"\\u00fc \\"q\\"","emits":[],"handler":null,"inputs":[{"name":"x","required":t'
    'rue,"source":"stages.a.result"},{"name":"y","required":false,"source":"1"}],"l'
    'oop":"shell","name":"b","outputs":[{"name":"z","required":true,"source":"resul'
    't.z"}],"parallel_instances":1,"retry":{"backoff":{"factor":2.0,"initial":1.0,"'
    'max":60.0},"max_attempts":3},"timeout":0.5,"trigger_mode":"any","triggers":[{"'
    'on_event":{"filter":"event.ok","type":"done"}},{"on_event":{"filter":null,"typ'
    'e":"push"}},{"on_completion":{"stage":"a","success_only":false}},{"on_conditio'
    'n":{"expression":"true"}},{"manual":{"approval_required":true,"timeout":10.0}}'
    ']}],"timeout":5400.0}'
)
LOADED_HASH = "6573cf0575beb52f0b8498b62bfbaad1a7d28c6669ff25d8d98a2870ed4ef75e"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_canonical_json_is_the_old_text(name: str) -> None:
    assert _cases()[name].canonical_json == EXPECTED[name]


def test_loaded_stages_take_the_direct_text() -> None:
    """The stages a file loads to never need the general way (else the saving is lost)."""
    stages = _cases()["full"].stages
    assert all(payloads._stage_text(stage) for stage in stages)


@pytest.mark.parametrize("stage", _cases()["built"].stages, ids=lambda stage: stage.name)
def test_every_stage_text_is_the_payload_text(stage: Stage) -> None:
    assert payloads.stage_json(stage) == payloads.dumps(payloads.stage_payload(stage))


def test_a_loaded_file_hashes_as_before() -> None:
    text = """
name: hashed
timeout: 1h30m
external_events: [push]
loops:
  shell: {command: "sh -c"}
stages:
  - name: a
    handler: m:f
    triggers: [{manual: {approval_required: false}}]
    emits: [done]
  - name: b
    loop: shell
    description: "ü \\"q\\""
    timeout: 500ms
    retry: {max_attempts: 3, backoff: {initial: 1s, factor: 2, max: 1m}}
    inputs: {x: "stages.a.result", y: {from: "1", required: false}}
    outputs: {z: result.z}
    triggers:
      - on_event: {type: done, filter: "event.ok"}
      - on_event: {type: push}
      - on_completion: {stage: a, success_only: false}
      - on_condition: {expression: "true"}
      - manual: {approval_required: true, timeout: 10}
"""
    pipeline = parse_pipeline(text)
    assert pipeline.canonical_json == LOADED
    assert json.loads(pipeline.canonical_json)["timeout"] == 5400.0
    assert pipeline.definition_hash == LOADED_HASH


def test_a_new_stage_field_takes_the_general_way(monkeypatch: pytest.MonkeyPatch) -> None:
    """Should ``Stage`` gain a field, its text is the payload's (which has every field)."""
    stage = _cases()["one"].stages[0]
    monkeypatch.setitem(payloads._FIELD_NAMES, Stage, (*payloads._STAGE_FIELDS, "extra"))
    monkeypatch.setattr(Stage, "extra", 1, raising=False)
    assert '"extra":1' in payloads.stage_json(stage)
