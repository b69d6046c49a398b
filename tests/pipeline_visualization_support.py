"""Shared data of the visualization tests: a definition and a run with every interesting fate.

The pipeline mirrors ``examples/feature_delivery.yaml``; the run has a retried stage, a fan-out
stage with three instances (one of which was retried), a failed stage and a skipped stage, with
fixed timestamps so renderings are byte-stable. Also: rendering DOT with the real Graphviz
``dot``, and a pipeline whose stage names are full of DOT and Mermaid syntax.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

from taskdaemon.pipeline.model import (
    Manual,
    OnCompletion,
    OnCondition,
    OnEvent,
    Pipeline,
    Stage,
    TriggerMode,
)
from taskdaemon.pipeline.records import AttemptRecord, EdgeRecord, RunRecord, StageRecord

T0 = 1_700_000_000.0
RUN_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


def feature_delivery() -> Pipeline:
    """The example pipeline built in code: entry, completion, event fan-out, gated release."""
    return Pipeline(
        name="feature-delivery",
        description="Plan, specify, implement, release",
        stages=(
            Stage("planning", "plan", (Manual(approval_required=False),)),
            Stage(
                "specification",
                "spec",
                (OnCompletion("planning"),),
                emits=("spec.ready",),
            ),
            Stage(
                "implementation",
                "phase",
                (OnEvent("spec.ready", "event.spec.dependencies_met == true"),),
                parallel_instances=10,
            ),
            Stage(
                "release",
                "command",
                (
                    OnCompletion("implementation"),
                    OnCondition("size(stages.specification.outputs.specs) > 0"),
                    Manual(approval_required=True, timeout=3600.0),
                ),
                trigger_mode=TriggerMode.ALL,
            ),
        ),
    )


def attempt(  # noqa: PLR0917 - a compact row of test data reads best positionally
    stage: str,
    instance: int,
    number: int,
    status: str,
    start: float,
    end: float,
    error: str | None = None,
) -> AttemptRecord:
    """An attempt record at ``T0 + start`` .. ``T0 + end``."""
    return AttemptRecord(
        task_run_id=f"{stage}.{instance}.{number}",
        instance=instance,
        attempt=number,
        status=status,
        start=T0 + start,
        end=T0 + end,
        queue_time=0.0,
        trigger_wait=0.0,
        error=error,
        error_type="RuntimeError" if error else None,
    )


def failed_run() -> RunRecord:
    """A failed run: planning retried once, three implementation instances (one retried, one
    failed for good), release skipped."""
    pipeline = feature_delivery()
    triggers = {s.name: tuple(t.describe() for t in s.triggers) for s in pipeline.stages}
    return RunRecord(
        run_id=RUN_ID,
        pipeline="feature-delivery",
        status="failure",
        start=T0,
        end=T0 + 4.5,
        stages=(
            StageRecord(
                "planning",
                "plan",
                "success",
                (
                    attempt("planning", 0, 1, "failure", 0.0, 0.2, "model overloaded"),
                    attempt("planning", 0, 2, "success", 0.5, 0.9),
                ),
                triggers["planning"],
            ),
            StageRecord(
                "specification",
                "spec",
                "success",
                (attempt("specification", 0, 1, "success", 1.0, 1.35),),
                triggers["specification"],
                ("planning",),
            ),
            StageRecord(
                "implementation",
                "phase",
                "failure",
                (
                    attempt("implementation", 0, 1, "success", 1.4, 2.6),
                    attempt("implementation", 1, 1, "failure", 1.4, 1.9, "tests failed"),
                    attempt("implementation", 1, 2, "failure", 2.0, 2.5, "tests failed"),
                    attempt("implementation", 2, 1, "success", 1.5, 2.3),
                ),
                triggers["implementation"],
                ("specification",),
            ),
            StageRecord(
                "release",
                "command",
                "skipped",
                (),
                triggers["release"],
                ("implementation",),
                skip_reason="upstream implementation failed",
            ),
        ),
        edges=tuple(EdgeRecord(e.source, e.target, e.label) for e in pipeline.edges),
        definition_hash=pipeline.definition_hash,
        started_by="cli",
        error="stage implementation failed: tests failed",
        error_type="StageFailedError",
    )


def run_only() -> RunRecord:
    """The failed run as spans alone describe it (no definition)."""
    return failed_run()


GOLDEN = Path(__file__).parent / "golden"


def check_golden(name: str, actual: str) -> None:
    """Compare ``actual`` with ``tests/golden/<name>``; ``UPDATE_GOLDEN=1`` rewrites the file."""
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(actual, encoding="utf-8")
    expected = path.read_text(encoding="utf-8")
    assert expected == actual


# -- Graphviz and hostile names ---------------------------------------------------------------

DOT = shutil.which("dot") or "dot"  # on PATH: scripts/setup.sh installs Graphviz
SVG = "{http://www.w3.org/2000/svg}"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def run_dot(source: str, fmt: str) -> bytes:
    """Render ``source`` with ``dot -T<fmt>``; any warning on stderr fails the test."""
    done = subprocess.run(
        [DOT, f"-T{fmt}"], input=source.encode(), capture_output=True, check=False, timeout=30
    )
    assert (done.returncode, done.stderr.decode()) == (0, "")
    return done.stdout


def svg_nodes(svg: bytes) -> list[str]:
    """The titles (DOT node ids) of the SVG's node groups, in document order."""
    root = ET.fromstring(svg)
    return [
        (group.findtext(f"{SVG}title") or "")
        for group in root.iter(f"{SVG}g")
        if group.get("class") == "node"
    ]


HOSTILE = [
    'say "hi"',
    "back\\slash\\",
    "two\nlines",
    "\\N\\G\\l",
    "node",
    "Graph",
    "<b>html</b> & co",
    "{braces}; [brackets] -> arrow",
    "unicode ünï · 日本",
    "tab\there",
]


def hostile_pipeline() -> Pipeline:
    """A chain of stages whose names and expressions are full of DOT syntax."""
    stages = [Stage(HOSTILE[0], 'py"thon', (Manual(),), emits=('ev"t',))]
    stages.extend(
        Stage(name, "python", (OnCompletion(previous),))
        for previous, name in itertools.pairwise(HOSTILE)
    )
    stages.append(
        Stage(
            "gated",
            "python",
            (
                OnEvent('ev"t', 'event.x == "}\\"" && size(event.y) > 0'),
                OnCondition('stages["node"].outputs.s == "a\\nb"'),
                Manual(approval_required=True),
                OnEvent("from.outside"),
            ),
        )
    )
    return Pipeline("hostile", tuple(stages))
