"""``yaml_import``: PyYAML's non-printable check matches exactly what it did, with the faster
pattern on the CLI's paths."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml.reader

from cli_support import without_settings
from taskdaemon.pipeline.yaml_import import NON_PRINTABLE, YAML_NON_PRINTABLE

EVERY_CODE_POINT = "".join(map(chr, range(0x110000)))


def test_the_key_is_pyyamls_own_pattern() -> None:
    """The cache key is the text PyYAML compiles, so its ``re.compile`` finds the seed."""
    source = yaml.reader.__file__
    with open(source, encoding="utf-8") as handle:
        text = handle.read()
    line = next(line for line in text.splitlines() if "NON_PRINTABLE = re.compile(" in line)
    literal = line.split("re.compile(", 1)[1].rsplit(")", 1)[0]
    assert YAML_NON_PRINTABLE == ast.literal_eval(literal)


def test_both_patterns_match_the_same_code_points() -> None:
    """Over every code point, the listed pattern matches exactly where PyYAML's matches."""
    listed = [m.start() for m in re.compile(NON_PRINTABLE).finditer(EVERY_CODE_POINT)]
    original = [m.start() for m in re.compile(YAML_NON_PRINTABLE).finditer(EVERY_CODE_POINT)]
    assert original == listed
    assert 0xFFFE in listed
    assert 0x41 not in listed


PIPELINE = """\
name: seeded
stages:
  - name: only
    loop: python
    handler: seeded_handler:handle
    triggers:
      - manual: {approval_required: false}
"""

CHECK = """
import sys
from taskdaemon.pipeline.cli import main
code = main(sys.argv[1:])
import yaml, yaml.reader
from taskdaemon.pipeline.yaml_import import NON_PRINTABLE
print(code, yaml.reader.Reader.NON_PRINTABLE.pattern == NON_PRINTABLE)
try:
    yaml.safe_load("a: \\x01")
except yaml.reader.ReaderError:
    print("refused")
"""


@pytest.mark.slow
@pytest.mark.parametrize("argv", [["validate"], ["dag"], ["run", "--quiet"]])
def test_commands_import_yaml_with_the_listed_pattern(argv: list[str], tmp_path: Path) -> None:
    """Each command reading a pipeline file gives PyYAML the listed pattern (its first
    ``import yaml`` is this module's), and PyYAML still refuses a non-printable character."""
    (tmp_path / "seeded.yaml").write_text(PIPELINE)
    (tmp_path / "seeded_handler.py").write_text("def handle(ctx):\n    return {}\n")
    env = without_settings(TASKDAEMON_HOME=str(tmp_path / "home"))
    done = subprocess.run(
        [sys.executable, "-c", CHECK, *argv, "seeded.yaml"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert ["0", "True", "refused"] == done.stdout.split()[-3:], done.stderr
