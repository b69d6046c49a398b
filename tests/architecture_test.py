"""The dependency rule of docs/architecture.md, checked by reading every module's imports (ast).

* The core (model, state, events, triggers, engine, loops, expressions, errors, records, config,
  control, run_state) never imports OpenTelemetry, ``monitor``, ``metrics``, ``tracking``,
  ``server`` or ``cli``: not directly, not through another taskdaemon module, not through
  ``from taskdaemon.pipeline import ...``. Imports under ``if TYPE_CHECKING:`` count too: the
  rule is about what the core knows, not only what it loads.
* Only ``cli/`` and ``settings.py`` construct the OpenTelemetry SDK providers
  (``TracerProvider``, ``MeterProvider``, ``LoggerProvider``): everything else takes providers
  as arguments (importing a provider class to annotate such an argument is fine).
"""

from __future__ import annotations

import ast
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src"
PACKAGE = "taskdaemon.pipeline"

CORE = (
    "model",
    "state",
    "events",
    "triggers",
    "engine",
    "loops",
    "expressions",
    "errors",
    "records",
    "config",
    "control",
    "run_state",
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
