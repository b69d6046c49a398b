"""``new_context(**fields)``: a :class:`StageContext` for one execution, built without its
dataclass ``__init__``.

``StageContext`` stays a frozen dataclass (handlers copy it with ``dataclasses.replace``), so
its ``__init__`` stores each of its sixteen fields through ``object.__setattr__``, which looks
the name up again each time: a visible share of an attempt's cost, paid by every stage. Here
the instance is made as a mutable twin class with the very same slots, whose plain
assignments are the interpreter's fastest store, then given its real class (a ``__class__``
assignment, which CPython allows between classes of the same layout). What comes out is an
ordinary ``StageContext``: same type, fields, equality, ``replace`` and frozenness.

Should a change of ``StageContext`` make the twin's layout differ (the assignment would then
raise), the probe at import notices it and ``new_context`` is the dataclass itself.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from taskdaemon.pipeline.stage_context import StageContext

__all__ = ["new_context"]


def _twin_builder() -> Callable[..., StageContext]:
    names: tuple[str, ...] = StageContext.__slots__
    twin = type("_MutableStageContext", (), {"__slots__": names})
    params = ", ".join(names)
    stores = "".join(f" c.{name} = {name}\n" for name in names)
    source = (
        f"def new_context(*, {params}):\n c = _new(_Twin)\n{stores} c.__class__ = _Real\n"
        " return c\n"
    )
    scope: dict[str, Any] = {"_new": object.__new__, "_Twin": twin, "_Real": StageContext}
    exec(source, scope)  # noqa: S102 - generated from the dataclass's own field names
    builder: Callable[..., StageContext] = scope["new_context"]
    probe: dict[str, Any] = dict.fromkeys(names)
    try:
        built = builder(**probe)
    except TypeError:  # the layouts differ: keep the dataclass's own __init__
        return StageContext
    if type(built) is not StageContext or built != StageContext(**probe):
        return StageContext
    return builder


new_context: Callable[..., StageContext] = _twin_builder()
