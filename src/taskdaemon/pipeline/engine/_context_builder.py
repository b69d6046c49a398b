"""``new_context(**fields)``: a :class:`StageContext` for one execution, built without its
dataclass ``__init__``.

``StageContext`` stays a frozen dataclass (handlers copy it with ``dataclasses.replace``), so
its ``__init__`` stores each of its sixteen fields through ``object.__setattr__``, which looks
the name up again each time: a visible share of an attempt's cost, paid by every stage. Here
the instance is made as a mutable twin class with the very same slots, whose plain
assignments are the interpreter's fastest store, then given its real class (a ``__class__``
assignment, which CPython allows between classes of the same layout). What comes out is an
ordinary ``StageContext``: same type, fields, equality, ``replace`` and frozenness.

The engine passes the first two fields (``run_id``, ``pipeline``) by position and the other
fourteen by keyword: CPython 3.11's compiler turns a call whose positional arguments plus
twice its keyword arguments exceed thirty into a call through a dict (built, then unpacked
again), and sixteen keywords are thirty-two. Both stay ordinary parameters, so a call by
keyword alone (the tests, the probe below) still works. The twin is made by calling it (it has
no ``__init__``): cheaper than ``object.__new__(twin)``, and the same empty instance.

Should a change of ``StageContext`` make the twin's layout differ (the assignment would then
raise), the probe at import notices it and ``new_context`` is the dataclass itself.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from taskdaemon.pipeline.stage_context import StageContext

__all__ = ["new_context"]

#: The leading fields (``run_id``, ``pipeline``) the engine passes by position; see above.
_POSITIONAL = 2


def _twin_builder() -> Callable[..., StageContext]:
    names: tuple[str, ...] = StageContext.__slots__
    twin = type("_MutableStageContext", (), {"__slots__": names})
    leading = ", ".join(names[:_POSITIONAL])
    rest = ", ".join(names[_POSITIONAL:])
    stores = "".join(f" c.{name} = {name}\n" for name in names)
    source = (
        f"def new_context({leading}, *, {rest}):\n c = _Twin()\n{stores}"
        " c.__class__ = _Real\n return c\n"
    )
    scope: dict[str, Any] = {"_Twin": twin, "_Real": StageContext}
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
