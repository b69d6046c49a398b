"""Every script of ``benchmarks/`` runs: each once, as a subprocess, with its smallest arguments.

A benchmark is run by hand, rarely; when the code it measures changes shape it may crash (or
switch off a part that is no longer there) for days before anyone notices. This file runs each
one with tiny arguments and checks that it exits 0 and prints its figure lines. The figures are
not asserted: they measure nothing at this size. Scripts that count instructions under valgrind
run only where ``valgrind`` is installed (``scripts/setup.sh --dev`` installs it, so CI runs
them); those that count the kernel's events with ``perf``, only where ``perf`` may read its
tracepoints.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from cli_support import ROOT, free_port

BENCHMARKS = ROOT / "benchmarks"


@dataclass(frozen=True)
class Smoke:
    """One script's tiny run: its arguments (``{tmp}`` is the test's own folder, ``{port}`` a
    free loopback port), a regular expression its figure lines match, whether it needs
    valgrind or ``perf``, and another script to run first with its arguments (a store to
    read)."""

    args: tuple[str, ...]
    prints: str
    valgrind: bool = False
    perf: bool = False
    first: tuple[str, ...] = ()


#: Each script of ``benchmarks/`` with the smallest arguments its usage line allows.
SMOKES: dict[str, Smoke] = {
    "big_pipeline_memory": Smoke(
        ("--sizes", "1", "--shapes", "block", "--commands", "validate"), "peak MiB"
    ),
    "big_runs": Smoke(("--stages", "3", "--rounds", "1"), r"report html +this +CPU"),
    "cel_routing_costs": Smoke(("--rounds", "1"), r"^request\.goal +- +in +[\d.]+us"),
    "cel_context_instructions": Smoke(
        ("--evaluations", "5"), "instructions an evaluation", valgrind=True
    ),
    "cli_startup": Smoke(("--rounds", "1", "--run-only"), "ratios to python -c pass"),
    "concurrent_runs": Smoke(("--runs", "5", "--rounds", "1"), "stages/s"),
    "dense_answers": Smoke(("--mib", "1"), "peak MiB"),
    "debug_overhead": Smoke(("--stages", "5", "--rounds", "1"), "on, no breakpoint"),
    "engine_overhead": Smoke(("--quick",), "ratio 10k/1k"),
    "engine_stage_cpu": Smoke(
        ("--kind", "sync", "--stages", "5", "--pairs", "1", "--children", "1", "--pin", "0"),
        r"^  sync   this@pin +-?[\d.]+ \(",
    ),
    "engine_stage_instructions": Smoke(
        ("--kind", "sync", "--observer", "none", "--runs", "1"), "  sync  none  this", valgrind=True
    ),
    "gc_cost": Smoke(("--stages", "5", "--rounds", "1"), "gc µs/stage"),
    "history_scale": Smoke(
        ("--sizes", "100", "--ops", "runs-list", "--dir", "{tmp}"), "runs-list ", valgrind=True
    ),
    "history_store": Smoke(("--runs", "100", "--db", "{tmp}/history.db"), '"spans": '),
    "huge_spans": Smoke(
        ("--count", "5", "--rounds", "1", "--cases", "events,tempo-events", "--ops", "runs-show"),
        r"tempo-events +runs-show +\d",
    ),
    "hostile_clients": Smoke(
        ("--parts", "control,idle,gzip", "--connections", "5", "--mib", "4"),
        r"^idle\tthis\t32 silent connections\t\d+\t\d+\t[\d.]+$(?s:.*)^gzip\tthis\t4 MiB, 2",
    ),
    "http_load": Smoke(
        (
            "--scrapers",
            "2",
            "--seconds",
            "0.5",
            "--rounds",
            "1",
            "--stages",
            "3",
            "--sequential",
            "5",
        ),
        "engine loaded:",
    ),
    "json_encoding": Smoke(("--number", "10", "--repeat", "1"), "json / orjson:"),
    "live_state": Smoke(("--stages", "5", "--rounds", "1"), "us per event"),
    "log_record_calls": Smoke(("--records", "5"), "plain  calls a record: "),
    "log_capture": Smoke(
        ("--lines", "100", "--repeat", "1", "--modes", "discarded", "--commands", "sh-echo"),
        "  discarded ",
    ),
    "monitor_instructions": Smoke(("--stages", "5"), "  this  everything", valgrind=True),
    "monitor_records": Smoke(("--stages", "5", "--rounds", "1", "--pairs", "1"), r"^  this +\d"),
    "otlp_json_read": Smoke(("--runs", "5", "--spans", "3", "--pairs", "1"), "get_trace"),
    "per_stage": Smoke(("--rounds", "1", "--stages", "5", "--variants", "sync"), "  floor "),
    "per_stage_instructions": Smoke(
        ("--stages", "5", "--variants", "sync"), "x the floor", valgrind=True
    ),
    "pipeline_load_parts": Smoke(
        ("--stages", "5", "--pairs", "1", "--repeat", "1"), "  this   canonical"
    ),
    "pipeline_with_monitoring": Smoke(
        ("--rounds", "1", "--runs", "1", "--stages", "3"), "monitor vs raw SDK floor:"
    ),
    "published_payloads": Smoke(("--events", "3", "--kib", "1", "--rounds", "1"), r"^this +\d"),
    "reconstruct_events": Smoke(("--stages", "5", "--small", "2", "--rounds", "1"), "one rebuild"),
    "remask_instructions": Smoke(
        ("--lines", "100", "--per-batch", "10"), "masked again", valgrind=True
    ),
    "replay_fed_instructions": Smoke(
        ("--stages", "2", "--replays", "1", "--shapes", "wide"),
        r"^  wide   this",
        valgrind=True,
    ),
    "replay_plan": Smoke(("--stages", "5", "--repeat", "1"), "  CPU   best"),
    "report": Smoke(
        ("--runs", "50", "--rounds", "1", "--db", "{tmp}/report.db"), "Report: runs started"
    ),
    "report_aggregates": Smoke(
        ("--runs", "10", "--rounds", "1", "--shapes", "chain"), "  chain   this"
    ),
    "run_log_rows": Smoke(("--stages", "5", "--rounds", "1"), "logging / direct:"),
    "run_thread_cpu": Smoke(
        ("--stages", "5", "--rounds", "1"),
        r"^  taskdaemon-log-writer +-?[\d.]+ +-?[\d.]+ +-?[\d.]+ ",
    ),
    # The floor process that per_stage and sdk_floor_per_stage time: it prints its trace id.
    "sdk_floor": Smoke(("5",), "^[0-9a-f]{32}$"),
    "sdk_floor_per_stage": Smoke(("--stages", "5", "--processes", "1"), "ms CPU a stage"),
    "secret_masks": Smoke(("--rounds", "1", "--lines", "100"), "texts: 0 values"),
    "span_rows": Smoke(("--runs", "5", "--stages", "3", "--rounds", "1"), "us a row"),
    "sleep_stage_instructions": Smoke(("--stages", "2"), r"of a 10 ms stage$", valgrind=True),
    "sse_change_costs": Smoke(
        ("--chains", "1", "--length", "6", "--changes", "2"), '"same_delta": "4 of 4"'
    ),
    "sse_delta_bytes": Smoke(
        ("--chains", "1", "--length", "4", "--changes", "2"), '"delta_median": '
    ),
    "sse_feed_costs": Smoke(
        ("--clients", "1", "--changes", "1", "--chains", "1", "--length", "2"),
        '"instructions_a_change": ',
        valgrind=True,
    ),
    "sse_streams": Smoke(
        ("--streams", "2", "--changes", "2", "--interval", "0.05"), "p50 ratio 2/1:"
    ),
    "stage_kernel_counts": Smoke(
        ("--stages", "3", "--rounds", "1", "--kinds", "sync", "--threads"),
        r"^  sync +-?[\d.]+(?s:.*)^  sync +MainThread( +-?[\d.]+){4}$",
        perf=True,
    ),
    "startup_costs": Smoke(("--processes", "1"), "  asyncio "),
    "stored_row_decoding": Smoke(
        ("--db", "{tmp}/history.db", "--ops", "show"),
        "show: this tree ",
        valgrind=True,
        first=("history_store", "--runs", "5", "--db", "{tmp}/history.db"),
    ),
    "telemetry_codec": Smoke(("--stages", "5", "--repeat", "1"), "  rebuild "),
    "thread_hop": Smoke(("--hops", "10", "--rounds", "1"), "ThreadPoolExecutor"),
    "tracking_store": Smoke(("--quick", "--rounds", "1"), "runs list over 10,000 runs"),
    "unseen_run_ends": Smoke(("--runs", "5"), "instructions per unseen run end", valgrind=True),
    "validation_shapes": Smoke(("--sizes", "100", "--rounds", "1"), "fan-out "),
    "visualization_render": Smoke(("--stages", "5", "--repeat", "1", "--svg"), "svg fan-out"),
    "watchdog_token_scan": Smoke(
        ("--rounds", "1", "--extra", "0,1", "--spawns", "10"), r"^listing  spawning/started"
    ),
    # The run must outlast the stream's second: the server ends with it.
    "web_live_bandwidth": Smoke(
        ("--chains", "1", "--length", "4", "--work", "1", "--seconds", "1", "--port", "{port}"),
        '"bytes_per_second": ',
    ),
}


def _perf_reads_tracepoints() -> bool:
    """Whether ``perf`` is installed and may count a tracepoint here (root, or a low enough
    ``kernel.perf_event_paranoid``)."""
    if shutil.which("perf") is None:
        return False
    probe = ["perf", "stat", "-e", "sched:sched_wakeup", "true"]
    return subprocess.run(probe, capture_output=True, check=False).returncode == 0


def _all_scripts() -> list[str]:
    return sorted(path.stem for path in BENCHMARKS.glob("*.py"))


def _env(tmp_path: Path) -> dict[str, str]:
    """This tree's package first on the path (scripts read ``PYTHONPATH`` as the tree they
    measure), a fresh private home, and a temporary folder of its own (``TMPDIR``), which
    the script must leave empty."""
    home = tmp_path / "home"
    home.mkdir(mode=0o700, exist_ok=True)
    (tmp_path / "tmp").mkdir(mode=0o700, exist_ok=True)
    return {
        **os.environ,
        "PYTHONPATH": str(ROOT / "src"),
        "TASKDAEMON_HOME": str(home),
        "TMPDIR": str(tmp_path / "tmp"),
    }


def _run(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def test_every_benchmark_script_has_a_smoke_run() -> None:
    """A new script joins :data:`SMOKES`; a removed one leaves it."""
    assert sorted(SMOKES) == _all_scripts()


@pytest.mark.slow
# The subprocess's own bound (``_run``), not the suite's 120 s: a script under valgrind runs
# many times slower than bare, and on a loaded machine took longer than 120 s to end.
@pytest.mark.timeout(600)
@pytest.mark.parametrize("name", sorted(SMOKES))
def test_the_benchmark_runs_and_prints_its_figures(name: str, tmp_path: Path) -> None:
    smoke = SMOKES[name]
    if smoke.valgrind and shutil.which("valgrind") is None:
        pytest.skip("valgrind is not installed")
    if smoke.perf and not _perf_reads_tracepoints():
        pytest.skip("perf cannot count tracepoints here")
    if smoke.first:
        script, *first_args = (arg.format(tmp=tmp_path) for arg in smoke.first)
        before = _run([str(BENCHMARKS / f"{script}.py"), *first_args], tmp_path)
        assert before.returncode == 0, f"{script} exited {before.returncode}:\n{before.stderr}"
    args = [arg.format(tmp=tmp_path, port=free_port()) for arg in smoke.args]
    done = _run([str(BENCHMARKS / f"{name}.py"), *args], tmp_path)
    assert done.returncode == 0, f"{name} exited {done.returncode}:\n{done.stderr[-4000:]}"
    assert re.search(smoke.prints, done.stdout, re.MULTILINE), done.stdout[-4000:]
    # Run by hand again and again, a script that leaves its scratch folders behind fills /tmp.
    assert sorted(os.listdir(tmp_path / "tmp")) == []


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_sse_streams_run_cost_runs_a_watched_run_of_each_server(tmp_path: Path) -> None:
    """``sse_streams.py --run-cost``: a real run watched through ``serve`` and ``run
    --serve`` ends 0 (a viewer refused stops the script), and its scratch home is removed
    (in ``/tmp``: a control socket's path under this test's TMPDIR is too long)."""
    script = str(BENCHMARKS / "sse_streams.py")
    args = ["--run-cost", "--stages", "2", "--rounds", "1", "--viewers", "2", "--chains", "sync"]
    done = _run([script, *args, "--reading", "slow"], tmp_path)
    assert done.returncode == 0, done.stderr[-4000:]
    rows = re.findall(r"^0\tsync\t(serve|run --serve)\t2\t0\t[\d.]+\t", done.stdout, re.M)
    assert sorted(rows) == ["run --serve", "serve"], done.stdout
    assert not list(Path("/tmp").glob("td-viewers-*")), "a scratch home left behind"


@pytest.mark.slow
@pytest.mark.parametrize("part", ["redaction", "capture", "hooks", "tracer"])
def test_monitor_instructions_switches_each_part_off(part: str, tmp_path: Path) -> None:
    """The counted child of ``monitor_instructions.py`` with one part switched off, without
    valgrind: a switch whose attribute is gone stops it with a one-line error."""
    script = str(BENCHMARKS / "monitor_instructions.py")
    done = _run([script, "--child", "3", "--hand-over", f"--without={part}"], tmp_path)
    assert (done.returncode, done.stderr) == (0, "")


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("name", ["per_stage", "run_thread_cpu", "stage_kernel_counts"])
def test_a_relative_pythonpath_still_names_the_tree_measured(name: str, tmp_path: Path) -> None:
    """``PYTHONPATH=src``, as benchmarks/README.md gives these scripts' commands, reaches the
    ``taskdaemon`` processes they run in a scratch folder: a relative entry there would name
    nothing, and the processes would import the installed package (another checkout's code)
    in place of the tree measured. The tree here is a folder whose ``src`` holds only a
    ``sitecustomize`` that notes each process that finds it."""
    smoke = SMOKES[name]
    if smoke.perf and not _perf_reads_tracepoints():
        pytest.skip("perf cannot count tracepoints here")
    tree = tmp_path / "tree"
    (tree / "src").mkdir(parents=True)
    seen = tmp_path / "seen"
    (tree / "src" / "sitecustomize.py").write_text(
        f"import os\nwith open({str(seen)!r}, 'a') as f:\n    f.write(f'{{os.getpid()}}\\n')\n"
    )
    env = {**_env(tmp_path), "PYTHONPATH": os.pathsep.join(["src", str(ROOT / "src")])}
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / f"{name}.py"), *smoke.args],
        cwd=tree, env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-4000:]
    # The script itself, and every taskdaemon process it ran (one at least).
    assert len(seen.read_text().split()) > 1, done.stdout[-2000:]


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_live_chain_runs_with_the_monitor_loaded(tmp_path: Path) -> None:
    """``--live`` (``per_stage.chain``): the chain's first stage waits until telemetry has
    loaded, so the monitor's record worker handles the other stages' records as they come; a
    chain that outran the load would have them handed over in one batch at the run's end,
    and the worker's thread would not show. ``run_thread_cpu.py`` names every thread that
    ran."""
    args = ["--kind", "async", "--stages", "5", "--rounds", "1", "--live"]
    done = _run([str(BENCHMARKS / "run_thread_cpu.py"), *args], tmp_path)
    assert done.returncode == 0, done.stderr[-4000:]
    assert re.search(r"^  taskdaemon-monitor +-?[\d.]+ ", done.stdout, re.MULTILINE), done.stdout
