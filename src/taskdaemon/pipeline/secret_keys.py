"""Which keys name secrets: the values under them are redacted whole (``redaction.redact``).

A key is secret when one of the key patterns matches a *word* of it, or a run of consecutive
words (joined by ``_`` or by nothing), case-insensitively and in full: keys are split on ``_``,
``-``, ``.``, spaces and camelCase boundaries, so ``session_cookie``, ``sessionToken``,
``X-Api-Key`` and ``db_password`` are secret, while ``passed``, ``tokenizer`` and ``passage``
are not (no word of theirs is a secret word). A word that glues a name to ``password``,
``passwd`` or ``passphrase`` (``PGPASSWORD``) is secret, and ``sshpass`` and ``dbpass`` are:
``pass`` alone or ending another word is mostly a test's verdict or ``bypass`` (measured in
docs/redaction.md, "Secret keys"). The patterns are regular expressions, so
``TASKDAEMON_REDACT_PATTERNS`` takes the same form as :data:`DEFAULT_REDACT_PATTERNS`.

Pure: no OpenTelemetry import (the engine uses it), and no other taskdaemon module.
"""

from __future__ import annotations

import re
from functools import cache, lru_cache
from typing import Final

__all__ = ["DEFAULT_REDACT_PATTERNS", "KeyMatcher", "key_matcher", "key_words"]

#: Key words whose values are secrets (regular expressions matched in full, case-insensitively,
#: against a word of a key or a run of its words; see the module docstring).
DEFAULT_REDACT_PATTERNS: tuple[str, ...] = (
    r"[a-z0-9]*pass(?:words?|wd|phrases?)",
    r"pwd",
    r"(?:ssh|db)pass",
    r"secrets?",
    r"tokens?",
    r"api_?keys?",
    r"authori[sz]ation",
    r"credentials?",
    r"private_?keys?",
    r"cookies?",
    r"sessions?",
    r"bearer",
    r"dsn",
)

_MAX_RUN: Final = 3  # longest run of words a pattern is tried on (private_key_id: 3)


# Patterns are compiled on first use: the reading commands import this module, and most of
# their invocations redact nothing (``benchmarks/README.md``, "CLI start-up", fifth pass).
@cache
def _key_splitters() -> tuple[re.Pattern[str], re.Pattern[str]]:
    return re.compile(r"[^A-Za-z0-9]+"), re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")


@cache
def _digit_runs() -> re.Pattern[str]:
    return re.compile(r"[0-9]+")


def key_words(key: str) -> list[str]:
    """The lowercase words of a key (``"X-Api-Key"`` → ``["x", "api", "key"]``)."""
    parts, words = _key_splitters()
    return [word.lower() for part in parts.split(key) for word in words.findall(part)]


#: The most verdicts a :class:`KeyMatcher` remembers, in each of its two memories.
_REMEMBERED: Final = 10_000


class KeyMatcher:
    """Decides which keys are secret, for one list of patterns (remembering its verdicts).

    The default patterns hold no digit and match a digit only in ``[a-z0-9]*``, so under them
    a key's verdict does not depend on which digits it has: ``item_1`` and ``item_2`` are one
    decision, remembered by the key's shape (its digit runs as ``0``). A result of a million
    keys ``k0`` ... ``k999999`` was a million decisions of ~10 patterns each on the engine's
    loop, where the secret scan runs, and the next stage's timeout paid for them. Other
    pattern lists are decided key by key: a pattern may name digits."""

    __slots__ = ("_pattern", "_shapes", "_source", "decided")

    def __init__(self, patterns: tuple[str, ...] = DEFAULT_REDACT_PATTERNS) -> None:
        self._source = "|".join(f"(?:{p})" for p in patterns) if patterns else None
        self._pattern: re.Pattern[str] | None = None  # compiled at the first key decided
        #: The verdicts so far, by key (read directly by ``redact``'s walk, then call).
        self.decided: dict[str, bool] = {}
        #: The verdicts by shape, when the patterns are the default ones; else None.
        self._shapes: dict[str, bool] | None = {} if patterns == DEFAULT_REDACT_PATTERNS else None

    def __call__(self, key: str) -> bool:
        """True when ``key`` names a secret."""
        decided = self.decided.get(key)
        if decided is None:
            shapes = self._shapes
            if shapes is None:
                decided = self._decide(key)
            else:
                shape = _digit_runs().sub("0", key)
                decided = shapes.get(shape)
                if decided is None:
                    decided = self._decide(shape)
                    if len(shapes) < _REMEMBERED:
                        shapes[shape] = decided
            if len(self.decided) < _REMEMBERED:  # keys repeat across payloads; few are distinct
                self.decided[key] = decided
        return decided

    def _decide(self, key: str) -> bool:
        if self._source is None:
            return False
        pattern = self._pattern
        if pattern is None:
            pattern = self._pattern = re.compile(self._source, re.IGNORECASE)
        words = key_words(key)
        for start in range(len(words)):
            for end in range(start + 1, min(len(words), start + _MAX_RUN) + 1):
                run = words[start:end]
                if pattern.fullmatch("_".join(run)) or (
                    len(run) > 1 and pattern.fullmatch("".join(run))
                ):
                    return True
        return False


@lru_cache(maxsize=32)
def key_matcher(patterns: tuple[str, ...] = DEFAULT_REDACT_PATTERNS) -> KeyMatcher:
    """The shared matcher of a pattern list."""
    return KeyMatcher(patterns)
