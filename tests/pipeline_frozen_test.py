"""``@frozen`` records behave as ``@dataclass(frozen=True, slots=True)`` classes: construction,
defaults, frozen errors, slots, pickling and copying, and the ``fields``/``replace``/``as_dict``
helpers, each against a stock dataclass built from the same annotations."""

from __future__ import annotations

import copy
import dataclasses
import inspect
import pickle
import weakref
from functools import cached_property
from typing import Any, ClassVar

import pytest

from taskdaemon.pipeline import frozen as frozen_module
from taskdaemon.pipeline.events import StageFinished, TaskRunRef
from taskdaemon.pipeline.frozen import FrozenRecordError, Record, field, frozen, lazy_maker, maker
from taskdaemon.pipeline.model import Pipeline, Stage
from taskdaemon.pipeline.payloads import PayloadCapture
from taskdaemon.pipeline.record_fields import as_dict, fields, is_record, replace
from taskdaemon.pipeline.state import StageStatus


@frozen
class Point:
    """A positional record with a default, a factory and a class variable."""

    x: int
    y: int = 0
    tags: list[str] = field(default_factory=list, compare=False)
    kind: ClassVar[str] = "point"


@dataclasses.dataclass(frozen=True, slots=True)
class StockPoint:
    """``Point`` as ``dataclasses`` makes it."""

    x: int
    y: int = 0
    tags: list[str] = dataclasses.field(default_factory=list, compare=False)
    kind: ClassVar[str] = "point"


@frozen(kw_only=True)
class Named:
    """A keyword-only record holding another record, with a ``__post_init__`` check."""

    name: str
    at: Point
    size: int = 1

    def __post_init__(self) -> None:
        if self.size < 0:
            raise ValueError("size must be >= 0")


# Module level, so pickle finds it.
@frozen(slots=False)
class Cached:
    """A record with an instance ``__dict__``, for ``cached_property``."""

    n: int

    @cached_property
    def square(self) -> int:
        """``n`` squared, computed once."""
        return self.n * self.n


def test_construction_defaults_and_factories_match_dataclasses() -> None:
    """Positional and keyword calls, defaults, a fresh factory value per instance and the
    class variable match the stock dataclass; the errors for bad calls are TypeErrors too."""
    for args, kwargs in (((1,), {}), ((1, 2), {}), ((), {"x": 1, "y": 3}), ((1,), {"tags": ["a"]})):
        ours, stock = Point(*args, **kwargs), StockPoint(*args, **kwargs)
        assert (ours.x, ours.y, ours.tags) == (stock.x, stock.y, stock.tags)
        assert repr(ours).replace("Point", "StockPoint") == repr(stock)
    assert Point(1).tags is not Point(1).tags
    assert Point.kind == "point"
    assert "kind" not in Point.__match_args__
    assert Point.__match_args__ == StockPoint.__match_args__
    assert [f.name for f in fields(Point)] == [f.name for f in dataclasses.fields(StockPoint)]
    for bad in ((), (1, 2, [], 4)):
        with pytest.raises(TypeError):
            Point(*bad)
        with pytest.raises(TypeError):
            StockPoint(*bad)
    with pytest.raises(TypeError):
        Named("n", Point(1))  # type: ignore[misc]
    with pytest.raises(ValueError, match="size must be >= 0"):
        Named(name="n", at=Point(1), size=-1)


def test_a_required_field_after_a_default_is_refused() -> None:
    """As ``dataclasses``: a positional field without a default after one with a default is a
    TypeError when the class is built (keyword-only fields may follow in any order)."""
    with pytest.raises(TypeError, match="non-default argument 'b' follows default argument"):

        @frozen
        class Bad:
            a: int = 0
            b: int

    @frozen(kw_only=True)
    class Fine:
        a: int = 0
        b: int

    assert Fine(b=2).a == 0


def test_assignment_and_deletion_raise_an_attribute_error() -> None:
    """Setting or deleting a field, or any other attribute, raises ``FrozenRecordError``, an
    ``AttributeError`` as ``dataclasses.FrozenInstanceError`` is; the value is unchanged."""
    point = Point(1)
    assert issubclass(FrozenRecordError, AttributeError)
    with pytest.raises(FrozenRecordError, match="cannot assign to field 'x'"):
        point.x = 2  # type: ignore[misc]
    with pytest.raises(FrozenRecordError, match="cannot delete field 'x'"):
        del point.x  # type: ignore[misc]
    with pytest.raises(AttributeError):
        point.other = 1  # type: ignore[attr-defined]
    with pytest.raises(AttributeError):
        TaskRunRef("a", 0, 1).stage = "b"  # type: ignore[misc]
    assert point.x == 1


def test_slots_weakrefs_and_cached_properties() -> None:
    """A record has slots and no ``__dict__``; ``slots=False`` keeps one, so
    ``cached_property`` and weak references work (``Pipeline`` relies on both)."""
    assert not hasattr(Point(1), "__dict__")
    assert Point.__slots__ == ("x", "y", "tags")
    cached = Cached(3)
    assert cached.square == 9
    assert cached.__dict__["square"] == 9
    assert weakref.ref(cached)() is cached
    pipeline = Pipeline(name="p", stages=(Stage(name="a", loop="noop", triggers=()),))
    assert weakref.ref(pipeline)() is pipeline
    assert list(pipeline.stage_map) == ["a"]


def test_pickling_and_copying_keep_the_values() -> None:
    """Records (slotted or not, nested, keyword-only) survive pickle, copy and deepcopy."""
    value = Named(name="n", at=Point(1, 2, ["t"]), size=3)
    for clone in (pickle.loads(pickle.dumps(value)), copy.copy(value), copy.deepcopy(value)):
        assert clone == value
        assert clone.at.tags == ["t"]
    assert pickle.loads(pickle.dumps(Cached(4))).n == 4
    status = TaskRunRef("a", 0, 1)
    assert pickle.loads(pickle.dumps(status)) == status


def test_helpers_match_dataclasses_on_records_and_take_dataclasses_too() -> None:
    """``replace`` and ``as_dict`` give what ``dataclasses`` gives for the twin, reject an
    unknown field, and accept a real dataclass as well."""
    ours, stock = Point(1, 2, ["t"]), StockPoint(1, 2, ["t"])
    assert as_dict(ours) == dataclasses.asdict(stock)
    assert as_dict(ours)["tags"] is not ours.tags  # copied, as asdict copies
    moved = replace(ours, y=5)
    assert (moved.x, moved.y, moved.tags) == (1, 5, ["t"])
    assert ours.y == 2
    with pytest.raises(TypeError):
        replace(ours, z=1)
    assert replace(stock, y=5) == dataclasses.replace(stock, y=5)
    assert as_dict(stock) == dataclasses.asdict(stock)
    assert [f.name for f in fields(stock)] == ["x", "y", "tags"]
    nested: dict[str, Any] = as_dict(Named(name="n", at=ours))
    assert nested == {"name": "n", "at": {"x": 1, "y": 2, "tags": ["t"]}, "size": 1}
    with pytest.raises(TypeError):
        as_dict({"not": "a record"})
    assert is_record(Point)
    assert is_record(ours)
    assert not is_record(stock)


def test_records_of_the_cli_paths_are_records() -> None:
    """The model, events and payload capture are records (their base and their helpers), and
    an event's frozen error and ``replace`` behave as documented."""
    finished = StageFinished(
        run_id="r",
        pipeline="p",
        stage="a",
        instance=0,
        attempt=1,
        task_run_id="a.0.1",
        status=StageStatus.SUCCESS,
        at=1.0,
    )
    for value in (finished, PayloadCapture(), Pipeline(name="p", stages=())):
        assert isinstance(value, Record)
    assert replace(finished, at=2.0).at == 2.0
    with pytest.raises(FrozenRecordError):
        finished.at = 3.0  # type: ignore[misc]
    with pytest.raises(ValueError, match="max_bytes must be >= 0"):
        PayloadCapture(max_bytes=-1)


def test_init_is_compiled_at_first_use_with_the_dataclass_signature(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Building a record compiles nothing; its ``__init__`` is compiled once, at the first
    instantiation or lookup, and ``inspect.signature`` (a lookup) sees the same parameters as
    for the stock dataclass, before and after an instantiation, for a subclass as well."""
    compiled: list[str] = []

    def counting_exec(source: str, scope: dict[str, Any]) -> None:
        compiled.append(source)
        exec(source, scope)

    monkeypatch.setattr(frozen_module, "exec", counting_exec, raising=False)

    @frozen
    class Late:
        x: int
        y: int = 0
        tags: list[str] = field(default_factory=list)

    @dataclasses.dataclass(frozen=True, slots=True)
    class StockLate:
        x: int
        y: int = 0
        tags: list[str] = dataclasses.field(default_factory=list)

    class Child(Late):
        __slots__ = ()

    assert compiled == []
    assert Child(1, 2).y == 2
    assert len(compiled) == 1
    assert Late(3).x == 3
    assert Late.__init__.__qualname__.endswith("<locals>.Late.__init__")
    assert len(compiled) == 1
    ours, stock = inspect.signature(Late), inspect.signature(StockLate)
    assert list(ours.parameters) == list(stock.parameters) == ["x", "y", "tags"]
    assert [p.kind for p in ours.parameters.values()] == [p.kind for p in stock.parameters.values()]
    assert ours.parameters["y"].default == 0

    @frozen(kw_only=True)
    class Looked:
        a: int
        b: str = "b"

    assert [(p.name, p.kind) for p in inspect.signature(Looked).parameters.values()] == [
        ("a", inspect.Parameter.KEYWORD_ONLY),
        ("b", inspect.Parameter.KEYWORD_ONLY),
    ]
    assert Looked(a=1).b == "b"
    assert len(compiled) == 2


def test_a_maker_builds_the_record_its_class_builds() -> None:
    make = maker(Point)
    assert make(1) == Point(1)
    assert make(1, 2, ["a"]).tags == ["a"]
    assert make(1).tags is not make(1).tags  # the default factory runs for each record
    assert type(make(3, y=4)) is Point
    with pytest.raises(FrozenRecordError):
        make(1).x = 2  # type: ignore[misc]
    with pytest.raises(TypeError):
        make()  # type: ignore[call-arg]
    finished = maker(StageFinished)(
        run_id="r", pipeline="p", stage="s", instance=0, attempt=1, task_run_id="s.0.1",
        status=StageStatus.SUCCESS, at=1.0,
    )  # fmt: skip
    assert finished == StageFinished(
        run_id="r", pipeline="p", stage="s", instance=0, attempt=1, task_run_id="s.0.1",
        status=StageStatus.SUCCESS, at=1.0,
    )  # fmt: skip
    assert pickle.loads(pickle.dumps(finished)) == finished
    assert maker(Cached)(3).square == 9  # a record with a ``__dict__`` (no slot setters)


def test_a_lazy_maker_compiles_its_maker_once_at_the_first_call() -> None:
    """``lazy_maker(C)`` compiles nothing until called, then keeps one maker, which builds the
    record the class builds."""
    compiled: list[type] = []
    real = frozen_module._compile_init

    def counting(cls: type, *args: Any) -> Any:
        compiled.append(cls)
        return real(cls, *args)

    frozen_module._compile_init = counting  # type: ignore[assignment]
    try:
        make = lazy_maker(Point)
        before = list(compiled)
        first, second = make(), make()
    finally:
        frozen_module._compile_init = real
    assert ([], [Point], True) == (before, compiled, first is second)
    assert (Point(1, 2), Point) == (first(1, 2), type(first(1)))


def test_a_maker_fills_a_twin_that_becomes_the_frozen_record() -> None:
    @frozen
    class Base:
        a: int

    @frozen(kw_only=True)
    class Child(Base):
        b: str
        c: tuple[int, ...] = ()

    made = maker(Child)(1, b="x", c=(2,))
    assert type(made) is Child
    assert made == Child(1, b="x", c=(2,))
    assert (made.a, made.b, made.c) == (1, "x", (2,))
    with pytest.raises(FrozenRecordError):
        made.b = "y"  # type: ignore[misc]
    with pytest.raises(FrozenRecordError):
        del made.a  # type: ignore[misc]
    assert hash(made) == hash(Child(1, b="x", c=(2,)))


def test_a_maker_runs_post_init() -> None:
    @frozen
    class Checked:
        n: int

        def __post_init__(self) -> None:
            if self.n < 0:
                raise ValueError("negative")

    assert maker(Checked)(1) == Checked(1)
    with pytest.raises(ValueError, match="negative"):
        maker(Checked)(-1)
