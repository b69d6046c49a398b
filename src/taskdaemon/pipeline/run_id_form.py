"""What a run id looks like, before anyone looks it up.

A run id is its run span's trace id: 32 hex digits. Readers of a span source also take a
prefix of at least 4 (as ``git`` takes a commit's). :func:`run_id_problem` is the one rule and
the one message for a text that cannot be either: the HTTP server's request check refuses such
a path (``http_answers``, 400), the span store such an argument (``tracking/store``) and the
other span sources a text that is not a whole id (``tracking/run_filter``: they resolve no
prefix) with the same words, so they cannot drift apart.

It imports nothing beyond ``typing`` and ``ellipsis`` (which quotes the refused text as every
refusal is quoted): the server loads it at start-up, and the store's sqlite must not come with
it.
"""

from __future__ import annotations

from typing import Final

from taskdaemon.pipeline.quoting import quote

__all__ = ["MIN_PREFIX", "RUN_ID_DIGITS", "run_id_problem"]

#: Hex digits in a full run id (a 128-bit trace id).
RUN_ID_DIGITS: Final = 32
#: The shortest prefix a span source resolves to a run.
MIN_PREFIX: Final = 4
_HEX: Final = frozenset("0123456789abcdefABCDEF")


def run_id_problem(text: str, *, full: bool = False) -> str | None:
    """None when ``text`` can name a run (``full``: only the whole id, else a prefix of at
    least :data:`MIN_PREFIX` digits too), else the one-line reason, quoting at most 40
    characters of it. The text is taken as given: a caller that forgives blanks strips first.
    """
    shortest = RUN_ID_DIGITS if full else MIN_PREFIX
    if shortest <= len(text) <= RUN_ID_DIGITS and all(c in _HEX for c in text):
        return None
    rule = f"{RUN_ID_DIGITS} hex digits"
    if not full:
        rule += f", or a prefix of at least {MIN_PREFIX}"
    return f"not a run id ({rule}): {quote(text)}"
