"""The example's loop types (``examples/loops.py``) called directly, outside any workspace."""

from __future__ import annotations

import dataclasses
import os
import stat
import tempfile
from pathlib import Path

import pytest

from cli_support import ROOT
from pipeline_engine_support import plain_context


def test_without_a_workspace_the_example_works_in_a_private_folder_of_the_user(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An engine made without a workspace gives the handlers none: the example then works in
    ``taskdaemon-<uid>/<run id>`` under the temp dir, both folders 0700, and refuses a folder
    of that name that is a link to somewhere else."""
    monkeypatch.syspath_prepend(str(ROOT))  # examples.loops, as from the repository root
    from examples.loops import plan

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    context = dataclasses.replace(plain_context(), inputs={"goal": "ship it"})
    written = Path(plan(context)["plan"]["path"])
    root = tmp_path / f"taskdaemon-{os.getuid()}"
    modes = [stat.S_IMODE(path.stat().st_mode) for path in (root, root / context.run_id)]
    assert (root / context.run_id / "plan.md", [0o700, 0o700]) == (written, modes)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (root / context.run_id / "plan.md").unlink()
    (root / context.run_id).rmdir()
    root.rmdir()
    root.symlink_to(elsewhere)
    with pytest.raises(PermissionError, match="is not this user's own folder"):
        plan(context)
