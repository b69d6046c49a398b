"""``taskdaemon validate`` (``cli/validate.py``), end to end: a subprocess of the console script."""

from __future__ import annotations

from pathlib import Path

from cli_support import taskdaemon, write


def test_validate_reports_each_file(home: Path, tmp_path: Path) -> None:
    """validate prints OK for valid files, the issues of invalid ones, and exits 2 if any."""
    bad = write(tmp_path / "bad.yaml", "name: Bad Name\nstages: []\n")
    done = taskdaemon(home, "validate", "examples/feature_delivery.yaml", str(bad))
    assert 2 == done.returncode
    lines = done.stdout.splitlines()
    assert "OK examples/feature_delivery.yaml (5 stages)" == lines[0]
    assert all(line.startswith(f"{bad}:") for line in lines[1:])
    assert len(lines) > 1
    assert "Traceback" not in done.stderr


def test_validate_ok_exits_0(home: Path) -> None:
    """validate exits 0 when every file is valid."""
    done = taskdaemon(home, "validate", "examples/feature_delivery.yaml")
    assert (0, "OK examples/feature_delivery.yaml (5 stages)\n") == (done.returncode, done.stdout)
