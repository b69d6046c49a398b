"""Print the DOT (or JSON / Mermaid) drawing of the example pipeline.

    .venv/bin/python examples/visualize_pipeline.py > pipeline.dot
    dot -Tpng pipeline.dot -o pipeline.png
    .venv/bin/python examples/visualize_pipeline.py --format mermaid   # for GitHub Markdown

Any pipeline file can be given instead of ``examples/feature_delivery.yaml``; ``taskdaemon dag``
does the same from the command line, and can overlay a recorded run.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from taskdaemon.pipeline.config import load_pipeline
from taskdaemon.pipeline.errors import ConfigError
from taskdaemon.pipeline.visualization import VisualizationFormat, visualize

EXAMPLE = Path(__file__).resolve().with_name("feature_delivery.yaml")


def main(argv: list[str] | None = None) -> int:
    """Write the drawing to stdout; returns the exit code (2 for a file that cannot be read or
    is invalid, said in one line per problem on stderr)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "file",
        nargs="?",
        default=str(EXAMPLE),
        help="the pipeline file to draw (default: examples/feature_delivery.yaml)",
    )
    parser.add_argument(
        "--format",
        choices=[f.value for f in VisualizationFormat],
        default="dot",
        help="dot for Graphviz, json, or mermaid for GitHub Markdown (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    try:
        pipeline = load_pipeline(args.file)
    except ConfigError as exc:  # a missing or invalid file: its lines, as `dag` says them
        print(exc, file=sys.stderr)
        return 2
    sys.stdout.write(visualize(pipeline, VisualizationFormat(args.format)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
