"""Rows inserted in order by multi-row ``INSERT`` statements, not one statement run a row.

``executemany`` runs its statement once a row, and each run has a fixed cost in the ``sqlite3``
module and in SQLite (step, halt, reset; benchmarks/README.md, "Round 18 (runlog14): the run
log's rows, fourth round (2026-12-02)"). The module also lets go of the GIL around each run and
each reset: a writer thread beside a run hands the GIL to the run's waiting threads and takes it
back at every row, each hand-over futex calls and thread switches, most of them across CPUs
when the run's threads hand the GIL over at each stage (a chain of sync stages:
benchmarks/README.md, "The store's writers, many rows a statement (perf51, 2026-12-06)").

:func:`insert_rows` inserts ``most`` rows a statement, then the rest in statements of half as
many, and half again, down to one row, at most two of each: a batch of any size takes a handful
of statement runs beside its whole statements, and the connection caches a handful of
statements (:func:`statements` builds them once). Exact: SQLite inserts a ``VALUES`` list row
by row, in order, with the statement's conflict rule for each row, and each value is bound as
``executemany`` binds it, so the stored rows (their ids too) are those one statement a row
stores.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from itertools import chain
from typing import Any

__all__ = ["insert_rows", "statements"]


def statements(head: str, width: int, most: int, tail: str = "") -> dict[int, str]:
    """``head`` (``INSERT ... INTO table (columns) VALUES``) with ``n`` rows of ``width``
    parameters, then ``tail`` (an upsert's ``ON CONFLICT ... DO UPDATE``, which SQLite applies
    to each row of the list in turn, as to each run of a one-row statement), for each ``n``
    :func:`insert_rows` uses: ``most``, halved down to 1."""
    row = "(" + ",".join("?" * width) + ")"
    sizes = {most >> shift for shift in range(most.bit_length())}
    end = f" {tail}" if tail else ""
    return {size: f"{head} " + ",".join([row] * size) + end for size in sizes}


def insert_rows(
    conn: sqlite3.Connection, statements: Mapping[int, str], rows: Sequence[Sequence[Any]]
) -> None:
    """Insert ``rows`` in order by ``statements`` (from :func:`statements`)."""
    at, left = 0, len(rows)
    size = max(statements)
    while left:
        while left >= size:
            conn.execute(statements[size], list(chain.from_iterable(rows[at : at + size])))
            at += size
            left -= size
        size >>= 1
