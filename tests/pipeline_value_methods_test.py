"""``ValueMethods`` compares, hashes and prints as the methods ``@dataclass(frozen=True)``
generates, for every class that uses it and for the field options they may use."""

from __future__ import annotations

import dataclasses
import inspect
import threading
from collections.abc import Iterator
from importlib import import_module
from typing import Any

import pytest

from taskdaemon.pipeline.frozen import MISSING, Record
from taskdaemon.pipeline.record_fields import fields
from taskdaemon.pipeline.value_methods import ValueMethods

#: The modules whose frozen dataclasses are built on ``ValueMethods``.
MODULES = (
    "model",
    "events",
    "cel_limits",
    "expressions",
    "errors",
    "state",
    "triggers",
    "settings",
    "payloads",
    "records",
    "visualization._snapshot",
    "visualization._cancel",
    "tracking.spans",
    "tracking.store",
    "engine._results",
)


def _or_missing(value: Any) -> Any:
    """``dataclasses.MISSING`` for a record's ``MISSING``, else ``value``."""
    return dataclasses.MISSING if value is MISSING else value


def stock_twin(cls: type) -> type:
    """The same fields (with their options) in a plain ``@dataclass(frozen=True)`` class of
    the same name, so ``dataclasses`` generates its methods (``cls`` a record or a dataclass)."""
    namespace: dict[str, Any] = {
        "__annotations__": {f.name: f.type for f in fields(cls)},
        "__qualname__": cls.__qualname__,
        "__module__": __name__,
    }
    for f in fields(cls):
        namespace[f.name] = dataclasses.field(
            default=_or_missing(f.default),
            default_factory=_or_missing(f.default_factory),
            repr=f.repr,
            hash=f.hash,
            compare=f.compare,
            kw_only=f.kw_only,
        )
    twin: type = dataclasses.dataclass(frozen=True)(type(cls.__name__, (), namespace))
    return twin


def hashed(obj: object) -> int | str:
    """``hash(obj)``, or the error's type name when it cannot be hashed (a dict field)."""
    try:
        return hash(obj)
    except TypeError as error:
        return type(error).__name__


def value_classes() -> Iterator[type]:
    """Every class of ``MODULES`` built on ``ValueMethods``."""
    for name in MODULES:
        module = import_module(f"taskdaemon.pipeline.{name}")
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, ValueMethods) and cls.__module__ == module.__name__:
                yield cls


def sample(cls: type, salt: int) -> dict[str, Any]:
    """Constructor arguments for ``cls``: each required field gets a value built from ``salt``."""
    values: dict[str, Any] = {}
    for f in fields(cls):
        if not f.init:
            continue
        if _or_missing(f.default) is _or_missing(f.default_factory) is dataclasses.MISSING:
            values[f.name] = f"{f.name}-{salt}"
    return values


def test_the_classes_use_the_shared_methods() -> None:
    """The classes this module compares are ``@frozen`` records, whose value methods are the
    shared ones (so the check below covers what they really run)."""
    classes = list(value_classes())
    assert len(classes) >= 55
    for cls in classes:
        assert issubclass(cls, Record), cls
        assert not hasattr(cls, "__dataclass_fields__"), cls
        assert "__eq__" not in vars(cls), cls
        assert "__repr__" not in vars(cls), cls


@pytest.mark.parametrize("cls", list(value_classes()), ids=lambda cls: cls.__name__)
def test_each_class_matches_its_stock_dataclass(cls: type) -> None:
    """Equality, hash and repr of two instances (equal and different) match the stock twin's."""
    twin = stock_twin(cls)
    a, b, c = (sample(cls, salt) for salt in (1, 1, 2))
    ours = (cls(**a), cls(**b), cls(**c))
    theirs = (twin(**a), twin(**b), twin(**c))
    assert repr(ours[0]) == repr(theirs[0])
    assert repr(ours[2]) == repr(theirs[2])
    assert (ours[0] == ours[1]) is (theirs[0] == theirs[1])
    assert (ours[0] == ours[2]) is (theirs[0] == theirs[2])
    assert [hashed(x) for x in ours] == [hashed(x) for x in theirs]
    assert ours[0].__eq__(theirs[0]) is NotImplemented  # another class: not equal, like theirs


def test_field_options_behave_as_in_dataclasses() -> None:
    """``compare=False``, ``hash=False``, ``hash=True`` and ``repr=False`` fields, and a
    recursive repr, give what ``dataclasses`` gives."""

    @dataclasses.dataclass(frozen=True, eq=False, repr=False)
    class Ours(ValueMethods):
        a: int
        b: int = dataclasses.field(default=0, compare=False)
        c: int = dataclasses.field(default=0, hash=False)
        d: int = dataclasses.field(default=0, repr=False)
        e: int = dataclasses.field(default=0, compare=False, hash=True)
        box: list[Any] = dataclasses.field(default_factory=list)

    stock = stock_twin(Ours)
    for args in ({"a": 1}, {"a": 1, "b": 2}, {"a": 1, "c": 3}, {"a": 1, "d": 4}, {"a": 1, "e": 5}):
        for other in ({"a": 1}, {"a": 2, "b": 2}, {"a": 1, "c": 3, "e": 5}):
            assert (Ours(**args) == Ours(**other)) is (stock(**args) == stock(**other))
        assert repr(Ours(**args)) == repr(stock(**args))
        assert hashed(Ours(**args, box=())) == hashed(stock(**args, box=()))
    ours, theirs = Ours(1), stock(1)
    ours.box.append(ours)
    theirs.box.append(theirs)
    assert repr(ours) == repr(theirs)
    assert repr(ours).endswith(".Ours(a=1, b=0, c=0, e=0, box=[...])")


def test_repr_of_the_same_object_in_two_threads_is_not_cut() -> None:
    """The recursion guard is per thread: while one thread is showing an object, another
    showing it too sees its fields, not ``...``."""

    @dataclasses.dataclass(frozen=True, eq=False, repr=False)
    class Shown(ValueMethods):
        box: list[Any]

    inside, release = threading.Event(), threading.Event()
    calls: list[int] = []

    class Blocker:
        def __repr__(self) -> str:
            calls.append(1)
            if len(calls) == 1:  # the first thread to get here waits inside the repr
                inside.set()
                release.wait(10)
            return "blocker"

    shared = Shown([Blocker()])
    seen: list[str] = []
    thread = threading.Thread(target=lambda: seen.append(repr(shared)))
    thread.start()
    try:
        assert inside.wait(10)
        assert repr(shared).endswith(".Shown(box=[blocker])")
    finally:
        release.set()
        thread.join(10)
    assert [repr(shared)] == seen
