"""The heartbeat of a process's early ``writers`` row, until the span writer takes the row over.

``taskdaemon run`` writes a ``writers`` row for its process before its first stage
(``tracking/run_start.py``); the span store's writer, loaded with the OTel SDK on a thread,
takes that row over and renews its heartbeat every second. Readers judge a run by its writer's
row (``store``, "Interrupted runs"): a heartbeat older than ``store.STALE_AFTER`` is a dead
writer, so a load that lasted longer than that (a loaded host, a slow disk, a network file
system) made the live run read ``interrupted`` in ``runs`` and the web page, and retention
free to delete it. A :class:`Heartbeat` renews the row meanwhile, every ``BEAT_EVERY``:

* **On a daemon thread of its own**, started by the loading thread once loading begins
  (``cli/run_start.keep_alive``), not on the engine's thread: starting a thread waits for it
  to run, which the first stage would wait for; and not on the engine's loop, whose turns the
  stages share (a write can wait ``BUSY_WAIT`` for another process's lock). Nothing per stage.
* **Stopped at the take-over** (``run_start.adopted_writer``), **when the start is withdrawn**,
  and **at the run's end** (``RunStart.end``, which waits ``END_WAIT`` at most for the thread),
  whichever comes first. A daemon thread: a process ending by another way does not wait for it.
* **No lock contention at the take-over.** A beat runs under the heartbeat's lock, and
  :meth:`Heartbeat.stop` takes that lock: the take-over waits for a beat under way (one small
  ``UPDATE``) rather than meeting it in SQLite, whose busy handler sleeps in steps, and after
  ``stop`` no beat writes: from then on the writer alone writes its row. A beat never renews a
  closed row either (``closed_ns IS NULL``).
* **Fork-safe**: a beat is a ``sqlite_section`` (``_fork_guard``), as the writer's work is, and
  takes the lock inside it, as ``stop`` is called inside the writer's: neither waits for the
  other across a fork.
* **Silent and bounded**: a beat that finds the store busy for ``BUSY_WAIT`` (another process
  writing) or failing is skipped (debug log) and the next one tries again; one connection,
  opened at the first beat that has a row to renew. It leaves checkpoints to the writers
  (``wal_autocheckpoint = 0``, as the span writer does).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Final

from taskdaemon.pipeline.tracking._fork_guard import sqlite_section
from taskdaemon.pipeline.tracking._schema import connect

__all__ = ["BEAT_EVERY", "END_WAIT", "THREAD_NAME", "Heartbeat"]

_log = logging.getLogger("taskdaemon.tracking")

#: Seconds between beats: the span writer's own period (``writer.HEARTBEAT_EVERY``).
BEAT_EVERY: Final = 1.0
#: Milliseconds a beat waits for another process's lock (a write lock, or the store held in
#: SQLite's exclusive locking mode) before it is skipped.
BUSY_WAIT: Final = 250
#: Seconds the run's end waits for a beat under way and the thread to end (a beat waits
#: ``BUSY_WAIT`` at most for a lock; only a hung file system makes it longer).
END_WAIT: Final = 1.0
#: The thread's name (``taskdaemon-*``: the tests' thread guard knows it).
THREAD_NAME: Final = "taskdaemon-run-start-heartbeat"


class Heartbeat:
    """Renews the heartbeat of the ``writers`` row ``row()`` names (None: none yet, or none
    any more) in the store at ``path``, until :meth:`stop` (module docstring)."""

    def __init__(self, path: Path, row: Callable[[], int | None]) -> None:
        self._path = path
        self._row = row
        self._stopped = threading.Event()
        self._beating = threading.Lock()  # held by a beat; ``stop`` takes it
        self._thread = threading.Thread(target=self._run, name=THREAD_NAME, daemon=True)

    def start(self) -> None:
        """Start the beats."""
        self._thread.start()

    def stop(self, *, timeout: float | None = None) -> None:
        """Stop the beats: once this returns, none writes. ``timeout``: wait at most that long
        for a beat under way (one still under way then may still write), and for the thread to
        end (it closes its connection), not from inside a ``sqlite_section``: the run's end
        does not wait for a beat that hangs (a hung network file system); None: wait for the
        beat under way, however long, not for the thread (the take-over, from inside the
        writer's section)."""
        self._stopped.set()  # a beat not begun yet sees it under the lock
        if self._beating.acquire(timeout=-1 if timeout is None else timeout):
            self._beating.release()
        if timeout is not None and self._thread.ident is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        conn: sqlite3.Connection | None = None
        try:
            while not self._stopped.wait(BEAT_EVERY):
                with sqlite_section(), self._beating:
                    if self._stopped.is_set():
                        break
                    writer_id = self._row()
                    if writer_id is not None:
                        conn = self._beat(conn, writer_id)
        finally:
            if conn is not None:
                with sqlite_section():
                    conn.close()

    def _beat(self, conn: sqlite3.Connection | None, writer_id: int) -> sqlite3.Connection | None:
        """Renew row ``writer_id``'s heartbeat through ``conn`` (opened first when None); the
        connection to keep (None when it could not be opened)."""
        try:
            if conn is None:
                conn = connect(self._path, create=False, wait=BUSY_WAIT / 1000)
                conn.execute("PRAGMA wal_autocheckpoint = 0")
            conn.execute(
                "UPDATE writers SET heartbeat_ns = ? WHERE id = ? AND closed_ns IS NULL",
                (time.time_ns(), writer_id),
            )
        except Exception as error:  # monitoring never stops the pipeline; the next beat tries
            _log.debug("%s: early writer heartbeat skipped: %s", self._path, error)
        return conn
