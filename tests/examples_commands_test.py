"""The example scripts (``examples/*.py`` that take arguments) as their docstrings say to run
them, and their ``--help``, which gives each option's default (``visualize_pipeline.py``'s
drawings: pipeline_visualization_cli_test.py)."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from cli_support import ROOT, environment, line_with
from pipeline_monitor_support import PROMETHEUS_NAMES

#: The line the metrics server logs once it serves, with its address.
_SERVING = re.compile(r"metrics on (http://\S+)/metrics")
#: Seconds the ten metrics get to appear in one scrape: its docstring says 30, on a quiet machine.
_WITHIN = 120.0


@pytest.mark.slow
@pytest.mark.parametrize(
    ("script", "defaults"),
    [
        ("pipeline_metrics_server.py", ["--every SECONDS", "(default: 0.5)", "(default: 3)"]),
        ("visualize_pipeline.py", ["(default: examples/feature_delivery.yaml)", "(default: dot)"]),
    ],
)
def test_the_help_says_each_option_s_default(script: str, defaults: list[str]) -> None:
    """``--help`` names each option's value and gives its default."""
    done = subprocess.run(
        [sys.executable, f"examples/{script}", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    text = " ".join(done.stdout.split())  # argparse wraps the help to the terminal's width
    assert (0, defaults, "") == (
        done.returncode,
        [default for default in defaults if default in text],
        done.stderr,
    )


def _families(exposition: str) -> set[str]:
    samples = (line.split("{")[0].split()[0] for line in exposition.splitlines() if line[:1] != "#")
    return {re.sub(r"_(bucket|sum|count|created)$", "", name) for name in samples if name}


@pytest.mark.slow
def test_the_metrics_server_serves_the_ten_pipeline_metrics(tmp_path: Path) -> None:
    """``python examples/pipeline_metrics_server.py`` (on a free port here, not 9090) serves
    the ten ``pipeline_*`` metrics in one scrape, as its docstring says; Ctrl-C ends it, exit
    0."""
    server = subprocess.Popen(
        [sys.executable, "examples/pipeline_metrics_server.py"],
        cwd=ROOT,
        env=environment(tmp_path, OTEL_METRICS_EXPORTER="prometheus", TASKDAEMON_METRICS_PORT="0"),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        found = _SERVING.search(line_with(server.stderr, _SERVING))
        assert found is not None
        missing = set(PROMETHEUS_NAMES)
        deadline = time.monotonic() + _WITHIN
        while missing and time.monotonic() < deadline:
            time.sleep(0.5)
            missing = PROMETHEUS_NAMES - _families(httpx.get(f"{found[1]}/metrics").text)
    finally:
        server.send_signal(signal.SIGINT)
        _stdout, rest = server.communicate(timeout=60)
    assert (set(), 0, "") == (missing, server.returncode, rest)
