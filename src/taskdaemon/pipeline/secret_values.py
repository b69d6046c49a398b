"""Secrets known by their value: what was found under a secret key is masked everywhere after.

Redaction by key replaces ``{"api_key": "…"}``'s value, and redaction by shape finds tokens,
keys and passwords written ``password=…``. Neither sees a secret once it has left its key: a
command stage that prints ``$TASKDAEMON_INPUT_API_KEY``, a handler that logs its ``password``
input, a stage whose output ``token`` the next one echoes. As CI systems mask their secrets in
job logs by value, taskdaemon remembers every text found under a secret key (the same key
patterns, ``TASKDAEMON_REDACT_PATTERNS``) and ``redaction`` replaces it wherever it appears
from then on: in spans, the run log, captured output, OTLP exports and every output format.

The engine remembers a run's request when the run starts, each event's payload when it is
published, and each stage's inputs and outputs as they are resolved and mapped (a handler's
result too, before an ``outputs:`` mapping can rename its secret keys): before any stage (or
any record) can carry them on. The process's environment is read once, when an engine
is made: a command stage inherits it (``PWD`` and ``OLDPWD``, paths, are left out).

Bounds, and why: a value shorter than :data:`MASK_MIN_CHARS` is not masked (``1``, ``admin``,
``enabled`` are words any output holds, and a key such as ``cookies_enabled`` reads as secret:
masking them everywhere would garble more than it hides; passwords and tokens are longer); one
longer than :data:`MASK_MAX_CHARS` neither (a private key or a certificate is found by its
shape); at most :data:`MASK_MAX_VALUES` are kept, the one remembered longest ago forgotten first (a
value remembered again is the newest: a secret each run brings stays), so the look-up every new
text pays stays bounded in a server that ran many runs (benchmarks/README.md, "Secrets masked
by value (2026-12-03)"). A whole number is masked by its digits, within the same bounds: a
numeric password or PIN given as JSON (``--input password=20261205``) is read as a number, and
a stage prints its digits. A float or a boolean is not.

A value is looked for as written and as the usual encodings write it (:func:`written_forms`):
JSON-escaped (``\\"``, ``\\\\``, ``\\n``; non-ASCII kept or written ``\\u00e9``; ``<``, ``>``, ``&``
written ``\\u003c``... as Go does), Python's ``repr`` and ``ascii``, and URL-encoded (a path's
``quote``, a form's ``quote_plus``): a stage printing ``json.dumps({"k": secret})`` writes the
escaped text, not the value. Only a value holding a character some encoding changes has more
than one form (a token of letters, digits, ``-``, ``_``, ``.`` and ``~`` has one), so the look-up
grows only with such values. No transform beyond these (base64, hashing, a cipher) is looked
for: masking by value cannot know them (docs/redaction.md, "Values known as secrets").

What was recorded before a value became known: a value learnt from a run's data (its stage
inputs and outputs, its events) is told, with the run's id, to every listener
(:func:`add_secret_listener`): the span store's log writer masks it in that run's rows written
before (``tracking._remask``). What already left the process (the console, an export) is not
revisited (docs/redaction.md, "Values known as secrets").
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import urllib.parse
from collections.abc import Callable, Mapping
from typing import Any, Final

from taskdaemon.pipeline.masked_values import MASKED
from taskdaemon.pipeline.redaction import (
    DEFAULT_REDACT_PATTERNS,
    REDACTED,
    KeyMatcher,
    key_matcher,
)

__all__ = [
    "MASK_MAX_CHARS",
    "MASK_MAX_PARTS",
    "MASK_MAX_VALUES",
    "MASK_MIN_CHARS",
    "SecretListener",
    "add_secret_listener",
    "forget_secrets",
    "remember_environment_secrets",
    "remember_secrets",
    "remove_secret_listener",
    "secret_key",
    "unmaskable",
    "use_secret_key_patterns",
    "written_forms",
]

#: Told a run's id and the values of its data newly masked (see the module docstring).
SecretListener = Callable[[str, tuple[str, ...]], None]
_logger = logging.getLogger(__name__)

MASK_MIN_CHARS: Final = 8
MASK_MAX_CHARS: Final = 4096
MASK_MAX_VALUES: Final = 256
#: Texts and whole numbers one value told to be secret may hold (:func:`unmaskable`): each is
#: one of the ``MASK_MAX_VALUES`` remembered, and a list of hundreds pushed out every secret
#: known before it, which then showed in clear.
MASK_MAX_PARTS: Final = 16
#: Environment variables named with a secret word whose values are not secrets: ``pwd`` is a
#: secret word for keys such as ``db_pwd``, and ``PWD`` is the working directory.
_NOT_SECRET_VARIABLES: Final = frozenset({"PWD", "OLDPWD"})
#: The whole numbers whose digits are masked: ``MASK_MIN_CHARS`` to ``MASK_MAX_CHARS`` of them,
#: tested before ``str``, which refuses a number of more than 4,300 digits.
_MASKED_NUMBERS: Final = range(10 ** (MASK_MIN_CHARS - 1), 10**MASK_MAX_CHARS)
#: A run of the characters every encoding of :func:`written_forms` writes as they are.
_KEPT_RUN: Final = re.compile(r"[A-Za-z0-9._~-]+")


class _Registry:
    """The process's remembered values, least recently remembered first, and the key patterns
    that find them."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        #: Each value, least recently remembered first: its needle and its written forms.
        self.order: dict[str, tuple[str, tuple[str, ...]]] = {}
        self.patterns = DEFAULT_REDACT_PATTERNS
        self.keys: KeyMatcher = key_matcher(DEFAULT_REDACT_PATTERNS)
        #: The key patterns the environment was last read with (None: not read).
        self.environment_read: tuple[str, ...] | None = None
        self.listeners: tuple[SecretListener, ...] = ()  # replaced whole: read without a lock


_registry = _Registry()


def use_secret_key_patterns(patterns: tuple[str, ...]) -> tuple[str, ...]:
    """Find the values to mask under the keys ``patterns`` name from now on (the CLI gives
    ``TASKDAEMON_REDACT_PATTERNS``; the default patterns until then); returns the patterns
    before."""
    with _registry.lock:
        previous, _registry.patterns = _registry.patterns, patterns
        _registry.keys = key_matcher(patterns)
    return previous


def secret_key(key: str) -> bool:
    """Whether ``key`` is a secret key by the patterns in use (``use_secret_key_patterns``)."""
    return _registry.keys(key)


def unmaskable(value: Any) -> str | None:
    """What of ``value``, a JSON value told to be secret (the debugger's ``set --secret``), could
    not be masked by value wherever it goes, said for a person, or None when all of it can be:
    a text shorter than :data:`MASK_MIN_CHARS` or longer than :data:`MASK_MAX_CHARS`, a whole
    number with fewer or more digits, a float (written in many ways), more than
    :data:`MASK_MAX_PARTS` texts and whole numbers. Keys, ``null``, booleans and empty texts
    hold no secret. ``value`` comes from JSON: no cycle, and depth bounded."""
    stack, parts = [value], 0
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if item and not MASK_MIN_CHARS <= len(item) <= MASK_MAX_CHARS:
                return f"a text of {len(item)} characters"
            parts += bool(item)
        elif type(item) is int:
            if abs(item) not in _MASKED_NUMBERS:
                return "a whole number of too few or too many digits"
            parts += 1
        elif type(item) is float:
            return "a number with a fraction or an exponent"
        elif isinstance(item, Mapping):
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
        if parts > MASK_MAX_PARTS:
            return (
                f"more than {MASK_MAX_PARTS} texts and numbers (the {MASK_MAX_VALUES} values "
                "masked at most would forget secrets known before)"
            )
    return None


def remember_secrets(value: Any, run_id: str | None = None, *, hidden: bool = False) -> None:
    """Mask, from now on, every text found under a secret key in ``value`` (at any depth), and
    the digits of every whole number, within the bounds of the module docstring; with
    ``hidden``, every text and whole number of ``value``, under any key (a value the user said
    is secret). ``run_id``: the run whose data ``value`` is; the values not masked before are
    told to the listeners with it."""
    found: list[str] = []
    secret = _registry.keys
    stack: list[tuple[Any, bool]] = [(value, hidden)]
    # The containers walked, by id and whether under a secret key: a handler's result may hold
    # itself (``d["self"] = d``), and this walk runs on the engine's loop, where a cycle walked
    # forever would stop the run and every signal handler with it.
    walked: set[tuple[int, bool]] = set()
    while stack:
        item, hidden = stack.pop()
        if isinstance(item, str):
            # Not a part of the marker itself ("REDACTED"): it would mangle every marker.
            if hidden and MASK_MIN_CHARS <= len(item) <= MASK_MAX_CHARS and item not in REDACTED:
                found.append(str(item))
        elif type(item) is int:  # exactly: an enum's text is not its digits
            if hidden and abs(item) in _MASKED_NUMBERS:
                found.append(str(item))
        elif (id(item), hidden) in walked:
            continue
        elif isinstance(item, Mapping):
            walked.add((id(item), hidden))
            stack.extend(
                (sub, hidden or (type(key) is str and secret(key))) for key, sub in item.items()
            )
        elif isinstance(item, list | tuple):
            walked.add((id(item), hidden))
            stack.extend((sub, hidden) for sub in item)
    if found:
        new = _add(found)
        if new and run_id is not None:
            for listener in _registry.listeners:
                try:
                    listener(run_id, new)
                except Exception:  # a listener's bug must not fail the stage that told it
                    _logger.exception("a listener of newly masked values failed")


def add_secret_listener(listener: SecretListener) -> None:
    """Tell ``listener`` each run's values masked from now on (see the module docstring): it is
    called on the thread that learnt them (the engine's loop), so it only queues work."""
    with _registry.lock:
        _registry.listeners = (*_registry.listeners, listener)


def remove_secret_listener(listener: SecretListener) -> None:
    """Stop telling ``listener`` (nothing when it was not told). Compared by equality, not
    identity: a bound method (``writer.remask``) is a new object at each access, equal to the
    one added."""
    with _registry.lock:
        _registry.listeners = tuple(x for x in _registry.listeners if x != listener)


def remember_environment_secrets() -> None:
    """:func:`remember_secrets` of this process's environment, once per process and key
    patterns: a command may read it before its settings name other patterns (to mask the
    values an error line would show), and the engine reads it again under those."""
    with _registry.lock:
        if _registry.environment_read == _registry.patterns:
            return
        _registry.environment_read = _registry.patterns
    remember_secrets({k: v for k, v in os.environ.items() if k not in _NOT_SECRET_VARIABLES})


def forget_secrets() -> None:
    """Forget every remembered value, and read the environment again when next asked (for
    tests: the values are the process's)."""
    with _registry.lock:
        _registry.order.clear()
        _registry.environment_read = None
        MASKED.replace((), ())


def written_forms(value: str) -> tuple[str, ...]:
    """``value`` as written, then as each encoding of the module docstring writes it (each
    form once; a value no encoding changes has one form); and the same of ``value`` without
    the blanks around it, if any, when that is long enough to mask (a secret read from a file
    keeps its line break, which a program printing it drops)."""
    forms = dict.fromkeys(_encoded(value))
    stripped = value.strip()
    if stripped != value and len(stripped) >= MASK_MIN_CHARS:
        forms.update(dict.fromkeys(_encoded(stripped)))
    return tuple(forms)


def _encoded(value: str) -> tuple[str, ...]:
    """``value`` and its encodings (the module docstring), some of them equal."""
    json_text = json.dumps(value, ensure_ascii=False)[1:-1]
    return (
        value,
        json.dumps(value)[1:-1],
        json_text,
        json_text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026"),
        repr(value)[1:-1],
        ascii(value)[1:-1],
        urllib.parse.quote(value),
        urllib.parse.quote(value, safe=""),
        urllib.parse.quote_plus(value),
    )


def _needle(forms: tuple[str, ...]) -> str:
    """A text each of ``forms`` (a value's, the value first) holds: the value when it has no
    other form, else its longest run of the characters every encoding writes as they are
    (empty when it has none: then every text is looked at form by form)."""
    if len(forms) == 1:
        return forms[0]
    return max(_KEPT_RUN.findall(forms[0]), key=len, default="")


def _add(values: list[str]) -> tuple[str, ...]:
    """Remember ``values``; the forms (:func:`written_forms`) of the ones not remembered
    before."""
    with _registry.lock:
        order = _registry.order
        new: list[str] = []
        for value in values:
            known = order.pop(value, None)  # the newest again: a secret every run brings stays
            if known is None:
                new.append(value)
                forms = written_forms(value)
                known = (_needle(forms), forms)
            order[value] = known
        if not new:
            return ()
        while len(order) > MASK_MAX_VALUES:
            del order[next(iter(order))]
        every = {form for _, forms in order.values() for form in forms}
        needles = tuple(dict.fromkeys(needle for needle, _ in order.values()))
        MASKED.replace(tuple(sorted(every, key=len, reverse=True)), needles)
        return tuple(form for value in new if value in order for form in order[value][1])
