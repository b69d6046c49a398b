"""How a message a person reads quotes what they wrote: a name, a value, a command, a CEL
expression. One rule for every error and warning (:func:`quote` applies it, redacted and cut
within ``QUOTED`` characters); machine formats (``--json``, the HTTP API) keep their own
encodings.

* **In single quotes, exactly as written**, when that is unambiguous: the text has no single
  quote and nothing that must be escaped: ``'build'``, ``'echo "hi"'``, ``'C:\\tmp'``. A
  backslash is then a backslash: nothing between single quotes is an escape.
* **Otherwise as a JSON string**, in double quotes: ``"it's"``, ``"a\\nb"``, ``"say \\"it's\\""``.
  JSON's escapes are the ones most readers know (and a value can be pasted back into a JSON or
  YAML file, or a CEL expression, as it is); beyond JSON, the characters a terminal would act
  on or hide (every character Python does not call printable: C1 controls, DEL, the
  bidirectional and zero-width characters ``terminal_text`` names, a no-break space) are
  escaped too, as ``\\u009b``, ``\\u202e``. So the result is one line,
  safe to print, and either quote style tells how to read it.

Python's ``repr``, which the messages used before, doubles every backslash (``'\\\\n'``) and
escapes a quote with a backslash when the text holds both kinds (``'it\\'s'``), which reads
badly in a terminal and is neither shell's nor JSON's quoting. A shell command is quoted as
any value: it is a string ``/bin/sh -c`` reads, not an argument list, so shell quoting would
add a layer of quotes the user never wrote.
"""

from __future__ import annotations

import json

from taskdaemon.pipeline.ellipsis import cut

__all__ = ["QUOTED", "REDACTED_WINDOW", "quote", "quote_value", "quoted"]

#: Characters of a refused text an error message quotes: enough to recognise it, never the
#: text itself at length (a 16 KiB header, a 1 MiB body field sent back to its sender).
QUOTED = 40


def quoted(text: str) -> str:
    """``text`` quoted by the module's rule: ``'text'`` as written, else a JSON string."""
    if "'" not in text and text.isprintable():
        return f"'{text}'"
    return "".join(map(_shown, json.dumps(text, ensure_ascii=False)))


def _shown(char: str) -> str:
    """``char`` of a JSON string, or JSON's escape for one a terminal would act on or hide
    (``str.isprintable``: controls, format characters, separators but the space)."""
    if char.isprintable():
        return char
    code = ord(char)
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    code -= 0x10000  # JSON writes a character past the BMP as its UTF-16 surrogate pair
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"


#: Characters of a text :func:`quote` redacts before it cuts: far more than it shows, so a
#: secret that starts in the part shown is found whole (a PEM private key is a few KiB), yet
#: bounded, since redacting costs time with every character and a refused text may be a
#: 1 MiB field of a request body.
REDACTED_WINDOW = 64 * 1024


def _redacted_cut(text: str, limit: int) -> str:
    """``text`` with its secrets redacted (``redaction.redact_text``), then cut as by
    :func:`cut`. Redacted before the cut: a secret cut short is no longer found, and its first
    characters would be shown. Only the first ``REDACTED_WINDOW`` characters are redacted: the
    rest is never shown."""
    from taskdaemon.pipeline.redaction import redact_text  # noqa: PLC0415 - errors only

    return cut(redact_text(text[: max(limit, REDACTED_WINDOW)]), limit)


def quote(text: str, limit: int = QUOTED) -> str:
    """``text`` redacted and cut, then quoted as :func:`quoted` quotes it: how an error
    names what it refused (``unknown status 'runing'``, ``"it's"``)."""
    return quoted(_redacted_cut(text, limit))


def quote_value(value: object) -> str:
    """A refused value of any type (or one reported, as what a condition gave): a text as
    :func:`quote` quotes it, anything else by its ``repr``, redacted and cut alike (``True``
    and ``-5`` as they are, a long list cut short)."""
    return quote(value) if isinstance(value, str) else _redacted_cut(repr(value), QUOTED)
