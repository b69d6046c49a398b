"""Calls per log record through a run's handlers: the console (text format, to ``/dev/null``)
and the span store's log writer (its handler, with ``logs.ContextFilter``; the writer thread's
work is not counted), for a handler's ``log.info`` of plain values (``plain``), of no values
(``none``), and of values its ``%`` format does not fit (``wrong``).

Counts Python and C calls on the logging thread with ``sys.setprofile``: a count, not a time,
so it holds on a loaded machine. Run it against two trees (``PYTHONPATH=<tree>/src``) to
compare them.

    .venv/bin/python benchmarks/log_record_calls.py [--records 1000]
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
from pathlib import Path
from types import FrameType
from typing import Any

from taskdaemon.pipeline.logs import ContextFilter, configure_logging, log_context
from taskdaemon.pipeline.settings import load_settings
from taskdaemon.pipeline.tracking.log_writer import SqliteLogWriter

KINDS = ("plain", "none", "wrong")


def _log(log: logging.Logger, kind: str, i: int) -> None:
    if kind == "plain":
        log.info("%s items of %d", "build", i)
    elif kind == "none":
        log.info("no arguments")
    else:
        log.info("%d items", "x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=1000)
    args = parser.parse_args()
    with open(os.devnull, "w") as sink, tempfile.TemporaryDirectory() as folder:
        configure_logging(load_settings(), stream=sink)
        writer = SqliteLogWriter(Path(folder) / "spans.db")
        handler = writer.handler()
        handler.addFilter(ContextFilter())
        logging.getLogger().addHandler(handler)
        log = logging.getLogger("stage")
        calls = [0]

        def count(frame: FrameType, event: str, arg: Any) -> None:
            if event in ("call", "c_call"):
                calls[0] += 1

        try:
            with log_context(run_id="0" * 32, pipeline="p", stage="s"):
                for kind in KINDS:
                    _log(log, kind, 0)  # warm: imports, caches
                    calls[0] = 0
                    sys.setprofile(count)
                    for i in range(args.records):
                        _log(log, kind, i)
                    sys.setprofile(None)
                    print(f"{kind:6} calls a record: {calls[0] / args.records:.1f}")
        finally:
            logging.getLogger().removeHandler(handler)
            writer.close()


if __name__ == "__main__":
    main()
