"""Secrets found by the *shape* of a value in a text: the pattern ``redaction.redact_text``
replaces, what each match becomes, and the fast test that lets almost every text skip it.

The shapes: AWS access key ids, GitHub, GitLab and Slack tokens, JWTs, the API keys of other
common services (``token_shapes``), ``Bearer …`` credentials (and ``Basic …`` ones after an
``Authorization`` key), PEM private keys, the password of a URL's ``user:password@``, a secret
key word assigned a value in free text (``password=x``), and a secret option given its value
(``--token x``); the list and the reasons are in ``docs/redaction.md``.

* :func:`shapes` is the pattern, compiled on first use, and :func:`replace_shape` what one of
  its matches becomes (the key or scheme word kept, the secret :data:`REDACTED`);
* :func:`may_hold_secret` is False for a text that lacks every substring some shape needs;
* :func:`open_key_start` finds a PEM private key that lines leave open, for a capture that
  holds its lines back until the key is whole.

Pure and bounded: no OpenTelemetry import (the engine uses it), every pattern scans in linear
time (each token shape starts only where a run of its characters starts, and repeats are
possessive), so a hostile string costs a few passes over its length, never a backtracking blow-up.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import cache, lru_cache
from typing import Final

from taskdaemon.pipeline.masked_values import MASKED, holds_masked
from taskdaemon.pipeline.token_shapes import VENDOR_TOKEN_SHAPES, may_hold_vendor_token

__all__ = ["REDACTED", "may_hold_secret", "open_key_start", "replace_shape", "shapes"]

#: What a secret is replaced by, wherever it is redacted.
REDACTED: Final = "[REDACTED]"

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
def shapes() -> re.Pattern[str]:
    """The value shapes, compiled on first use: start-up that a command which never meets a
    candidate secret (``runs list``, ``dag``) does not pay (benchmarks/README.md, "Fifth pass:
    records without `dataclasses`, fewer imports for `runs`, patterns on first use")."""
    return re.compile(_SHAPES_PATTERN)


def replace_shape(match: re.Match[str]) -> str:
    """What one match of :func:`shapes` becomes: the secret :data:`REDACTED`, the key, the
    option or the scheme word before it kept."""
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


def may_hold_secret(text: str) -> bool:
    """False when ``text`` lacks every substring some shape needs: plain substring tests, a
    few times faster than the full pattern, which almost every recorded string then skips.

    First, one pass over the characters: a text holding none of ``_GATE_CHARS`` (most stage
    names, execution ids, trigger descriptions) holds no shape and skips the dozen tests.
    Then each substring test; where a cheaper test is implied by it, that one first: a text
    holds a substring only if it holds each of its characters (``"A"`` before the four AWS
    prefixes, ``"J"`` before ``eyJ``: one ``memchr`` pass each, where a multi-character search
    of a long text, the run span's definition, takes tens of times longer). The lower case is
    made once. Values known as secrets (``secret_values.remember_secrets``) are looked for first."""
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
    until a later read closes it, so ``redaction.redact_lines`` sees the key whole wherever the
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
