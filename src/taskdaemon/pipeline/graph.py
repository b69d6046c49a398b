"""Graph algorithms over a pipeline's dependency graph (stage name → downstream stage names).

Iterative, so a 40,000-stage chain never meets the recursion limit, and linear in stages plus
edges. ``validation.validate_pipeline`` reports cycles with them.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence

__all__ = ["shortest_cycle", "strongly_connected"]


def strongly_connected(graph: Mapping[str, Sequence[str]]) -> list[list[str]]:
    """The strongly connected components of ``graph`` (node → successors): Tarjan's
    algorithm, iterative (no recursion limit on long chains), linear in nodes plus edges."""
    index_of: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []
    counter = 0
    for root in graph:
        if root in index_of:
            continue
        work: list[tuple[str, int]] = [(root, 0)]
        while work:
            node, child = work.pop()
            if child == 0:
                index_of[node] = low[node] = counter
                counter += 1
                stack.append(node)
                on_stack.add(node)
            targets = graph[node]
            while child < len(targets):
                target = targets[child]
                child += 1
                if target not in index_of:
                    work.append((node, child))
                    work.append((target, 0))
                    break
                if target in on_stack:
                    low[node] = min(low[node], index_of[target])
            else:
                if low[node] == index_of[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    components.append(component)
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
    return components


def shortest_cycle(
    graph: Mapping[str, Sequence[str]], start: str, component: set[str]
) -> list[str]:
    """The shortest cycle through ``start`` inside its component: ``[start, ..., start]``."""
    parent: dict[str, str] = {start: start}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for target in graph[node]:
            if target == start:
                path = [node]
                while path[-1] != start:
                    path.append(parent[path[-1]])
                return [*reversed(path), start]
            if target in component and target not in parent:
                parent[target] = node
                queue.append(target)
    raise AssertionError(f"{start!r} is on no cycle")  # pragma: no cover - Tarjan guarantees one
