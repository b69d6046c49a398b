"""Redaction of secrets: by the key they sit under and by the shape of the value.

Two public functions, used wherever taskdaemon records a value (span attributes and events,
error messages, log records, captured payloads, command lines, ``/api`` and every output
format); the list and the reasons are in ``docs/redaction.md``:

* :func:`redact_text` replaces secrets found by their *shape* in a string: AWS access key ids,
  GitHub, GitLab and Slack tokens, JWTs, ``Bearer …`` credentials (and ``Basic …`` ones after
  an ``Authorization`` key), PEM private keys, and the password of a URL's ``user:password@``;
* :func:`redact` walks a structure (mappings, lists, tuples): a value under a *secret key* is
  replaced whole, every string is passed through :func:`redact_text`.

A key is secret when one of the key patterns matches a *word* of it, or a run of consecutive
words (joined by ``_`` or by nothing), case-insensitively and in full: keys are split on ``_``,
``-``, ``.``, spaces and camelCase boundaries, so ``session_cookie``, ``sessionToken``,
``X-Api-Key`` and ``db_password`` are secret, while ``passed``, ``tokenizer`` and ``passage``
are not (no word of theirs is a secret word). A word that glues a name to ``password``,
``passwd`` or ``passphrase`` (``PGPASSWORD``) is secret, and ``sshpass`` and ``dbpass`` are:
``pass`` alone or ending another word is mostly a test's verdict or ``bypass`` (measured in
docs/redaction.md, "Secret keys"). The patterns are regular expressions, so
``TASKDAEMON_REDACT_PATTERNS`` takes the same form as :data:`DEFAULT_REDACT_PATTERNS`.

Pure and bounded: no OpenTelemetry import (the engine uses it), every pattern scans in linear
time (each token shape starts only where a run of its characters starts, and repeats are
possessive), so a hostile string costs a few passes over its length, never a backtracking blow-up.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Mapping, Sequence
from functools import cache, lru_cache
from typing import Any, Final

from taskdaemon.pipeline.masked_values import MASKED, holds_masked, masked_text
from taskdaemon.pipeline.token_shapes import VENDOR_TOKEN_SHAPES, may_hold_vendor_token

__all__ = [
    "CLEAN_TEXTS",
    "DEFAULT_REDACT_PATTERNS",
    "REDACTED",
    "KeyMatcher",
    "mappings_unchanged",
    "open_key_start",
    "redact",
    "redact_endpoint_passwords",
    "redact_lines",
    "redact_text",
    "redact_texts",
    "secret_spans",
]

REDACTED: Final = "[REDACTED]"

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

# --- keys ------------------------------------------------------------------------------------

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


_DEFAULT_MATCHER: Final = key_matcher()

# --- values ----------------------------------------------------------------------------------

# Each token shape starts only where a run of its own characters starts (the lookbehinds), so a
# long run is scanned once from its start, never again from each of its positions.
_TOKEN_SHAPES: Final = "|".join(
    (
        # AWS access key ids: long-term (AKIA), temporary (ASIA) and service-specific ones. The
        # other prefixes (AIDA, AROA...) name users and roles: identifiers, not credentials.
        r"(?<![A-Za-z0-9])(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}(?![A-Za-z0-9])",
        # GitHub: classic (ghp_, gho_, ghu_, ghs_, ghr_) and fine-grained personal tokens.
        r"(?<![A-Za-z0-9_])(?:gh[pousr]_[A-Za-z0-9]{36,255}+|github_pat_[A-Za-z0-9_]{22,255}+)",
        # GitLab: personal, pipeline trigger, deploy, runner, CI job, feed... tokens.
        r"(?<![A-Za-z0-9_-])gl(?:pat|ptt|dt|rt|cbt|imt|soat|ft|oas|agent)-[A-Za-z0-9_-]{20,255}+",
        # Slack: bot, user, app-level and configuration tokens.
        r"(?<![A-Za-z0-9-])(?:xox[abposre]|xapp)-[A-Za-z0-9-]{10,255}+",
        # JWT (JWS compact form): base64url JSON header and payload, then the signature.
        r"(?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]{5,}+\.eyJ[A-Za-z0-9_-]{5,}+\.[A-Za-z0-9_-]*+",
        VENDOR_TOKEN_SHAPES,  # Stripe, sk- keys, Google, npm, PyPI, Hugging Face
    )
)
_CREDENTIAL_CHARS: Final = r"A-Za-z0-9\-._~+/"
#: The default key words, as they are spelled when assigned in free text.
_ASSIGNED_KEYS: Final = (
    r"[a-z0-9]*pass(?:words?|wd|phrases?)|pwd|(?:ssh|db)[_-]?pass|secrets?|tokens?|api[_-]?keys?"
    r"|apikeys?|authori[sz]ation|credentials?|private[_-]?keys?|cookies?|sessions?|dsn"
)
#: One of these is in every ``_ASSIGNED_KEYS`` match, in some case. ASCII text (nearly every
#: recorded string) is tested with ``in`` on its lower case: an IGNORECASE alternation costs
#: several times more on every string holding ``:`` or ``=`` (trigger specs, URLs, JSON). Other
#: text keeps the regular expression, whose case rules are the full pattern's own: ``str``
#: case mappings differ for a few letters (``"İ".lower()`` is two characters).
_ASSIGNED_HINTS: Final = (
    "pass",
    "pwd",
    "secret",
    "token",
    "key",
    "auth",
    "credential",
    "cookie",
    "session",
    "dsn",
)


#: One of these is in every ``_OPTION_KEYS`` match, in some case (tested as
#: ``_ASSIGNED_HINTS`` are): the option's last word and the blank after it, so that words
#: such as ``monkey-patched`` and ``token-bucket`` do not send a text to the full pattern.
_OPTION_HINTS: Final = tuple(
    f"{word}{blank}"
    for word in ("password", "passphrase", "passin", "passout", "token", "secret", "key")
    for blank in " \t"
)


@cache
def _hint_pattern(hints: tuple[str, ...]) -> re.Pattern[str]:
    return re.compile("|".join(hints), re.IGNORECASE)


#: A secret's value after its key: quoted, also with JSON-escaped quotes (``\"api_key\": \"x\"``
#: in a recorded definition or payload, which is JSON text); or bare, up to a space or a
#: separator, and never taking the backslash of an escaped quote (the JSON text stays JSON).
#: A quoted value is taken to its closing quote past the quotes escaped in it (``"a\"b"``, as
#: JSON and ``repr`` write a value holding one), else, a value that ends with a backslash, to
#: the first quote. "Bearer" or "Basic" as the value is no value: the bearer shape takes a
#: Bearer credential, and the assignment keeps "Basic" with its key.
_VALUE: Final = (
    r"\\\"(?:[^\"\\\n]|\\[^\"\n])*+\\\"|\"(?:[^\"\\\n]|\\.)*+\"|\"[^\"\n]*+\""
    r"|'(?:[^'\\\n]|\\.)*+'|'[^'\n]*+'"
    r"|(?!(?i:bearer|basic)\s)(?:[^\s\"',;&}\\]|\\(?![\"']))++"
)
#: The last word of an option whose value a space parts from it (``--db-password x``): the
#: singular words whose option takes the secret itself (gpg's ``--passphrase``, openssl's
#: ``-passin pass:x`` and ``-passout``, whose value names the password or where to read it).
#: Not ``session``, ``cookie``, ``credentials``, ``private-key`` (their options take a name or
#: a file: ``--session``, ``--cookie jar.txt``, ``--private-key id.pem``), nor plurals
#: (``--update-secrets K=V``), nor ``pass`` (ffmpeg's ``-pass 2`` is an encoding pass).
_OPTION_KEYS: Final = r"password|passphrase|passin|passout|token|secret|api[_-]?key|apikey"
#: Words that follow an option named in prose (``--password is ignored``, ``the --token
#: option``): never taken for its value (docs/redaction.md, "Secret values").
_PROSE_WORDS: Final = (
    r"a|an|the|is|are|was|were|be|been|and|or|not|no|to|of|for|on|in|at|as|by|via|with|from"
    r"|if|when|can|could|will|would|may|must|should|only|also|then|than|that|this|it"
    r"|option|options|flag|flags|argument|arguments|parameter|parameters|value|values"
    r"|requires|required|given|set|instead|prompt|prompts"
)

_SHAPES_PATTERN: Final = (
    rf"(?P<token>{_TOKEN_SHAPES})"
    # "Bearer <credential>" (RFC 6750): the word stays, the credential goes. A credential has a
    # digit or symbol in its first 20 characters, or is 20 long: prose ("Bearer authentication")
    # is left alone.
    rf"|(?P<bearer>(?<![A-Za-z0-9])[Bb][Ee][Aa][Rr][Ee][Rr]\s+)"
    rf"(?:(?=[{_CREDENTIAL_CHARS}]{{0,19}}[0-9\-._~+/])[{_CREDENTIAL_CHARS}]{{8,}}+|[{_CREDENTIAL_CHARS}]{{20,}}+)=*+"
    # PEM private keys, to their END line; a cut one (no END) to the end of its base64 body.
    r"|(?P<pem>-----BEGIN[A-Z0-9 ]{0,40} PRIVATE KEY-----"
    r"(?:(?s:.*?)-----END[A-Z0-9 ]{0,40} PRIVATE KEY-----|[A-Za-z0-9+/=\s\\:,-]*+))"
    # The password of scheme://user:password@host (the user and the host stay).
    r"|(?P<url>(?<![A-Za-z0-9+.\-])[A-Za-z][A-Za-z0-9+.\-]{0,31}://[^\s/?#@:\"'<>]*+:)"
    r"[^\s/?#\"'<>]+@"
    # A secret key word assigned in free text: password=x, DB_PASSWORD: x, "api_key": "x" (a
    # command's output, an error message), or compared with a literal, which is then the
    # secret: api_key == "x", token != 'x' (a CEL condition, a breakpoint's ``when``). The key
    # stays; "Bearer" as the value is left for the bearer shape, which keeps the scheme word and
    # takes the credential; "Basic" (RFC 7617: ``Authorization: Basic dXNl…``, what ``curl -v``
    # prints) is kept with the key, and the credential after it taken. Only the start of a
    # whole key may begin a match, so a long a_b_c_... run is scanned once: after no key
    # character, or after the one or two dashes that open a command-line option (--password=x,
    # -Ddb.password=x), which only a space, a quote or the text's start may precede. A key that
    # ends a path (after ``/`` or ``\``) is assigned with ``:`` only to a quoted value:
    # ``/etc/passwd: no such file`` and ``open ~/.secrets/token: permission denied`` are a
    # program naming a file and its error.
    r"|(?P<assign>(?:(?P<path>(?<=[/\\]))|(?<![A-Za-z0-9_./\\-])|(?<=(?<![^\s\"'])--)"
    r"|(?<=(?<![^\s\"'])-))"
    rf"(?:[A-Za-z0-9]++[_.-])*(?i:{_ASSIGNED_KEYS})"
    r"(?:[_.-][A-Za-z0-9]++)*+(?:\\?[\"'])?\s*+(?:[:!]?=++|:(?(path)(?=\s*+\\?[\"'])))\s*+"
    r"(?:(?i:basic)[ \t]++)?+)"
    rf"(?P<assigned>{_VALUE})"
    # A secret option given its value after a space (``mysql --password hunter2``, ``curl
    # --api-key k``): only an option whose last word is one of ``_OPTION_KEYS`` (not
    # ``--password-file``, ``--session``), opened by one or two dashes after a space, a quote or
    # the text's start; a value that starts with a dash is the next option, and a prose word
    # (``--password is required``) no value (docs/redaction.md, "Secret values"). The dash
    # comes first: at any other character the alternative fails at once. The option's dashes
    # are in its group, which the replacement keeps.
    r"|(?P<option>-(?<=(?<![^\s\"'])-)-?"
    rf"(?:[A-Za-z0-9]++[_.-])*(?i:{_OPTION_KEYS})[ \t]++)"
    rf"(?P<optval>(?!-|(?i:{_PROSE_WORDS})(?![A-Za-z0-9_/+=-]))(?:{_VALUE}))"
)


@lru_cache(maxsize=1)
def _shapes() -> re.Pattern[str]:
    """The value shapes, compiled on first use: start-up that a command which never meets a
    candidate secret (``runs list``, ``dag``) does not pay (benchmarks/README.md, "Fifth pass:
    records without `dataclasses`, fewer imports for `runs`, patterns on first use")."""
    return re.compile(_SHAPES_PATTERN)


def _replace(match: re.Match[str]) -> str:
    kind = match.lastgroup
    if kind == "bearer":
        return f"{match['bearer']}{REDACTED}"
    if kind == "url":
        return f"{match['url']}{REDACTED}@"
    if kind == "assigned":  # the value group ends the match, so it is the last group
        quote = match["assigned"][0]
        if quote == "\\":  # a JSON-escaped quote
            return f'{match["assign"]}\\"{REDACTED}\\"'
        if quote in "\"'":
            return f"{match['assign']}{quote}{REDACTED}{quote}"
        return f"{match['assign']}{REDACTED}"
    if kind == "optval":  # the value group ends the match, as above
        quote = match["optval"][0]
        if quote == "\\":
            return f'{match["option"]}\\"{REDACTED}\\"'
        if quote in "\"'":
            return f"{match['option']}{quote}{REDACTED}{quote}"
        return f"{match['option']}{REDACTED}"
    return REDACTED


def _may_hold_secret(text: str) -> bool:
    """False when ``text`` lacks every substring some shape needs: plain substring tests, a
    few times faster than the full pattern, which almost every recorded string then skips.

    First, one pass over the characters: a text holding none of ``_GATE_CHARS`` (most stage
    names, execution ids, trigger descriptions) holds no shape and skips the dozen tests.
    Then each substring test; where a cheaper test is implied by it, that one first: a text
    holds a substring only if it holds each of its characters (``"A"`` before the four AWS
    prefixes, ``"J"`` before ``eyJ``: one ``memchr`` pass each, where a multi-character search
    of a long text, the run span's definition, takes tens of times longer). The lower case is
    made once. Values known as secrets (:func:`remember_secrets`) are looked for first."""
    if MASKED.needles and holds_masked(text):
        return True
    if _GATE_CHARS.isdisjoint(text):
        return False
    if (
        ("@" in text and "://" in text)
        or "-----" in text
        or ("J" in text and "eyJ" in text)
        or ("_" in text and ("gh" in text or "github_pat_" in text))
        or ("-" in text and ("gl" in text or "xox" in text or "xapp" in text))
        or ("A" in text and ("AKIA" in text or "ASIA" in text or "ABIA" in text or "ACCA" in text))
        or may_hold_vendor_token(text)
    ):
        return True
    # The bearer shape takes the word in any casing ("BeArEr"); str.lower maps each ASCII
    # letter to its lower case in place, whatever surrounds it.
    lowered = text.lower()
    return (
        "bearer" in lowered
        or (("=" in text or ":" in text) and _has_hint(text, lowered, _ASSIGNED_HINTS))
        # Every option hint ends with a blank: a text without one (a definition's JSON, a list
        # of names) skips their fourteen scans for two single-character ones.
        or (
            "-" in text
            and (" " in text or "\t" in text)
            and _has_hint(text, lowered, _OPTION_HINTS)
        )
    )


#: A character every shape's match holds at least one of: ``A`` (AWS key ids: AKIA, ASIA,
#: ABIA, ACCA), ``_`` (GitHub: gh?_, github_pat_), ``-`` (GitLab and Slack tokens, PEM keys),
#: ``J`` (JWTs: eyJ), ``b`` or ``B`` (Bearer, in any casing), ``@`` and ``:`` (URL passwords),
#: ``:`` or ``=`` (assignments), ``-`` (an option and its value: ``--token x``). Exact: the
#: gate never skips a text a shape can match.
_GATE_CHARS: Final = frozenset("A_-JbB@:=")


def _has_hint(text: str, lowered: str, hints: tuple[str, ...]) -> bool:
    """Whether ``text`` (``lowered`` is its lower case) holds one of ``hints``."""
    if text.isascii():
        for hint in hints:  # noqa: SIM110 - no generator frame per hint
            if hint in lowered:
                return True
        return False
    return _hint_pattern(hints).search(text) is not None


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
    """``text`` with every masked value replaced (``text`` itself when none is in it)."""
    if not holds_masked(text):  # a search per value, not per form
        return text
    return masked_text(text, MASKED.values, REDACTED)


def secret_spans(text: str) -> list[tuple[int, int]]:
    """Where ``text`` holds a secret :func:`redact_text` would replace, as ``(start, end)``
    pairs, which may overlap: each shape's whole match (the key of ``password=x`` too, so a
    cut kept clear of it keeps the key beside its value) and each value known as a secret."""
    spans = [match.span() for match in _shapes().finditer(text)] if _may_hold_secret(text) else []
    for value in MASKED.values:
        at = text.find(value)
        while at >= 0:
            spans.append((at, at + len(value)))
            at = text.find(value, at + 1)
    return spans


def redact_text(text: str) -> str:
    """``text`` with every secret of a known shape replaced by ``[REDACTED]`` (``text`` itself
    when it has none)."""
    if text in _clean:
        return text
    if _may_hold_secret(text):
        shapes = _shapes()
        if shapes.search(text) is not None:
            redacted = shapes.sub(_replace, text)
            return _mask(redacted) if MASKED.values else redacted
        if MASKED.values:
            masked = _mask(text)
            if masked is not text:
                return masked
    if len(text) <= _CLEAN_MAX_CHARS:
        if len(_clean) >= _CLEAN_MAX_ENTRIES:
            _clean.clear()
        _clean.add(text)
    return text


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
    if not texts or not _may_hold_secret("\n".join(texts)):
        return texts
    return [redact_text(text) for text in texts]


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
    ``[REDACTED]`` and as many line breaks: the lines it spanned keep what was around it."""
    if not lines:
        return lines
    joined = "\n".join(lines)
    if not _may_hold_secret(joined):
        return lines
    across = [value for value in MASKED.across_lines if value in joined]
    if across:
        for value in across:
            joined = joined.replace(value, REDACTED + "\n" * value.count("\n"))
        lines = joined.split("\n")
    if "-----BEGIN" not in joined:
        return [redact_text(line) for line in lines]
    matches = list(_shapes().finditer(joined))
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
            pieces += (joined[at : match.start()], _replace(match))
            at = match.end()
        out.append("".join(pieces) + joined[at:end] if pieces else line)
        start = end + 1
    return [_mask(line) for line in out] if MASKED.values else out


# A PEM private key's BEGIN and END markers and its body's characters, as the ``pem`` shape of
# ``_SHAPES_PATTERN`` has them.
_KEY_BEGIN: Final = re.compile(r"-----BEGIN[A-Z0-9 ]{0,40} PRIVATE KEY-----")
_KEY_END: Final = re.compile(r"-----END[A-Z0-9 ]{0,40} PRIVATE KEY-----")
_KEY_BODY: Final = re.compile(r"[A-Za-z0-9+/=\s\\:,-]*+")


def open_key_start(lines: Sequence[str]) -> int | None:
    """The index of the line where a PEM private key begins that ``lines`` (consecutive lines
    of one text) leave open: its BEGIN marker, then only a key body's characters to the last
    line, and no END marker. None when no key is open at the end.

    For a command's output read a piece at a time: the capture holds an open key's lines back
    until a later read closes it, so :func:`redact_lines` sees the key whole wherever the
    pipe's reads cut it."""
    for index in range(len(lines) - 1, -1, -1):
        line = lines[index]
        if "-----" in line:
            if _KEY_END.search(line):
                return None
            begins = list(_KEY_BEGIN.finditer(line))
            if begins:
                return index if _KEY_BODY.fullmatch(line, begins[-1].end()) else None
        if not _KEY_BODY.fullmatch(line):
            return None
    return None


def mappings_unchanged(mappings: Iterable[Mapping[Any, Any]]) -> bool:
    """Whether :func:`redact` (default patterns) returns each of ``mappings`` itself, decided
    with one pre-check of all their texts: True only for flat mappings (text keys; values
    texts, numbers, bools, None, bytes, or lists and tuples of those) whose keys name no
    secret and whose texts, joined, hold no hint of a secret's shape (``_may_hold_secret``).
    False means "not shown", not "holds a secret".

    For many mappings recorded as they are once decided (a definition's stage attributes,
    ``monitor/_books.py``): a text seen for the first time costs a dozen substring tests and
    a memo insert, mostly call overhead for a short text; one pass of each test over the
    joined texts costs a fraction of that.

    Exact, because every test of ``_may_hold_secret`` holds for the joined text when it holds
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
    return not _may_hold_secret("\n".join(texts))


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
