"""``taskdaemon dag`` and ``examples/visualize_pipeline.py`` as real subprocesses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline_tracking_support import make_provider, store_stages, write_example_run
from pipeline_visualization_support import PNG_MAGIC, check_golden, run_dot, svg_nodes
from taskdaemon.pipeline.config import load_pipeline
from taskdaemon.pipeline.tracking import SpanStore, SqliteSpanProcessor
from taskdaemon.pipeline.tracking._schema import connect
from taskdaemon.pipeline.visualization import VisualizationFormat, validate_dag, visualize

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "feature_delivery.yaml"
SUFFIX = {"dot": "dot", "json": "json", "mermaid": "mmd"}


def dag(*args: str, cwd: Path = ROOT, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run ``taskdaemon dag ARGS`` in a fresh interpreter."""
    return subprocess.run(
        [sys.executable, "-m", "taskdaemon.pipeline.cli", "dag", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
        cwd=cwd,
    )


@pytest.fixture
def stored_run(tmp_path: Path) -> tuple[str, str]:
    """A run written as spans into a SQLite store: (run id, source URL)."""
    processor = SqliteSpanProcessor(tmp_path / "spans.db")
    provider, _exporter = make_provider(processor)
    run_id = write_example_run(provider)
    provider.shutdown()
    return run_id, f"sqlite:///{tmp_path / 'spans.db'}"


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["dot", "json", "mermaid"])
def test_definition_to_stdout(fmt: str) -> None:
    """``dag FILE --format F`` prints the drawing of the example file: the reviewed golden text
    (``UPDATE_GOLDEN=1`` rewrites it), not whatever the renderer gives today."""
    done = dag(str(EXAMPLE), "--format", fmt)
    assert (0, "") == (done.returncode, done.stderr)
    check_golden(f"example_feature_delivery.{SUFFIX[fmt]}", done.stdout)


@pytest.mark.slow
def test_output_file(tmp_path: Path) -> None:
    """``-o FILE`` writes the drawing there, private to its owner, and nothing to stdout."""
    out = tmp_path / "pipeline.mmd"
    done = dag(str(EXAMPLE), "--format", "mermaid", "-o", str(out))
    assert (0, "", visualize(load_pipeline(str(EXAMPLE)), "mermaid"), 0o600) == (
        done.returncode,
        done.stdout,
        out.read_text(encoding="utf-8"),
        out.stat().st_mode & 0o777,
    )


@pytest.mark.slow
def test_run_from_spans_alone_is_valid_json(stored_run: tuple[str, str]) -> None:
    """``dag --run ID --source URL`` rebuilds the run from stored spans into schema-valid JSON."""
    run_id, url = stored_run
    done = dag("--run", run_id, "--source", url, "--format", "json")
    document = json.loads(done.stdout)
    validate_dag(document)
    with SpanStore(Path(url.removeprefix("sqlite:///"))) as store:
        expected = [stage.name for stage in store.get_run(run_id).stages]
    assert (0, run_id, expected) == (
        done.returncode,
        document["run"]["run_id"],
        [node["name"] for node in document["nodes"]],
    )


@pytest.mark.slow
def test_run_from_spans_alone_renders_with_dot(stored_run: tuple[str, str]) -> None:
    """The DOT of a run rebuilt from spans renders with Graphviz, one node per stage."""
    run_id, url = stored_run
    done = dag("--run", run_id, "--source", url)
    stages = ["plan", "build", "test", "deploy"]
    assert stages == [t for t in svg_nodes(run_dot(done.stdout, "svg")) if t in stages]


@pytest.mark.slow
def test_svg_is_what_dot_draws_of_the_dot_text(stored_run: tuple[str, str]) -> None:
    """``--format svg`` writes the SVG Graphviz draws of the DOT text, for a run as for a
    definition; without ``dot`` on PATH it is one line, exit 1, and nothing on stdout."""
    run_id, url = stored_run
    dot = dag("--run", run_id, "--source", url).stdout
    svg = dag("--run", run_id, "--source", url, "--format", "svg")
    plain = dag(str(EXAMPLE), "-f", "svg")
    without = subprocess.run(
        [sys.executable, "-m", "taskdaemon.pipeline.cli", "dag", str(EXAMPLE), "-f", "svg"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        cwd=ROOT,
        env={**os.environ, "PATH": "/nonexistent"},
    )
    assert (0, svg_nodes(run_dot(dot, "svg")), True) == (
        svg.returncode,
        svg_nodes(svg.stdout.encode()),
        "planning" in svg_nodes(plain.stdout.encode()),
    )
    assert (
        1,
        "",
        ["taskdaemon dag: Graphviz's dot is not installed (Debian: apt install graphviz)"],
    ) == (
        without.returncode,
        without.stdout,
        without.stderr.splitlines(),
    )


@pytest.mark.slow
def test_the_command_the_web_page_names_draws_a_5000_stage_fan_out(tmp_path: Path) -> None:
    """``dag --run ID --format svg -o dag.svg``, which the web page names for a DAG too big to
    draw there, draws a stored 5,000-stage fan-out whole with real ``dot``: past the 10 s the
    page and a dump give ``dot`` on a loaded machine, within the command's own bound."""
    names = [f"s{i}" for i in range(5000)]
    edges = [("s0", name) for name in names[1:]]
    run_id = store_stages(tmp_path / "spans.db", "fan", names, "boom", edges=edges)
    out = tmp_path / "dag.svg"
    source = f"sqlite:///{tmp_path / 'spans.db'}"
    done = dag("--run", run_id, "--source", source, "--format", "svg", "-o", str(out), timeout=300)
    assert (0, "") == (done.returncode, done.stderr)
    assert names == [title for title in svg_nodes(out.read_bytes()) if title in set(names)]


@pytest.mark.slow
def test_a_run_over_the_file_of_another_pipeline_is_refused(stored_run: tuple[str, str]) -> None:
    """``dag FILE --run RUN`` where RUN is a run of another pipeline exits 2 with one line,
    instead of drawing the run's stages under the file's name and loop labels."""
    run_id, url = stored_run
    done = dag(str(EXAMPLE), "--run", run_id, "--source", url)
    expected = (
        2,
        "",
        f"taskdaemon dag: run {run_id} is a run of pipeline 'demo', not of 'feature-delivery' "
        f"({EXAMPLE})\n",
    )
    assert expected == (done.returncode, done.stdout, done.stderr)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        ((), 2, "give a pipeline FILE, --run RUN, or both"),
        (("missing.yaml",), 2, "cannot read the file"),
        (("examples/feature_delivery.yaml", "--source", "sqlite:///x.db"), 2, "--source needs"),
        (("--run", "0" * 32, "--source", "sqlite:///{tmp}/empty.db"), 1, "0" * 32),
    ],
)
def test_errors_exit_with_a_message(
    args: tuple[str, ...], code: int, message: str, tmp_path: Path
) -> None:
    """Bad arguments exit 2, an unknown run exits 1, each with a one-line reason on stderr."""
    connect(tmp_path / "empty.db").close()
    done = dag(*(arg.replace("{tmp}", str(tmp_path)) for arg in args))
    assert (code, "") == (done.returncode, done.stdout)
    assert message in done.stderr


@pytest.mark.slow
def test_example_script_pipes_into_dot_png(tmp_path: Path) -> None:
    """``python examples/visualize_pipeline.py > pipeline.dot && dot -Tpng ...`` works."""
    script = f"{sys.executable} examples/visualize_pipeline.py > {tmp_path}/pipeline.dot && "
    script += f"dot -Tpng {tmp_path}/pipeline.dot -o {tmp_path}/pipeline.png"
    done = subprocess.run(
        ["/bin/sh", "-c", script], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert (
        done.returncode,
        done.stderr,
        (tmp_path / "pipeline.png").read_bytes()[:8],
    ) == (0, "", PNG_MAGIC)


@pytest.mark.slow
def test_example_script_prints_the_mermaid_drawing() -> None:
    """``python examples/visualize_pipeline.py --format mermaid`` prints the example's Mermaid
    drawing, the one ``visualize`` makes."""
    done = subprocess.run(
        [sys.executable, "examples/visualize_pipeline.py", "--format", "mermaid"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    expected = visualize(load_pipeline(EXAMPLE), VisualizationFormat.MERMAID)
    assert (0, expected, "") == (done.returncode, done.stdout, done.stderr)


@pytest.mark.slow
def test_example_script_says_a_missing_or_invalid_file_in_lines(tmp_path: Path) -> None:
    """``examples/visualize_pipeline.py`` given a missing or an invalid file printed a
    ConfigError traceback: it says the problems as ``dag`` does, one line each, exit 2."""
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: b\nstages:\n  - name: a\n    loop: nope\n", encoding="utf-8")
    said = []
    for file in (tmp_path / "missing.yaml", broken):
        done = subprocess.run(
            [sys.executable, "examples/visualize_pipeline.py", str(file)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
        said.append((done.returncode, done.stdout, done.stderr))
    assert said == [
        (2, "", f"{tmp_path}/missing.yaml: cannot read the file: no such file or directory\n"),
        (
            2,
            "",
            f"{broken}:3: stages[0].triggers: missing required field (an entry stage has "
            "triggers: [{manual: {approval_required: false}}])\n"
            f"{broken}:4: stages[0].loop: unknown loop type 'nope' (known: command, python)\n",
        ),
    ]


def test_without_a_format_the_output_files_suffix_chooses_it(tmp_path: Path) -> None:
    """``dag --run RUN -o run.svg`` (no ``--format``) wrote DOT text into a file no viewer
    opened as an image: ``-o``'s suffix now chooses the format, an unknown one DOT, and a
    ``--format`` given wins over the suffix (``cli/output_file.py``)."""
    from taskdaemon.pipeline.cli import main

    heads = {}
    for name, given in [*((n, []) for n in ("d.svg", "d.json", "d.mmd", "d.gv", "d.txt")),
                        ("f.svg", ["-f", "dot"])]:  # fmt: skip
        code = main(["dag", str(EXAMPLE), "-o", str(tmp_path / name), *given])
        heads[name] = (code, (tmp_path / name).read_text()[:9])
    assert heads == {
        "d.svg": (0, "<?xml ver"),
        "d.json": (0, '{\n  "vers'),
        "d.mmd": (0, "---\ntitle"),
        "d.gv": (0, "digraph p"),
        "d.txt": (0, "digraph p"),
        "f.svg": (0, "digraph p"),
    }


def test_mermaid_past_its_default_limits_is_written_whole_with_a_note(tmp_path: Path) -> None:
    """A 600-stage fan-out's Mermaid is written whole (a renderer configured for more draws
    it), and one line on stderr says that GitHub will not, and what will."""
    stages = "".join(
        f"  - {{name: s{i}, loop: l, triggers: [{{on_completion: {{stage: s0}}}}]}}\n"
        for i in range(1, 600)
    )
    file = tmp_path / "fan.yaml"
    file.write_text(
        "name: fan\nloops: {l: {handler: 'x:y'}}\nstages:\n"
        "  - {name: s0, loop: l, triggers: [{manual: {approval_required: false}}]}\n" + stages
    )
    done = dag(str(file), "--format", "mermaid")
    assert (0, visualize(load_pipeline(str(file)), "mermaid")) == (done.returncode, done.stdout)
    assert done.stderr.startswith("taskdaemon dag: note: 599 links and ")
    assert done.stderr.endswith("--format svg draws it with Graphviz\n")
    assert done.stderr.count("\n") == 1
