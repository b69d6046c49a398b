"""Exact percentiles of a report window's rows, read by rank from the span store.

A report's percentile asks for the row at rank ``k`` of a window's values in ascending order.
Loading every value would cost memory in the history's size; instead the window's per-bucket
histogram (``tracking._day_totals``) names the bucket holding rank ``k``, and the row is read
inside that bucket's value range, either stepped to along an index or from the window's own
values of that bucket sorted in memory (``RankedColumn``). Used by
``tracking.aggregates.StoreReportData`` only.
"""

from __future__ import annotations

import bisect
import itertools
import json
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Final, overload

from taskdaemon.pipeline.errors import SpanSourceError
from taskdaemon.pipeline.frozen import frozen
from taskdaemon.pipeline.tracking._day_totals import bucket_low

__all__ = ["BUCKET_ROWS", "WALK_PER_READ", "BucketCache", "ColumnReads", "RankedColumn"]

NS_PER_SECOND: Final = 1e9

#: The most values of one histogram bucket a percentile reads into memory at once: a bucket the
#: window holds more of is always read by rank (``RankedColumn``).
BUCKET_ROWS: Final = 50_000
#: A bucket is read through the window once the history holds more than this many times the
#: window's rows in it: about what a rank walk's row costs against a window read's, which reads
#: a wider row and hands its value to Python.
WALK_PER_READ: Final = 4
# Names each column for the bucket cache (an ``id`` can be reused by a later column).
_SERIALS: Final = itertools.count()


class BucketCache:
    """The sorted values of the last bucket read through the window, one bucket for a whole
    report (so its memory is bounded by ``limit`` values): the reads of one column that follow
    each other (the two ranks of a percentile, its neighbouring percentiles) hit it."""

    def __init__(self, limit: int, walk_per_read: int) -> None:
        self.limit = limit
        self.walk_per_read = walk_per_read
        self.key: tuple[int, int] | None = None  # (column's serial, bucket)
        self.values: list[int] = []


@frozen
class ColumnReads:
    """How a ``RankedColumn`` reads its table: the window's rows along the value index
    (``by_value``: ``FROM ... WHERE ...`` with the window's parameters) and along its start
    index (``by_start``), the value ``column``, and the columns that order equal values in the
    value index (``ties``, comma-separated); ``history`` is the ``histogram_days`` key and
    series counting the column's values in the whole history."""

    by_value: str
    by_start: str
    column: str
    ties: str
    history: tuple[int, int]


class RankedColumn(Sequence[float]):
    """One column of a window's rows, in ascending order, read item by item: the window's
    histogram (bucket -> count) says which bucket item ``k`` is in, then the item is read one
    of two ways (``tracking._day_totals``).

    - A rank walk: one ``LIMIT 1 OFFSET r`` step inside the bucket's value range along the
      value index, from the bucket's nearer end. It may cross every value of the bucket in the
      whole history, the window's or not.
    - A window read: the window's values in the bucket, read along the start index (crossing
      all the window's ``walked`` rows), sorted in Python and kept for the next items
      (``BucketCache``); a value's row (``what`` other than the value) is then one step among
      the window's rows of that very value, along the value index.

    The window is read when the bucket holds at most ``cache.limit`` of the window's values and
    more than ``cache.walk_per_read`` times the window's rows in the whole history (the history's
    per-day histograms say how many), so an item costs at most a few times the window's rows
    whatever the history holds. Both ways give the row of the same rank in the value index's
    order (ties included), so the choice never changes an answer."""

    def __init__(  # noqa: PLR0917 (a column is its query, window, histogram and cache)
        self,
        conn: sqlite3.Connection,
        reads: ColumnReads,
        params: tuple[Any, ...],
        histogram: Mapping[int, int],
        walked: int,
        cache: BucketCache,
    ) -> None:
        self._conn = conn
        self._reads = reads
        self._params = params
        self._buckets = sorted(b for b, n in histogram.items() if n > 0)
        self._counts = [histogram[b] for b in self._buckets]
        self._below = list(itertools.accumulate(self._counts, initial=0))
        self._length = self._below[-1]
        self._cache: dict[int, float] = {}
        self._walked = walked
        self._bucket_cache = cache
        self._serial = next(_SERIALS)
        self._history: dict[int, int] | None = None  # bucket -> values in the whole history
        self._unread: set[int] = set()  # buckets whose rows disagreed with the histogram

    def __len__(self) -> int:
        return self._length

    def row_at(self, index: int, what: str) -> Any:
        """``what`` (an expression over the table's columns) of the row at rank ``index``."""
        position = bisect.bisect_right(self._below, index) - 1
        number = self._buckets[position]
        rank = index - self._below[position]
        count = self._counts[position]
        values = self._window_values(number, count)
        if values is not None:
            return values[rank] if what == self._reads.column else self._tied(values, rank, what)
        column = self._reads.column
        low, high = bucket_low(number), bucket_low(number + 1)
        if rank < count // 2:
            order, offset = column, rank
        else:
            order, offset = f"{column} DESC", count - 1 - rank
        row = self._conn.execute(
            f"SELECT {what} {self._reads.by_value} AND {column} >= ? AND {column} < ? "
            f"ORDER BY {order} LIMIT 1 OFFSET ?",
            (*self._params, low, high, offset),
        ).fetchone()
        if row is None:  # the histogram and the rows disagree: the store changed underneath
            raise SpanSourceError("the report aggregates changed while being read; run it again")
        return row[0]

    def _window_values(self, number: int, count: int) -> list[int] | None:
        """The window's ``count`` values in bucket ``number``, sorted, when they are to be read
        from the window rather than walked to (see the class docstring); else None."""
        cache = self._bucket_cache
        if cache.key == (self._serial, number):
            return cache.values
        if count > cache.limit or number in self._unread:
            return None
        if self._history_counts().get(number, 0) <= cache.walk_per_read * self._walked:
            return None
        column = self._reads.column
        cache.key, cache.values = None, []  # the old values go before the new ones are read
        # One JSON array parsed in C, not a Python row per value; ``+column``: the bucket's
        # range must not pick the value index (the walk this read replaces).
        (text,) = self._conn.execute(
            f"SELECT json_group_array({column}) {self._reads.by_start} "
            f"AND +{column} >= ? AND +{column} < ?",
            (*self._params, bucket_low(number), bucket_low(number + 1)),
        ).fetchone()
        values: list[int] = json.loads(text)
        if len(values) != count:
            self._unread.add(number)
            return None
        values.sort()
        cache.key, cache.values = (self._serial, number), values
        return values

    def _history_counts(self) -> dict[int, int]:
        """Each bucket's values in the whole history (read once: one row per day and bucket)."""
        if self._history is None:
            self._history = dict(
                self._conn.execute(
                    "SELECT bucket, sum(count) FROM histogram_days WHERE key_no = ? "
                    "AND series = ? GROUP BY bucket",
                    self._reads.history,
                ).fetchall()
            )
        return self._history

    def _tied(self, values: list[int], rank: int, what: str) -> Any:
        """``what`` of the row at ``rank`` of the bucket whose sorted ``values`` are given: one
        step among the window's rows of its value, from their nearer end."""
        value = values[rank]
        first = bisect.bisect_left(values, value)
        equal = bisect.bisect_right(values, value) - first
        reads = self._reads
        if rank - first < equal // 2:
            order, offset = reads.ties, rank - first
        else:
            order = ", ".join(f"{tie} DESC" for tie in reads.ties.split(", "))
            offset = first + equal - 1 - rank
        row = self._conn.execute(
            f"SELECT {what} {reads.by_value} AND {reads.column} = ? "
            f"ORDER BY {order} LIMIT 1 OFFSET ?",
            (*self._params, value, offset),
        ).fetchone()
        if row is None:
            raise SpanSourceError("the report aggregates changed while being read; run it again")
        return row[0]

    @overload
    def __getitem__(self, index: int) -> float: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[float]: ...
    def __getitem__(self, index: int | slice) -> float | Sequence[float]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self._length))]
        if index < 0:
            index += self._length
        if not 0 <= index < self._length:
            raise IndexError(index)
        value = self._cache.get(index)
        if value is None:
            value = self._cache[index] = self.row_at(index, self._reads.column) / NS_PER_SECOND
        return value

    def __iter__(self) -> Iterator[float]:
        return (self[i] for i in range(self._length))
