"""An ``on_event`` stage that reads the outputs of the stage that published its event, run by
the real ``taskdaemon run``: the publisher still runs when it publishes, so what the instance
read was a race with the publisher's end. It is refused, the same way whatever the timing."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli_support import pythonpath_with, taskdaemon

HANDLERS = """\
def emits(ctx):
    ctx.publish("ready", {"n": 1})
    return {"x": 42}


async def emits_async(ctx):
    ctx.publish("ready", {"n": 1})
    return {"x": 42}


def reads(ctx):
    return {"got": ctx.inputs}
"""

PIPELINE = """\
name: events
stages:
  - name: emitter
    handler: "emitting:{handler}"
    emits: [ready]
    triggers: [{{manual: {{approval_required: false}}}}]
  - name: consumer
    handler: "emitting:reads"
    triggers: [{{on_event: {{type: ready}}}}]
    inputs:
      n: event.n
      x: {{from: stages.emitter.outputs.x, required: false}}
"""


@pytest.mark.slow
@pytest.mark.parametrize("handler", ["emits", "emits_async"])
def test_reading_the_publisher_s_outputs_is_refused_whatever_the_timing(
    home: Path, tmp_path: Path, handler: str
) -> None:
    """Before, a sync publisher's outputs were missing (``{}`` while it ran) and an async
    one's were there (it ended before the instance started): the optional input came and
    went with the timing, and the run succeeded either way."""
    (tmp_path / "emitting.py").write_text(HANDLERS)
    pipeline = tmp_path / "p.yaml"
    pipeline.write_text(PIPELINE.format(handler=handler))
    ran = taskdaemon(
        home, "run", str(pipeline), "-q", timeout=60, PYTHONPATH=pythonpath_with(tmp_path)
    )
    assert (1, "") == (ran.returncode, ran.stdout.strip()[32:]), ran.stderr
    assert ran.stderr.endswith(
        "stage 'consumer' failure: input 'x' reads stages.emitter, which published this "
        "instance's event while it ran: its outputs are final only when it ends; read the "
        "event's payload (event.<key>) instead\n"
    ), ran.stderr
