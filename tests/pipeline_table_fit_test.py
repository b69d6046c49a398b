"""``table_fit``: the shortest unique id prefixes and a table fitted by its free-text columns."""

from __future__ import annotations

import pytest

from taskdaemon.pipeline import table_fit
from taskdaemon.pipeline.table_fit import (
    aligned,
    cut_columns,
    fit,
    hidden_note,
    short_ids,
    text_columns,
    wrapped,
)
from taskdaemon.pipeline.terminal_text import CONTROL_ESCAPES


@pytest.fixture(autouse=True)
def _no_columns_remembered() -> None:
    """Each test counts its characters afresh: the module remembers the columns of the
    characters met (process-wide), so a miscount would otherwise hide behind an earlier
    test's right one."""
    table_fit._known.clear()


def test_an_id_is_cut_to_eight_digits_unless_another_shares_them() -> None:
    """Eight digits when no other id listed starts with them; one past the longest prefix it
    shares with another id otherwise; an id listed twice is the same id."""
    ids = ["abcdef0123456789", "abcdef0199999999", "1234567890abcdef", "abcdef0123456789"]
    assert ["abcdef012", "abcdef019", "12345678", "abcdef012"] == short_ids(ids)
    assert ["abcdef01"] == short_ids(["abcdef0123456789"])
    assert ["abc123"] == short_ids(["abc123"])  # no longer than 8: whole


def test_only_the_columns_that_give_way_are_cut_the_widest_first() -> None:
    """Fitted to 40 columns, NAME (the widest free text) gives way before NOTE, both cut with
    an ellipsis to no fewer than 12 characters; the numbers stay whole."""
    header = ("NAME", "COUNT", "NOTE")
    rows = [("a-very-long-pipeline-name-indeed", "12345", "short note here")]
    whole = aligned(header, rows)
    assert "a-very-long-pipeline-name-indeed  12345  short note here" == whole[1]
    fitted = aligned(header, rows, 40, (0, 2))
    assert ["NAME              COUNT  NOTE", "a-very-long-pip…  12345  short note here"] == fitted
    assert all(len(line) <= 40 for line in fitted)
    floor = aligned(header, rows, 10, (0, 2))
    assert "a-very-long…  12345  short note …" == floor[1]  # 12 each: wider than 10 still


def test_a_table_that_fits_is_left_whole() -> None:
    header = ("NAME", "COUNT")
    rows = [("build", "3")]
    assert aligned(header, rows) == aligned(header, rows, 80, (0,))


def test_columns_to_drop_go_in_order_only_while_the_table_is_too_wide() -> None:
    """Names at their floor still leave the table wider: the first column to drop goes, the
    name widens back into its room, and the second stays because the table then fits."""
    header = ("NAME", "P50", "CPU", "MEMORY")
    rows = [("deploy-the-artifact-to-production", "12.3s", "419ms", "43.7 MiB")]
    table = fit(header, rows, 30, (0,), drop=(3, 2))
    expected = (["NAME              P50    CPU", "deploy-the-arti…  12.3s  419ms"], ("MEMORY",))
    assert expected == (table.lines, table.hidden)
    assert ("MEMORY",) == fit(header, rows, 35, (0,), drop=(3, 2)).hidden
    assert () == fit(header, rows, 36, (0,), drop=(3, 2)).hidden  # the name at its floor, 12
    assert () == fit(header, rows, None, (0,), drop=(3, 2)).hidden  # unfitted: every column


def test_a_floor_below_12_is_a_last_resort_after_every_drop() -> None:
    """With ``floor``, names already at 12 and every column to drop gone still leave the table
    wider: the names give way further, to ``floor`` and no fewer; without it they keep 12."""
    header = ("NAME", "P50", "NOTE", "MEMORY")
    rows = [("deploy-the-artifact-to-production", "12.3s", "a note", "43.7 MiB")]
    table = fit(header, rows, 23, (0, 2), drop=(3,), floor=8)
    expected = (["NAME      P50    NOTE", "deploy-…  12.3s  a note"], ("MEMORY",))
    assert expected == (table.lines, table.hidden)
    assert "deploy-the-…  12.3s  a note" == fit(header, rows, 23, (0, 2), drop=(3,)).lines[1]
    assert "deploy-…  12.3s  a note" == fit(header, rows, 10, (0, 2), drop=(3,), floor=8).lines[1]
    kept = fit(header, rows, 37, (0, 2), drop=(3,), floor=8)  # 12 and MEMORY fit: no cut below
    assert ((), "deploy-the-…") == (kept.hidden, kept.lines[1][:12])


def test_wide_characters_take_two_columns_and_are_cut_where_the_screen_ends() -> None:
    """A CJK character takes two terminal columns: rows holding them line up with the others,
    and a cut keeps what fits in the columns, not in the characters."""
    assert (8, 5, 2) == (text_columns("数据仓库"), text_columns("naïve"), text_columns("e\u0301x"))
    assert "数据…" == cut_columns("数据仓库刷新", 6)
    assert "数据仓库" == cut_columns("数据仓库", 8)
    lines = aligned(("STAGE", "N"), [("数据仓库", "1"), ("load", "2")])
    assert ["STAGE     N", "数据仓库  1", "load      2"] == lines
    fitted = aligned(("STAGE", "N"), [("数据仓库刷新阶段的名字", "1")], 15, (0,))
    assert ["STAGE         N", "数据仓库刷…   1"] == fitted  # 11 columns of name, padded to 12


def test_prose_wraps_between_words_and_never_breaks_an_id() -> None:
    """A line wider than the terminal wraps between words, later lines indented by four; a
    run id wider than what is left stays whole on its line."""
    run_id = "0123456789abcdef0123456789abcdef"
    line = f"critical path of the median and slowest run {run_id} (6.3s):"
    expected = ["critical path of the median and slowest run", f"    {run_id} (6.3s):"]
    assert expected == wrapped(line, 60)
    assert [line] == wrapped(line, None) == wrapped(line, len(line))
    note = hidden_note(("CPU", "PEAK MEM"), 80)
    assert ["(--wide shows the columns left out to fit: CPU, PEAK MEM)"] == note
    assert [] == hidden_note((), 80)


def test_an_id_between_two_keeps_the_longer_of_its_two_prefixes() -> None:
    """Sorted, the middle id shares 12 digits with the one before it and 8 with the one after
    it: it keeps 13, so no id shown is the start of another listed."""
    ids = ["abcdef0123459999", "abcdef0199999999", "abcdef0123450000"]
    assert ["abcdef0123459", "abcdef019", "abcdef0123450"] == short_ids(ids)


def test_a_line_one_character_too_wide_is_fitted() -> None:
    """One character over the width is over: the column that gives way loses one."""
    header = ("NAME", "N")
    rows = [("twenty-characters-xy", "1")]
    assert ["NAME                 N", "twenty-characters-…  1"] == aligned(header, rows, 22, (0,))


def test_the_widest_column_gives_way_down_to_the_next_widest_then_both_in_turn() -> None:
    """30 and 20 characters, 15 too many: the first is cut to 20, then each loses one in
    turn, not the widest alone down to 15."""
    rows = [("a" * 30, "b" * 20)]
    fitted = aligned(("A", "B"), rows, 37, (0, 1))
    assert f"{'a' * 16}…  {'b' * 17}…" == fitted[1]


def test_a_row_with_a_cell_more_than_the_header_is_refused() -> None:
    """Not shown without its last cell: a caller's row that does not match its header is a
    bug said at once."""
    with pytest.raises(ValueError, match="not the header's 1"):
        aligned(("A",), [("a", "extra")])


def test_marks_and_format_characters_take_no_column_and_full_width_letters_two() -> None:
    """A combining accent, a mark that combines without a combining class (Devanagari's
    inverted candrabindu), an enclosing circle and a zero-width joiner take no column; a
    full-width Latin letter takes two, as a CJK one does; any other letter one. A character
    counted once counts the same again."""
    texts = ["e\u0301", "\u0915\u0900", "a\u20dd", "a\u200db", "\uff21\uff22", "数", "ï"]
    assert [1, 1, 1, 2, 4, 2, 1] == [text_columns(text) for text in texts]
    assert [1, 1, 1, 2, 4, 2, 1] == [text_columns(text) for text in texts]


def test_a_cut_keeps_what_fits_before_the_ellipsis_in_columns() -> None:
    """The ellipsis takes the last column: a wide character that ends exactly there is kept,
    one that would take it is left out, and one that fills the whole width leaves room for
    nothing but the ellipsis."""
    assert "ab数…" == cut_columns("ab数据", 5)
    assert "ab…" == cut_columns("ab数据", 4)
    assert "…" == cut_columns("数据", 2)


def test_an_escape_is_shown_whole_or_left_out_never_cut() -> None:
    """With an escape table a control character is shown as its escape and counted as the
    escape's columns: kept whole when it fits, left out whole when it does not."""
    assert "abc\\x1b" == cut_columns("abc\x1b", 7, CONTROL_ESCAPES)
    assert "abc…" == cut_columns("abc\x1b", 6, CONTROL_ESCAPES)
    assert "a\\x1bbc…" == cut_columns("a\x1bbcdefgh", 8, CONTROL_ESCAPES)
    assert "a\u20dd\\x07" == cut_columns("a\u20dd\x07", 6, CONTROL_ESCAPES)


def test_prose_wraps_at_the_width_given_and_never_breaks_a_word() -> None:
    """Wrapped at 24 columns, the line breaks before a run id longer than that, which stays
    whole on its own line, and a hyphenated stage name is one word too."""
    line = "stages left out: 0123456789abcdef0123456789abcdef deploy-the-artifact-to-production"
    assert [
        "stages left out:",
        "    0123456789abcdef0123456789abcdef",
        "    deploy-the-artifact-to-production",
    ] == wrapped(line, 24)


def test_the_note_of_the_columns_left_out_wraps_to_the_width() -> None:
    """The note under a table fitted to 40 columns is wrapped to them."""
    assert ["(--wide shows the columns left out to", "    fit: CPU, PEAK MEM)"] == hidden_note(
        ("CPU", "PEAK MEM"), 40
    )


def test_prose_with_wide_characters_wraps_by_the_columns_it_takes() -> None:
    """Stage names in CJK take two columns a character: the line breaks where the screen
    ends, not where as many characters would; the spaces between words on a line stay."""
    line = "critical path: 数据仓库刷新 →  数据仓库清理 → 数据仓库发布 (6.3s)"
    expected = ["critical path: 数据仓库刷新 →", "    数据仓库清理 →", "    数据仓库发布 (6.3s)"]
    assert expected == wrapped(line, 30)
    assert ["    run=ok  数据=ok", "    b=ok"] == wrapped("    run=ok  数据=ok b=ok", 20)


def test_a_wrapped_line_fills_the_width_and_a_too_long_first_word_still_starts_it() -> None:
    """Words fill a line up to exactly the width; a first word wider than the width is the
    whole first line, never preceded by an empty one."""
    assert ["abc def", "    ghi"] == wrapped("abc def ghi", 7)
    assert ["0123456789abcdef", "    tail"] == wrapped("0123456789abcdef tail", 10)
