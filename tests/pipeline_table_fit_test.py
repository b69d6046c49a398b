"""``table_fit``: the shortest unique id prefixes and a table fitted by its free-text columns."""

from __future__ import annotations

from taskdaemon.pipeline.table_fit import aligned, short_ids


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
