"""A fan-out run one instance of which failed, recorded for real (``taskdaemon run`` in a
subprocess), for the tests of replaying it (``replay --from``, ``--break``)."""

from __future__ import annotations

import textwrap
from pathlib import Path

from cli_support import taskdaemon

#: ``a`` publishes three items; ``c`` runs one instance per item (writing its item to
#: ``ran.txt``), and fails for item 2 while ``broken`` exists; ``d`` sums ``c``'s mapped outputs.
HANDLERS = """\
import os
def publish(ctx):
    for n in (1, 2, 3):
        ctx.publish('item', {'n': n})
def check(ctx):
    with open('ran.txt', 'a') as out:
        out.write(f"{ctx.inputs['n']}\\n")
    if ctx.inputs['n'] == 2 and os.path.exists('broken'):
        raise RuntimeError('broken')
    return {'double': 2 * ctx.inputs['n']}
def total(ctx):
    with open('sums.txt', 'a') as out:
        out.write(f"{sum(part['twice'] for part in ctx.inputs['parts'])}\\n")
"""

FAN = """\
    name: fan
    error_strategy: continue
    stages:
      - name: a
        handler: "fanned:publish"
        emits: [item]
        triggers: [{manual: {approval_required: false}}]
      - name: c
        handler: "fanned:check"
        parallel_instances: 3
        inputs: {n: event.n}
        outputs: {twice: result.double}
        triggers: [{on_event: {type: item}}]
      - name: d
        handler: "fanned:total"
        inputs: {parts: stages.c.outputs.instances}
        triggers: [{on_completion: {stage: c}}]
"""


def failed_once(home: Path) -> str:
    """A run of :data:`FAN` whose instance 1 of ``c`` (item 2) failed; ``ran.txt`` emptied."""
    (home / "fanned.py").write_text(HANDLERS)
    (home / "fan.yaml").write_text(textwrap.dedent(FAN))
    (home / "broken").touch()
    ran = taskdaemon(home, "run", "fan.yaml", "-q", cwd=home)
    assert 1 == ran.returncode, ran.stderr
    (home / "broken").unlink()
    (home / "ran.txt").write_text("")
    return ran.stdout.strip()
