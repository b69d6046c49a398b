"""Example loop types for ``feature_delivery.yaml``: plan → spec → phase → ralph, doing real work.

Each works in the run's workspace (``ctx.workspace``; without one, a private folder named
after the run in ``taskdaemon-<uid>`` under the system's temp dir) and does small, real, local
things:

* ``plan`` turns the goal into steps and writes ``plan.md``;
* ``spec`` writes one ``specs/<step>.json`` per step and publishes one ``spec.ready`` event per
  spec; a step that depends on something outside the plan gets ``dependencies_met: false``, so
  the implementation stage's filter visibly drops it;
* ``phase`` implements one spec as a Python module ``src/<step>.py``, then byte-compiles and runs
  it in a real subprocess (through the built-in command handler, so the process tree's CPU and
  memory are sampled); the ``heavy`` step crunches numbers for about a second and a half, so the
  resource gauges have something to show;
* ``ralph`` runs the generated modules' self-checks in a subprocess until they pass (bounded
  iterations, as a Ralph loop does), and fails the stage if they never do.

``taskdaemon validate`` imports this module to check that each handler exists (it runs none of
them), so what only a running handler needs is imported inside it: asyncio and ``dataclasses``
(already loaded by the engine whenever a handler runs), ``shlex`` and ``tempfile``; the stage
context's class is imported for the type checker only. A module-level ``import asyncio`` here
would add its import time to every ``validate`` of the pipeline.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from taskdaemon.pipeline.errors import StageFailedError
from taskdaemon.pipeline.loops import command_handler

if TYPE_CHECKING:
    from taskdaemon.pipeline.loops import StageContext

__all__ = ["phase", "plan", "ralph", "spec"]


def _workspace(ctx: StageContext) -> Path:
    import tempfile  # noqa: PLC0415 - a running handler's import (see the top)

    if ctx.workspace:
        path = Path(ctx.workspace)
    else:  # an engine made without a workspace: a private folder of this user's, per run
        root = Path(tempfile.gettempdir()) / f"taskdaemon-{os.getuid()}"
        root.mkdir(mode=0o700, exist_ok=True)
        if root.is_symlink() or root.stat().st_uid != os.getuid():
            raise PermissionError(f"{root} is not this user's own folder")
        path = root / ctx.run_id
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_") or "goal"


def plan(ctx: StageContext) -> dict[str, Any]:
    """Split the goal into implementation steps; write them to ``plan.md``."""
    goal = str(ctx.inputs["goal"]).strip()
    if not goal:
        raise StageFailedError("the goal is empty: nothing to plan")
    subject = _slug(goal)
    steps = [
        {"name": "parse", "title": f"Parse the words of {goal!r}", "depends_on": []},
        {
            "name": "heavy",
            "title": f"Score every word of {goal!r} (CPU-bound)",
            "depends_on": [],
            "work": 1.5,
        },
        {"name": "render", "title": f"Render a report of {goal!r}", "depends_on": ["parse"]},
        {
            "name": "deploy_hook",
            "title": f"Notify operations that {subject} shipped",
            "depends_on": ["ops_signoff"],  # not part of this plan: blocked
        },
    ]
    lines = [f"# Plan: {goal}", ""]
    for number, step in enumerate(steps, 1):
        after = f" (after {', '.join(step['depends_on'])})" if step["depends_on"] else ""
        lines.append(f"{number}. **{step['name']}**: {step['title']}{after}")
    path = _workspace(ctx) / "plan.md"
    path.write_text("\n".join(lines) + "\n")
    return {"plan": {"goal": goal, "path": str(path), "steps": steps}}


def spec(ctx: StageContext) -> dict[str, Any]:
    """Write one spec per planned step and announce each with a ``spec.ready`` event."""
    the_plan: Mapping[str, Any] = ctx.inputs["plan"]
    names = {step["name"] for step in the_plan["steps"]}
    directory = _workspace(ctx) / "specs"
    directory.mkdir(exist_ok=True)
    specs = []
    for step in the_plan["steps"]:
        met = all(dependency in names for dependency in step["depends_on"])
        document = {
            "name": step["name"],
            "goal": the_plan["goal"],
            "title": step["title"],
            "depends_on": step["depends_on"],
            "work_seconds": step.get("work", 0.0),
            "acceptance": f"{step['name']}.check() returns True",
        }
        path = directory / f"{step['name']}.json"
        path.write_text(json.dumps(document, indent=2) + "\n")
        entry = {"name": step["name"], "path": str(path), "dependencies_met": met}
        specs.append(entry)
        ctx.publish("spec.ready", {"spec": entry})
    return {"specs": specs}


_MODULE = '''"""{title}.

Generated by the ``phase`` loop from {spec_path}.
"""

import json

GOAL = {goal!r}
WORK_SECONDS = {work!r}


def run(work=WORK_SECONDS):
    """Do this step's work: score the goal's words, with about ``work`` seconds of real CPU
    work: counting primes by trial division up to a bound, not for a time, so every run (and
    a replay that verifies one) counts the same."""
    words = GOAL.split()
    scores = {{word: sum(map(ord, word)) for word in words}}
    ballast = bytearray(32 * 1024 * 1024) if work else b""  # visible in memory gauges
    primes = 0
    for candidate in range(2, int(400_000 * work)):
        if all(candidate % d for d in range(2, int(candidate ** 0.5) + 1)):
            primes += 1
    return {{"step": {name!r}, "words": len(words), "scores": scores, "primes": primes,
            "ballast_bytes": len(ballast)}}


def check():
    """The acceptance test of the spec."""
    return run(work=0)["words"] == len(GOAL.split())


if __name__ == "__main__":
    print(json.dumps(run()))
'''


def _write_module(ctx: StageContext, ready: Mapping[str, Any]) -> tuple[dict[str, Any], Path]:
    document: dict[str, Any] = json.loads(Path(ready["path"]).read_text())
    source = _workspace(ctx) / "src"
    source.mkdir(exist_ok=True)
    module = source / f"{document['name']}.py"
    module.write_text(
        _MODULE.format(
            title=document["title"],
            spec_path=ready["path"],
            goal=document["goal"],
            work=float(document["work_seconds"]),
            name=document["name"],
        )
    )
    return document, module


async def phase(ctx: StageContext) -> dict[str, Any]:
    """Implement one spec: write ``src/<name>.py``, byte-compile it and run it."""
    import asyncio  # noqa: PLC0415 - a running handler's imports (see the top)
    import dataclasses  # noqa: PLC0415
    import shlex  # noqa: PLC0415

    document, module = await asyncio.to_thread(_write_module, ctx, ctx.inputs["spec"])
    python = shlex.quote(sys.executable)
    target = shlex.quote(str(module))
    command = f"{python} -m py_compile {target} && {python} {target}"
    result = await command_handler(command)(dataclasses.replace(ctx, inputs={}))
    return {
        "implementation": {
            "name": document["name"],
            "module": str(module),
            "primes": result["primes"],
            "words": result["words"],
        }
    }


_CHECK = """
import importlib, json, pathlib, sys
sys.path.insert(0, "src")
names = sorted(p.stem for p in pathlib.Path("src").glob("*.py"))
failed = [n for n in names if not importlib.import_module(n).check()]
print(json.dumps({"modules": names, "failed": failed}))
sys.exit(1 if failed or not names else 0)
"""


async def ralph(ctx: StageContext) -> dict[str, Any]:
    """Run the generated modules' self-checks until they pass (at most ``max_iterations``)."""
    import asyncio  # noqa: PLC0415 - a running handler's imports (see the top)
    import dataclasses  # noqa: PLC0415
    import shlex  # noqa: PLC0415

    max_iterations = int(ctx.inputs.get("max_iterations", 3))
    workspace = await asyncio.to_thread(_workspace, ctx)
    command = f"{shlex.quote(sys.executable)} -c {shlex.quote(_CHECK)}"
    check = command_handler(command)
    last_error: StageFailedError | None = None
    for iteration in range(1, max_iterations + 1):
        try:
            result = await check(dataclasses.replace(ctx, inputs={}, workspace=str(workspace)))
        except StageFailedError as error:
            last_error = error
            continue
        return {"verification": {"passed": True, "iterations": iteration, **result}}
    raise StageFailedError(f"checks still fail after {max_iterations} iterations: {last_error}")
