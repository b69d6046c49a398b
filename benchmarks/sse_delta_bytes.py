"""Bytes a change of a big run costs a viewer of its live stream: whole states against deltas.

    .venv/bin/python benchmarks/sse_delta_bytes.py [--chains 10] [--length 50] [--changes 40]

A pipeline of a root and ``--chains`` chains of ``--length`` stages (``web_live_bandwidth.py``'s:
501 stages by default; ``--chains 100`` makes 5,001) is run once with ``taskdaemon run``. Its
stored spans are then read back as the run stood at each moment one of its stages started or
ended (``replay.timeline.run_at``, as ``runs show --at`` does): consecutive moments are one
change. For ``--changes`` changes spread over the run, it renders the web page's state at both
moments (``web/_views.run_state``, ``now`` the moment) and prints, per change, the bytes of the
event that carries the later state whole (what every viewer got before deltas, and what a
client that does not ask for them still gets) and of the ``delta`` event from the earlier
(``web/_deltas.state_delta``): as rendered, and gzipped alone as the stream's shared segments
compress each event (zlib level 1, raw deflate, ``Z_SYNC_FLUSH``: ``web/_gzip_members``).
Counts only: bytes, no time.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sqlite3
import statistics
import sys
import tempfile
import zlib
from pathlib import Path
from typing import Any

from sse_feed_costs import stored_run
from web_live_bandwidth import HERE_SRC

sys.path.insert(0, HERE_SRC)

from taskdaemon.pipeline.replay.timeline import run_at
from taskdaemon.pipeline.tracking.sources import open_source
from taskdaemon.pipeline.visualization import dag_snapshot
from taskdaemon.pipeline.web._deltas import state_delta
from taskdaemon.pipeline.web._streams import encode_event
from taskdaemon.pipeline.web._views import run_state


def gzipped(event: bytes) -> int:
    """Bytes of ``event`` compressed alone, as the stream's segments are."""
    zipper = zlib.compressobj(1, zlib.DEFLATED, -15)
    return len(zipper.compress(event) + zipper.flush(zlib.Z_SYNC_FLUSH))


def measure(db: str, changes: int) -> dict[str, Any]:
    """Whole and delta event sizes for ``changes`` changes of the run stored in ``db``."""
    with contextlib.closing(sqlite3.connect(db)) as store:
        (run_id,) = store.execute("SELECT trace_id FROM runs").fetchone()
    source = open_source(f"sqlite:///{db}")
    try:
        spans = list(source.get_trace(run_id))
    finally:
        source.close()
    start = min(span.start_ns for span in spans)
    moments = sorted({t for s in spans for t in (s.start_ns, s.end_ns) if t is not None})
    step = max(1, (len(moments) - 1) // changes)
    picked = list(range(1, len(moments), step))[:changes]

    def state(ns: int) -> dict[str, Any]:
        record = run_at(spans, (ns - start) / 1e9)
        return run_state(dag_snapshot(None, record), now=ns / 1e9, can_control=False)

    whole, delta, whole_gz, delta_gz, sent_whole = [], [], [], [], 0
    for index in picked:
        before, after = state(moments[index - 1]), state(moments[index])
        full = encode_event(2, after)
        change = state_delta(before, after, 1)
        small = full if change is None else encode_event(2, change, event="delta")
        sent_whole += change is None
        whole.append(len(full))
        delta.append(len(small))
        whole_gz.append(gzipped(full))
        delta_gz.append(gzipped(small))
    return {
        "stages": len(state(moments[-1])["nodes"]),
        "changes": len(picked),
        "whole_median": statistics.median(whole),
        "whole_gzip_median": statistics.median(whole_gz),
        "delta_median": statistics.median(delta),
        "delta_max": max(delta),
        "delta_gzip_median": statistics.median(delta_gz),
        "sent_whole": sent_whole,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--chains", type=int, default=10)
    parser.add_argument("--length", type=int, default=50)
    parser.add_argument("--changes", type=int, default=40)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="td-delta-") as where:
        db = stored_run(Path(where), args.chains, args.length)
        print(json.dumps(measure(db, args.changes)))


if __name__ == "__main__":
    main()
