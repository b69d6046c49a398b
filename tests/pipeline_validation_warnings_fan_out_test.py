"""``validate`` knows the outputs the engine gives a fan-out (an ``on_event`` stage, one
instance per event): ``model.FAN_OUT_OUTPUTS`` beside the declared ones, read by real
``taskdaemon validate`` and ``run`` processes."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from cli_support import taskdaemon
from taskdaemon.pipeline.model import FAN_OUT_OUTPUTS

HANDLERS = """\
import json
def publish(ctx):
    for n in (1, 2, 3):
        ctx.publish('item', {'n': n})
def check(ctx):
    return {'double': 2 * ctx.inputs['n']}
def keys(ctx):
    with open('keys.json', 'w') as out:
        json.dump(sorted(ctx.inputs['all']), out)
"""

#: ``READS`` is where each test puts its references to ``stages.c.outputs.KEY``.
FAN = """\
    name: fan
    stages:
      - name: a
        handler: "fanout:publish"
        emits: [item]
        triggers: [{manual: {approval_required: false}}]
      - name: c
        handler: "fanout:check"
        parallel_instances: 3
        inputs: {n: event.n}
        outputs: {twice: result.double}
        triggers: [{on_event: {type: item}}]
      - name: d
        handler: "fanout:keys"
        inputs: {all: stages.c.outputs, READS}
        triggers:
          - on_completion: {stage: c}
          - on_condition: {expression: "CONDITION"}
    """


def _file(home: Path, key: str) -> Path:
    (home / "fanout.py").write_text(HANDLERS)
    text = textwrap.dedent(FAN)
    text = text.replace("READS", f"read: stages.c.outputs.{key}")
    text = text.replace("CONDITION", f"size(stages.c.outputs.{key}) == 3")
    path = home / "fan.yaml"
    path.write_text(text)
    return path


@pytest.mark.slow
def test_the_outputs_the_engine_gives_a_fan_out_validate_clean(home: Path) -> None:
    """``stages.c.outputs.instances``, in an input and in a condition, validates with no
    warning, and a run shows the engine gives ``c`` exactly those outputs. Before, ``validate``
    said twice ``reads output 'instances' of stage 'c', which never has it``."""
    for key in FAN_OUT_OUTPUTS:
        path = _file(home, key)
        done = taskdaemon(home, "validate", str(path), cwd=home)
        assert (0, f"OK {path} (3 stages)") == (done.returncode, done.stdout.strip()), done

    ran = taskdaemon(home, "run", "-q", str(path), cwd=home)
    assert 0 == ran.returncode, ran.stderr
    assert list(FAN_OUT_OUTPUTS) == json.loads((home / "keys.json").read_text())


@pytest.mark.slow
def test_a_typo_of_a_fan_out_output_still_warns_with_the_close_name(home: Path) -> None:
    """``instancse`` warns in the input and the condition, naming ``instances``."""
    path = _file(home, "instancse")
    done = taskdaemon(home, "validate", str(path), cwd=home)
    assert 0 == done.returncode, done.stderr
    *warned, summary = done.stdout.splitlines()
    assert (2, f"OK {path} (3 stages, 2 warnings)") == (len(warned), summary), warned
    for line in warned:
        assert line.endswith(
            "reads output 'instancse' of stage 'c', which never has it (did you mean "
            "'instances'?) [unknown-output]"
        ), line


@pytest.mark.slow
def test_an_unknown_output_of_a_fan_out_names_what_it_also_has(home: Path) -> None:
    """A name close to nothing: the hint names the declared outputs and the fan-out's."""
    path = _file(home, "zzz")
    done = taskdaemon(home, "validate", str(path), cwd=home)
    assert 0 == done.returncode, done.stderr
    assert done.stdout.splitlines()[0].endswith(
        "reads output 'zzz' of stage 'c', which never has it (it declares 'twice'; as a "
        "fan-out it also has 'instances') [unknown-output]"
    ), done.stderr
