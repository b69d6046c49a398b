"""A replay's reuse (``replay/reuse.py``) of an instance no event made, in a stage with
``on_event`` and another trigger, and what ``--dry-run`` and the replay say reuse trusts:
real ``taskdaemon run`` and ``replay`` processes."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from cli_support import taskdaemon
from pipeline_replay_support import FED_NOTE

#: ``a`` publishes the items of ``items.txt``; ``b`` runs once ``a`` ends; ``c`` runs one
#: instance per item and one more when ``b`` ends (no event: item 0), and fails for item 2
#: while ``broken`` exists. Each instance of ``c`` writes its item to ``ran.txt``.
HANDLERS = """\
import os
def publish(ctx):
    for n in open('items.txt').read().split():
        ctx.publish('item', {'n': int(n)})
def prepare(ctx):
    return {'ready': True}
def check(ctx):
    n = ctx.event['n'] if ctx.event else 0
    with open('ran.txt', 'a') as out:
        out.write(f"{n}\\n")
    if n == 2 and os.path.exists('broken'):
        raise RuntimeError('broken')
    return {'double': 2 * n * ctx.inputs['scale']}
"""

PIPELINE = """\
    name: mixed
    error_strategy: continue
    stages:
      - name: a
        handler: "items:publish"
        emits: [item]
        triggers: [{manual: {approval_required: false}}]
      - name: b
        handler: "items:prepare"
        triggers: [{on_completion: {stage: a}}]
      - name: c
        handler: "items:check"
        parallel_instances: 3
        inputs: {scale: request.scale}
        outputs: {twice: result.double}
        triggers: [{on_event: {type: item}}, {on_completion: {stage: b}}]
"""

#: What the dry run and the replay say reuse does not compare.
TRUSTED = (
    "reuse compares an instance's item and inputs, not the files it reads: the workspace "
    "starts as the recorded run's as it ended, files elsewhere are read as they are now "
    "(--rerun-all runs every instance again)"
)


def _failed_once(home: Path) -> str:
    """A run of items 1, 2 (instances 0, 1) and then ``b``'s (instance 2, no event) at scale
    1, whose item 2 failed; then not broken, ``ran.txt`` emptied."""
    (home / "items.py").write_text(HANDLERS)
    (home / "mixed.yaml").write_text(textwrap.dedent(PIPELINE))
    (home / "items.txt").write_text("1 2")
    (home / "broken").touch()
    ran = taskdaemon(home, "run", "mixed.yaml", "-q", "--input", "scale=1", cwd=home)
    assert 1 == ran.returncode, ran.stderr
    assert ["0", "1", "2"] == sorted((home / "ran.txt").read_text().split())
    (home / "broken").unlink()
    (home / "ran.txt").write_text("")
    return ran.stdout.strip()


@pytest.mark.slow
def test_an_instance_no_event_made_is_reused_for_the_same_inputs(home: Path) -> None:
    """``--from c``: instance 2, which ``b``'s completion made, gets no event and the inputs it
    had, so it is reused as instance 0 (item 1) is; only item 2 runs. The dry run names it
    ``with no event`` and says what reuse trusts; the replay says which it reused, trusting
    the files. Before, the dry run said ``2: its record has no hash of its item`` and the
    replay ran it again (``ran.txt``: 0 and 2)."""
    original = _failed_once(home)
    dry = taskdaemon(home, "replay", original, "--from", "c", "--dry-run", cwd=home)
    assert 0 == dry.returncode, dry.stderr
    assert [
        "run   c: run 1 instance again (1: failure); reuse the recorded outputs of 2 instances "
        "(0, 2 with no event) where each gets the item and inputs it got (it will: every stage "
        "upstream of c is fed)",
        TRUSTED,
        "a fed stage is not run: the files it read are not read again, nor compared, so a "
        "change to them since is not seen (--from an earlier stage runs it again)",
    ] == dry.stdout.splitlines()[-3:], dry.stdout
    done = taskdaemon(home, "replay", original, "--from", "c", "-q", cwd=home)
    assert 0 == done.returncode, done.stdout + done.stderr
    assert ["2"] == (home / "ran.txt").read_text().split()
    notes = [line for line in done.stderr.splitlines() if line.startswith("note:")]
    assert [
        FED_NOTE,
        f"note: reused c#0, c#2 from run {original} on their item and inputs alone: the files "
        "they read were not compared (--rerun-all runs them again)",
    ] == notes


@pytest.mark.slow
def test_an_instance_no_event_made_runs_for_other_inputs(home: Path) -> None:
    """``--input scale=10``: every instance of ``c`` gets other inputs, the one no event made
    too, so all run again, each said so, and nothing is said to be reused."""
    original = _failed_once(home)
    done = taskdaemon(
        home, "replay", original, "--from", "c", "--input", "scale=10", "-q", cwd=home
    )
    assert 0 == done.returncode, done.stdout + done.stderr
    assert ["0", "1", "2"] == sorted((home / "ran.txt").read_text().split())
    notes = [line for line in done.stderr.splitlines() if line.startswith("note:")]
    assert [
        FED_NOTE,
        "note: c#0 ran again: its inputs differ from the recorded ones",
        "note: c#2 ran again: its inputs differ from the recorded ones",
    ] == notes


@pytest.mark.slow
def test_an_event_where_the_original_had_none_runs_again(home: Path) -> None:
    """``--from a``, which now publishes 1, 2, 3: instance 2 gets item 3 where the original's
    instance 2 had no event, so it runs, said so; instance 0 (item 1 again) is reused, and
    ``b``'s completion makes a new instance 3."""
    original = _failed_once(home)
    (home / "items.txt").write_text("1 2 3")
    done = taskdaemon(home, "replay", original, "--from", "a", "-q", cwd=home)
    assert 0 == done.returncode, done.stdout + done.stderr
    assert ["0", "2", "3"] == sorted((home / "ran.txt").read_text().split())
    notes = [line for line in done.stderr.splitlines() if line.startswith("note:")]
    assert [
        "note: c#2 ran again: an event made it here, and none did in the original",
        f"note: reused c#0 from run {original} on their item and inputs alone: the files they "
        "read were not compared (--rerun-all runs them again)",
    ] == notes
