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
shape). A whole number is masked by its digits, within the same bounds: a
numeric password or PIN given as JSON (``--input password=20261205``) is read as a number, and
a stage prints its digits. A float or a boolean is not.

A value is looked for as written and as the usual encodings write it (:func:`written_forms`):
JSON-escaped (``\\"``, ``\\\\``, ``\\n``; non-ASCII kept or written ``\\u00e9``; ``<``, ``>``, ``&``
written ``\\u003c``... as Go does), JSON-escaped twice, HTML-escaped, a CSV field's and a shell's
single-quoted word's quoting, Python's ``repr`` and ``ascii``, URL-encoded (a path's ``quote``,
a form's ``quote_plus``) and base64-encoded (:func:`base64_forms`): a stage printing
``json.dumps({"k": secret})`` writes the escaped text, not the value. Only a value holding a
character some escaping changes has more than one escaped form (a token of letters, digits,
``-``, ``_``, ``.`` and ``~`` has one), and they share one needle; its base64 forms have their
own, looked for only in texts with a run of letters and digits that long
(``masked_values.holds_needle``). No transform beyond these (hex, hashing, a cipher) is looked
for: masking by value cannot know them (docs/redaction.md, "Values known as secrets").

Declared and learnt (docs/redaction.md): a secret taskdaemon was told about is masked for the
whole run, whatever else arrives. The environment's values, a run's request's and a debugger's
override of a secret input are *declared* (:func:`declare_secrets`), kept until their holder
is released (the environment never; a run when it ends), then learnt. Values met on the way (a
stage's inputs and outputs, an event's payload) are *learnt* (:func:`remember_secrets`): the
newest :data:`MASK_MAX_VALUES` are kept (a value remembered again is the newest: a secret each
run brings stays), so the look-up every text pays stays bounded in a server that ran many
runs; one pushed out is counted (:func:`forgotten_count`) and said in a warning at each
doubling of the count. Before, one pool held both, and a stage returning hundreds of values
under ``tokens`` pushed the environment's token out: the next stage's echo of it was stored
in clear. The runs may declare :data:`MASK_MAX_DECLARED` values together; a declaration past
it is refused whole, in a line for a person: a secret kept for part of a run would be shown in
the rest.

What was recorded before a value became known: a value learnt from a run's data (its stage
inputs and outputs, its events) is told, with the run's id, to every listener
(:func:`add_secret_listener`): the span store's log writer masks it in that run's rows written
before (``tracking._remask``). What already left the process (the console, an export) is not
revisited (docs/redaction.md, "Values known as secrets").
"""

from __future__ import annotations

import base64
import html
import json
import logging
import os
import re
import threading
import urllib.parse
from collections.abc import Callable, Hashable, Mapping
from typing import Any, Final

from taskdaemon.pipeline.masked_values import MASKED
from taskdaemon.pipeline.redaction import REDACTED
from taskdaemon.pipeline.secret_keys import DEFAULT_REDACT_PATTERNS, KeyMatcher, key_matcher
from taskdaemon.pipeline.wording import counted

__all__ = [
    "ENVIRONMENT",
    "MASK_MAX_CHARS",
    "MASK_MAX_DECLARED",
    "MASK_MAX_LINES",
    "MASK_MAX_PARTS",
    "MASK_MAX_VALUES",
    "MASK_MIN_CHARS",
    "SecretListener",
    "add_secret_listener",
    "base64_forms",
    "declare_secrets",
    "forget_secrets",
    "forgotten_count",
    "release_secrets",
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
#: Not ``__name__``: a line ``taskdaemon.pipeline.secret_values: 344 values...`` reads as a
#: secret key and its value, and every terminal line showed ``[REDACTED]`` for the message.
_logger = logging.getLogger("taskdaemon.pipeline.masking")

MASK_MIN_CHARS: Final = 8
MASK_MAX_CHARS: Final = 4096
#: Lines of a value holding line breaks masked alone at most (:func:`_lines`): more than a PEM
#: private key of 4096 bits has, in its lines of 64 characters.
MASK_MAX_LINES: Final = 64
#: Values learnt on the way kept, the newest (module docstring, "Declared and learnt").
MASK_MAX_VALUES: Final = 256
#: Values declared secret that the open runs may keep together (the environment's aside).
MASK_MAX_DECLARED: Final = 256
#: The holder of the environment's values (:func:`declare_secrets`): never released.
ENVIRONMENT: Final = "environment"
#: Texts and whole numbers one value told to be secret may hold (:func:`unmaskable`): each is
#: kept until the run ends, one of the ``MASK_MAX_DECLARED`` the open runs share.
MASK_MAX_PARTS: Final = 16
#: Environment variables named with a secret word whose values are not secrets: ``pwd`` is a
#: secret word for keys such as ``db_pwd``, and ``PWD`` is the working directory.
_NOT_SECRET_VARIABLES: Final = frozenset({"PWD", "OLDPWD"})
#: The whole numbers whose digits are masked: ``MASK_MIN_CHARS`` to ``MASK_MAX_CHARS`` of them,
#: tested before ``str``, which refuses a number of more than 4,300 digits.
_MASKED_NUMBERS: Final = range(10 ** (MASK_MIN_CHARS - 1), 10**MASK_MAX_CHARS)
#: A run of the characters every encoding of :func:`written_forms` writes as they are.
_KEPT_RUN: Final = re.compile(r"[A-Za-z0-9._~-]+")


class _RefusedError(Exception):
    """Values not declared: the bound :data:`MASK_MAX_DECLARED` would be passed."""


#: What is kept of a value masked: its needles, its base64 forms' needles, and its forms.
_Known = tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]


class _Registry:
    """The process's remembered values, declared and learnt on the way, and the key patterns
    that find them."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        #: Each value learnt on the way, least recently remembered first: its needles and its
        #: written forms.
        self.learnt: dict[str, _Known] = {}
        #: Each value declared (``declare_secrets``), the same, and who declared it.
        self.declared: dict[str, _Known] = {}
        self.holders: dict[str, set[Hashable]] = {}
        #: What each holder declared.
        self.held: dict[Hashable, set[str]] = {}
        #: The values learnt on the way forgotten so far.
        self.forgotten = 0
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
                f"more than {MASK_MAX_PARTS} texts and numbers (each is kept masked until the "
                f"run ends, and the open runs keep {MASK_MAX_DECLARED} at most)"
            )
    return None


def remember_secrets(value: Any, run_id: str | None = None, *, hidden: bool = False) -> None:
    """Mask, from now on, every text found under a secret key in ``value`` (at any depth), and
    the digits of every whole number, within the bounds of the module docstring; with
    ``hidden``, every text and whole number of ``value``, under any key (a value the user said
    is secret). ``run_id``: the run whose data ``value`` is; the values not masked before are
    told to the listeners with it. The values join those learnt on the way, of which the
    newest :data:`MASK_MAX_VALUES` are kept; a value declared (:func:`declare_secrets`) stays
    declared."""
    if found := _found(value, hidden):
        _tell(run_id, _add(found, None))


def declare_secrets(
    value: Any, holder: Hashable, run_id: str | None = None, *, hidden: bool = False
) -> str | None:
    """:func:`remember_secrets`, the values declared: kept masked, whatever is learnt
    meanwhile, until every holder that declared them is released (:func:`release_secrets`).
    ``holder``: who keeps them, a run (:data:`ENVIRONMENT`, never released, is not counted).
    Declares nothing, and answers why for a person, when the values the holders but the
    environment keep would then pass :data:`MASK_MAX_DECLARED`; else None."""
    found = _found(value, hidden)
    if not found:
        return None
    try:
        _tell(run_id, _add(found, holder))
    except _RefusedError as refused:
        return str(refused)
    return None


def release_secrets(holder: Hashable) -> None:
    """Release what ``holder`` declared (:func:`declare_secrets`): a value no other holder
    keeps joins those learnt on the way, as the newest. Nothing when ``holder`` declared
    nothing."""
    with _registry.lock:
        values = _registry.held.pop(holder, ())
        for value in values:
            holders = _registry.holders[value]
            holders.discard(holder)
            if not holders:
                del _registry.holders[value]
                _registry.learnt[value] = _registry.declared.pop(value)
        if forgotten := _trim():
            _publish()
    _said(forgotten)


def forgotten_count() -> int:
    """How many values learnt on the way this process forgot (pushed out of the
    :data:`MASK_MAX_VALUES` kept): each is shown in clear if printed again."""
    return _registry.forgotten


def _found(value: Any, hidden: bool) -> list[str]:
    """The texts and whole numbers of ``value`` to mask (:func:`remember_secrets`)."""
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
    return found


def _tell(run_id: str | None, new: tuple[str, ...]) -> None:
    """Tell the listeners ``run_id``'s newly masked forms ``new`` (see the module docstring)."""
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
    environment = {k: v for k, v in os.environ.items() if k not in _NOT_SECRET_VARIABLES}
    declare_secrets(environment, ENVIRONMENT)


def forget_secrets() -> None:
    """Forget every remembered value, and read the environment again when next asked (for
    tests: the values are the process's)."""
    with _registry.lock:
        _registry.learnt.clear()
        _registry.declared.clear()
        _registry.holders.clear()
        _registry.held.clear()
        _registry.forgotten = 0
        _registry.environment_read = None
        MASKED.replace((), ())


def written_forms(value: str) -> tuple[str, ...]:
    """``value`` as written, then as each encoding of the module docstring writes it (each
    form once; a value no encoding changes has one form); and the same of ``value`` without
    the blanks around it, if any, when that is long enough to mask (a secret read from a file
    keeps its line break, which a program printing it drops); and of each of its lines
    (:func:`_lines`)."""
    forms = dict.fromkeys(_encoded(value))
    stripped = value.strip()
    if stripped != value and len(stripped) >= MASK_MIN_CHARS:
        forms.update(dict.fromkeys(_encoded(stripped)))
    for line in _lines(value):
        forms.update(dict.fromkeys(_encoded(line)))
    forms.update(dict.fromkeys(base64_forms(stripped)))
    return tuple(forms)


def base64_forms(value: str) -> tuple[str, ...]:
    """What the base64 of any text holding ``value`` (UTF-8) surely holds, whatever is around
    it (:func:`_base64_groups`), and, for a text ending with ``value``, its base64 to the
    padding; in the standard alphabet and in the URL-safe one (``-`` and ``_`` for ``+`` and
    ``/``). Decision: masked as a value's other forms are; only the character at each end that
    mixes ``value``'s bits with its neighbours' stays shown (2 or 4 bits of ``value``'s first
    or last byte: less than one character of it). None when ``value`` is shorter than
    :data:`MASK_MIN_CHARS`, as for its other forms."""
    if len(value) < MASK_MIN_CHARS:
        return ()
    data = value.encode("utf-8", "surrogatepass")
    ending = (base64.b64encode(data[skip:]).decode("ascii") for skip in _SKIPS)
    standard = (*_base64_groups(value), *ending)
    safe = (form.replace("+", "-").replace("/", "_") for form in standard)
    return tuple(dict.fromkeys((*standard, *safe)))


#: How many bytes of a value fill the group its text's bytes before it began: a text holding
#: the value at a multiple of 3 bytes, then 1 or 2 past one.
_SKIPS: Final = (0, 2, 1)


def _base64_groups(value: str) -> tuple[str, ...]:
    """The standard base64 characters that only ``value``'s bytes decide, for each place it
    may start at: base64 writes 3 bytes as 4 characters (6 bits each), so where ``value``
    starts in its text's bytes (:data:`_SKIPS`) decides which of its bytes begin a group. Of
    each: the last characters of the group its first bytes close (1 or 2), the groups its
    bytes fill alone, and the first characters of the group its last bytes open (1 or 2)."""
    if len(value) < MASK_MIN_CHARS:
        return ()
    data = value.encode("utf-8", "surrogatepass")
    forms = []
    for skip in _SKIPS:
        rest = (len(data) - skip) % 3
        whole = data[skip : len(data) - rest]
        closing = base64.b64encode(bytes(3 - skip) + data[:skip])[4 - skip :] if skip else b""
        opening = base64.b64encode(data[len(data) - rest :] + bytes(3 - rest))[:rest]
        forms.append((closing + base64.b64encode(whole) + opening).decode("ascii"))
    return tuple(forms)


def _lines(value: str) -> list[str]:
    """The lines of ``value``, when it holds line breaks, each without the blanks around it
    (``\\r`` too) and long enough to mask. Decision: a line of a secret is a secret. A program
    that writes a multi-line value a line at a time (a line-buffered stream, a loop, a log
    record per line) puts it whole in no read of its pipe and no record, so the whole value is
    never found (docs/redaction.md, "Values known as secrets"); each line is. A line shorter
    than :data:`MASK_MIN_CHARS` is not masked alone, as a value that short is not, and only the
    first :data:`MASK_MAX_LINES` are: each is one more search for every text redacted."""
    if "\n" not in value:
        return []
    lines = (part.strip() for part in value.split("\n"))
    return [line for line in lines if len(line) >= MASK_MIN_CHARS][:MASK_MAX_LINES]


def _encoded(value: str) -> tuple[str, ...]:
    """``value`` and its encodings (the module docstring), some of them equal."""
    json_text = json.dumps(value, ensure_ascii=False)[1:-1]
    ascii_json = json.dumps(value)[1:-1]
    return (
        value,
        ascii_json,
        json_text,
        json.dumps(ascii_json)[1:-1],  # JSON text inside a JSON string: a JSON log line's
        json.dumps(json_text, ensure_ascii=False)[1:-1],
        html.escape(value),
        value.replace('"', '""'),  # a CSV field's
        value.replace("'", "'\\''"),  # a shell's single-quoted word (``set -x``)
        json_text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026"),
        repr(value)[1:-1],
        ascii(value)[1:-1],
        urllib.parse.quote(value),
        urllib.parse.quote(value, safe=""),
        urllib.parse.quote_plus(value),
    )


def _needles(forms: tuple[str, ...]) -> tuple[str, ...]:
    """Texts one of which each of ``forms`` (a value's, the value first) holds: its longest run
    of the characters every encoding writes as they are (the value itself when it holds no
    other; empty when it has none: then every text is looked at form by form), and the same of
    each of its lines masked alone (:func:`_lines`), which a form of a line holds. Its base64
    forms have their own (:func:`_base64_needles`)."""
    return tuple(dict.fromkeys(_longest_run(text) for text in (forms[0], *_lines(forms[0]))))


def _base64_needles(value: str) -> tuple[str, ...]:
    """Texts one of which each base64 form of ``value`` (:func:`base64_forms`) holds: the
    longest run of letters and digits of each of its groups (:func:`_base64_groups`), which
    the URL-safe alphabet's form holds too."""
    return tuple(dict.fromkeys(map(_longest_run, _base64_groups(value.strip()))))


def _longest_run(text: str) -> str:
    """``text``'s longest run of the characters every encoding writes as they are (empty
    when it has none)."""
    return max(_KEPT_RUN.findall(text), key=len, default="")


def _add(values: list[str], holder: Hashable | None) -> tuple[str, ...]:
    """Remember ``values``, learnt on the way (``holder`` None) or declared by ``holder``; the
    forms (:func:`written_forms`) of the ones not masked before."""
    with _registry.lock:
        learnt, declared, holders = _registry.learnt, _registry.declared, _registry.holders
        if holder is not None and holder is not ENVIRONMENT:
            kept = sum(1 for keep in holders.values() if keep != {ENVIRONMENT})
            adding = len({v for v in values if holders.get(v, {ENVIRONMENT}) == {ENVIRONMENT}})
            if kept + adding > MASK_MAX_DECLARED:
                raise _RefusedError(
                    f"{counted(adding, 'value')} declared secret, and the open runs keep "
                    f"{kept}: at most {MASK_MAX_DECLARED} are kept masked for a whole run"
                )
        lost = 0
        if holder is None and len(values) > MASK_MAX_VALUES:
            # Only the newest are kept: the written forms of the others are never made.
            newest = list(dict.fromkeys(reversed(values)))
            values = newest[:MASK_MAX_VALUES][::-1]
            lost = sum(
                learnt.pop(v, None) is not None or v not in declared
                for v in newest[MASK_MAX_VALUES:]
            )
            _registry.forgotten += lost
        new: list[str] = []
        for value in values:
            known = declared.get(value) or learnt.pop(value, None)  # learnt: the newest again
            if known is None:
                new.append(value)
                forms = written_forms(value)
                known = (_needles(forms), _base64_needles(value), forms)
            if holder is not None:
                declared[value] = known
                holders.setdefault(value, set()).add(holder)
                _registry.held.setdefault(holder, set()).add(value)
            elif value not in declared:  # a secret every run brings stays
                learnt[value] = known
        if not new and not lost:
            return ()
        forgotten = lost + _trim()
        _publish()
        kept_forms = (declared.get(value) or learnt.get(value) for value in new)
        masked = tuple(form for known in kept_forms if known for form in known[2])
    _said(forgotten)
    return masked


def _trim() -> int:
    """Forget the oldest values learnt on the way past :data:`MASK_MAX_VALUES`, counted; how
    many (under the lock; the caller masks what is left)."""
    learnt = _registry.learnt
    forgotten = len(learnt) - MASK_MAX_VALUES
    if forgotten <= 0:
        return 0
    for _ in range(forgotten):
        del learnt[next(iter(learnt))]
    _registry.forgotten += forgotten
    return forgotten


def _publish() -> None:
    """Mask the values declared and learnt, and no other (under the lock)."""
    entries = (*_registry.declared.values(), *_registry.learnt.values())
    every = {form for *_, forms in entries for form in forms}
    needles = tuple(dict.fromkeys(needle for kept, _, _ in entries for needle in kept))
    encoded = tuple(dict.fromkeys(needle for _, kept, _ in entries for needle in kept))
    MASKED.replace(tuple(sorted(every, key=len, reverse=True)), needles, encoded)


def _said(forgotten: int) -> None:
    """Say that ``forgotten`` more values learnt on the way were forgotten: one warning at the
    first and each time the process's count doubles, so a flood of values says it a few
    times, not once per value."""
    total = _registry.forgotten
    if forgotten and (total - forgotten).bit_length() < total.bit_length():
        _logger.warning(
            "%s learnt as secrets on the way forgotten so far (the newest %d are kept): "
            "each is shown if printed again; declared secrets stay masked",
            counted(total, "value"),
            MASK_MAX_VALUES,
        )
