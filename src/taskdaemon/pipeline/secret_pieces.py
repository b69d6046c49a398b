"""Pieces of a value known as a secret that a text holds at its edges, or is wholly: what a
secret cut into separate records leaves in each (``logging.info(tok[:10])``, then
``logging.info(tok[10:])``; a command's line and its next, further apart than a held line
waits, ``secret_tails``). ``redaction.redact_text`` masks them in every text it redacts, so
the run's console, ``logs``, ``runs show``, the store and the exports agree (docs/redaction.md,
"Values known as secrets"). Pure: no OpenTelemetry import.

Decided, and why:

* **A piece is masked when it has at least** :data:`MIN_PIECE_CHARS` **characters and sits
  where a cut leaves one**: at a text's end, a proper start of a value (``key: Tk9vQ2xA…``);
  at its start, a proper end of one (``…PonmlQ done``); or the whole text, blanks around it
  aside, a piece from anywhere in a value (a middle record). That is as many characters as
  the shortest value masked whole (``secret_values.MASK_MIN_CHARS``): a piece that long tells
  as much of the value as the shortest secret tells of itself, and the chance that a text's
  edge repeats that many characters of a token is negligible. A shorter piece is not provably
  a secret (``"T"``, ``"Tk9"`` end many texts), so it is shown.
* **Only the edges, not anywhere**: a program that cuts a secret over records puts each piece
  at a record's end or start; a piece inside a text, other text on both sides, is not a cut
  and is not looked for (every substring of every value, anywhere, would mask common words
  of human passwords in every text).
* **Limits.** Pieces shorter than :data:`MIN_PIECE_CHARS` are shown, so a value cut into
  pieces of 7 characters or fewer is shown whole, piece by piece. A piece with other text on
  both sides (``"a Tk9vQ2xA b"``) is shown. A record sent to an OTLP collector before the
  value was known is not revisited for pieces (the exporters look again only for whole
  values, ``masked_values.masked_batch``). Values holding line breaks are masked line by line
  (``secret_values``), not here. The other way round, a value that begins or ends with a
  common word (a person's ``password-2024``) masks that word at a text's edge too
  (``enter your [REDACTED]``): masking more than the secret is the safe side.

Cost: almost every text is dismissed by two look-ups of its first and last 8 characters among
the values' pieces of 8 (a set, while the values are short enough; else a search of the values
joined). Only then are the text's last and first characters (fewer than the longest value's
length) each tried by a binary search of the values in order (and of the values reversed),
and a text shorter than the longest value looked for in the values joined: a cost by the
text's edges and the values' length, not by the number of values times the text.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Container, Iterable, Sequence
from typing import Final

__all__ = ["MIN_PIECE_CHARS", "masked_pieces", "may_hold_pieces", "value_start"]

#: Characters a piece needs to be masked (as ``secret_values.MASK_MIN_CHARS``).
MIN_PIECE_CHARS: Final = 8

#: What is taken off a text's ends before its edges are looked at.
_AROUND: Final = " \t\r\n"


def value_start(text: str, values: Sequence[str], *, backwards: bool = False) -> int | None:
    """Where in ``text`` the longest proper start of one of ``values`` (one-line ones) that
    ends it begins, or None when no value's start ends it. ``backwards``: ``text`` and the
    values are read reversed (``text`` is then a reversed text: a value's end that starts it).

    Each place in ``text``'s last characters (fewer than the longest value's length) holding
    a value's first character is tried, by a binary search of the values in order: a cost by
    the length of the text's end, not by the number of values known."""
    ordered, firsts, longest = _ordered(values, backwards)
    if not ordered:
        return None
    for match in firsts.finditer(text, max(0, len(text) - longest + 1)):
        end = text[match.start() :]
        at = bisect.bisect_right(ordered, end)  # the first value after ``end`` itself
        if at < len(ordered) and ordered[at].startswith(end):
            return match.start()
    return None


def may_hold_pieces(texts: Iterable[str], values: Sequence[str]) -> bool:
    """False when no text of ``texts`` can hold a piece :func:`masked_pieces` masks: the
    same two look-ups per text, in one pass (a batch of a command's lines)."""
    joined, grams = _values_joined(values)
    edges: Container[str] = joined if grams is None else grams
    return any(
        text[-MIN_PIECE_CHARS:] in edges or text[:MIN_PIECE_CHARS] in edges
        for text in map(str.strip, texts)
    )


def masked_pieces(text: str, values: Sequence[str], replacement: str) -> str:
    """``text`` with a piece of one of ``values`` at its end, at its start or making it whole,
    of at least :data:`MIN_PIECE_CHARS` characters, replaced by ``replacement`` (module
    docstring); ``text`` itself when it holds none."""
    joined, grams = _values_joined(values)
    core = text.strip(_AROUND)
    # a piece of 8 characters or more at an edge has that edge's 8 characters in a value: two
    # look-ups (in the values' 8-character pieces, else in the values joined) dismiss almost
    # every text, before any other work
    if len(core) < MIN_PIECE_CHARS:
        return text
    edges: Container[str] = joined if grams is None else grams
    if core[-MIN_PIECE_CHARS:] not in edges and core[:MIN_PIECE_CHARS] not in edges:
        return text
    before = len(text) - len(text.lstrip(_AROUND))
    after = before + len(core)
    longest = _ordered(values, False)[2]
    if len(core) < longest and "\0" not in core and core in joined:
        return text[:before] + replacement + text[after:]
    end = value_start(core, values)
    head = core[: longest - 1][::-1]
    start = value_start(head, values, backwards=True)
    tail = 0 if end is None else len(core) - end  # the piece ending the text, its length
    lead = 0 if start is None else len(head) - start  # the piece starting it
    tail, lead = (n if n >= MIN_PIECE_CHARS else 0 for n in (tail, lead))
    if not (tail or lead):
        return text
    if lead + tail >= len(core):  # the two pieces meet: all of it
        return text[:before] + replacement + text[after:]
    shown = core[lead : len(core) - tail]
    return "".join(
        (text[:before], replacement * bool(lead), shown, replacement * bool(tail), text[after:])
    )


def _values_joined(values: Sequence[str]) -> tuple[str, frozenset[str] | None]:
    """``values`` of one line joined by NULs, and each of their pieces of
    :data:`MIN_PIECE_CHARS` characters (None when they hold more than
    :data:`_MAX_GRAMS_CHARS` characters: the values joined are searched instead), remembered
    for the last ``values`` given."""
    key, answer = _joined[0]
    if values is not key:
        lines = [value for value in values if "\n" not in value]
        joined = "\0".join(lines)
        grams = (
            frozenset(
                line[at : at + MIN_PIECE_CHARS]
                for line in lines
                for at in range(len(line) - MIN_PIECE_CHARS + 1)
            )
            if len(joined) <= _MAX_GRAMS_CHARS
            else None
        )
        answer = (joined, grams)
        _joined[0] = (values, answer)
    return answer


#: The values' characters up to which their pieces of 8 are kept as a set (a look-up per
#: text's edge instead of a search of the values joined); beyond, the set's memory is not
#: worth it.
_MAX_GRAMS_CHARS: Final = 1 << 16


_Ordered = tuple[tuple[str, ...], re.Pattern[str], int]

#: The values ``masked_pieces`` last looked at, and ``_values_joined``'s answer for them.
_joined: list[tuple[object, tuple[str, frozenset[str] | None]]] = [(None, ("", None))]

#: ``_ordered``'s last answers, forwards and backwards, each with the values it was for, a
#: pair replaced whole (the process's ``MASKED.values`` is replaced whole on each change:
#: the same tuple, the same values).
_last: dict[bool, tuple[object, _Ordered]] = {}


def _ordered(values: Sequence[str], backwards: bool) -> _Ordered:
    """``values`` of one line (reversed when ``backwards``), in order; a pattern of their
    first characters; the longest's length."""
    key, answer = _last.get(backwards, (None, None))
    if values is not key or answer is None:
        lines = [value for value in values if value and "\n" not in value]
        ordered = tuple(sorted(value[::-1] if backwards else value for value in lines))
        firsts = "".join(sorted({value[0] for value in ordered}))
        pattern = re.compile(f"[{re.escape(firsts)}]" if firsts else "(?!)")
        answer = (ordered, pattern, max(map(len, ordered), default=0))
        _last[backwards] = (values, answer)
    return answer
