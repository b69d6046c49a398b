"""Secrets known by their value that overlap in a text (``alpha-key-1234`` and
``1234-beta-key`` in ``alpha-key-1234-beta-key``): the stretch they cover goes whole
(``masked_values.masked_text``), in the run log of a real ``taskdaemon run`` and in every view
of the stored run. Replaced one value after the other, the first took the second's start with
it, and the second's rest was shown."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli_support import taskdaemon, write
from redaction_support import shown_everywhere
from taskdaemon.pipeline.masked_values import masked_text

ENV_SECRET = "alpha-key-1234"  # in taskdaemon's environment, as DEPLOY_TOKEN
REQUEST_SECRET = "1234-beta-key"  # the run's request, --input api_key=...

PIPELINE = """\
name: overlap
stages:
  - name: a
    command: 'echo "joined=$DEPLOY_TOKEN${TASKDAEMON_INPUT_K#1234} end"'
    triggers: [{manual: {approval_required: false}}]
    inputs: {k: request.api_key}
"""


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("x alpha-key-1234-beta-key y", "x [R] y"),  # overlapping: one stretch
        ("1234-beta-key alpha-key-1234", "[R] [R]"),
        ("alpha-key-12341234-beta-key", "[R][R]"),  # touching: two
        ("b" + "alpha-key-1234" * 3 + "c", "b[R][R][R]c"),
        ("alpha-key-1234-beta-key-1234-beta-key", "[R]"),  # a chain of overlaps
    ],
)
def test_overlapping_values_are_masked_as_one_stretch(text: str, masked: str) -> None:
    assert masked == masked_text(text, (ENV_SECRET, REQUEST_SECRET, "beta-key-1234"), "[R]")


def test_a_text_holding_no_value_is_itself() -> None:
    text = "nothing to mask here"
    assert masked_text(text, (ENV_SECRET,), "[R]") is text


def test_a_long_value_repeated_is_found_where_replace_finds_it() -> None:
    """Each value's places are searched from the end of the last one, as ``str.replace`` does:
    searched from each character, a 1,000-character value in a text of it repeated cost their
    lengths' product (1.5 s of CPU for 200,000 characters). Counted in ``str.find`` calls."""
    text = "a" * 20_000
    found = []

    class Counted(str):
        def find(self, *args: object) -> int:
            found.append(args)
            return super().find(*args)  # type: ignore[arg-type]

    assert "[R]" == masked_text(Counted(text), ("a" * 1_000, "a" * 999), "[R]")
    assert len(found) <= 2 * (20 + 21 + 1)


@pytest.mark.slow
def test_no_part_of_overlapping_secrets_is_stored(home: Path, tmp_path: Path) -> None:
    """The stage prints the environment's secret and the request's run together; before, the
    log read ``joined=[REDACTED]-beta-key end``."""
    pipeline = write(tmp_path / "overlap.yaml", PIPELINE)
    ran = taskdaemon(
        home, "run", str(pipeline), "--input", f"api_key={REQUEST_SECRET}", DEPLOY_TOKEN=ENV_SECRET
    )
    (run_id,) = (line.split()[1] for line in ran.stdout.splitlines() if line.startswith("run "))
    shown = shown_everywhere(home, run_id, tmp_path)
    shown["run"] = ran.stdout + ran.stderr
    leaked = [name for name, text in shown.items() if "beta-key" in text or "alpha-key" in text]
    assert (0, [], True) == (ran.returncode, leaked, "joined=[REDACTED] end" in shown["logs"])
