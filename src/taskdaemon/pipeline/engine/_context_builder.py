"""``new_context(**fields)``: a :class:`StageContext` for one execution, built without its
dataclass ``__init__``.

``StageContext`` stays a frozen dataclass (handlers copy it with ``dataclasses.replace``), so
its ``__init__`` stores each of its sixteen fields through ``object.__setattr__``, which looks
the name up again each time: a visible share of an attempt's cost, paid by every stage. Here
the instance is made as a mutable twin class with the very same slots, whose plain
assignments are the interpreter's fastest store, then given its real class (a ``__class__``
assignment, which CPython allows between classes of the same layout). What comes out is an
ordinary ``StageContext``: same type, fields, equality, ``replace`` and frozenness.

The engine passes every field by position, in the dataclass's field order: with sixteen
keywords, CPython 3.11's compiler would pass them through a dict (built, then unpacked again:
a call's positional arguments plus twice its keyword arguments past thirty), and the callee
would match each keyword against its parameters' names in turn. They stay ordinary
parameters, so a call by keyword (the tests, the probe below) still works; type checkers see
them through :class:`MakeStageContext`, which the tests hold to the builder's parameters. The
twin is made by calling it (it has no ``__init__``): cheaper than ``object.__new__(twin)``,
and the same empty instance.

Should a change of ``StageContext`` make the twin's layout differ (the assignment would then
raise), the probe at import notices it and ``new_context`` is the dataclass itself.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

from taskdaemon.pipeline.stage_context import StageContext

__all__ = ["MakeStageContext", "new_context"]


class MakeStageContext(Protocol):
    """``new_context``'s parameters: the context's fields, in their order."""

    def __call__(  # noqa: PLR0917 - the record's fields by position (see above)
        self,
        run_id: str,
        pipeline: str,
        stage: str,
        loop: str,
        instance: int,
        attempt: int,
        inputs: Mapping[str, Any],
        publish: Callable[[str, Mapping[str, Any]], None],
        report_process: Callable[[int], None],
        report_usage: Callable[[float | None, int | None], None],
        report_cpu: Callable[[float], None],
        timeout: float | None,
        event: Mapping[str, Any] | None,
        environment: Mapping[str, str],
        workspace: str | None,
        command: str | None,
    ) -> StageContext: ...


def _twin_builder() -> MakeStageContext:
    names: tuple[str, ...] = StageContext.__slots__
    twin = type("_MutableStageContext", (), {"__slots__": names})
    stores = "".join(f" c.{name} = {name}\n" for name in names)
    source = (
        f"def new_context({', '.join(names)}):\n c = _Twin()\n{stores}"
        " c.__class__ = _Real\n return c\n"
    )
    scope: dict[str, Any] = {"_Twin": twin, "_Real": StageContext}
    exec(source, scope)  # noqa: S102 - generated from the dataclass's own field names
    builder: MakeStageContext = scope["new_context"]
    probe: dict[str, Any] = dict.fromkeys(names)
    try:
        built = builder(**probe)
    except TypeError:  # the layouts differ: keep the dataclass's own __init__
        return StageContext
    if type(built) is not StageContext or built != StageContext(**probe):
        return StageContext
    return builder


new_context: MakeStageContext = _twin_builder()
