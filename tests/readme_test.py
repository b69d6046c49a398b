"""The README's examples, run as written, so the README cannot drift from the code.

* Every fenced block is ``yaml``, ``sh`` or ``console`` (anything else fails: it would go
  unchecked).
* ``yaml`` blocks are pipelines: each loads with the real loader and every stage's loop type
  resolves to a handler, as ``taskdaemon validate`` checks. A block introduced by a line ending
  in ``\\`NAME.yaml\\`:`` is written to ``NAME.yaml`` for the console blocks; one that a console
  block validates is an *invalid* example, and the console block checks its exact report.
* ``console`` blocks: each ``$ command`` runs in a scratch directory holding the named files, and
  what it prints (stdout and stderr, as a terminal shows them) must be the lines that follow.
* ``sh`` blocks: each command (comments removed) runs with ``bash -o pipefail`` in a scratch
  directory that is what the README says it is: the demo has run there (the command
  ``scripts/demo.sh`` ends with), ``examples/`` is beside it, ``RUN`` is that run's id. A
  command must exit 0 without a traceback. The commands that cannot run here are in
  :data:`NOT_RUN` with the reason; the one that serves a run waiting for approval is driven to
  its end by :func:`test_served_run_answers_and_finishes_when_approved`.

The commands run the ``taskdaemon`` of this virtualenv, with every ``TASKDAEMON_*`` and
``OTEL_*`` variable of the caller removed, as on a fresh machine.
"""

from __future__ import annotations

import os
import queue
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import httpx
import pytest

from cli_support import free_port, without_settings
from taskdaemon.pipeline import LoopRegistry, load_pipeline

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
VENV_BIN = Path(sys.executable).parent

#: Commands of the README's sh blocks that this test does not run, and why.
NOT_RUN = {
    "scripts/test.sh": "the test command itself: it runs this test (.ci/run runs it in a clone)",
    "scripts/demo.sh": "it installs into the checkout's .venv and writes ./.taskdaemon there; "
    "the demo_home fixture runs the command demo.sh ends with, in a scratch directory",
    "docker compose up -d --build": "no container engine here; tests/deploy_stack_test.py "
    "checks the compose file and the stack's configs with real tools",
    'taskdaemon serve --pipeline examples/feature_delivery.yaml -i goal="ship it"': "it serves "
    "until stopped; tests/pipeline_visualization_web_test.py drives serve --pipeline's page "
    "in a browser",
    "taskdaemon ui --source tempo+http://127.0.0.1:3200": "it serves until stopped (and no "
    "Tempo runs here); tests/pipeline_visualization_web_test.py drives the ui page over a store",
}
#: The served run: it waits for an approval, so it has a test of its own (on a free port).
SERVED = "taskdaemon run examples/feature_delivery.yaml --serve 127.0.0.1:9090"

_FENCE = re.compile(r"^```([\w-]*)[ \t]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
_NAMED = re.compile(r"`([\w.-]+\.(?:ya?ml|toml|json))`:\s*$")
_COMMENT = re.compile(r"\s+#\s.*$")
_RUN_ID = re.compile(r"\b[0-9a-f]{32}\b")
_CHECKED = {"yaml", "sh", "console"}


@dataclass(frozen=True)
class Block:
    """One fenced block of the README."""

    language: str
    text: str
    line: int  # of the opening fence, 1-based
    name: str | None  # the file name the line before the block gives it, if any


def readme_blocks(text: str) -> list[Block]:
    """Every fenced block of a Markdown text, in order."""
    blocks = []
    for match in _FENCE.finditer(text):
        before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        named = _NAMED.search(before)
        line = text.count("\n", 0, match.start()) + 1
        blocks.append(Block(match.group(1), match.group(2), line, named and named.group(1)))
    return blocks


def sh_commands(block: Block) -> list[str]:
    """The commands of an ``sh`` block: one a line, trailing ``  # comments`` removed."""
    commands = (_COMMENT.sub("", line).strip() for line in block.text.splitlines())
    return [command for command in commands if command and not command.startswith("#")]


def console_steps(block: Block) -> list[tuple[str, str]]:
    """``(command, expected output)`` for each ``$ command`` of a ``console`` block."""
    steps: list[tuple[str, list[str]]] = []
    for line in block.text.splitlines():
        if line.startswith("$ "):
            steps.append((line[2:], []))
        elif steps:
            steps[-1][1].append(line)
    return [(command, "\n".join(output)) for command, output in steps]


BLOCKS = readme_blocks(README.read_text())
CONSOLE_COMMANDS = [cmd for b in BLOCKS if b.language == "console" for cmd, _ in console_steps(b)]
SH_COMMANDS = [cmd for b in BLOCKS if b.language == "sh" for cmd in sh_commands(b)]


def _is_invalid_example(block: Block) -> bool:
    return block.name is not None and any(
        block.name in shlex.split(command) for command in CONSOLE_COMMANDS
    )


def _environment() -> dict[str, str]:
    return without_settings(PATH=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}")


def _scratch(directory: Path) -> Path:
    """A directory laid out like the repository root for the README's commands."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "examples").symlink_to(ROOT / "examples", target_is_directory=True)
    return directory


def _bash(command: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-o", "pipefail", "-c", command],
        cwd=cwd,
        env=_environment(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


# -- the blocks ---------------------------------------------------------------------------------


def test_every_block_is_one_this_test_checks() -> None:
    """Each README block is yaml, sh or console, and each skipped command is still there."""
    assert ([], set(NOT_RUN) | {SERVED}) == (
        [f"line {b.line}: {b.language!r}" for b in BLOCKS if b.language not in _CHECKED],
        (set(NOT_RUN) | {SERVED}) & set(SH_COMMANDS),
    )


def test_blocks_are_found() -> None:
    """The README has pipelines, an invalid example and command blocks (the parser sees them)."""
    languages = [block.language for block in BLOCKS]
    assert (True, True, True, True) == (
        languages.count("yaml") >= 2,
        "sh" in languages,
        "console" in languages,
        any(_is_invalid_example(block) for block in BLOCKS),
    )


@pytest.mark.parametrize(
    "block",
    [b for b in BLOCKS if b.language == "yaml" and not _is_invalid_example(b)],
    ids=lambda block: f"line{block.line}",
)
def test_yaml_block_is_a_valid_pipeline(
    block: Block, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pipeline loads as pasted and every stage's loop type resolves to a handler."""
    monkeypatch.syspath_prepend(str(ROOT))  # examples.loops, as from the repository root
    path = tmp_path / (block.name or "pipeline.yaml")
    path.write_text(block.text)
    pipeline = load_pipeline(path)
    registry = LoopRegistry.default()
    resolved = [stage.name for stage in pipeline.stages if registry.resolve(pipeline, stage)]
    assert [stage.name for stage in pipeline.stages] == resolved


@pytest.mark.slow
@pytest.mark.parametrize(
    "block",
    [b for b in BLOCKS if b.language == "console"],
    ids=lambda block: f"line{block.line}",
)
def test_console_block_prints_what_the_readme_shows(block: Block, tmp_path: Path) -> None:
    """Each ``$ command`` prints exactly the lines the README shows after it."""
    cwd = _scratch(tmp_path / "work")
    for named in BLOCKS:
        if named.name is not None:
            (cwd / named.name).write_text(named.text)
    expected = console_steps(block)
    actual = []
    for command, _ in expected:
        done = subprocess.run(
            ["bash", "-c", command],
            cwd=cwd,
            env=_environment(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=60,
            check=False,
        )
        actual.append((command, done.stdout.rstrip("\n")))
    assert expected == actual


# -- the sh blocks, after the demo ----------------------------------------------------------------


def _demo_command() -> str:
    """The command ``scripts/demo.sh`` ends with, run with this virtualenv's ``taskdaemon``."""
    lines = (ROOT / "scripts" / "demo.sh").read_text().splitlines()
    (last,) = [line for line in lines if line.startswith("exec ")]
    words = shlex.split(last)[1:]
    assert (".venv/bin/taskdaemon", "$@") == (words[0], words[-1])
    return shlex.join(["taskdaemon", *words[1:-1]])


@pytest.fixture(scope="module")
def demo_home(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A scratch directory where the demo has run (its span store in ./.taskdaemon), and the
    demo run's id."""
    cwd = _scratch(tmp_path_factory.mktemp("readme") / "work")
    done = _bash(_demo_command(), cwd)
    assert 0 == done.returncode, done.stderr
    run_ids = set(_RUN_ID.findall(done.stdout))
    assert 1 == len(run_ids), done.stdout
    return cwd, run_ids.pop()


def _svg_nodes(cwd: Path) -> int:
    """How many node groups the SVG drawn into ``run.svg`` holds."""
    return (cwd / "run.svg").read_text(encoding="utf-8").count('class="node"')


#: Further checks of what some commands did, beyond exiting 0 with no traceback.
_AFTER = {
    "--format svg -o run.svg": lambda cwd, out, run_id: _svg_nodes(cwd) >= 5,
    "taskdaemon runs list": lambda cwd, out, run_id: run_id in out,
    "taskdaemon runs show RUN": lambda cwd, out, run_id: run_id in out and "success" in out,
    "--format mermaid": lambda cwd, out, run_id: "flowchart LR" in out,
    "spans_readable": lambda cwd, out, run_id: 5 == len(out.splitlines()),
}


@pytest.mark.slow
@pytest.mark.parametrize(
    "command", [c for c in SH_COMMANDS if c not in NOT_RUN and c != SERVED], ids=str
)
def test_sh_command_runs_after_the_demo(command: str, demo_home: tuple[Path, str]) -> None:
    """The command exits 0, prints no traceback, and did what it is there to show."""
    cwd, run_id = demo_home
    done = _bash(re.sub(r"\bRUN\b", run_id, command), cwd)
    checks = [check for key, check in _AFTER.items() if key in command]
    assert (0, False, True) == (
        done.returncode,
        "Traceback" in done.stderr,
        all(check(cwd, done.stdout, run_id) for check in checks),
    ), done.stderr


@pytest.mark.slow
def test_runs_show_takes_the_first_digits(demo_home: tuple[Path, str]) -> None:
    """As the README says, in the embedded store the run id's first digits are enough."""
    cwd, run_id = demo_home
    done = _bash(f"taskdaemon runs show {run_id[:8]}", cwd)
    assert (0, True) == (done.returncode, run_id in done.stdout), done.stderr


# -- the served run -------------------------------------------------------------------------------


def _pump(stream: IO[str], lines: queue.Queue[str | None]) -> None:
    for line in stream:
        lines.put(line)
    lines.put(None)


def _lines_until_closed(lines: queue.Queue[str | None], timeout: float) -> Iterator[str]:
    while (line := lines.get(timeout=timeout)) is not None:
        yield line


@pytest.mark.slow
def test_served_run_answers_and_finishes_when_approved() -> None:
    """The README's served run (on a free port instead of 9090, which may be taken on a shared
    machine) serves /metrics while it waits for the release approval, and the command it prints
    for granting that approval lets it finish with exit status 0."""
    port = free_port()
    command = SERVED.replace("127.0.0.1:9090", f"127.0.0.1:{port}")
    # The run's control socket lives under ./.taskdaemon and a Unix socket path has at most 107
    # bytes: pytest's tmp_path is too deep for it, a fresh directory in the temp dir is not.
    with tempfile.TemporaryDirectory(prefix="td-") as short:
        _served_run(command, _scratch(Path(short) / "w"), port)


def _served_run(command: str, cwd: Path, port: int) -> None:
    process = subprocess.Popen(
        ["bash", "-c", command],
        cwd=cwd,
        env=_environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert process.stdout is not None
    assert process.stderr is not None
    stderr: queue.Queue[str | None] = queue.Queue()
    pumps = [
        threading.Thread(target=_pump, args=(process.stderr, stderr), daemon=True),
        threading.Thread(target=process.stdout.read, daemon=True),
    ]
    for pump in pumps:
        pump.start()
    try:
        hint = None
        for line in _lines_until_closed(stderr, timeout=60):
            hint = re.search(r"taskdaemon approve [0-9a-f]{32} release", line)
            if hint:
                break
        assert hint is not None, "the run never asked for the release approval"
        metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
        approved = _bash(hint.group(0), cwd, timeout=60)
        code = process.wait(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        for pump in pumps:
            pump.join(timeout=10)
        process.stdout.close()
        process.stderr.close()
    assert (200, True, 0, 0) == (
        metrics.status_code,
        "pipeline_active_executions" in metrics.text,
        approved.returncode,
        code,
    ), approved.stderr


def test_test_sh_lints_every_folder_of_python_files() -> None:
    """``scripts/test.sh`` (the README's test command, and CI's) runs ruff over every top-level
    folder that holds Python files: ``scripts/fuzz.py`` was left out of both ruff lines."""
    script = (ROOT / "scripts" / "test.sh").read_text()
    listed = subprocess.run(
        ["git", "ls-files", "*.py"], cwd=ROOT, capture_output=True, text=True, check=True
    )
    folders = {name.split("/")[0] for name in listed.stdout.split() if "/" in name}
    for command in ("ruff check", "ruff format --check"):
        (line,) = [each for each in script.splitlines() if each.startswith(command)]
        assert sorted(folders - set(line.split())) == [], line


def test_readme_names_every_debian_package_the_set_up_installs() -> None:
    """The README's "Two commands" says which Debian packages the set-up installs (a reader
    on a machine of their own wants to know what lands there): every package
    ``scripts/setup.sh`` installs is named in it. ``chromium``, ``valgrind`` and ``linux-perf``
    were installed and not said."""
    setup = (ROOT / "scripts" / "setup.sh").read_text()
    packages = re.findall(r"^\s*apt_packages\+?=\(?(\S+?)\)", setup, re.MULTILINE)
    section = README.read_text().split("\n## Two commands\n", 1)[1].split("\n## ", 1)[0]
    assert ([], True) == (
        [name for name in packages if f"`{name}`" not in section],
        {"graphviz", "prometheus", "chromium"} <= set(packages),
    )


def test_layout_names_every_top_level_folder() -> None:
    """The README's Layout table names every top-level folder git knows (but ``.ci``, which
    "Two commands" names): ``scripts/`` and the stack's ``grafana/``, ``tempo/``, ``loki/``
    and ``alertmanager/`` were in none of its rows."""
    listed = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    )
    folders = {name.split("/")[0] for name in listed.stdout.split() if "/" in name} - {".ci"}
    section = README.read_text().split("\n## Layout\n", 1)[1].split("\n## ", 1)[0]
    rows = [line.split("|")[1] for line in section.splitlines() if line.startswith("| ")]
    assert ([], True) == (
        sorted(name for name in folders if not any(f"`{name}/" in row for row in rows)),
        {"src", "tests", "docs"} <= folders,
    )
