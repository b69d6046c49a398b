"""WAL checkpoints of the span store, on their own thread and connection (see ``Checkpointer``)."""

from __future__ import annotations

import logging
import sqlite3
import threading
from pathlib import Path

from taskdaemon.pipeline.tracking._fork_guard import sqlite_section

__all__ = ["Checkpointer"]

logger = logging.getLogger("taskdaemon.pipeline.tracking.writer")


class Checkpointer:
    """Copies the write-ahead log into the database file on its own thread and connection.

    SQLite's automatic checkpoint runs inside whichever commit crosses 1,000 WAL pages, on the
    committing thread: the span writer would stop for the page copies and the fsyncs, a large
    share of its time on a burst (benchmarks/README.md, "Span store (tracking_store.py)"). The
    writer's connection therefore has
    ``wal_autocheckpoint = 0`` and reports its rows here; every ``every`` rows (about as many
    pages as SQLite's default), and when the writer goes idle, this thread runs a PASSIVE
    checkpoint. The sqlite3 module releases the GIL for it, so the copy runs beside the writer on
    another core, and PASSIVE never blocks a writer or a reader. A failing checkpoint is logged
    once; the next one (or the last connection's close) catches up.
    """

    def __init__(self, path: Path, every: int = 10_000) -> None:
        self._path = path
        self._every = every
        self._pending = 0
        self._wake = threading.Event()
        self._stop = False
        self._failed = False
        self._thread = threading.Thread(
            target=self._run, name="taskdaemon-span-store-checkpoint", daemon=True
        )
        self._thread.start()

    def wrote(self, rows: int) -> None:
        """``rows`` more rows are in the log; checkpoint once enough have gathered."""
        self._pending += rows
        if self._pending >= self._every:
            self._pending = 0
            self._wake.set()

    def settle(self) -> None:
        """The writer is idle: checkpoint whatever it wrote since the last checkpoint."""
        if self._pending:
            self._pending = 0
            self._wake.set()

    def close(self) -> None:
        """Stop the thread (the writer's own close checkpoints what is left)."""
        self._stop = True
        self._wake.set()
        self._thread.join()

    def _run(self) -> None:
        with sqlite_section():
            conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        try:
            while True:
                self._wake.wait()
                self._wake.clear()
                if self._stop:
                    return
                try:
                    with sqlite_section():
                        conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except sqlite3.Error as exc:
                    if not self._failed:  # one line, no traceback: the cause is all there is
                        logger.warning(
                            "span store %s: checkpoint failed, the log grows until one works: %s",
                            self._path,
                            exc,
                        )
                    self._failed = True
        finally:
            with sqlite_section():
                conn.close()
