"""Text cut to a length, its last character an ellipsis: the one rule every bounded message,
label and cell of taskdaemon follows, so that a cut reads the same everywhere."""

from __future__ import annotations

#: Characters of a refused text an error message quotes: enough to recognise it, never the
#: text itself at length (a 16 KiB header, a 1 MiB body field sent back to its sender).
QUOTED = 40


def cut(text: str, limit: int) -> str:
    """``text`` if it has at most ``limit`` characters, else its first ``limit - 1`` and ``…``.

    The result never exceeds ``limit`` characters (``limit`` at least 1).
    """
    return text if len(text) <= limit else text[: limit - 1] + "…"


def cut_start(text: str, limit: int) -> str:
    """``text`` if it has at most ``limit`` characters, else ``…`` and its last
    ``limit - 1``: for a path, whose end names what it is (the folder refused), not its
    start (``/home/…``)."""
    return text if len(text) <= limit else "…" + text[len(text) - limit + 1 :]


def cut_line(text: str, limit: int) -> str:
    """``text`` on one line (every run of whitespace, line breaks included, one space), then
    cut as by :func:`cut`."""
    return cut(" ".join(text.split()), limit)


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
    """``text`` redacted and cut, then quoted as ``quoting.quoted`` quotes it: how an error
    names what it refused (``unknown status 'runing'``, ``"it's"``)."""
    from taskdaemon.pipeline.quoting import quoted  # noqa: PLC0415 - errors only

    return quoted(_redacted_cut(text, limit))


def quote_value(value: object) -> str:
    """A refused value of any type (or one reported, as what a condition gave): a text as
    :func:`quote` quotes it, anything else by its ``repr``, redacted and cut alike (``True``
    and ``-5`` as they are, a long list cut short)."""
    return quote(value) if isinstance(value, str) else _redacted_cut(repr(value), QUOTED)
