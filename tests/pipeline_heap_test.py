"""The collector tuning ``taskdaemon run`` and ``serve`` run under (heap.py)."""

from __future__ import annotations

import gc
import json
import sys
import textwrap
import weakref
from pathlib import Path

import pytest

from cli_support import taskdaemon
from taskdaemon.pipeline.heap import (
    GEN0_THRESHOLD,
    GEN1_THRESHOLD,
    tuned_collector,
    tuned_thresholds,
)


class _Node:
    """A container that can be part of a reference cycle."""

    other: object = None


def test_thresholds_are_raised_inside_and_restored_after() -> None:
    """The young and generation-1 thresholds are raised in the body; every threshold is back
    afterwards."""
    before = gc.get_threshold()
    with tuned_collector():
        inside = gc.get_threshold()
    assert inside == tuned_thresholds(before)
    assert inside[0] >= GEN0_THRESHOLD
    assert inside[1] >= GEN1_THRESHOLD
    assert gc.get_threshold() == before


def _young_per_full(thresholds: tuple[int, int, int]) -> int:
    """Young collections between two full ones (an older generation is collected when its
    count exceeds its threshold)."""
    return (thresholds[1] + 1) * (thresholds[2] + 1)


@pytest.mark.parametrize("before", [(700, 10, 10), (2000, 10, 10), (700, 5, 3), (700, 200, 10)])
def test_generation_1_is_collected_less_often_and_full_collections_no_less(
    before: tuple[int, int, int],
) -> None:
    """Generation 1 waits for many young collections, never fewer than before, while a full
    collection comes at least as often (in young collections) as it did."""
    tuned = tuned_thresholds(before)
    assert tuned[0] == max(before[0], GEN0_THRESHOLD)
    assert tuned[1] > before[1] or before[1] >= GEN1_THRESHOLD
    assert 1 <= tuned[2] <= before[2]
    assert _young_per_full(tuned) <= _young_per_full(before)


def test_the_default_collector_gets_the_generation_1_threshold() -> None:
    """CPython's default thresholds (700, 10, 10) become (200,000, 50, 1): generation 1 every 51
    young collections, a full one at most every 102 (121 before)."""
    assert tuned_thresholds((700, 10, 10)) == (GEN0_THRESHOLD, GEN1_THRESHOLD, 1)


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


def _in_generations(made: object) -> bool:
    """Whether ``made`` is in a generation the collector walks (not the permanent one)."""
    return any(found is made for found in gc.get_objects())


def test_the_body_can_freeze_what_it_made() -> None:
    """The callable the body gets moves a container made in the body to the permanent
    generation."""
    with tuned_collector() as keep:
        made = _Node()
        keep()
        assert _in_generations(made) is False


def test_the_body_freezes_nothing_under_an_earlier_freeze() -> None:
    """Under a freeze that is not the tuned collector's, the body's callable moves nothing."""
    gc.freeze()
    try:
        with tuned_collector() as keep:
            made = _Node()
            keep()
            assert _in_generations(made) is True
    finally:
        gc.unfreeze()


# Runs ``taskdaemon run`` in this process with the collections that start between the start of
# the definition's load and the first stage recorded (``python -c``: argv[1:] are run's).
_LOAD_PROBE = """
import gc, json, sys
import gc_probe
from taskdaemon.pipeline import config
from taskdaemon.pipeline.cli import main
load = config.load_pipeline
def loading(*args, **kwargs):
    gc_probe.EVENTS.append("loading")
    return load(*args, **kwargs)
config.load_pipeline = loading
gc.callbacks.append(
    lambda phase, info: phase == "start" and gc_probe.EVENTS.append(info["generation"])
)
code = main(sys.argv[1:])
events = gc_probe.EVENTS
print(json.dumps(events[events.index("loading") : events.index("stage")]))
sys.exit(code)
"""


@pytest.mark.slow
def test_run_loads_a_large_definition_without_a_young_collection(tmp_path: Path) -> None:
    """From the start of a 300-stage definition's load to its first stage no collection
    starts: the load's containers are frozen with the start-up heap, not walked."""
    (tmp_path / "gc_probe.py").write_text(
        "EVENTS = []\n\n\ndef probe(ctx):\n    EVENTS.append('stage')\n"
    )
    lines = ["name: gc-load", "stages:"]
    for i in range(300):
        trigger = (
            "manual: {approval_required: false}"
            if i == 0
            else f"on_completion: {{stage: s{i - 1}}}"
        )
        lines += [
            f"  - name: s{i}",
            "    handler: gc_probe:probe",
            f"    triggers: [{{{trigger}}}]",
        ]
    (tmp_path / "p.yaml").write_text("\n".join(lines) + "\n")
    done = taskdaemon(
        tmp_path / "home",
        "run",
        "-q",
        "p.yaml",
        cwd=tmp_path,
        launcher=(sys.executable, "-c", _LOAD_PROBE),
    )
    assert done.returncode == 0, done.stderr
    assert ["loading"] == json.loads(done.stdout.splitlines()[-1])
