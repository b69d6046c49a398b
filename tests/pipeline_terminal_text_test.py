"""Text from a run is printed with its control characters escaped (``terminal_text``)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from cli_support import pythonpath_with, taskdaemon, write
from taskdaemon.pipeline.cli.run_progress import ProgressView
from taskdaemon.pipeline.events import ApprovalResolved
from taskdaemon.pipeline.table_fit import text_columns
from taskdaemon.pipeline.terminal_text import json_shown, one_line, shown

#: Clears the screen, sets the window's title, and rings the bell.
HOSTILE = "disk full \x1b[2J\x1b]0;owned\x07 \x9b31m"
ESCAPED = "disk full \\x1b[2J\\x1b]0;owned\\x07 \\x9b31m"


def test_one_line_escapes_every_control_character() -> None:
    """ESC, BEL and the C1 CSI come out as visible escapes."""
    assert ESCAPED == one_line(HOSTILE, 200)


def test_one_line_escapes_the_bidirectional_overrides_and_isolates() -> None:
    """U+202A-202E and U+2066-2069, which reorder what follows them on the line (an error
    ending in U+202E shows the next columns reversed), come out as visible escapes."""
    hostile = "boom \u202eevil\u202c \u2066x\u2069 \u202a\u202b\u202d\u2067\u2068"
    expected = "boom \\u202eevil\\u202c \\u2066x\\u2069 \\u202a\\u202b\\u202d\\u2067\\u2068"
    assert expected == one_line(hostile, 200)


def test_one_line_escapes_the_zero_width_characters() -> None:
    """Zero-width and other invisible format characters (U+200B-200F, U+2060-2064, U+FEFF,
    U+061C, U+180E) are shown as escapes: printed, they hide inside a word or a name."""
    hostile = "pass\u200bword \u200c\u200d\u200e\u200f \u2060\u2061\u2064 \ufeff\u061c\u180e"
    expected = (
        "pass\\u200bword \\u200c\\u200d\\u200e\\u200f \\u2060\\u2061\\u2064 \\ufeff\\u061c\\u180e"
    )
    assert expected == one_line(hostile, 200)


def test_shown_escapes_a_zero_width_space() -> None:
    """A line shown whole escapes a zero-width space too."""
    assert "a\\u200bb" == shown("a\u200bb")


def test_one_line_joins_lines_and_cuts_to_width() -> None:
    """Line breaks and tabs become single spaces, and a long line is cut with an ellipsis."""
    assert "first second\\x1b…" == one_line("first\n\tsecond\x1b[0m", 17)


def test_one_line_keeps_a_line_exactly_as_wide_as_the_width() -> None:
    """A line of exactly ``width`` characters fits: it is shown whole, without an ellipsis."""
    assert "abcde" == one_line("abcde", 5)


@pytest.mark.parametrize("text", [None, ""])
def test_one_line_of_no_text_is_empty(text: str | None) -> None:
    """None (no error, no reason) and the empty string both give an empty cell."""
    assert "" == one_line(text, 10)


def test_shown_keeps_the_tab_and_escapes_a_carriage_return() -> None:
    """A tab only moves the cursor; a carriage return would overwrite the line, so it is escaped."""
    assert "a\tb\\x0dc" == shown("a\tb\rc")


@pytest.fixture
def failed_run(tmp_path: Path) -> tuple[Path, str, str]:
    """A run whose one stage fails with ``HOSTILE`` as its error: the home, the run's id, and
    everything ``taskdaemon run`` printed."""
    (tmp_path / "hostile.py").write_text(f"def fail(ctx):\n    raise RuntimeError({HOSTILE!r})\n")
    pipeline = write(
        tmp_path / "p.yaml",
        """\
        name: hostile
        stages:
          - name: write
            loop: python
            handler: "hostile:fail"
            triggers:
              - manual: {approval_required: false}
        """,
    )
    home = tmp_path / "home"
    done = taskdaemon(
        home, "run", str(pipeline), cwd=tmp_path, PYTHONPATH=pythonpath_with(tmp_path)
    )
    assert 1 == done.returncode, done.stderr
    run_id = done.stderr.split()[1]  # "run <id> of hostile started ..."
    return home, run_id, done.stdout + done.stderr


def test_run_prints_a_stage_error_with_its_controls_escaped(
    failed_run: tuple[Path, str, str],
) -> None:
    """The progress lines, the summary and the final error show the escapes, and no control
    character but the line breaks reaches the terminal."""
    _, _, printed = failed_run
    assert 4 == printed.count(ESCAPED[:40])  # the stage's line, the run's, the table, the error
    assert [] == [c for c in printed if c != "\n" and (ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0)]


def test_runs_show_prints_a_stage_error_with_its_controls_escaped(
    failed_run: tuple[Path, str, str],
) -> None:
    """``runs show`` (rebuilt from the stored spans) escapes the stage's error in its table."""
    home, run_id, _ = failed_run
    shown_run = taskdaemon(home, "runs", "show", run_id)
    assert 0 == shown_run.returncode, shown_run.stderr
    assert "\x1b" not in shown_run.stdout
    assert "disk full \\x1b[2J" in shown_run.stdout


def test_logs_prints_a_stage_error_with_its_controls_escaped(
    failed_run: tuple[Path, str, str],
) -> None:
    """``logs`` escapes the stage's error in the run's log records."""
    home, run_id, _ = failed_run
    logged = taskdaemon(home, "logs", run_id)
    assert 0 == logged.returncode, logged.stderr
    assert "\x1b" not in logged.stdout
    assert "disk full \\x1b[2J" in logged.stdout


def test_a_progress_line_escapes_an_approvers_name() -> None:
    """The name an approval records (which a client of the control socket chose) is escaped
    on ``run``'s progress line."""
    out = io.StringIO()
    view = ProgressView(out)
    view.on_event(
        ApprovalResolved(
            run_id="r", pipeline="p", stage="release", approved=True, at=0.0, by="eve\x1b[2J"
        )
    )
    assert "    0.00s  release                  approved by eve\\x1b[2J\n" == out.getvalue()


def test_one_line_cuts_wide_characters_by_screen_columns() -> None:
    """A CJK error is cut where 20 columns end, not after 20 characters (40 columns): ten
    characters would be 20 columns with no room for the ellipsis, so nine stay."""
    cell = one_line("数据仓库刷新失败磁盘空间不足请联系管理员", 20)
    assert "数据仓库刷新失败磁…" == cell
    assert 19 == text_columns(cell)


def test_one_line_never_cuts_an_escape_in_two() -> None:
    """An escape that does not fit is left out whole: ``\\x1…`` would read as another
    character."""
    assert "ab…" == one_line("ab\x1bc", 5)
    assert "ab\\x1b…" == one_line("ab\x1bcd", 7)


def test_one_line_keeps_combining_marks_with_their_letter() -> None:
    """A combining mark takes no column: ``é`` written as ``e`` and U+0301 is one column,
    and the cut never leaves the mark without its letter, nor the letter without it."""
    assert "cafe\u0301 ok" == one_line("cafe\u0301 ok", 7)
    assert "cafe\u0301…" == one_line("cafe\u0301 au lait", 5)


def test_one_line_of_emoji_and_right_to_left_text_counts_columns() -> None:
    """An emoji takes two columns, Hebrew letters one each, and no line is wider than asked."""
    for text in ("🚀🚀🚀 launch failed", "שגיאה בשלב הטעינה של הנתונים", "🚀שלב数据é\u0301"):
        for width in range(1, 30):
            assert text_columns(one_line(text, width)) <= width
    assert "🚀…" == one_line("🚀🚀🚀", 4)


def test_json_shown_escapes_what_a_terminal_acts_on_and_keeps_the_value() -> None:
    """DEL, a C1 control and U+202E, which a JSON encoder leaves raw, become JSON escapes; the
    text reads back as the same value, and other non-ASCII text stays as it is."""
    value = {"msg": "é\x7f\x9b\u202e\u200b"}
    text = json.dumps(value, ensure_ascii=False)
    shown_text = json_shown(text)
    assert ('{"msg": "é\\u007f\\u009b\\u202e\\u200b"}', value) == (
        shown_text,
        json.loads(shown_text),
    )
