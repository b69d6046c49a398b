"""The pipeline file's load, part by part, CPU µs a stage.

``.venv/bin/python benchmarks/pipeline_load_parts.py [--stages 301] [--pairs 3] [--baseline SRC]``

Each child writes ``per_stage.py``'s sync chain of ``--stages`` stages and times, best of 31
(``time.thread_time``): ``compose`` (``yamlsafe.compose_bounded``: the C parser and its Python
call-backs), ``convert`` (``yaml_values.NodeConverter``: nodes to plain values with their
lines), ``reader`` (``config._Reader``: plain values to the model, every field checked),
``validate`` (``model.validate_pipeline``) and ``load`` (``config.load_pipeline``, all of it),
each divided by the number of stages. With ``--baseline SRC`` (``git archive main src | tar -x
-C /tmp/base``, then ``--baseline /tmp/base/src``) children alternate between this checkout and
SRC, ``--pairs`` times.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"


def child(stages: int) -> dict[str, float]:
    """In the child: each part's best of 31, µs a stage."""
    sys.path.insert(0, str(HERE))
    from per_stage import chain
    from taskdaemon.pipeline.config import _Reader, load_pipeline
    from taskdaemon.pipeline.model import validate_pipeline
    from taskdaemon.pipeline.yaml_values import NodeConverter
    from taskdaemon.pipeline.yamlsafe import compose_bounded

    path = Path(tempfile.mkdtemp(prefix="td-load-parts-")) / "chain.yaml"
    text = chain("sync", stages)
    path.write_text(text)

    def best(work: Callable[[], object]) -> float:
        times = []
        for _ in range(31):
            started = time.thread_time()
            work()
            times.append(time.thread_time() - started)
        return min(times) / stages * 1e6

    node = compose_bounded(text)
    assert node is not None
    data = NodeConverter("f").value(node, "", None)
    pipeline = _Reader("f", {}).pipeline(data)
    return {
        "compose": best(lambda: compose_bounded(text)),
        "convert": best(lambda: NodeConverter("f").value(node, "", None)),
        "reader": best(lambda: _Reader("f", {}).pipeline(data)),
        "validate": best(lambda: validate_pipeline(pipeline, registered_loops=())),
        "load": best(lambda: load_pipeline(path)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stages", type=int, default=301)
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--baseline", metavar="SRC")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.stages)))
        return
    variants = {"this": str(SRC)}
    if args.baseline:
        variants["base"] = args.baseline
    results: dict[str, list[dict[str, float]]] = {name: [] for name in variants}
    for _ in range(args.pairs):
        for name, source in variants.items():
            env = dict(os.environ, PYTHONPATH=source)
            out = subprocess.run(
                [sys.executable, __file__, "--child", "--stages", str(args.stages)],
                env=env, check=True, capture_output=True, text=True,
            )  # fmt: skip
            results[name].append(json.loads(out.stdout))
    load = os.getloadavg()[0]
    print(
        f"pipeline file load, {args.stages}-stage chain, CPU µs a stage, best of 31 in each of "
        f"{args.pairs} children, median over children (load average {load:.1f})"
    )
    parts = ("compose", "convert", "reader", "validate", "load")
    print("  variant  " + "".join(f"{part:>10}" for part in parts))
    for name, rows in results.items():
        medians = [statistics.median(row[part] for row in rows) for part in parts]
        print(f"  {name:<8} " + "".join(f"{value:10.1f}" for value in medians))


if __name__ == "__main__":
    main()
