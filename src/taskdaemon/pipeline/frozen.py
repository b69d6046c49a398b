"""``@frozen``: the project's frozen, slotted value records, built without ``dataclasses``.

A class decorated ``@frozen`` (or ``@frozen(kw_only=True)``) behaves as
``@dataclass(frozen=True, slots=True)`` (with ``kw_only`` when asked): an ``__init__`` taking
the annotated fields in order (defaults, ``field(default_factory=...)``, keyword-only fields,
then ``__post_init__`` if the class has one), ``__slots__``, ``__match_args__``, equality, hash
and repr of :class:`~taskdaemon.pipeline.value_methods.ValueMethods`, pickling and copying;
assigning or deleting an attribute raises :class:`FrozenRecordError`, an ``AttributeError``
like ``dataclasses.FrozenInstanceError``. ``ClassVar`` annotations are class attributes, as in
``dataclasses``; ``InitVar``, ``init=False`` fields and ``super()`` in a method are not
supported (no record uses them). Type checkers read it as a dataclass (PEP 681).

Why: Python 3.11's ``dataclasses`` compiles three generated methods per frozen class (its
``__init__`` and the two frozen guards, each with its own ``exec``) and imports ``inspect``;
the CLI's commands build some fifty of these classes at start-up. Here each class compiles one
short ``__init__``, and only when it is first looked up (an instantiation, ``inspect.signature``,
``help``): ``run`` instantiates 15 of the 45 records it imports before its first stage, so the
other 30 never compile there. The placeholder puts the compiled function in the class in its
own place, so every lookup after it sees a plain function with the right signature. Compiling a
module's classes together in one ``exec`` was tried and is not cheaper. The guards are
inherited from one base (figures in ``benchmarks/README.md``, "CLI start-up", fifth and
seventh passes).

Records are not dataclasses: ``dataclasses.fields``, ``replace`` and ``asdict`` reject them.
``taskdaemon.pipeline.record_fields`` has the same three for records and dataclasses alike, so
a command that reads the model needs no ``dataclasses`` (keeping the classes as dataclasses
would have kept that import and the compiling on every command). ``StageContext``, which
handlers copy with ``dataclasses.replace``, stays a dataclass.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar, cast, dataclass_transform, overload

from taskdaemon.pipeline.value_methods import ValueMethods

__all__ = [
    "MISSING",
    "Field",
    "FrozenRecordError",
    "Record",
    "field",
    "frozen",
    "lazy_maker",
    "maker",
]

_T = TypeVar("_T")
_P = ParamSpec("_P")


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()  # no default (``dataclasses.MISSING``'s role)


class FrozenRecordError(AttributeError):
    """An attribute of a frozen record was assigned or deleted."""


class Field:
    """One field of a record: ``name``, ``type`` (its annotation) and the ``field()`` options."""

    init = True  # every field is an ``__init__`` parameter

    def __init__(self, default: Any = MISSING, options: dict[str, Any] | None = None) -> None:
        options = options or {}
        self.name, self.type, self.default = "", "", default
        self.default_factory = options.get("default_factory", MISSING)
        self.repr, self.compare = options.get("repr", True), options.get("compare", True)
        self.hash, self.kw_only = options.get("hash"), options.get("kw_only", MISSING)


def field(
    *,
    default: Any = MISSING,
    default_factory: Callable[[], Any] | Any = MISSING,
    repr: bool = True,
    hash: bool | None = None,
    compare: bool = True,
    kw_only: bool | Any = MISSING,
) -> Any:
    """A field with options, as ``dataclasses.field`` (without ``init`` and ``metadata``)."""
    if default is not MISSING and default_factory is not MISSING:
        raise ValueError("cannot specify both default and default_factory")
    options = {"default_factory": default_factory, "repr": repr, "hash": hash}
    return Field(default, {**options, "compare": compare, "kw_only": kw_only})


class Record(ValueMethods):
    """Base every ``@frozen`` class gets: value methods, the frozen guards, pickling."""

    __slots__ = ()
    __record_fields__: tuple[Field, ...] = ()

    def __setattr__(self, name: str, value: Any) -> None:
        raise FrozenRecordError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        raise FrozenRecordError(f"cannot delete field {name!r}")

    def __getstate__(self) -> tuple[Any, ...]:
        return tuple(getattr(self, f.name) for f in self.__record_fields__)

    def __setstate__(self, state: tuple[Any, ...]) -> None:
        for f, value in zip(self.__record_fields__, state, strict=True):
            object.__setattr__(self, f.name, value)


class _Probe:
    __slots__ = ("slot",)


_MEMBER = type(_Probe.__dict__["slot"])  # ``types.MemberDescriptorType``, without ``types``


def _slot_setter(cls: type, name: str) -> Any:
    """The ``__set__`` of field ``name``'s slot, or None when the field is no slot (a record
    made with ``slots=False``): the generated ``__init__`` then calls ``object.__setattr__``.

    Why: the guard that makes records frozen is a ``__setattr__`` of their base, so the
    ``__init__`` cannot assign; ``object.__setattr__`` then looks the name up in the class's
    MRO again for every field of every record, while the slot's ``__set__``, found here once per
    class, stores the value at once. A record has up to seventeen fields and the engine builds
    several a stage, so this is a visible share of a stage's cost."""
    for klass in cls.__mro__:
        found = klass.__dict__.get(name)
        if found is not None:
            return found.__set__ if type(found) is _MEMBER else None
    return None


def _twin(cls: type) -> type | None:
    """A mutable twin of record class ``cls`` for :func:`maker`, or None when ``cls`` has none
    (a record with a ``__dict__``, or more than one base).

    The twin has ``cls``'s base and its own slots in the same order, so an instance of either
    has the same layout and may change its class to the other; its ``__setattr__`` and
    ``__delattr__`` are ``object``'s own, so the interpreter sees a plain slotted class and a
    store to a field is one specialised instruction, where a frozen record's store goes
    through its slot's ``__set__`` (a call that packs its arguments). A maker fills a twin,
    then gives it ``cls`` as its class: the caller only ever holds the finished record.
    Overriding both guards matters: a twin that kept its base's Python ``__setattr__`` would
    store through a slot wrapper again, slower than the setters (an earlier round's
    finding)."""
    own = cls.__dict__.get("__slots__")
    if own is None or "__dict__" in cls.__dict__ or len(cls.__bases__) != 1:
        return None
    namespace = {
        "__slots__": tuple(own),
        "__setattr__": object.__setattr__,
        "__delattr__": object.__delattr__,
        "__qualname__": f"{cls.__qualname__}.__twin__",
        "__module__": cls.__module__,
    }
    return type(cls)(f"{cls.__name__}Twin", cls.__bases__, namespace)


def _plain_instantiation(twin: type) -> bool:
    """Whether calling ``twin()`` only allocates (``object``'s own ``__new__`` and
    ``__init__``): not when a base record brings its generated ``__init__``."""
    return not any("__init__" in k.__dict__ or "__new__" in k.__dict__ for k in twin.__mro__[:-1])


def _compile_init(
    cls: type,
    record_fields: tuple[Field, ...],
    post_init: bool,
    maker: bool = False,
    leading: int = 0,
) -> Any:
    """The generated ``__init__`` of ``cls`` (checks done by ``_build``: only compiling is
    left); with ``maker``, the same body as a function that makes the record (:func:`maker`):
    through ``cls``'s twin (:func:`_twin`) when it has one."""
    scope: dict[str, Any] = {"_s": object.__setattr__, "_F": MISSING}
    twin = _twin(cls) if maker else None
    positional = [f for f in record_fields if not f.kw_only]
    params, body = [], []
    ordered = positional + [f for f in record_fields if f.kw_only]
    for number, f in enumerate(ordered):
        if number == leading and leading:
            params.append("/")
        if number >= leading and f.kw_only and "*" not in params:
            params.append("*")
        value = f.name
        if f.default_factory is not MISSING:
            scope[f"_f_{f.name}"] = f.default_factory
            params.append(f"{f.name}=_F")
            value = f"_f_{f.name}() if {f.name} is _F else {f.name}"
        elif f.default is not MISSING:
            scope[f"_d_{f.name}"] = f.default
            params.append(f"{f.name}=_d_{f.name}")
        else:
            params.append(f.name)
        if twin is not None:
            body.append(f" self.{f.name} = {value}\n")
        elif (setter := _slot_setter(cls, f.name)) is not None:
            scope[f"_m_{f.name}"] = setter
            body.append(f" _m_{f.name}(self, {value})\n")
        else:
            body.append(f" _s(self, {f.name!r}, {value})\n")
    if leading >= len(ordered) > 0:  # every field by position
        params.append("/")
    if twin is not None:
        body.append(" self.__class__ = _cls\n")
    if post_init:
        body.append(" self.__post_init__()\n")
    if maker:
        scope["_new"], scope["_cls"], scope["_twin"] = object.__new__, cls, twin
        made = "_new(_cls)" if twin is None else "_new(_twin)"
        if twin is not None and _plain_instantiation(twin):
            made = "_twin()"  # the class call is cheaper than ``object.__new__``'s wrapper
        name, head, tail = "make", f" self = {made}\n", " return self\n"
        source = f"def make({', '.join(params)}):\n{head}{''.join(body)}{tail}"
    else:
        name = "__init__"
        source = f"def __init__(self, {', '.join(params)}):\n{''.join(body) or ' pass'}\n"
    exec(source, scope)  # noqa: S102 - generated from field names only, as dataclasses does
    init = scope[name]
    init.__qualname__ = f"{cls.__qualname__}.{name}"
    init.__module__ = cls.__module__
    return init


@overload
def maker(cls: Callable[_P, _T]) -> Callable[_P, _T]: ...
@overload
def maker(cls: Callable[..., _T], positional: int) -> Callable[..., _T]: ...
def maker(cls: Callable[..., _T], positional: int = 0) -> Callable[..., _T]:
    """A function that makes ``cls`` records: ``maker(C)(**fields)`` is ``C(**fields)``, the
    same record, built the same way, with the same parameters (type checkers see the class's).
    With ``positional``, the record's first ``positional`` fields are positional-only
    parameters of the maker, every field when it is their number (and type checkers see no
    parameters: give the maker a protocol).

    Why: CPython 3.11 calls a class's ``__init__`` with its keyword arguments packed into a
    dict and unpacked again, which for a record of a dozen keyword-only fields costs more than
    storing them; a plain function takes them as they are passed. The engine builds several
    records a stage, each through a maker made once when its module is imported (compiled
    there: only for the records made on hot paths). ``positional`` is for the records of more
    than fifteen fields: CPython 3.11's compiler turns a call whose positional arguments plus
    twice its keyword arguments exceed thirty into a call through a dict, which costs as much
    as the record's stores; passing the first fields by position keeps the call direct. Every
    field by position spares more: the callee matches each keyword against its parameters'
    names one by one, a cost that grows with the number of fields."""
    record_fields: tuple[Field, ...] = cls.__record_fields__  # type: ignore[attr-defined]
    made: Callable[..., _T] = _compile_init(
        cast(type, cls), record_fields, hasattr(cls, "__post_init__"), True, positional
    )
    return made


def lazy_maker(cls: Callable[_P, _T]) -> Callable[[], Callable[_P, _T]]:
    """``maker(cls)``, compiled at the first call of the function returned and kept:
    ``lazy_maker(C)()(**fields)`` is ``C(**fields)``.

    Why: for a record built once per item of a definition (a stage read from a file, a
    trigger, an edge, a compiled stage), where a class call packs the keywords into a dict
    and stores each field through its slot's setter. Compiling a maker costs start-up, and
    only the commands that read or plan a definition build these, so a module makes its maker
    this way rather than at import. The function returned is a ``functools.cache`` of no
    arguments: after the first call it is a C call that returns the kept maker, no frame."""
    return functools.cache(lambda: maker(cls))


class _LazyInit:
    """A record class's ``__init__`` until it is first looked up: then compiled and put in the
    class in its place, so every later call and lookup (``inspect.signature``, ``help``) sees
    the real function. Both an instantiation and a lookup on the class go through
    ``__get__``; two threads racing here compile the same function twice, harmlessly."""

    __slots__ = ("fields", "owner", "post_init")

    def __init__(self, record_fields: list[Field], post_init: bool) -> None:
        self.fields, self.post_init = tuple(record_fields), post_init
        self.owner: type = object  # the built class, set by ``_build``

    def __get__(self, instance: object, owner: type | None = None) -> Any:
        init = _compile_init(self.owner, self.fields, self.post_init)
        type.__setattr__(self.owner, "__init__", init)
        return init if instance is None else init.__get__(instance, owner)


def _own_fields(cls: type, kw_only: bool) -> list[Field]:
    found: dict[str, Field] = {}
    for base in reversed(cls.__mro__[1:]):
        for f in getattr(base, "__record_fields__", ()):
            found[f.name] = f
    # The class's own annotations only (``inspect.get_annotations`` would import inspect).
    for name, annotation in cls.__dict__.get("__annotations__", {}).items():  # noqa: RUF063
        text = annotation if isinstance(annotation, str) else repr(annotation)
        if text.startswith(("ClassVar", "typing.ClassVar")):
            continue
        if text.startswith(("InitVar", "dataclasses.InitVar")):
            raise TypeError(f"{cls.__qualname__}.{name}: InitVar is not supported")
        value = cls.__dict__.get(name, MISSING)
        made = value if isinstance(value, Field) else Field(value)
        made.name, made.type = name, annotation
        if made.kw_only is MISSING:
            made.kw_only = kw_only
        found[name] = made
    return list(found.values())


def _build(cls: type, kw_only: bool, slots: bool) -> type:
    record_fields = _own_fields(cls, kw_only)
    namespace = {k: v for k, v in cls.__dict__.items() if k not in ("__dict__", "__weakref__")}
    own_names = [f.name for f in record_fields if f.name in namespace.get("__annotations__", {})]
    for f in record_fields:
        namespace.pop(f.name, None)
        if not slots and f.default is not MISSING:  # as dataclasses: the default stays visible
            namespace[f.name] = f.default
    if slots:
        inherited = {n for base in cls.__mro__[1:] for n in getattr(base, "__slots__", ())}
        namespace["__slots__"] = tuple(n for n in own_names if n not in inherited)
    namespace["__qualname__"] = cls.__qualname__
    namespace["__record_fields__"] = tuple(record_fields)
    positional = [f for f in record_fields if not f.kw_only]
    namespace.setdefault("__match_args__", tuple(f.name for f in positional))
    seen_default = False
    for f in positional:
        if f.default is not MISSING or f.default_factory is not MISSING:
            seen_default = True
        elif seen_default:
            raise TypeError(f"non-default argument {f.name!r} follows default argument")
    namespace["__init__"] = init = _LazyInit(record_fields, hasattr(cls, "__post_init__"))

    bases = cls.__bases__
    if not issubclass(cls, Record):
        bases = (*(b for b in bases if b not in (object, ValueMethods)), Record)
    built: type = type(cls)(cls.__name__, bases, namespace)
    init.owner = built
    return built


@overload
def frozen(cls: type[_T], /) -> type[_T]: ...
@overload
def frozen(*, kw_only: bool = False, slots: bool = True) -> Callable[[type[_T]], type[_T]]: ...
@dataclass_transform(frozen_default=True, field_specifiers=(field,))
def frozen(cls: type[Any] | None = None, /, *, kw_only: bool = False, slots: bool = True) -> Any:
    """Make ``cls`` a frozen value record (see the module docstring); ``slots=False`` keeps an
    instance ``__dict__`` (for ``functools.cached_property``) and weak references."""
    if cls is None:
        return lambda inner: _build(inner, kw_only, slots)
    return _build(cls, kw_only, slots)
