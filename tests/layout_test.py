"""The test suite's naming rule (tests/README.md): a test file names the module it tests.

* ``pipeline_[<area>_]<module>[_<aspect>]_test.py``: ``<module>`` is a module or package of
  ``src/taskdaemon/pipeline`` written as its path joined by ``_``, without leading underscores
  (``tracking_store`` for ``tracking/store.py``, ``engine`` for the package); ``<area>`` is one of
  :data:`AREAS`, kept first so that ``pytest -k pipeline_<area>`` selects the area's tests.
* ``reliability_<topic>_test.py``: hostile input, load and failure suites across modules.
* The repository checks of :data:`REPOSITORY_CHECKS`.
* Everything else under ``tests/`` that is Python is ``conftest.py`` or a ``*_support.py`` helper.
* A test file never imports another test file: what several files share is a ``*_support.py``
  helper or a ``conftest.py`` fixture (importing a test module would also import its tests).

A ``pytest.mark`` sits on a test function, never on a helper (pytest ignores it there).

No script or style sheet under ``src/`` (the web page's ``.js`` and ``.css``) has more than
:data:`MAX_ASSET_LINES` lines, the limit ``architecture_test.py`` sets for Python files: one
responsibility a file holds there too (``app.js`` had grown to 833 lines, the run page's DAG,
tables, timeline, stage panel and stream in one).

It also checks the suite's guards against threads and child processes left running
(``conftest.left_running``, ``conftest.children_left_running``) and process-wide state left
changed (``conftest.changed_state``).
"""

from __future__ import annotations

import ast
import os
import subprocess
import threading
from pathlib import Path

from conftest import (
    changed_state,
    child_processes,
    children_left_running,
    left_running,
    process_state,
)

ROOT = Path(__file__).resolve().parent.parent
PACKAGE_ROOT = ROOT / "src" / "taskdaemon" / "pipeline"

#: The most lines a script or style sheet under ``src/`` has (the module docstring).
MAX_ASSET_LINES = 700

#: The areas the project's spec selects with ``-k pipeline_<area>``.
AREAS = frozenset({"monitor", "visualization", "tracking", "metrics", "debug"})
#: Test files about the repository as a whole rather than a module.
REPOSITORY_CHECKS = frozenset(
    {
        "architecture",
        "benchmarks_smoke",  # benchmarks/*.py: scripts of the repository, run once each
        "cli_support",  # tests/cli_support.py's reads with a deadline: the suite's own helper
        "deploy_stack",
        "deploy_stack_prometheus",  # the stack's rules and dashboards in a real Prometheus
        "docs_commands",
        "docs_references",
        "docs_tables",  # every Markdown table renders whole
        "examples_commands",  # examples/*.py run as their docstrings say
        "examples_loops",  # examples/loops.py: a file of the repository, not of the package
        "layout",
        "mutation_recheck",  # scripts/mutation_recheck.py: a script of the repository
        "packaging_installed",  # the wheel built from the tree, installed and run outside it
        "public_api",
        "readme",
    }
)


def module_names(package_root: Path) -> frozenset[str]:
    """Every module and package under ``package_root`` as a file name spells it: its path
    joined by ``_``, leading underscores dropped (``engine/_run.py`` is ``engine_run``)."""
    names = set()
    for path in package_root.rglob("*.py"):
        parts = list(path.relative_to(package_root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        if parts:
            names.add("_".join(part.lstrip("_") for part in parts))
    return frozenset(names)


def _names_a_module(words: list[str], modules: frozenset[str]) -> bool:
    return any("_".join(words[:end]) in modules for end in range(1, len(words) + 1))


def naming_violations(tests: Path, package_root: Path) -> list[str]:
    """The Python files directly under ``tests`` that break the rule, each with the reason."""
    modules = module_names(package_root)
    found = []
    for path in sorted(tests.glob("*.py")):
        name = path.name
        if name == "conftest.py" or name.endswith("_support.py"):
            continue
        if not name.endswith("_test.py"):
            found.append(f"{name}: not a *_test.py, a *_support.py or conftest")
            continue
        stem = name.removesuffix("_test.py")
        if stem in REPOSITORY_CHECKS or stem.startswith("reliability_"):
            continue
        words = stem.split("_")
        if words[0] != "pipeline" or len(words) < 2:
            found.append(f"{name}: not pipeline_<module>..., reliability_... or a repository check")
            continue
        words = words[1:]
        in_area = words[0] in AREAS and _names_a_module(words[1:], modules)
        if not (_names_a_module(words, modules) or in_area):
            found.append(f"{name}: names no module of src/taskdaemon/pipeline")
    return found


def long_assets(root: Path, limit: int = MAX_ASSET_LINES) -> list[str]:
    """``path: N lines`` for each ``.js`` and ``.css`` file under ``root`` over ``limit``."""
    return [
        f"{path.relative_to(root)}: {count} lines"
        for path in sorted(root.rglob("*"))
        if path.suffix in (".js", ".css") and (count := len(path.read_text().splitlines())) > limit
    ]


def test_no_script_or_style_sheet_over_700_lines() -> None:
    """Every script and style sheet of the package has at most 700 lines, as its modules."""
    assert [] == long_assets(ROOT / "src")


def test_the_asset_rule_reports_long_scripts_and_style_sheets(tmp_path: Path) -> None:
    """A ``.js`` or ``.css`` file over the limit is reported, one at it and other files not."""
    (tmp_path / "static").mkdir()
    for name, count in (("long.js", 4), ("long.css", 5), ("ok.js", 3), ("long.txt", 9)):
        (tmp_path / "static" / name).write_text("x\n" * count)
    assert ["static/long.css: 5 lines", "static/long.js: 4 lines"] == long_assets(tmp_path, 3)


def test_every_test_file_names_what_it_tests() -> None:
    """Each file under tests/ follows the naming rule, so a reader finds a module's tests."""
    assert [] == naming_violations(ROOT / "tests", PACKAGE_ROOT)


def test_the_rule_reports_misnamed_files(tmp_path: Path) -> None:
    """The checker accepts module names with an area and an aspect, and reports the others."""
    package = tmp_path / "pkg"
    (package / "tracking").mkdir(parents=True)
    for module in ("server.py", "tracking/__init__.py", "tracking/_store.py"):
        (package / module).touch()
    tests = tmp_path / "tests"
    tests.mkdir()
    for name in (
        "conftest.py",
        "pipeline_support.py",
        "readme_test.py",
        "reliability_load_test.py",
        "pipeline_server_test.py",
        "pipeline_monitor_server_limits_test.py",
        "pipeline_tracking_store_test.py",
        "pipeline_tracking_test.py",
        "pipeline_store_hash_test.py",
        "pipeline_monitor_test.py",
        "server_test.py",
        "helpers.py",
    ):
        (tests / name).touch()
    assert [
        "helpers.py: not a *_test.py, a *_support.py or conftest",
        "pipeline_monitor_test.py: names no module of src/taskdaemon/pipeline",
        "pipeline_store_hash_test.py: names no module of src/taskdaemon/pipeline",
        "server_test.py: not pipeline_<module>..., reliability_... or a repository check",
    ] == naming_violations(tests, package)


def imports_of_test_modules(tests: Path) -> list[str]:
    """``file: imports module`` for each import of a ``*_test`` module by a file of ``tests``."""
    found = []
    for path in sorted(tests.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            found += [f"{path.name}: imports {n}" for n in names if n.endswith("_test")]
    return found


def test_no_test_file_imports_another() -> None:
    """Shared helpers live in *_support.py files and conftest.py, never in a test file."""
    assert [] == imports_of_test_modules(ROOT / "tests")


def test_the_import_rule_reports_each_import_of_a_test_module(tmp_path: Path) -> None:
    """Both import forms of a test module are reported; support modules are not."""
    (tmp_path / "a_test.py").write_text("import b_test\nfrom cli_support import x\n")
    (tmp_path / "b_test.py").write_text("from a_test import serve\nimport os\n")
    assert ["a_test.py: imports b_test", "b_test.py: imports a_test"] == imports_of_test_modules(
        tmp_path
    )


def marks_off_tests(tests: Path) -> list[str]:
    """``file: function`` for each ``pytest.mark`` on a function that is not a test: pytest
    ignores it there, so a ``slow`` mark meant for the test below a helper marks nothing, and
    that slow test runs in the quick selection."""
    found = []
    for path in sorted(tests.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            if node.name.startswith("test_"):
                continue
            for decorator in node.decorator_list:
                target = decorator.func if isinstance(decorator, ast.Call) else decorator
                if ast.unparse(target).startswith("pytest.mark."):
                    found.append(f"{path.name}: {node.name}")
    return found


def test_marks_sit_on_tests() -> None:
    """A mark (``slow``, ``parametrize``) is on a test function, never on a helper."""
    assert [] == marks_off_tests(ROOT / "tests")


def test_the_mark_rule_reports_a_marked_helper(tmp_path: Path) -> None:
    """Bare and called marks on helpers are reported; marks on tests and fixtures are not."""
    (tmp_path / "a_test.py").write_text(
        "import pytest\n\n@pytest.mark.slow\ndef _wait():\n    pass\n\n"
        "@pytest.mark.parametrize('x', [1])\nasync def helper(x):\n    pass\n\n"
        "@pytest.mark.slow\ndef test_a():\n    pass\n\n"
        "@pytest.fixture\ndef home():\n    pass\n"
    )
    assert ["a_test.py: _wait", "a_test.py: helper"] == marks_off_tests(tmp_path)


def test_the_thread_guard_reports_only_watched_threads_still_running() -> None:
    """A project thread nobody stopped is reported; one that stops within the grace, and a
    foreign daemon thread, are not."""
    before = set(threading.enumerate())
    release, stop_soon = threading.Event(), threading.Event()
    leaked = threading.Thread(target=release.wait, name="taskdaemon-leaked", daemon=True)
    stopping = threading.Thread(target=stop_soon.wait, name="taskdaemon-stopping", daemon=True)
    foreign = threading.Thread(target=release.wait, name="someone-elses", daemon=True)
    for thread in (leaked, stopping, foreign):
        thread.start()
    stop_soon.set()
    try:
        left = left_running(before, grace=0.5)
    finally:
        release.set()
        for thread in (leaked, stopping, foreign):
            thread.join()
    assert ["taskdaemon-leaked"] == left


def test_the_process_guard_reports_only_children_still_running() -> None:
    """A child nobody stopped is reported by its command line; one killed (even unreaped) and
    one that ended are not."""
    before = set(child_processes())
    running = subprocess.Popen(["sleep", "60"])
    killed = subprocess.Popen(["sleep", "61"])
    ended = subprocess.Popen(["true"])
    killed.kill()
    ended.wait()
    try:
        left = children_left_running(before, grace=0.5)
    finally:
        running.kill()
        for process in (running, killed):
            process.wait()
    assert ["sleep 60 "] == left


def test_the_state_guard_names_what_changed_and_puts_it_back(tmp_path: Path) -> None:
    """A variable set, the umask and the working directory changed are each named (a
    variable by its name, never its value) and put back; what did not change is not named."""
    cwd, umask = os.getcwd(), os.umask(0o022)
    os.umask(umask)
    before = process_state()
    os.environ["TASKDAEMON_GUARD_CHECK"] = "s3cret"
    os.umask(0o077)
    os.chdir(tmp_path)
    try:
        changed = changed_state(before)
    finally:
        os.environ.pop("TASKDAEMON_GUARD_CHECK", None)
        os.umask(umask)
        os.chdir(cwd)
    expected = ["environment variables ['TASKDAEMON_GUARD_CHECK']", "working directory", "umask"]
    assert (expected, before) == (changed, process_state())
