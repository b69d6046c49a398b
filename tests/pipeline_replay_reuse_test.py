"""A replay reuses a succeeded fan-out instance only when it gets the item and the inputs the
original's got (``replay/reuse.py``), never by its number alone: real ``taskdaemon run`` and
``replay`` processes, the store read back."""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from cli_support import taskdaemon
from taskdaemon.pipeline import telemetry as t
from taskdaemon.pipeline.record_fields import replace
from taskdaemon.pipeline.replay.plan import build_plan
from taskdaemon.pipeline.replay.record import read_recorded_run
from taskdaemon.pipeline.tracking.store import SpanStore

#: ``a`` publishes the items of ``items.txt``; ``c`` runs one instance per item, reading its
#: item from the event itself (not through an input), and fails for item 2 while ``broken``
#: exists; ``d`` sums ``c``'s outputs, which ``request.scale`` multiplies.
HANDLERS = """\
import os
def publish(ctx):
    for n in open('items.txt').read().split():
        ctx.publish('item', {'n': int(n)})
def check(ctx):
    n = ctx.event['n']
    with open('ran.txt', 'a') as out:
        out.write(f"{n}\\n")
    if n == 2 and os.path.exists('broken'):
        raise RuntimeError('broken')
    return {'double': 2 * n * ctx.inputs['scale']}
def total(ctx):
    with open('sums.txt', 'a') as out:
        out.write(f"{sum(part['twice'] for part in ctx.inputs['parts'])}\\n")
"""

FAN = """\
    name: items
    error_strategy: continue
    stages:
      - name: a
        handler: "items:publish"
        emits: [item]
        triggers: [{manual: {approval_required: false}}]
      - name: c
        handler: "items:check"
        parallel_instances: 3
        inputs: {scale: request.scale}
        outputs: {twice: result.double}
        triggers: [{on_event: {type: item}}]
      - name: d
        handler: "items:total"
        inputs: {parts: stages.c.outputs.instances}
        triggers: [{on_completion: {stage: c}}]
"""


def _failed_once(home: Path) -> str:
    """A run of items 1, 2, 3 at scale 1 whose instance 1 (item 2) failed; then not broken."""
    (home / "items.py").write_text(HANDLERS)
    (home / "items.yaml").write_text(textwrap.dedent(FAN))
    (home / "items.txt").write_text("1 2 3")
    (home / "broken").touch()
    ran = taskdaemon(home, "run", "items.yaml", "-q", "--input", "scale=1", cwd=home)
    assert 1 == ran.returncode, ran.stderr
    (home / "broken").unlink()
    for name in ("ran.txt", "sums.txt"):
        (home / name).write_text("")
    return ran.stdout.strip()


def _statuses(home: Path, run_id: str) -> dict[int, str]:
    with SpanStore(home / "spans.db") as store:
        spans = store.get_trace(run_id)
    return {
        span.attributes[t.STAGE_INSTANCE]: span.attributes[t.STAGE_STATUS]
        for span in spans
        if span.attributes.get(t.CICD_TASK_NAME) == "c"
    }


def _replay(home: Path, *args: str) -> tuple[str, list[str]]:
    """Replay: the new run's id and the ``note:`` lines it said."""
    done = taskdaemon(home, "replay", *args, cwd=home)
    assert 0 == done.returncode, done.stdout + done.stderr
    new = next(line for line in done.stdout.splitlines() if line.startswith("run ")).split()[1]
    return new, [line for line in done.stderr.splitlines() if line.startswith("note: c#")]


def _ran(home: Path) -> tuple[list[int], str]:
    ran = sorted(int(n) for n in (home / "ran.txt").read_text().split())
    return ran, (home / "sums.txt").read_text().strip()


@pytest.mark.slow
def test_other_inputs_run_every_instance_again(home: Path) -> None:
    """``--input scale=10`` gives every instance of ``c`` other inputs: all three run, and
    ``d`` sums 20 + 40 + 60; each candidate is said to have run again, and why, as the dry
    run said it might. Before, instances 0 and 2 handed on their scale-1 outputs (2 and 6):
    ``d`` summed 48, wrong data called a success."""
    original = _failed_once(home)
    new, notes = _replay(home, original, "--from", "c", "--input", "scale=10")
    assert ([1, 2, 3], "120") == _ran(home)
    assert [
        "note: c#0 ran again: its inputs differ from the recorded ones",
        "note: c#2 ran again: its inputs differ from the recorded ones",
    ] == notes
    assert {0: "success", 1: "success", 2: "success"} == _statuses(home, new)
    dry = taskdaemon(
        home, "replay", original, "--from", "c", "--input", "scale=10", "--dry-run", cwd=home
    )
    assert (
        "run   c: run 1 instance again (1: failure); reuse the recorded outputs of 2 instances "
        "(0, 2) where each gets the item and inputs it got (compared as each starts: --input "
        "scale)"
    ) in dry.stdout.splitlines(), dry.stdout


@pytest.mark.slow
def test_an_instance_is_reused_only_for_the_item_it_had(home: Path) -> None:
    """Replayed from ``a``, which now publishes 1, 3, 2: instance 0 gets item 1 again and is
    reused; instance 2 gets item 2, not the 3 its number had in the original, so it runs (the
    inputs are the same: only the item tells them apart), as does instance 1. Before, ``a``
    run again made every instance run (1, 2 and 3)."""
    original = _failed_once(home)
    (home / "items.txt").write_text("1 3 2")
    new, notes = _replay(home, original, "--from", "a")
    assert ([2, 3], "12") == _ran(home)
    assert ["note: c#2 ran again: its item differs from the recorded one"] == notes
    assert {0: "replayed", 1: "success", 2: "success"} == _statuses(home, new)


@pytest.mark.slow
def test_a_record_without_the_items_hash_reuses_nothing_and_says_why(home: Path) -> None:
    """A run recorded before the item's hash was kept (the attribute taken off its spans):
    nothing can prove an instance gets its item again, so all run, and the dry run says so of
    each. Before, instances 0 and 2 were reused by their numbers."""
    original = _failed_once(home)
    with SpanStore(home / "spans.db") as store:
        spans = store.get_trace(original)
    older = [
        replace(
            span,
            events=tuple(
                replace(event, attributes=_without(event.attributes, t.PAYLOAD_EVENT_SHA256))
                for event in span.events
            ),
        )
        for span in spans
    ]
    plan = build_plan(read_recorded_run(older), from_stage="c")
    no_hash = "its record has no hash of its item"
    assert (
        {},
        f"run   c: run 3 instances again (1: failure; 0: {no_hash}; 2: {no_hash})",
    ) == (plan.reused, plan.describe()[1])


def _without(attributes: Mapping[str, Any], name: str) -> dict[str, Any]:
    return {key: value for key, value in attributes.items() if key != name}
