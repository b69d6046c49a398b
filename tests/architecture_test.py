"""The dependency rule of docs/architecture.md, checked by reading every module's imports (ast).

* The core (model, state, events, triggers, engine, loops, cancel_grace, group_watchdog,
  expressions, errors, records, config, control, run_state, status_rules) never imports
  OpenTelemetry, ``monitor``, ``metrics``, ``tracking``, ``server`` or ``cli``: not directly,
  not through another taskdaemon module, not through ``from taskdaemon.pipeline import ...``.
  Imports under ``if TYPE_CHECKING:`` count too: the rule is about what the core knows, not
  only what it loads.
* Only ``cli/`` and ``settings.py`` construct the OpenTelemetry SDK providers
  (``TracerProvider``, ``MeterProvider``, ``LoggerProvider``): everything else takes providers
  as arguments (importing a provider class to annotate such an argument is fine).
"""

from __future__ import annotations

import ast
import re
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src"
PACKAGE = "taskdaemon.pipeline"

CORE = (
    "model",
    "validation",
    "state",
    "events",
    "triggers",
    "engine",
    "loops",
    "cancel_grace",
    "group_watchdog",
    "_watchdog_process",
    "expressions",
    "errors",
    "records",
    "config",
    "control",
    "run_state",
    "status_rules",
)
FORBIDDEN_INTERNAL = ("monitor", "metrics", "tracking", "server", "cli")
FORBIDDEN_EXTERNAL = ("opentelemetry",)
PROVIDERS = frozenset({"TracerProvider", "MeterProvider", "LoggerProvider"})
PROVIDER_OWNERS = (f"{PACKAGE}.cli", f"{PACKAGE}.settings")
SDK = ("opentelemetry.sdk",)


@dataclass(frozen=True)
class Import:
    """One imported module (resolved to an absolute dotted name) and where it was imported."""

    module: str
    names: tuple[str, ...]  # the names of ``from module import a, b``; () for ``import module``
    line: int


def module_name(path: Path, root: Path) -> str:
    """The dotted module name of a source file under ``root``."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def read_imports(path: Path, name: str) -> list[Import]:
    """Every import statement of a module, relative ones made absolute."""
    tree = ast.parse(path.read_text(), filename=str(path))
    is_package = path.name == "__init__.py"
    imports = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imports.extend(Import(alias.name, (), node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            imports.append(Import(module, tuple(a.name for a in node.names), node.lineno))
    return imports


def discover(root: Path) -> dict[str, Path]:
    """Module name → file, for every module of the ``taskdaemon`` package under ``root``."""
    return {module_name(path, root): path for path in sorted(root.rglob("*.py"))}


def internal_targets(imp: Import, modules: dict[str, Path]) -> Iterator[str]:
    """The taskdaemon modules one import statement pulls in.

    ``from pkg import name`` reaches the submodule ``pkg.name`` when there is one, else
    ``pkg`` itself (its ``__init__``, which runs everything it re-exports).
    """
    if imp.module not in modules:
        return
    if not imp.names:
        yield imp.module
        return
    for name in imp.names:
        submodule = f"{imp.module}.{name}"
        yield submodule if submodule in modules else imp.module


def is_under(module: str, prefixes: tuple[str, ...]) -> bool:
    """True if ``module`` is one of ``prefixes`` or inside one of them."""
    return any(module == prefix or module.startswith(prefix + ".") for prefix in prefixes)


def dependency_violations(root: Path, package: str = PACKAGE) -> list[str]:
    """Each core module's path to a forbidden module, as ``a -> b -> opentelemetry.trace``."""
    modules = discover(root)
    imports = {name: read_imports(path, name) for name, path in modules.items()}
    forbidden_internal = tuple(f"{package}.{name}" for name in FORBIDDEN_INTERNAL)
    core = [name for name in modules if is_under(name, tuple(f"{package}.{core}" for core in CORE))]
    violations = []
    for start in core:
        # Breadth-first over taskdaemon imports: the first path found is a shortest one.
        parents: dict[str, str | None] = {start: None}
        queue = deque([start])
        while queue:
            current = queue.popleft()
            for imp in imports[current]:
                bad: str | None = None
                if is_under(imp.module, FORBIDDEN_EXTERNAL):
                    bad = imp.module
                for target in internal_targets(imp, modules):
                    if is_under(target, forbidden_internal):
                        bad = target
                    elif target not in parents:
                        parents[target] = current
                        queue.append(target)
                if bad is not None:
                    chain = [bad, current]
                    while (parent := parents[chain[-1]]) is not None:
                        chain.append(parent)
                    where = f"{modules[current].relative_to(root)}:{imp.line}"
                    violations.append(f"{' -> '.join(reversed(chain))} ({where})")
    return sorted(set(violations))


def provider_violations(root: Path, owners: tuple[str, ...] = PROVIDER_OWNERS) -> list[str]:
    """Modules outside ``owners`` that construct an SDK provider (``TracerProvider(...)``).

    Importing a provider class to annotate an injected argument is fine; building one is the
    composition root's job. Aliases (``import ... as``, ``from ... import X as Y``) are followed.
    """
    violations = []
    for name, path in discover(root).items():
        if is_under(name, owners):
            continue
        tree = ast.parse(path.read_text(), filename=str(path))
        classes: dict[str, str] = {}  # local name -> provider class
        sdk_modules: set[str] = set()  # local names bound to opentelemetry.sdk modules
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and is_under(node.module or "", SDK):
                for alias in node.names:
                    if alias.name in PROVIDERS:
                        classes[alias.asname or alias.name] = alias.name
                    else:
                        sdk_modules.add(alias.asname or alias.name)
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if is_under(alias.name, SDK):
                        sdk_modules.add(alias.asname or alias.name.split(".")[0])
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            built: str | None = None
            if isinstance(node.func, ast.Name):
                built = classes.get(node.func.id)
            elif isinstance(node.func, ast.Attribute) and node.func.attr in PROVIDERS:
                base = node.func.value
                while isinstance(base, ast.Attribute):
                    base = base.value
                if isinstance(base, ast.Name) and base.id in sdk_modules:
                    built = node.func.attr
            if built is not None:
                where = f"{path.relative_to(root)}:{node.lineno}"
                violations.append(f"{name} constructs {built} ({where})")
    return sorted(violations)


# -- the rule, on the real code ---------------------------------------------------------------


def test_core_never_imports_telemetry_or_adapters() -> None:
    """No core module reaches OpenTelemetry, monitor, metrics, tracking, server or cli."""
    assert [] == dependency_violations(SRC)


def test_only_composition_roots_build_sdk_providers() -> None:
    """Only cli/ and settings.py construct TracerProvider, MeterProvider or LoggerProvider."""
    assert [] == provider_violations(SRC)


def test_core_modules_exist() -> None:
    """The rule is checked against real modules: the core's contract modules are all there."""
    modules = discover(SRC)
    expected = ["errors", "events", "expressions", "loops", "model", "records", "state"]
    assert expected == [name for name in expected if f"{PACKAGE}.{name}" in modules]


def _architecture_section(title: str) -> str:
    text = (SRC.parent / "docs" / "architecture.md").read_text(encoding="utf-8")
    start = text.index(f"\n## {title}\n")
    return text[start : text.find("\n## ", start + 1)]


def _layer_modules() -> list[str]:
    """The names in the modules column of the Layers table, in order, repeats kept."""
    rows = _architecture_section("Layers").splitlines()
    cells = [row.split("|")[2] for row in rows if row.startswith("| ") and "| modules |" not in row]
    return [name for cell in cells for name in re.findall(r"`([\w/]+)`", cell)]


def test_every_module_has_its_place_in_the_layers() -> None:
    """Every module and package directly under ``taskdaemon.pipeline`` is named, once, in the
    modules column of the Layers table of docs/architecture.md, and every name there is one: the
    map a reader starts from has no blank and no ghost. A name cited only in a row's job text
    (``otel_variables`` was) leaves the module in no layer."""
    package = SRC / "taskdaemon" / "pipeline"
    names = {path.stem for path in package.glob("*.py") if path.stem != "__init__"}
    names |= {f"{path.name}/" for path in package.iterdir() if path.is_dir()} - {"__pycache__/"}
    listed = _layer_modules()
    assert ([], [], [], True) == (
        sorted(names - set(listed)),
        sorted(set(listed) - names),
        sorted({name for name in listed if listed.count(name) > 1}),
        {"engine/", "loops", "redaction"} <= names,
    )


def _package_modules_section(package: Path) -> dict[str, str]:
    """The ``Modules:`` list of a package's docstring: each bullet's module name and its line."""
    doc = ast.get_docstring(ast.parse((package / "__init__.py").read_text(encoding="utf-8"))) or ""
    _, found, rest = doc.partition("\nModules:\n\n")
    bullets = re.split(r"\n(?=\* )", rest.split("\n\n", 1)[0]) if found else []
    return {
        match[1]: match[2]
        for bullet in bullets
        if (match := re.fullmatch(r"\* ``(\w+)``: (.+)", bullet, re.DOTALL))
    }


def test_every_module_of_a_subpackage_is_named_in_its_package_docstring() -> None:
    """Each subpackage's docstring ends its map with a ``Modules:`` list, one bullet per
    module with its responsibility, and names no module that is not there: a module added
    and named nowhere fails here. The Layers table names the subpackage; its modules are listed
    where a reader of the package looks (docs/architecture.md, "Layers", says why)."""
    root = SRC / "taskdaemon" / "pipeline"
    packages = sorted(init.parent for init in root.rglob("__init__.py") if init.parent != root)
    found = {}
    for package in packages:
        listed = _package_modules_section(package)
        modules = {path.stem for path in package.glob("*.py") if path.stem != "__init__"}
        unnamed, ghosts = sorted(modules - set(listed)), sorted(set(listed) - modules)
        if unnamed or ghosts:
            found[package.relative_to(root).as_posix()] = (unnamed, ghosts)
    assert ({}, True) == (found, {"cli", "engine", "tracking"} <= {p.name for p in packages})


def test_the_shared_helpers_import_only_each_other() -> None:
    """The "shared text and files" row of the Layers table is what any layer may use: its
    modules import no other taskdaemon module, nor OpenTelemetry, so using one never pulls a
    layer in."""
    row = next(line for line in _architecture_section("Layers").splitlines() if "| shared" in line)
    shared = {f"{PACKAGE}.{name}" for name in re.findall(r"`(\w+)`", row.split("|")[2])}
    modules = discover(SRC)
    found = [
        f"{name} imports {imp.module} (line {imp.line})"
        for name in sorted(shared)
        for imp in read_imports(modules[name], name)
        if is_under(imp.module, FORBIDDEN_EXTERNAL)
        or any(target not in shared for target in internal_targets(imp, modules))
    ]
    assert ([], 26) == (found, len(shared))


def test_the_documented_core_is_the_checked_core() -> None:
    """The core modules the Dependency rule lists are the ones this file checks."""
    rule = _architecture_section("Dependency rule")
    listed = rule.split("The core modules (", 1)[1].split(")", 1)[0]
    assert sorted(CORE) == sorted(re.findall(r"`(\w+)`", listed))


# -- the checker catches what it must ---------------------------------------------------------


@pytest.fixture
def fake_tree(tmp_path: Path) -> Path:
    """A tiny ``taskdaemon.pipeline`` with one clean core module and a few offenders."""
    package = tmp_path / "taskdaemon" / "pipeline"
    (package / "cli").mkdir(parents=True)
    (tmp_path / "taskdaemon" / "__init__.py").write_text("")
    files = {
        "__init__.py": "from taskdaemon.pipeline.monitor import PipelineMonitor\n",
        "model.py": "import json\nfrom taskdaemon.pipeline import errors\n",
        "errors.py": "",
        "state.py": "from . import monitor\n",
        "events.py": "from taskdaemon.pipeline import Thing\n",
        "engine.py": "from .helpers import x\n",
        "helpers.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
        "    from opentelemetry import trace\n",
        "loops.py": "import taskdaemon.pipeline.cli.run\n",
        "monitor.py": "from opentelemetry.sdk.trace import TracerProvider as TP\nTP()\n",
        "metrics.py": "import opentelemetry.sdk.metrics as m\nm.MeterProvider()\n",
        "logs.py": "from opentelemetry.sdk._logs import LoggerProvider\n"
        "def f(p: LoggerProvider) -> None: ...\n",
        "cli/__init__.py": "from opentelemetry.sdk.metrics import MeterProvider\nMeterProvider()\n",
        "cli/run.py": "",
    }
    for name, text in files.items():
        (package / name).write_text(text)
    return tmp_path


def test_checker_reports_direct_relative_and_transitive_imports(fake_tree: Path) -> None:
    """Direct, relative, package-level and transitive (even TYPE_CHECKING) imports are caught."""
    expected = [
        "taskdaemon.pipeline.engine -> taskdaemon.pipeline.helpers -> opentelemetry "
        "(taskdaemon/pipeline/helpers.py:3)",
        "taskdaemon.pipeline.events -> taskdaemon.pipeline -> taskdaemon.pipeline.monitor "
        "(taskdaemon/pipeline/__init__.py:1)",
        "taskdaemon.pipeline.loops -> taskdaemon.pipeline.cli.run (taskdaemon/pipeline/loops.py:1)",
        "taskdaemon.pipeline.state -> taskdaemon.pipeline.monitor (taskdaemon/pipeline/state.py:1)",
    ]
    assert expected == dependency_violations(fake_tree)


def test_checker_reports_providers_outside_composition_roots(fake_tree: Path) -> None:
    """A provider built outside cli/ and settings.py is reported; annotations and cli/ are fine."""
    expected = [
        "taskdaemon.pipeline.metrics constructs MeterProvider (taskdaemon/pipeline/metrics.py:2)",
        "taskdaemon.pipeline.monitor constructs TracerProvider (taskdaemon/pipeline/monitor.py:2)",
    ]
    assert expected == provider_violations(fake_tree)


# --- import cycles and file size ------------------------------------------------------------------
# The rule (docs/architecture.md, "Dependency rule"): no two source files may import each other,
# directly or around a loop. Every import statement counts, at module level or inside a function
# (an import deferred for start-up time is still a dependency), except those under
# ``if TYPE_CHECKING:`` (annotations only; they never run). ``import a.b.c`` and
# ``from a.b import c`` are edges to the module they name (``a.b.c``), not to its parent
# packages; ``from a.b import name`` for a name that is not a module is an edge to ``a.b``.

MAX_LINES = 700


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def runtime_imports(path: Path, name: str) -> list[Import]:
    """The import statements of a module that can run: all but those under ``TYPE_CHECKING``."""
    tree = ast.parse(path.read_text(), filename=str(path))
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            skipped.update(id(inner) for stmt in node.body for inner in ast.walk(stmt))
    return [
        imp
        for imp, node in zip(read_imports(path, name), _import_nodes(tree), strict=True)
        if id(node) not in skipped
    ]


def _import_nodes(tree: ast.AST) -> Iterator[ast.AST]:
    """The import nodes in ``read_imports``' order, one per ``Import`` it makes."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (node for _ in node.names)
        elif isinstance(node, ast.ImportFrom):
            yield node


def import_graph(root: Path) -> dict[str, set[str]]:
    """Module → the taskdaemon modules its runtime imports name (see the rule above)."""
    modules = discover(root)
    return {
        name: {
            target
            for imp in runtime_imports(path, name)
            for target in internal_targets(imp, modules)
            if target != name
        }
        for name, path in modules.items()
    }


def import_cycles(root: Path) -> list[list[str]]:
    """One shortest cycle (``[a, b, ..., a]``) through each group of modules importing each
    other, sorted."""
    graph = import_graph(root)
    cycles = []
    seen: set[str] = set()
    for start in sorted(graph):
        if start in seen:
            continue
        cycle = _shortest_cycle(graph, start)
        if cycle:
            seen.update(cycle)
            cycles.append(cycle)
    return sorted(cycles)


def _shortest_cycle(graph: dict[str, set[str]], start: str) -> list[str] | None:
    """The shortest path from ``start`` back to itself (breadth first), or None."""
    parents: dict[str, str] = {}
    queue = deque([start])
    while queue:
        current = queue.popleft()
        for target in sorted(graph.get(current, ())):
            if target == start:
                path = [current]
                while path[-1] != start:
                    path.append(parents[path[-1]])
                return [start, *reversed(path[:-1]), start]
            if target not in parents:
                parents[target] = current
                queue.append(target)
    return None


def long_files(root: Path, limit: int = MAX_LINES) -> list[str]:
    """``path: N lines`` for each source file over ``limit`` lines."""
    return [
        f"{path.relative_to(root)}: {count} lines"
        for path in sorted(root.rglob("*.py"))
        if (count := len(path.read_text().splitlines())) > limit
    ]


def stray_docstrings(root: Path) -> list[str]:
    """``path:line name`` for each function or class whose first string statement is not its
    first statement: written as its docstring, it is none (``__doc__`` is None, and help and
    the type checkers never see it)."""
    found = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                continue
            if ast.get_docstring(node) is not None:
                continue
            for statement in node.body[1:]:
                value = statement.value if isinstance(statement, ast.Expr) else None
                if isinstance(value, ast.Constant) and isinstance(value.value, str):
                    found.append(f"{path.relative_to(root)}:{statement.lineno} {node.name}")
                    break
    return found


def test_no_import_cycles() -> None:
    """No source module imports itself through others (the rule above)."""
    assert [] == [" -> ".join(cycle) for cycle in import_cycles(SRC)]


@pytest.mark.parametrize("folder", ["src", "tests", "benchmarks", "scripts", "examples"])
def test_no_source_file_over_700_lines(folder: str) -> None:
    """Every Python file of the package, its tests, benchmarks, scripts and examples has at
    most 700 lines (one responsibility per module, one subject per test file)."""
    assert [] == long_files(SRC.parent / folder)


def test_every_docstring_is_its_functions_first_statement() -> None:
    """No function or class has a docstring that a statement before it turned into a bare
    string."""
    assert [] == stray_docstrings(SRC)


def test_the_docstring_checker_reports_a_string_after_a_statement(tmp_path: Path) -> None:
    """A string after an import is reported; a docstring first, with strings after it, is not."""
    (tmp_path / "m.py").write_text(
        'def late():\n    import os\n    """Doc."""\n\n\n'
        'def right():\n    """Doc."""\n    "not a docstring either, but the doc is there"\n'
    )
    assert ["m.py:3 late"] == stray_docstrings(tmp_path)


def test_cycle_checker_finds_lazy_cycles_and_skips_annotations(tmp_path: Path) -> None:
    """The checker reports a cycle closed by a function-level import and by ``from pkg import
    module``, and none made only by imports under ``if TYPE_CHECKING:``."""
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    files = {
        "__init__.py": "",
        "a.py": "def f():\n    from pkg import b\n",
        "b.py": "from pkg.a import f\n",
        "c.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg import d\n",
        "d.py": "import pkg.c\n",
    }
    for name, text in files.items():
        (pkg / name).write_text(text)
    assert [["pkg.a", "pkg.b", "pkg.a"]] == import_cycles(tmp_path)


def test_size_checker_counts_lines(tmp_path: Path) -> None:
    """A file of ``limit + 1`` lines is reported with its count, one of ``limit`` is not."""
    (tmp_path / "big.py").write_text("x = 1\n" * 11)
    (tmp_path / "ok.py").write_text("x = 1\n" * 10)
    assert ["big.py: 11 lines"] == long_files(tmp_path, limit=10)
