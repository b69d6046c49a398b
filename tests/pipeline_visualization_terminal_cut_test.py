"""The live table's cut cells (``visualization/_terminal``): a text cut at a wide (CJK)
character ends with its ellipsis, as ``table_fit.cut_columns`` cuts every table's cells, and
each cell still fills its column."""

from __future__ import annotations

import io

from taskdaemon.pipeline.records import AttemptRecord, RunRecord, StageRecord
from taskdaemon.pipeline.visualization import dag_snapshot
from taskdaemon.pipeline.visualization._terminal import render_table

T0 = 1_700_000_000.0
#: Each stage's name and error, long enough to be cut on a 50-column terminal.
FAILED = (
    ("構築段階構築段階構築段階構築段階", "失敗しました失敗しました失敗しました失敗しました"),
    ("build-the-thing-now-please-x", "a plain error that goes on and on and on and on"),
)


def _table(width: int) -> list[str]:
    """The table ``watch`` draws of two failed stages on a terminal ``width`` columns wide."""
    from rich.console import Console

    stages = tuple(
        StageRecord(
            name,
            "command",
            "failure",
            (AttemptRecord(f"{name}.0", 0, 1, "failure", T0, T0 + 1, error=error),),
        )
        for name, error in FAILED
    )
    run = RunRecord("ab" * 16, "p", "failure", T0, T0 + 1, stages, ())
    console = Console(width=width, record=True, force_terminal=False, file=io.StringIO())
    console.print(render_table(dag_snapshot(None, run), T0 + 2, width=width))
    lines = console.export_text().splitlines()
    return lines[next(i for i, line in enumerate(lines) if line.startswith("STAGE")) :]


def test_a_cut_at_a_wide_character_puts_the_ellipsis_after_the_text() -> None:
    """On 50 columns the CJK name and error are cut where a wide character would straddle
    the column's end: each ellipsis follows the last character whole, the blank left after
    it, and the next column starts where it starts on the ASCII row; ``rich`` wrote
    ``構築段階構 …``, a blank before the ellipsis."""
    assert [
        "STAGE         STATE    ELAPSED  INST  WAITING FOR…",
        "構築段階構…   failure     1.0s        失敗しまし… ",
        "build-the-t…  failure     1.0s        a plain err…",
    ] == _table(50)
