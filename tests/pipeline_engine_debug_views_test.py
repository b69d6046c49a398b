"""What the debugger shows of one instance of a fanned-out stage (``engine/_debug_views.py``,
and the prompt's ``outputs`` and ``logs`` over it): ``STAGE#N`` is that instance's status,
inputs and outputs, not the stage's; a command's output in ``logs`` says whose it is."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from cli_support import taskdaemon

FAN_OUT = """\
    name: fan
    stages:
      - name: a
        handler: "fanout:publish"
        emits: [item]
        triggers: [{manual: {approval_required: false}}]
      - name: work
        command: "echo {\\\\\\"done\\\\\\": $TASKDAEMON_INPUT_N}"
        parallel_instances: 1
        triggers: [{on_event: {type: item}}]
        inputs: {n: event.n}
"""
PUBLISHER = """\
def publish(ctx):
    for n in (1, 2, 3):
        ctx.publish("item", {"n": n})
    return {}
"""


@pytest.mark.slow
def test_an_instance_that_ran_shows_its_own_inputs_outputs_and_output_lines(home: Path) -> None:
    """Paused at ``work#1`` (one instance at a time: ``work#0`` has ended), ``outputs work#0``
    is ``work#0``'s status and outputs, ``inputs work#0`` its event's input, a number past
    the instances one line naming how many there are, ``outputs work`` says how to see an
    instance's, ``logs work`` names the execution each output line is of, and ``logs work#0``
    is ``work#0``'s. Before: ``work#0 (paused): {}``, ``{"n": "<from each event: event.n>"}``,
    ``[stdout] {"done": 1}`` with no execution, and ``logs work#0`` listed every instance as
    ``work#0.N`` with no record."""
    (home / "fanout.py").write_text(PUBLISHER)
    (home / "fan.yaml").write_text(textwrap.dedent(FAN_OUT))
    done = taskdaemon(
        home,
        "debug",
        str(home / "fan.yaml"),
        "--break",
        "work:inputs.n == 2",
        "-q",
        stdin="outputs work#0\ninputs work#0\ninputs work#7\noutputs work\nlogs work\nlogs work#0\n"
        "continue\n",
        cwd=home,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert '(taskdaemon) outputs work#0\nwork#0 (success): {"done": 1}\n' in done.stdout
    assert '(taskdaemon) inputs work#0\n{"n": 1}\n' in done.stdout
    assert "error: stage 'work' has no instance #7 (2 instances)\n" in done.stdout
    assert "work (paused): {}\n  2 instances: 'outputs work#N' shows instance N's\n" in done.stdout
    assert '  [INFO] work.0.1 [stdout] {"done": 1}\n' in done.stdout
    of_one = done.stdout.split("(taskdaemon) logs work#0\n", 1)[1].split("(taskdaemon)", 1)[0]
    assert of_one.startswith("  work.0: success (1 attempt)\n"), of_one
    assert ('  [INFO] [stdout] {"done": 1}\n' in of_one, "work.1" in of_one) == (True, False)
