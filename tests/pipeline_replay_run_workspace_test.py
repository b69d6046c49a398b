"""A replay's workspace: under the same root as the recorded run's, its own folder, which a
replay that feeds stages starts as a copy of the recorded run's (once, links kept, before the
first stage run again), and a replay that feeds none starts empty."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from pipeline_engine_support import Resolver
from pipeline_replay_support import HANDLERS, Recording, counting, flow_without_plan_mapping
from taskdaemon.pipeline.payloads import PayloadCapture


@pytest.fixture
def rec(tmp_path: Path) -> Any:
    recording = Recording(tmp_path / "spans.db", PayloadCapture(max_bytes=65536))
    yield recording
    recording.close()


async def _plan_in_workspace(ctx: Any) -> dict[str, Any]:
    """Leaves a file in its workspace and returns its run id and the file's path."""
    path = Path(ctx.workspace) / "plan.txt"
    path.write_text(f"steps of {ctx.run_id}")
    return {"steps": ["a"], "run": ctx.run_id, "file": str(path)}


async def _build_from_file(ctx: Any) -> dict[str, Any]:
    """Reads the file the plan left in the workspace (fails when it is not there)."""
    return {"parts": [(Path(ctx.workspace) / "plan.txt").read_text()]}


_IN_WORKSPACE = {**HANDLERS, "plan": _plan_in_workspace, "build": _build_from_file}


@pytest.mark.slow
def test_verify_reads_the_replays_run_id_as_the_recorded_one(
    rec: Recording, tmp_path: Path
) -> None:
    """Stages returning their run id, or a path and text in their workspace, re-executed in a
    replay under the same workspace root, do not diverge; the replay's workspace is its own."""
    root = tmp_path / "workspaces"
    handlers = counting(_IN_WORKSPACE)[0]
    original = rec.run(handlers=_IN_WORKSPACE, flow=flow_without_plan_mapping(), workspace=root)
    outcome = rec.replay(original.run_id, verify=True, resolver=handlers, workspace=str(root))
    assert ([], "steps of " + outcome.run_id) == (
        outcome.report.divergences,
        (root / outcome.run_id / "plan.txt").read_text(),
    )


@pytest.mark.slow
def test_a_stage_resumed_after_fed_ones_finds_the_files_they_left(
    rec: Recording, tmp_path: Path
) -> None:
    """With ``from_stage``, the replay's workspace starts as a copy of the recorded run's: the
    resumed stage reads the file the fed stage wrote, the original's folder is left as it
    was, and nothing diverges."""
    root = tmp_path / "workspaces"
    flow = flow_without_plan_mapping()
    original = rec.run(handlers=_IN_WORKSPACE, flow=flow, workspace=root)
    before = sorted(p.name for p in (root / original.run_id).iterdir())
    handlers, calls = counting(_IN_WORKSPACE)
    outcome = rec.replay(
        original.run_id, from_stage="build", verify=True, resolver=handlers, workspace=str(root)
    )
    assert ("success", [], False, before) == (
        str(outcome.result.status),
        outcome.report.divergences,
        "plan" in calls,
        sorted(p.name for p in (root / original.run_id).iterdir()),
    )
    assert (root / outcome.run_id / "plan.txt").read_text() == f"steps of {original.run_id}"


async def _plan_with_a_link(ctx: Any) -> dict[str, Any]:
    """``_plan_in_workspace``, and a link to its file beside it."""
    answer = await _plan_in_workspace(ctx)
    (Path(ctx.workspace) / "link").symlink_to("plan.txt")
    return answer


async def _build_onto_file(ctx: Any) -> dict[str, Any]:
    """Adds a line to the plan's file, and publishes a part for ``check`` to read it."""
    path = Path(ctx.workspace) / "plan.txt"
    path.write_text(path.read_text() + "\nbuilt")
    ctx.publish("part", {"name": "file"})
    return {"parts": ["file"]}


async def _check_file(ctx: Any) -> dict[str, Any]:
    """Reads the plan's file as this stage finds it."""
    return {"checked": (Path(ctx.workspace) / "plan.txt").read_text()}


@pytest.mark.slow
def test_the_recorded_folder_is_copied_once_with_its_links(rec: Recording, tmp_path: Path) -> None:
    """The copy keeps a link a link, and is made before the first re-executed stage only: the
    file the recorded build had added a line to, to which the replay's build adds another, is
    read with both by the next stage, not copied over again."""
    root = tmp_path / "workspaces"
    flow = flow_without_plan_mapping()
    handlers = {**HANDLERS, "plan": _plan_with_a_link, "build": _build_onto_file}
    original = rec.run(handlers=handlers, flow=flow, workspace=root)
    resolver = Resolver({**handlers, "check": _check_file})
    outcome = rec.replay(
        original.run_id, from_stage="build", resolver=resolver, workspace=str(root)
    )
    folder = root / outcome.run_id
    assert ("success", "plan.txt", {"checked": f"steps of {original.run_id}\nbuilt\nbuilt"}) == (
        str(outcome.result.status),
        (folder / "link").readlink().as_posix(),
        dict(outcome.result.executions["check"][0].outputs),
    )


async def _plan_signed(ctx: Any) -> dict[str, Any]:
    """Leaves a file named after its run in its workspace."""
    (Path(ctx.workspace) / f"by-{ctx.run_id}").write_text("")
    return await HANDLERS["plan"](ctx)


@pytest.mark.slow
def test_only_a_replay_that_feeds_stages_starts_from_the_recorded_folder(
    rec: Recording, tmp_path: Path
) -> None:
    """A full replay feeds nothing: its workspace holds only what its own stages left, not the
    recorded run's files. A replay from a stage whose recorded run's folder is gone starts
    from an empty workspace, and runs."""
    root = tmp_path / "workspaces"
    handlers = {**HANDLERS, "plan": _plan_signed}
    original = rec.run(handlers=handlers, workspace=root)
    full = rec.replay(original.run_id, resolver=Resolver(handlers), workspace=str(root))
    shutil.rmtree(root / original.run_id)
    resumed = rec.replay(original.run_id, from_stage="build", workspace=str(root))
    assert ("success", [f"by-{full.run_id}"], "success", []) == (
        str(full.result.status),
        sorted(p.name for p in (root / full.run_id).iterdir()),
        str(resumed.result.status),
        sorted(p.name for p in (root / resumed.run_id).iterdir()),
    )


@pytest.mark.slow
def test_a_recorded_folder_that_cannot_be_copied_fails_the_first_stage_resumed(
    rec: Recording, tmp_path: Path
) -> None:
    """A named pipe in the recorded run's folder cannot be copied: the first stage resumed fails
    with a line naming the folder, and runs no handler."""
    root = tmp_path / "workspaces"
    original = rec.run(handlers=_IN_WORKSPACE, flow=flow_without_plan_mapping(), workspace=root)
    os.mkfifo(root / original.run_id / "pipe")
    handlers, calls = counting(_IN_WORKSPACE)
    outcome = rec.replay(
        original.run_id, from_stage="build", resolver=handlers, workspace=str(root)
    )
    (build,) = outcome.result.executions["build"]
    said = f"replay: cannot copy the recorded run's workspace {root / original.run_id}: "
    assert ("failure", "failure", True, {}) == (
        str(outcome.result.status),
        str(build.status),
        (build.error or "").startswith(said),
        calls,
    )
