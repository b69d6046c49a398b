"""Hostile input a fuzzer found (``tests/fuzz_support.py``, run at length by
``scripts/fuzz.py``): each defect's regression through the real command, asserting its one-line
error and exit status.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from cli_support import taskdaemon, write


@pytest.mark.slow
@pytest.mark.parametrize(
    ("text", "issue"),
    [
        ("concurrency: !!float", "2: concurrency: invalid float value: ''"),
        ("concurrency: !!int +", "2: concurrency: invalid int value: '+'"),
        ("concurrency: !!bool x", "2: concurrency: invalid bool value: 'x'"),
        ("concurrency: !!timestamp x", "2: concurrency: invalid timestamp value: 'x'"),
        # an alias: read from the parser's events (yaml_graph), not from composed nodes
        ("d: &d {k: 1}\nconcurrency: !!bool x\nx: *d", "3: concurrency: invalid bool value: 'x'"),
    ],
)
def test_a_tagged_scalar_not_of_its_tag_is_one_issue(
    home: Path, tmp_path: Path, text: str, issue: str
) -> None:
    """PyYAML's constructor fails on such a scalar with IndexError, KeyError or AttributeError,
    which were tracebacks (exit 1); each is now an issue naming the value, exit 2."""
    path = write(tmp_path / "tagged.yaml", f"name: x\n{text}\nstages: []\n")
    done = taskdaemon(home, "validate", "--no-resolve", str(path))
    output = done.stdout + done.stderr
    assert (2, True, False) == (done.returncode, f"{path}:{issue}" in output, "Traceback" in output)
