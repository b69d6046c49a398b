"""Redaction of secrets: by the key they sit under and by the shape of the value.

Two public functions, used wherever taskdaemon records a value (span attributes and events,
error messages, log records, captured payloads, command lines, ``/api`` and every output
format); the list and the reasons are in ``docs/redaction.md``:

* :func:`redact_text` replaces secrets found by their *shape* in a string (``secret_shapes``:
  AWS access key ids, GitHub, GitLab and Slack tokens, JWTs, ``Bearer …`` credentials, PEM
  private keys, the password of a URL's ``user:password@``, ...) and values known as secrets
  (``masked_values``);
* :func:`redact` walks a structure (mappings, lists, tuples): a value under a *secret key*
  (``secret_keys``) is replaced whole, every string is passed through :func:`redact_text`.

The texts of one output (:func:`redact_lines`, :func:`redact_texts`) share one pre-check, and
:func:`mappings_unchanged` decides for many mappings at once that none would change.

Pure and bounded: no OpenTelemetry import (the engine uses it), and every pattern scans in
linear time (``secret_shapes``).
"""

from __future__ import annotations

import itertools
import operator
import re
from collections.abc import Iterable, Mapping
from functools import cache
from typing import Any, Final

from taskdaemon.pipeline.masked_values import (
    MASKED,
    glued,
    holds_masked,
    masked_text,
    masked_wrapped,
)
from taskdaemon.pipeline.secret_keys import DEFAULT_REDACT_PATTERNS, KeyMatcher, key_matcher
from taskdaemon.pipeline.secret_pieces import masked_pieces, may_hold_pieces
from taskdaemon.pipeline.secret_shapes import REDACTED, may_hold_secret, replace_shape, shapes

__all__ = [
    "CLEAN_TEXTS",
    "DEFAULT_REDACT_PATTERNS",
    "REDACTED",
    "mappings_unchanged",
    "masked_names",
    "redact",
    "redact_endpoint_passwords",
    "redact_lines",
    "redact_text",
    "redact_texts",
    "secret_spans",
]

_DEFAULT_MATCHER: Final = key_matcher()

#: Short texts found to hold no secret, remembered: the monitor redacts the same few strings
#: (run ids, pipeline, stage and status names, trigger descriptions) again on every stage. A
#: verdict never changes (the shapes are constants); the set is emptied when full, so it stays
#: bounded, and only texts no longer than ``_CLEAN_MAX_CHARS`` are kept.
_clean: set[str] = set()
_CLEAN_MAX_CHARS: Final = 128
_CLEAN_MAX_ENTRIES: Final = 2048
#: ``_clean`` (the same set, only ever emptied, never replaced), for callers on the monitor's
#: hot path that make ``redact_text``'s first test inline: ``text if text in CLEAN_TEXTS else
#: redact_text(text)`` is ``redact_text(text)`` without the call for a text found clean before.
CLEAN_TEXTS: Final = _clean
MASKED.clears(_clean)  # a text found clean before may hold a value known now


def _mask(text: str) -> str:
    """``text`` with every masked value replaced, and a long enough piece of one at its edges
    (``secret_pieces``); ``text`` itself when it holds neither."""
    if holds_masked(text):  # a search per value, not per form
        text = masked_text(text, MASKED.values, REDACTED)
    return masked_pieces(text, MASKED.values, REDACTED)


def secret_spans(text: str) -> list[tuple[int, int]]:
    """Where ``text`` holds a secret :func:`redact_text` would replace, as ``(start, end)``
    pairs, which may overlap: each shape's whole match (the key of ``password=x`` too, so a
    cut kept clear of it keeps the key beside its value) and each value known as a secret."""
    spans = [match.span() for match in shapes().finditer(text)] if may_hold_secret(text) else []
    for value in MASKED.values:
        at = text.find(value)
        while at >= 0:
            spans.append((at, at + len(value)))
            at = text.find(value, at + 1)
    return spans


def redact_text(text: str) -> str:
    """``text`` with every secret of a known shape replaced by ``[REDACTED]`` (``text`` itself
    when it has none); a value known as a secret wrapped over its lines too, piece by piece
    (``masked_values.masked_wrapped``), and a long enough piece of one at its edges
    (``secret_pieces``: a secret cut over separate records)."""
    if text in _clean:
        return text
    redacted = _shapes_and_values(text)
    if redacted is text and len(text) <= _CLEAN_MAX_CHARS:
        if len(_clean) >= _CLEAN_MAX_ENTRIES:
            _clean.clear()
        _clean.add(text)
    return redacted


def _shapes_and_values(text: str) -> str:
    """``text`` with its shapes and its values known as secrets, whole or wrapped, masked."""
    if MASKED.needles and "\n" in text and holds_masked(glued(lines := text.split("\n"))):
        text = "\n".join(masked_wrapped(lines, MASKED.values, REDACTED))
    if not MASKED.values:
        return _shaped(text) if may_hold_secret(text) else text
    if may_hold_secret(text):
        return _mask(_shaped(text))
    return masked_pieces(text, MASKED.values, REDACTED)  # no value whole: pieces at its edges


def _shaped(text: str) -> str:
    """``text`` with every secret of a known shape replaced."""
    pattern = shapes()
    return pattern.sub(replace_shape, text) if pattern.search(text) is not None else text


@cache
def _netloc_password() -> re.Pattern[str]:
    """``user:password@host`` written without a scheme, starting a token (after a space, a
    quote, a bracket, ``,`` or ``=``, or at the start): the user, then the password up to the
    ``@``. Compiled on first use, as the shapes are."""
    return re.compile(
        r"(?<![^\s\"'(\[<,=])([A-Za-z0-9._~%!$&*+;=-]++):[^\s@/?#\"'<>]++@(?=[A-Za-z0-9\[])"
    )


def redact_endpoint_passwords(text: str) -> str:
    """``text`` with the password of each ``user:password@host`` that has no scheme replaced by
    ``[REDACTED]`` (``text`` itself when there is none).

    For the causes quoted from the OTLP exporters' own log lines only
    (``cli/exporter_logs.ExportFailureFilter``): the gRPC exporter names its endpoint by its bare
    ``host:port`` part, credentials included, which :func:`redact_text`'s URL shape (it needs
    ``scheme://``) does not take. Not a shape of :func:`redact_text`: in recorded values, words
    such as ``note:see@home`` are too often not credentials, and every recorded string would pay
    for one more pattern."""
    if "@" not in text:
        return text
    hidden = _netloc_password().sub(rf"\1:{REDACTED}@", text)
    return text if hidden == text else hidden


def redact_texts(texts: list[str]) -> list[str]:
    """:func:`redact_text` of each of ``texts`` (separate texts: log records' bodies), as a
    list (``texts`` itself when none holds a secret). The substring pre-check runs once on the
    texts joined (a substring missing from the whole is missing from every text)."""
    if not texts or not (
        may_hold_secret("\n".join(texts))
        or (MASKED.values and may_hold_pieces(texts, MASKED.values))
    ):
        return texts
    redacted = [redact_text(text) for text in texts]
    return texts if all(map(operator.is_, redacted, texts)) else redacted


def redact_lines(lines: list[str]) -> list[str]:
    """``lines`` (consecutive lines of one text: a command's output) with every secret of a known
    shape replaced, as a list of as many lines (``lines`` itself when none holds a secret).

    The substring pre-check runs once on the lines joined (a substring missing from the whole
    is missing from every line). Lines holding a PEM BEGIN line, the one shape printed over
    several lines, are looked at joined by line breaks, so the key's BEGIN, base64 and END
    lines are found together: each line a secret covers is replaced whole by ``[REDACTED]``, a
    secret within one line as :func:`redact_text` replaces it. Other lines are redacted one by
    one, as :func:`redact_text` of each (which remembers the short lines it found clean). A value
    known as a secret that holds line breaks, found in the lines joined, is replaced first, by
    ``[REDACTED]`` and as many line breaks: the lines it spanned keep what was around it. Before
    that, a one-line value the lines hold wrapped (its pieces on consecutive lines) has each
    piece replaced (``masked_values.masked_wrapped``)."""
    if not lines:
        return lines
    if MASKED.needles and len(lines) > 1 and holds_masked(glued(lines)):
        lines = masked_wrapped(lines, MASKED.values, REDACTED)
    joined = "\n".join(lines)
    if not may_hold_secret(joined):
        if not (MASKED.values and may_hold_pieces(lines, MASKED.values)):
            return lines
        masked = [masked_pieces(line, MASKED.values, REDACTED) for line in lines]
        return lines if all(map(operator.is_, masked, lines)) else masked
    across = [value for value in MASKED.across_lines if value in joined]
    if across:
        for value in across:
            joined = joined.replace(value, REDACTED + "\n" * value.count("\n"))
        lines = joined.split("\n")
    if "-----BEGIN" not in joined:
        return [redact_text(line) for line in lines]
    matches = list(shapes().finditer(joined))
    if not matches:
        return [_mask(line) for line in lines] if MASKED.values else lines
    out: list[str] = []
    start = 0  # where the current line starts in ``joined``
    first = 0  # the first match that may reach the current line (matches never overlap)
    for line in lines:
        end = start + len(line)
        while first < len(matches) and matches[first].end() <= start:
            first += 1
        pieces: list[str] = []
        at = start
        for match in itertools.islice(matches, first, None):
            if match.start() >= end:
                break
            if match.start() < start or match.end() > end:  # crosses a line break
                pieces, at = [REDACTED], end
                break
            pieces += (joined[at : match.start()], replace_shape(match))
            at = match.end()
        out.append("".join(pieces) + joined[at:end] if pieces else line)
        start = end + 1
    return [_mask(line) for line in out] if MASKED.values else out


def mappings_unchanged(mappings: Iterable[Mapping[Any, Any]]) -> bool:
    """Whether :func:`redact` (default patterns) returns each of ``mappings`` itself, decided
    with one pre-check of all their texts: True only for flat mappings (text keys; values
    texts, numbers, bools, None, bytes, or lists and tuples of those) whose keys name no
    secret and whose texts, joined, hold no hint of a secret's shape
    (``secret_shapes.may_hold_secret``).
    False means "not shown", not "holds a secret".

    For many mappings recorded as they are once decided (a definition's stage attributes,
    ``monitor/_books.py``): a text seen for the first time costs a dozen substring tests and
    a memo insert, mostly call overhead for a short text; one pass of each test over the
    joined texts costs a fraction of that.

    Exact, because every test of ``may_hold_secret`` holds for the joined text when it holds
    for one of its texts: each asks whether a character or substring is in the text (a
    substring of one text is one of the joined text), or in its lower case (``str.lower``
    maps each character on its own, but for the Greek sigma's final form, which no hint
    holds), or is matched by the case-insensitive search of plain words (which finds in the
    joined text, ASCII or not, every match it or ``in`` on the lower case finds in a part).
    So no hint in the whole is no hint in any text, and ``redact_text`` returns each as it
    is; scalars are left alone and a list or mapping nothing changed in is returned itself.
    """
    texts: list[str] = []
    items: list[Any] = []  # the items of every list and tuple value, typed at once below
    keys: set[Any] = set()
    for mapping in mappings:
        keys.update(mapping.keys())
        for value in mapping.values():
            kind = type(value)
            if kind is str:
                texts.append(value)
            elif kind is list or kind is tuple:
                items += value
            elif kind not in _SCALARS:
                return False
    # Each distinct key once (a batch of a definition's stage attributes repeats the same
    # few), and the items' types with one C pass: the verdict of the walk item by item.
    secret = _DEFAULT_MATCHER
    decided = secret.decided
    for key in keys:
        if type(key) is not str or (
            verdict if (verdict := decided.get(key)) is not None else secret(key)
        ):
            return False
    if items:
        kinds = set(map(type, items))
        if not kinds <= _TEXT_OR_SCALAR:
            return False
        texts += items if kinds == _TEXT else [item for item in items if type(item) is str]
    return not may_hold_secret("\n".join(texts))


def masked_names(entries: Mapping[Any, Any]) -> dict[Any, Any]:
    """``entries`` with each name (key) that holds a secret, by shape or as a value known as
    one, masked as text is, for an answer where a name is text: it joins no view and no
    command needs it back as it is (the debugger's ``env`` variables and ``inputs``: the
    definition's spans mask an input's name too, docs/redaction.md). Names masked alike are
    numbered, so each entry keeps its line: ``[REDACTED]``, ``[REDACTED] #2``."""
    out: dict[Any, Any] = {}
    for name, value in entries.items():
        shown_name = base = redact_text(name) if isinstance(name, str) else name
        count = 1
        while shown_name in out:
            count += 1
            shown_name = f"{base} #{count}"
        out[shown_name] = value
    return out


def redact(
    value: Any,
    patterns: tuple[str, ...] = DEFAULT_REDACT_PATTERNS,
    *,
    replacement: str = REDACTED,
) -> Any:
    """``value`` with every mapping entry under a secret key (see the module docstring) replaced
    by ``replacement``, at any depth, and every string through :func:`redact_text`. Mappings
    come back as dicts and tuples as lists, but only where something was redacted: ``value``
    itself comes back, uncopied, when nothing was."""
    secret = _DEFAULT_MATCHER if patterns is DEFAULT_REDACT_PATTERNS else key_matcher(patterns)
    # A dict (every span attribute mapping the monitor records, several a stage) goes straight
    # to its walk: what _redact would decide for it, without the call.
    if type(value) is dict:
        return _redact_mapping(value, secret, replacement)
    return _redact(value, secret, replacement)


# Types that hold no text: returned as they are without an isinstance walk (Mapping's ABC
# check alone costs more than redacting a short string, on the monitor's hot path).
_SCALARS: Final = frozenset({int, float, bool, type(None), bytes})
#: The item types ``mappings_unchanged`` takes in a list or tuple value.
_TEXT_OR_SCALAR: Final = _SCALARS | {str}
_TEXT: Final = frozenset({str})


def _redact(value: Any, secret: KeyMatcher, replacement: str) -> Any:
    kind = type(value)
    if kind is str:
        return redact_text(value)
    if kind in _SCALARS:
        return value
    if kind is dict or (kind is not list and kind is not tuple and isinstance(value, Mapping)):
        return _redact_mapping(value, secret, replacement)
    if kind is list or kind is tuple or isinstance(value, list | tuple):
        return _redact_sequence(value, secret, replacement)
    if isinstance(value, str):
        # A str subclass (a StrEnum member, a library's string type): its text is recorded as
        # any text is, so it is redacted as one. Tested last: exact str is the common case.
        return redact_text(value)
    return value


def _redact_mapping(value: Mapping[Any, Any], secret: KeyMatcher, replacement: str) -> Any:
    # No copy until an entry changes (nearly every mapping recorded has nothing to redact), and
    # the matcher's remembered verdicts read inline: this walk runs on every attribute mapping
    # the monitor records, several a stage.
    out: dict[Any, Any] | None = None
    decided = secret.decided
    for key, item in value.items():
        if type(key) is str and (
            verdict if (verdict := decided.get(key)) is not None else secret(key)
        ):
            new: Any = replacement
        elif type(item) is str:
            if item in _clean:  # redact_text's own first test, without the call (most texts)
                continue
            new = redact_text(item)
        elif type(item) in _SCALARS:
            continue
        elif type(item) is list:  # what _redact would do with it, without the call
            new = _redact_sequence(item, secret, replacement)
        else:
            new = _redact(item, secret, replacement)
        if new is not item:
            if out is None:
                out = dict(value)  # every entry so far is unchanged; later ones are set below
            out[key] = new
    return value if out is None else out


def _redact_sequence(value: Any, secret: KeyMatcher, replacement: str) -> Any:
    changed = False
    out = []
    for item in value:
        if type(item) is str:
            new = item if item in _clean else redact_text(item)
        elif type(item) in _SCALARS:
            new = item
        else:
            new = _redact(item, secret, replacement)
        if new is not item:
            changed = True
        out.append(new)
    return out if changed else value
