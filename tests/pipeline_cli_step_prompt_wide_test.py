"""``replay RUN --step`` on a real pseudo-terminal 80 and 100 columns wide, over a run whose
error mixes Hebrew, CJK, a combining mark and emoji: the opening, the state lines and ``where``
fit the screen's columns; on a pipe the reasons keep their 80 columns."""

from __future__ import annotations

import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from cli_support import taskdaemon
from taskdaemon.pipeline.table_fit import text_columns
from terminal_support import on_a_terminal_of

ERROR = "שגיאה בשלב 数据仓库刷新失败：磁盘空间不足，请联系管理员清理空间后再重试 cafe\u0301 🚀🚀"
PIPELINE = f"""\
    name: wide
    stages:
      - name: load
        command: "echo '{{}}'"
        triggers: [{{manual: {{}}}}]
      - name: refresh-the-warehouse
        command: "echo '{ERROR}' >&2; exit 3"
        triggers: [{{on_completion: {{stage: load}}}}]
      - name: skipped-one
        command: "echo '{{}}'"
        triggers: [{{on_completion: {{stage: refresh-the-warehouse}}}}]
"""
KEYS = "goto 1h\nwhere\nquit\n"


@pytest.fixture(scope="module")
def recorded() -> Iterator[tuple[Path, str]]:
    """A home whose store holds one real failed run of PIPELINE, and the run's id."""
    with tempfile.TemporaryDirectory(prefix="td-wide-", dir="/tmp") as name:
        home = Path(name)
        (home / "p.yaml").write_text(textwrap.dedent(PIPELINE))
        done = taskdaemon(home, "run", str(home / "p.yaml"), "-q", timeout=120)
        assert 1 == done.returncode, done.stderr
        yield home, done.stdout.strip()


def _after(lines: list[str], command: str) -> list[str]:
    """The lines shown after ``(replay) command`` up to the next prompt."""
    start = lines.index(f"(replay) {command}") + 1
    end = next(i for i in range(start, len(lines)) if lines[i].startswith("(replay) "))
    return [line for line in lines[start:end] if line.strip()]


@pytest.mark.slow
@pytest.mark.parametrize("columns", [80, 100])
def test_where_on_a_terminal_fits_its_columns(recorded: tuple[Path, str], columns: int) -> None:
    """The opening lines, each ``where`` line and each state line are within the terminal's
    columns, counted as the screen counts them (a CJK character two, a combining mark none);
    the failure's and the skip's reasons are cut with an ellipsis; the run id stays whole."""
    home, run_id = recorded
    code, shown = on_a_terminal_of(
        columns, home, "replay", run_id, "--step", streams=("stdout",), keys=KEYS.encode()
    )
    assert 0 == code, shown
    # The terminal echoes the keys typed ahead; the prompt's own lines start with ``(replay)``.
    shown = shown[next(i for i, line in enumerate(shown) if line.startswith("stepping")) :]
    opening = shown[: next(i for i, line in enumerate(shown) if line.startswith("(replay) "))]
    lines = opening + _after(shown, "goto 1h") + _after(shown, "where")
    assert [] == [line for line in lines if text_columns(line) > columns], shown
    stages = {line.split()[0]: line for line in _after(shown, "where")[-3:]}
    assert stages["refresh-the-warehouse"].endswith("…)"), shown
    assert "数据" in stages["refresh-the-warehouse"], shown
    assert stages["skipped-one"].endswith("…)"), shown
    assert run_id in " ".join(shown).split()


def test_where_on_a_pipe_keeps_80_columns_of_each_reason(recorded: tuple[Path, str]) -> None:
    """On a pipe there is no screen: a reason keeps its 80 columns (79 when the next
    character is a CJK one, which takes two), counted in columns, not characters."""
    home, run_id = recorded
    done = taskdaemon(home, "replay", run_id, "--step", stdin=KEYS)
    assert 0 == done.returncode, done.stderr
    (failed,) = [line for line in done.stdout.splitlines() if "  failure  (" in line]
    reason = failed.split("  failure  (", 1)[1].removesuffix(")")
    assert (True, True) == (text_columns(reason) in (79, 80), reason.endswith("…")), failed
