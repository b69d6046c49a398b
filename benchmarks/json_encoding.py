"""JSON encoding of a stage span's attributes: orjson (what the span writer and the payload
capture use) against the standard library, side by side in one process.

Run: ``python benchmarks/json_encoding.py [--number 20000] [--repeat 7]``. Prints the best time
per encoding of each, in µs, and their ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import timeit

import orjson

#: The attributes of a typical stage span (names of docs/architecture.md, "Telemetry schema").
ATTRIBUTES = {
    "cicd.pipeline.name": "feature_delivery",
    "cicd.pipeline.run.id": "0af7651916cd43dd8448eb211c80319c",
    "cicd.pipeline.task.name": "implementation",
    "cicd.pipeline.task.run.id": "0af7651916cd43dd8448eb211c80319c/implementation/0/1",
    "cicd.pipeline.task.run.result": "success",
    "taskdaemon.stage.loop": "python",
    "taskdaemon.stage.instance": 0,
    "taskdaemon.stage.attempt": 1,
    "taskdaemon.stage.queue_time_s": 0.0012,
    "taskdaemon.stage.cpu_time_s": 0.004,
    "taskdaemon.stage.triggers": ["on_completion:planning"],
    "taskdaemon.stage.inputs": ["plan"],
}


def main() -> None:
    """Time both encoders and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--number", type=int, default=20_000, help="encodings per round")
    parser.add_argument("--repeat", type=int, default=7, help="rounds (the best is kept)")
    options = parser.parse_args()
    encoders = {
        "orjson": lambda: orjson.dumps(ATTRIBUTES, option=orjson.OPT_SORT_KEYS).decode(),
        "json": lambda: json.dumps(ATTRIBUTES, separators=(",", ":"), sort_keys=True),
    }
    best = {
        name: min(timeit.repeat(encode, number=options.number, repeat=options.repeat))
        / options.number
        * 1e6
        for name, encode in encoders.items()
    }
    print(f"best of {options.repeat} x {options.number}, load average {os.getloadavg()[0]:.1f}")
    for name, micros in best.items():
        print(f"  {name:<7} {micros:6.2f} µs")
    print(f"  json / orjson: {best['json'] / best['orjson']:.1f}x")


if __name__ == "__main__":
    main()
