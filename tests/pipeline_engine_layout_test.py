"""The engine package's layout: no import cycle, small modules, event records built by keyword.

Read from the source (ast), so that a regression shows up as a failing test rather than as a
slow drift: ``engine/_run.py`` once held 1,394 lines and imported the engine that imported it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from taskdaemon.pipeline import events
from taskdaemon.pipeline.record_fields import is_record
from taskdaemon.pipeline.state import StageStatus

SRC = Path(__file__).resolve().parent.parent / "src"
ENGINE = SRC / "taskdaemon" / "pipeline" / "engine"
PACKAGE = "taskdaemon.pipeline.engine"
MAX_LINES = 700
# Event records (every frozen record of events.py but the three-field ``TaskRunRef``).
RECORDS = frozenset(
    name for name in events.__all__ if is_record(getattr(events, name)) and name != "TaskRunRef"
)


def _engine_imports() -> dict[str, set[str]]:
    """Engine module -> the engine modules it imports (``if TYPE_CHECKING:`` ones too)."""
    modules = {
        PACKAGE if p.name == "__init__.py" else f"{PACKAGE}.{p.stem}": p
        for p in sorted(ENGINE.glob("*.py"))
    }
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.ImportFrom) and node.module in modules:
                for alias in node.names:
                    sub = f"{node.module}.{alias.name}"
                    targets.add(sub if sub in modules else node.module)
            elif isinstance(node, ast.Import):
                targets.update(a.name for a in node.names if a.name in modules)
        targets.discard(name)
        graph[name] = targets
    return graph


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` as a path ``[a, b, ..., a]``, or None."""
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> list[str] | None:
        if node in path:
            return [*path[path.index(node) :], node]
        if node in done:
            return None
        for target in sorted(graph.get(node, ())):
            found = visit(target, [*path, node])
            if found:
                return found
        done.add(node)
        return None

    for start in sorted(graph):
        found = visit(start, [])
        if found:
            return found
    return None


def test_engine_modules_import_each_other_without_a_cycle() -> None:
    """No engine module reaches itself through the engine modules it imports."""
    graph = _engine_imports()
    assert f"{PACKAGE}._run" in graph
    assert _find_cycle(graph) is None, " -> ".join(_find_cycle(graph) or ())


def test_cycle_finder_reports_a_cycle() -> None:
    """The finder does see a cycle when there is one (so the test above can fail)."""
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _find_cycle(graph) == ["a", "b", "c", "a"]
    assert _find_cycle({"a": {"b"}, "b": set()}) is None


def test_the_run_never_imports_the_engine() -> None:
    """A run's modules get what they need from the run context, never from ``_api``."""
    graph = _engine_imports()
    for part in ("_run", "_run_base", "_attempt", "_approvals", "_triggering", "_dataflow"):
        assert f"{PACKAGE}._api" not in graph[f"{PACKAGE}.{part}"], part


@pytest.mark.parametrize("path", sorted(ENGINE.glob("*.py")), ids=lambda p: p.name)
def test_engine_module_is_under_the_size_limit(path: Path) -> None:
    """Each engine source file stays under 700 lines."""
    assert len(path.read_text().splitlines()) < MAX_LINES


def test_event_records_in_src_are_built_with_keywords() -> None:
    """No call in src builds an event record with positional arguments."""
    positional = []
    for path in sorted(SRC.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name | ast.Attribute)
                and (node.func.id if isinstance(node.func, ast.Name) else node.func.attr) in RECORDS
                and node.args
            ):
                positional.append(f"{path.relative_to(SRC)}:{node.lineno}")
    assert positional == []


def test_event_records_refuse_positional_arguments() -> None:
    """An event record takes keywords only: a swapped positional pair cannot slip through."""
    fields = {
        "run_id": "0" * 32,
        "pipeline": "p",
        "stage": "s",
        "instance": 0,
        "attempt": 1,
        "task_run_id": "s.0.1",
        "status": StageStatus.SUCCESS,
        "at": 1.0,
    }
    assert events.StageFinished(**fields).task_run_id == "s.0.1"
    with pytest.raises(TypeError):
        events.StageFinished(*fields.values())  # type: ignore[misc]
    assert RECORDS >= {"StageRetrying", "StageStarted", "RunStarted", "InputOverridden"}
