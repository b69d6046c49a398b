"""The collector tuning ``taskdaemon run`` and ``serve`` run under (heap.py)."""

from __future__ import annotations

import gc
import json
import textwrap
import weakref
from pathlib import Path

import pytest

from cli_support import taskdaemon
from taskdaemon.pipeline.heap import GEN0_THRESHOLD, tuned_collector


class _Node:
    """A container that can be part of a reference cycle."""

    other: object = None


def test_thresholds_are_raised_inside_and_restored_after() -> None:
    """The young threshold is raised in the body; every threshold is back afterwards."""
    before = gc.get_threshold()
    with tuned_collector():
        inside = gc.get_threshold()
    assert inside == (max(before[0], GEN0_THRESHOLD), *before[1:])
    assert gc.get_threshold() == before


def test_existing_objects_are_frozen_inside_and_unfrozen_after() -> None:
    """What exists on entry is in the permanent generation in the body, and released after."""
    assert gc.get_freeze_count() == 0
    with tuned_collector():
        assert gc.get_freeze_count() > 0
    assert gc.get_freeze_count() == 0


def test_cycles_made_inside_are_still_collected() -> None:
    """Nothing is disabled: a cycle made in the body is freed by a collection."""
    with tuned_collector():
        first, second = _Node(), _Node()
        first.other, second.other = second, first
        ref = weakref.ref(first)
        del first, second
        gc.collect()
        assert ref() is None


def test_an_earlier_freeze_is_left_alone() -> None:
    """A process that froze objects itself keeps them frozen after the body."""
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        with tuned_collector():
            pass
        assert gc.get_freeze_count() >= frozen > 0
    finally:
        gc.unfreeze()


@pytest.mark.slow
def test_run_runs_its_handlers_under_the_tuned_collector(tmp_path: Path) -> None:
    """A handler of ``taskdaemon run`` sees the raised threshold and a frozen start-up heap."""
    (tmp_path / "gc_probe.py").write_text(
        textwrap.dedent(
            """
            import gc, json, os

            def probe(ctx):
                with open(os.environ["PROBE_OUT"], "w") as out:
                    json.dump([gc.get_threshold()[0], gc.get_freeze_count()], out)
            """
        )
    )
    (tmp_path / "p.yaml").write_text(
        textwrap.dedent(
            """
            name: gc-probe
            stages:
              - name: probe
                handler: gc_probe:probe
                triggers: [{manual: {approval_required: false}}]
            """
        )
    )
    out = tmp_path / "probe.json"
    done = taskdaemon(tmp_path / "home", "run", "-q", "p.yaml", cwd=tmp_path, PROBE_OUT=str(out))
    assert done.returncode == 0, done.stderr
    threshold, frozen = json.loads(out.read_text())
    assert threshold == GEN0_THRESHOLD
    assert frozen > 0
