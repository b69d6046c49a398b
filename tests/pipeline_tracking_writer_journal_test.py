"""The span writer's statement journals stay in memory: no temporary file a batch."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

# Many spans of one trace (a long chain's), written, then more of them in a second batch: each
# multi-row insert of the second batch changes leaves all over the primary key's index, whose
# statement journal outgrows SQLite's 64 KiB in memory. Prints whether the folder SQLite makes
# its temporary files in was written to during that batch (its mtime, set far back before it,
# moves when a file is made or removed there) and the rows stored (the open run span's too).
_SECOND_BATCH = """
import os, sqlite3, sys
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import set_span_in_context
from taskdaemon.pipeline.tracking import SqliteSpanProcessor

db, temporary = sys.argv[1], sys.argv[2]
processor = SqliteSpanProcessor(db, flush_interval=60.0)
provider = TracerProvider()
provider.add_span_processor(processor)
tracer = provider.get_tracer("test")
try:
    root = tracer.start_span("run")
    context = set_span_in_context(root)
    for i in range(3000):
        tracer.start_span(f"stage-{i}", context=context).end()
    assert processor.force_flush(60_000)
    os.utime(temporary, ns=(10**9, 10**9))
    for i in range(256):
        tracer.start_span(f"more-{i}", context=context).end()
    assert processor.force_flush(60_000)
    untouched = os.stat(temporary).st_mtime_ns == 10**9
finally:
    provider.shutdown()
with sqlite3.connect(db) as conn:
    (rows,) = conn.execute("SELECT count(*) FROM spans").fetchone()
print(untouched, rows)
"""


@pytest.mark.slow
def test_a_batch_of_a_long_trace_writes_no_temporary_file(tmp_path: Path) -> None:
    """A batch whose 64-row inserts each touch many pages of the index (a long run's spans)
    keeps its statement journals in memory: before ``temp_store = MEMORY`` SQLite spilled
    them to a temporary file, a page number and a page each, two ``pwrite`` calls a page."""
    temporary = tmp_path / "sqlite-temporary"
    temporary.mkdir()
    done = subprocess.run(
        [sys.executable, "-c", _SECOND_BATCH, str(tmp_path / "spans.db"), str(temporary)],
        env=dict(os.environ, SQLITE_TMPDIR=str(temporary)),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "3257"]
