"""Payload capture: stage inputs, outputs, requests and published events as span-event JSON.

``PayloadCapture`` turns a mapping into a ``CapturedPayload``:

1. values under keys that match a redaction pattern (case-insensitive regular-expression
   *search*, at any depth, in mappings) are replaced by ``"[REDACTED]"``;
2. the redacted payload is serialised as canonical JSON (sorted keys, compact separators,
   non-JSON values through ``str``), so equal payloads give equal text and equal hashes;
3. ``size`` is the UTF-8 byte length of that full JSON and ``sha256`` its hex digest;
4. the text kept on the span is cut to ``max_bytes`` UTF-8 bytes (never inside a character)
   and ``truncated`` says whether anything was cut.

Decision: the hash is taken over the *redacted* JSON. Hashing the raw payload would let
anyone with the span brute-force a low-entropy secret from its digest; the redacted digest
still answers "did two attempts get the same input?", which is what it is for.

Capture never raises: a payload that cannot be serialised is captured as its ``repr``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import orjson

from taskdaemon.pipeline import telemetry

__all__ = ["DEFAULT_REDACT_PATTERNS", "REDACTED", "CapturedPayload", "PayloadCapture"]

REDACTED = "[REDACTED]"

DEFAULT_REDACT_PATTERNS: tuple[str, ...] = (
    "passw(or)?d",
    "secret",
    "token",
    "api[-_]?key",
    "authorization",
    "credential",
    "private[-_]?key",
    "cookie",
    "session",
)


@dataclass(frozen=True, slots=True)
class CapturedPayload:
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


@dataclass(frozen=True)
class PayloadCapture:
    """How payloads are captured. ``enabled=False`` records no payload events at all.

    ``max_bytes`` caps the JSON kept on the span (the size and hash always describe the full
    JSON); ``redact_patterns`` are regular expressions matched against mapping keys.
    """

    enabled: bool = True
    max_bytes: int = 4096
    redact_patterns: tuple[str, ...] = DEFAULT_REDACT_PATTERNS
    replacement: str = REDACTED

    def __post_init__(self) -> None:
        if self.max_bytes < 0:
            raise ValueError(f"max_bytes must be >= 0, got {self.max_bytes}")

    @cached_property
    def _pattern(self) -> re.Pattern[str] | None:
        if not self.redact_patterns:
            return None
        return re.compile("|".join(f"(?:{p})" for p in self.redact_patterns), re.IGNORECASE)

    @cached_property
    def _decisions(self) -> dict[str, bool]:
        return {}

    def _matches(self, key: str) -> bool:
        # Keys repeat across payloads: remember each key's verdict (bounded, keys are few).
        decided = self._decisions.get(key)
        if decided is None:
            assert self._pattern is not None
            decided = self._pattern.search(key) is not None
            if len(self._decisions) < 10_000:
                self._decisions[key] = decided
        return decided

    def _needs_redaction(self, value: Any) -> bool:
        # Plain loops, not any(<genexpr>): this walks every captured payload on the hot path.
        if isinstance(value, Mapping):
            for key, item in value.items():
                if isinstance(key, str) and self._matches(key):
                    return True
                if isinstance(item, Mapping | list | tuple) and self._needs_redaction(item):
                    return True
            return False
        if isinstance(value, list | tuple):
            for item in value:
                if isinstance(item, Mapping | list | tuple) and self._needs_redaction(item):
                    return True
        return False

    def redact(self, value: Any) -> Any:
        """``value`` with every mapping entry whose key matches a pattern replaced (``value``
        itself, uncopied, when nothing matches)."""
        pattern = self._pattern
        if pattern is None or not self._needs_redaction(value):
            return value
        return _redact(value, pattern, self.replacement)

    def capture(self, payload: Any) -> CapturedPayload:
        """Redact, serialise (compact JSON, keys sorted), measure, hash and cap ``payload``.

        orjson does the serialising: a stage's inputs and outputs are captured twice per stage
        on the monitor's hot path, and it is several times faster than ``json`` there. Values
        JSON has no form for are written as ``str(value)``, other mappings as objects; what
        cannot be written at all (cycles, lone surrogates, huge ints) is captured as its repr.
        """
        try:
            data = orjson.dumps(self.redact(payload), default=_json_default, option=_OPTIONS)
        except (TypeError, ValueError, RecursionError):  # JSONEncodeError is a TypeError
            data = orjson.dumps(repr(payload).encode("utf-8", "replace").decode())
        digest = hashlib.sha256(data).hexdigest()
        if len(data) <= self.max_bytes:
            return CapturedPayload(data.decode(), len(data), digest, truncated=False)
        kept = data[: self.max_bytes].decode("utf-8", "ignore")
        return CapturedPayload(kept, len(data), digest, truncated=True)


_OPTIONS = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS


def _json_default(value: Any) -> Any:
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, list | tuple | set | frozenset):
        return list(value)
    return str(value)


def _redact(value: Any, pattern: re.Pattern[str], replacement: str) -> Any:
    if isinstance(value, Mapping):
        return {
            key: (
                replacement
                if isinstance(key, str) and pattern.search(key)
                else _redact(item, pattern, replacement)
            )
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [_redact(item, pattern, replacement) for item in value]
    return value
