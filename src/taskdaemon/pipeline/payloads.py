"""Payload capture: stage inputs, outputs, requests and published events as span-event JSON.

``PayloadCapture`` turns a mapping into a ``CapturedPayload``:

1. secrets are redacted (``redaction.redact``): values under secret keys (words such as
   ``password``, ``token``, ``session``; see ``docs/redaction.md``) at any depth, and strings
   holding a secret of a known shape (tokens, private keys, URL passwords), by
   ``"[REDACTED]"``;
2. the redacted payload is serialised as canonical JSON (sorted keys, compact separators,
   non-JSON values through ``str``), so equal payloads give equal text and equal hashes;
3. ``size`` is the UTF-8 byte length of that full JSON and ``sha256`` its hex digest;
4. the text kept on the span is cut to ``max_bytes`` UTF-8 bytes (never inside a character)
   and ``truncated`` says whether anything was cut.

Decision: the hash is taken over the *redacted* JSON. Hashing the raw payload would let
anyone with the span brute-force a low-entropy secret from its digest; the redacted digest
still answers "did two attempts get the same input?", which is what it is for.

Capture never raises: a payload that cannot be serialised is captured as its ``repr``, and a
value whose ``__str__`` or ``__repr__`` raises (a handler's object is anyone's code) is written
``<Type: str() failed>``, as ``errors.exception_text`` writes such an exception: the stage's
span, and with it the stored stage, must not be lost to its outputs' text.

Decision: capture never calls a handler's own ``__str__`` or ``__repr__`` (:func:`value_text`).
A value of a type whose text comes from Python itself or a few standard modules (dates,
decimals, fractions, UUIDs, paths, IP addresses, enums) is written as ``str(value)``; any other,
as ``<module.Type object>``. Capture runs on the monitor's thread after the handler returned: a
``__repr__`` that never returns hung the run's end there (deaf to SIGTERM), and one that is slow
delayed every later span. A thread with a deadline could still run such code, but could never
stop it (a ``while True`` would spin to the process's end) and would cost a thread per value; a
value meant to be read belongs in the JSON types, which are written as they are.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Mapping
from types import MappingProxyType, MemberDescriptorType, ModuleType
from typing import Any

from taskdaemon.pipeline import telemetry
from taskdaemon.pipeline.errors import exception_text
from taskdaemon.pipeline.foreign_text import PLAIN_ARGS, defining_class
from taskdaemon.pipeline.frozen import frozen
from taskdaemon.pipeline.redaction import DEFAULT_REDACT_PATTERNS, REDACTED, redact, redact_text
from taskdaemon.pipeline.value_methods import ValueMethods

__all__ = [
    "DEFAULT_REDACT_PATTERNS",
    "REDACTED",
    "CapturedPayload",
    "PayloadCapture",
    "shown_repr",
    "value_text",
]


@frozen
class CapturedPayload(ValueMethods):
    """A payload as recorded on a span: capped JSON text plus the size and hash of the full JSON."""

    json: str
    size: int
    sha256: str
    truncated: bool

    def attributes(self) -> dict[str, Any]:
        """The span-event attributes (``taskdaemon.payload.*``) for this payload."""
        return {
            telemetry.PAYLOAD_JSON: self.json,
            telemetry.PAYLOAD_SIZE: self.size,
            telemetry.PAYLOAD_SHA256: self.sha256,
            telemetry.PAYLOAD_TRUNCATED: self.truncated,
        }


@frozen(slots=False)
class PayloadCapture(ValueMethods):
    """How payloads are captured. ``enabled=False`` records no payload events at all.

    ``max_bytes`` caps the JSON kept on the span (the size and hash always describe the full
    JSON); ``redact_patterns`` are regular expressions matched in full against the words of
    mapping keys (``redaction.DEFAULT_REDACT_PATTERNS`` by default, the one list the CLI's
    ``TASKDAEMON_REDACT_PATTERNS`` also defaults to).
    """

    enabled: bool = True
    max_bytes: int = 4096
    redact_patterns: tuple[str, ...] = DEFAULT_REDACT_PATTERNS
    replacement: str = REDACTED

    def __post_init__(self) -> None:
        if self.max_bytes < 0:
            raise ValueError(f"max_bytes must be >= 0, got {self.max_bytes}")

    def redact(self, value: Any) -> Any:
        """``value`` with its secrets redacted (``value`` itself, uncopied, when it has none)."""
        return redact(value, self.redact_patterns, replacement=self.replacement)

    def capture(self, payload: Any) -> CapturedPayload:
        """Redact, serialise (compact JSON, keys sorted), measure, hash and cap ``payload``.

        orjson does the serialising: a stage's inputs and outputs are captured twice per stage
        on the monitor's hot path, where it is much faster than ``json``
        (``benchmarks/json_encoding.py``). Values
        JSON has no form for are written as ``str(value)``, other mappings as objects; what
        cannot be written at all (cycles, lone surrogates, huge ints) is captured as its repr.
        """
        return self.capture_flagged(payload)[0]

    def capture_flagged(self, payload: Any) -> tuple[CapturedPayload, bool]:
        """:meth:`capture`, and whether redaction changed anything (``redact(payload) is not
        payload``), from one redaction walk instead of two."""
        orjson = _orjson or _import_orjson()
        changed = False
        try:
            redacted = self.redact(payload)
            changed = redacted is not payload
            if type(redacted) is MappingProxyType:
                # A stage's inputs come frozen: orjson would hand the proxy to _json_default,
                # whose ABC check and copy cost more than the whole capture of ``{}``. The copy
                # made here is the one _json_default makes, so the JSON is the same.
                redacted = dict(redacted)
            options = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS
            data = orjson.dumps(redacted, default=_json_default, option=options)
        except (TypeError, ValueError, RecursionError):  # JSONEncodeError is a TypeError
            data = orjson.dumps(_fallback_text(self, payload).encode("utf-8", "replace").decode())
        return self._capped(data), changed

    def _capped(self, data: bytes) -> CapturedPayload:
        size = len(data)
        if size <= _SMALL_MAX_BYTES and size <= self.max_bytes:
            # A whole short JSON text's capture depends on the text alone (see _small).
            captured = _small.get(data)
            if captured is None:
                captured = CapturedPayload(data.decode(), size, _sha256(data), truncated=False)
                if len(_small) >= _SMALL_MAX_ENTRIES:
                    _small.clear()
                _small[data] = captured
            return captured
        digest = _sha256(data)
        if size <= self.max_bytes:
            return CapturedPayload(data.decode(), size, digest, truncated=False)
        kept = data[: self.max_bytes].decode("utf-8", "ignore")
        return CapturedPayload(kept, len(data), digest, truncated=True)


#: Captures of short whole JSON texts, by text: most payloads a run records are a few
#: repeated ones (``{}``, ``null``, the same small inputs stage after stage), and each capture
#: would hash and decode them again. A capture is frozen and depends on the text alone when
#: nothing is cut, so one may be shared; the dict is emptied when full, so it stays bounded
#: (at most ``_SMALL_MAX_ENTRIES`` texts of at most ``_SMALL_MAX_BYTES`` bytes).
_small: dict[bytes, CapturedPayload] = {}
_SMALL_MAX_BYTES = 256
_SMALL_MAX_ENTRIES = 1024


#: orjson, once the first capture has imported it. orjson (which loads uuid and platform) and
#: hashlib (OpenSSL) are imported at the first capture, not with this module: ``run`` makes its
#: capture before the first stage starts, and monitoring begins after it (cli/deferred.py). The
#: module is kept here rather than imported in ``capture_flagged``: an ``import`` statement of
#: a loaded module still looks it up in ``sys.modules`` through the import machinery, twice a
#: stage.
_orjson: Any = None


def _import_orjson() -> Any:
    global _orjson  # noqa: PLW0603 - the lazily imported module, set once
    import orjson  # noqa: PLC0415 - see _orjson

    _orjson = orjson
    return orjson


def _sha256(data: bytes) -> str:
    import hashlib  # noqa: PLC0415 - see _orjson; only for a text not captured before

    return hashlib.sha256(data).hexdigest()


def _json_default(value: Any) -> Any:
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, list | tuple | set | frozenset | deque):
        return list(value)
    return redact_text(value_text(value))  # after redact(): its text was never looked at


#: Standard modules whose classes' text is their own, calling no other object's: a class whose
#: ``__str__`` (or, when that is ``object``'s, ``__repr__``) one of them defines is safe to write.
_PLAIN_TEXT_MODULES = frozenset(
    {
        "datetime",
        "decimal",
        "_decimal",
        "_pydecimal",
        "fractions",
        "uuid",
        "pathlib",
        "ipaddress",
        "enum",
    }
)
#: Built-in classes whose text calls no other object's (a container's, an exception's or a
#: bound method's does).
_PLAIN_TEXT_BUILTINS = frozenset(
    {
        object,
        int,
        float,
        complex,
        str,
        bytes,
        bytearray,
        bool,
        type,
        range,
        type(None),
        type(len),
        type(_import_orjson),
        ModuleType,
    }
)


def value_text(value: object) -> str:
    """``str(value)`` when Python itself or a standard module writes it, else
    ``<module.Type object>``: a handler's own ``__str__``/``__repr__`` is never called (see the
    module docstring). An exception is written by ``str`` when its arguments are plain text
    and numbers, as ``BaseException.__str__`` writes nothing else then."""
    cls = type(value)
    if _generated_repr(cls):
        return shown_repr(value)
    owner = defining_class(cls, "__str__")
    if _plain_text(owner) and (
        all(type(arg) in PLAIN_ARGS for arg in value.args)
        if isinstance(value, BaseException)
        else owner is not object or _plain_text(defining_class(cls, "__repr__"))
    ):
        return exception_text(value)
    return f"<{cls.__module__}.{cls.__qualname__} object>"


def _generated_repr(cls: type) -> bool:
    """Whether ``cls`` is a dataclass written by the ``__repr__`` ``dataclasses`` made for it
    (``Point(x=1, y=2)``), with ``object``'s ``__str__`` and attribute lookup: such a value is
    written field by field (:func:`_fields_text`), its values as any other, without calling
    the handler's code. A class body's own ``__repr__`` is the handler's, and kept out."""
    if any(defining_class(cls, name) is not object for name in ("__str__", "__getattribute__")):
        return False
    owner = defining_class(cls, "__repr__")
    if "__dataclass_fields__" not in vars(owner):
        return False
    made = vars(owner)["__repr__"]
    code = getattr(getattr(made, "__wrapped__", made), "__code__", None)
    return code is not None and code.co_filename == "<string>"  # made by exec, not written


def _fields_text(value: Any, holding: set[int], depth: int) -> str:
    """A dataclass as its generated ``__repr__`` writes it, each field by :func:`_shown`; one
    that holds itself is ``...`` there, as that ``__repr__`` writes it."""
    if id(value) in holding:
        return "..."
    holding.add(id(value))
    try:
        shown = []
        for field in dataclasses.fields(value):
            if field.repr:
                held = _field_value(value, field.name)
                text = "?" if held is _UNSET else repr(_shown(held, holding, depth + 1))
                shown.append(f"{field.name}={text}")
        return f"{type(value).__qualname__}({', '.join(shown)})"
    finally:
        holding.discard(id(value))


_UNSET = object()


def _field_value(value: Any, name: str) -> Any:
    """The field ``name`` of ``value`` from its ``__dict__`` or its slot, else ``_UNSET``
    (a field behind a descriptor of the handler's, or not set)."""
    held = getattr(value, "__dict__", {})
    if name in held:
        return held[name]
    slot = next((vars(klass)[name] for klass in type(value).__mro__ if name in vars(klass)), None)
    if isinstance(slot, MemberDescriptorType):
        try:
            return slot.__get__(value)
        except AttributeError:
            return _UNSET
    return _UNSET


def _plain_text(owner: type) -> bool:
    return (
        owner in _PLAIN_TEXT_BUILTINS
        or owner is BaseException
        or (owner.__module__ in _PLAIN_TEXT_MODULES)
    )


class _Shown(str):
    """Text whose repr is itself: a value :func:`value_text` wrote, inside a fallback repr."""

    __slots__ = ()

    def __repr__(self) -> str:
        return str.__str__(self)


def _shown(value: Any, holding: set[int], depth: int = 0) -> Any:
    """``value`` with every value other than text, numbers and containers as
    :func:`value_text` writes it, for a repr that calls no handler's code: a container that
    holds itself is written ``{...}`` or ``[...]`` there, as ``repr`` writes it, and one nested
    deeper than 100 levels is a ``RecursionError``."""
    if type(value) in PLAIN_ARGS:
        return value
    if not isinstance(value, Mapping | list | tuple | set | frozenset | deque):
        if _generated_repr(type(value)):
            if depth > 100:
                raise RecursionError
            return _Shown(_fields_text(value, holding, depth))
        return _Shown(value_text(value))
    if id(value) in holding:
        return _Shown("{...}" if isinstance(value, Mapping) else "[...]")
    if depth > 100:
        raise RecursionError
    holding.add(id(value))
    try:
        if isinstance(value, Mapping):
            return {
                _shown(key, holding, depth + 1): _shown(item, holding, depth + 1)
                for key, item in value.items()
            }
        items = [_shown(item, holding, depth + 1) for item in value]
        for kind in (tuple, frozenset, set):  # the built-in kind: a subclass's own is user code
            if isinstance(value, kind):
                return kind(items)
        return items
    finally:
        holding.discard(id(value))


def shown_repr(value: Any) -> str:
    """``repr(value)``, its values other than text, numbers and containers written by
    :func:`value_text`; a ``RecursionError`` for a value nested deeper than 100 levels."""
    return repr(_shown(value, set()))


def _fallback_text(capture: PayloadCapture, payload: Any) -> str:
    """The repr of a payload JSON cannot hold, redacted (:func:`shown_repr`); a cyclic one
    (which redaction cannot walk) only by its type, since its repr would show what its keys
    hold."""
    try:
        return redact_text(shown_repr(capture.redact(payload)))
    except RecursionError:
        return f"<{type(payload).__name__} that cannot be serialised>"
    except Exception:
        return f"<{type(payload).__qualname__}: repr() failed>"
