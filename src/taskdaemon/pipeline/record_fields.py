"""``fields``, ``replace`` and ``as_dict`` for ``@frozen`` records and dataclasses alike.

They behave as ``dataclasses.fields``, ``dataclasses.replace`` and ``dataclasses.asdict``, which
reject records (``taskdaemon.pipeline.frozen`` says why records are not dataclasses); the
``dataclasses`` module is imported only when a dataclass is given.
"""

from __future__ import annotations

from typing import Any, TypeVar

from taskdaemon.pipeline.frozen import Record

__all__ = ["as_dict", "fields", "is_record", "replace"]

_T = TypeVar("_T")


def is_record(obj: object) -> bool:
    """Whether ``obj`` is a record class or instance."""
    return issubclass(obj if isinstance(obj, type) else type(obj), Record)


def fields(obj: Any) -> tuple[Any, ...]:
    """The fields of a record or dataclass (class or instance), in order."""
    found = getattr(obj, "__record_fields__", None)
    if found is not None:
        return tuple(found)
    import dataclasses  # noqa: PLC0415 - only for a dataclass

    return dataclasses.fields(obj)


def replace(obj: _T, /, **changes: Any) -> _T:
    """A copy of the record or dataclass ``obj`` with ``changes``, as ``dataclasses.replace``."""
    found = getattr(obj, "__record_fields__", None)
    if found is None:
        import dataclasses  # noqa: PLC0415 - only for a dataclass

        return dataclasses.replace(obj, **changes)  # type: ignore[type-var]
    values = {f.name: getattr(obj, f.name) for f in found}
    values.update(changes)
    return type(obj)(**values)


def as_dict(obj: Any) -> dict[str, Any]:
    """The record or dataclass ``obj`` as a dict, recursively, as ``dataclasses.asdict``."""
    if not _has_fields(type(obj)):
        raise TypeError("as_dict() should be called on record or dataclass instances")
    result: dict[str, Any] = _inner(obj)
    return result


def _has_fields(cls: type) -> bool:
    return hasattr(cls, "__record_fields__") or hasattr(cls, "__dataclass_fields__")


def _inner(obj: Any) -> Any:
    if isinstance(obj, str | int | float | bool | type(None)):
        return obj
    cls = type(obj)
    if _has_fields(cls):
        return {f.name: _inner(getattr(obj, f.name)) for f in fields(obj)}
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):
        return cls(*[_inner(v) for v in obj])
    if isinstance(obj, list | tuple):
        return cls(_inner(v) for v in obj)
    if isinstance(obj, dict):
        return cls((_inner(k), _inner(v)) for k, v in obj.items())
    import copy  # noqa: PLC0415 - as in dataclasses.asdict, other values are deep-copied

    return copy.deepcopy(obj)
