"""Replay plans: the values a replay is given instead of recorded ones (``--stage-output``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from taskdaemon.pipeline.replay.plan import load_stage_output


def test_a_stage_output_file_nested_too_deep_is_one_line(tmp_path: Path) -> None:
    """``--stage-output S=FILE`` with JSON nested 100,000 deep is a one-line ValueError naming
    the depth limit, not a RecursionError traceback."""
    path = tmp_path / "deep.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ValueError, match="nested") as refused:
        load_stage_output(f"b={path}")
    assert f"--stage-output b={path}: nested deeper than 100 levels" == str(refused.value)
