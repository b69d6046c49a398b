"""Text from a run, made safe to print on a terminal.

A stage's error, a skip reason, a command's output line: a handler's code or a command's
output chose that text. Printed as it is, an escape sequence in it drives the reader's
terminal: it can clear the screen, set the window's title, or, on some terminals, write the
clipboard (OSC 52). So every command that prints such text shows the C0 and C1 control
characters and DEL as visible escapes (``\\x1b``), the bidirectional controls that would
reorder the rest of a line (``\\u202e``), and the zero-width characters that would hide in it
(``\\u200b``). The logs' one-line format
(``logs.escape_controls``) builds on the same table, and escapes line breaks and tabs too.
JSON printed to a terminal (``dag -f json``, ``logs --json``, the JSON log format) has its C0
controls escaped by the encoder already; :func:`json_shown` escapes the rest, as JSON
escapes, so the value read back is the same.
"""

from __future__ import annotations

import re
from typing import Final

from taskdaemon.pipeline.table_fit import cut_columns

__all__ = [
    "BIDI_ESCAPES",
    "CONTROL_ESCAPES",
    "INVISIBLE_ESCAPES",
    "UNSEEN_ESCAPES",
    "json_shown",
    "one_line",
    "shown",
]

#: ``str.translate`` tables: each bidirectional embedding, override and isolate (U+202A-202E,
#: U+2066-2069) as ``\\uNNNN`` (those reorder the rest of the line they are on, so an error
#: ending in U+202E would show the columns printed after it reversed: the "Trojan Source"
#: spoof; the web page escapes them too), and with them each C0 and C1 control and DEL, as
#: its ``\\xNN`` escape.
BIDI_ESCAPES: Final = {
    code: f"\\u{code:04x}" for code in (*range(0x202A, 0x202F), *range(0x2066, 0x206A))
}
#: Zero-width and other invisible format characters as ``\\uNNNN``: U+200B-200F (zero-width
#: space, non-joiner, joiner, the left-to-right and right-to-left marks), U+2060-2064 (word
#: joiner, invisible operators), U+FEFF (zero-width no-break space), U+061C (Arabic letter
#: mark), U+180E (Mongolian vowel separator). Printed, they are nothing to see, yet make
#: ``pass\u200bword`` differ from ``password`` and hide in a name one copies. The joiner
#: goes too, though it also joins emoji: an error is read for what it says.
INVISIBLE_ESCAPES: Final = {
    code: f"\\u{code:04x}"
    for code in (*range(0x200B, 0x2010), *range(0x2060, 0x2065), 0xFEFF, 0x061C, 0x180E)
}
#: Every character that :data:`CONTROL_ESCAPES` writes as a ``\\u`` escape: what the web
#: page escapes too.
UNSEEN_ESCAPES: Final = BIDI_ESCAPES | INVISIBLE_ESCAPES
CONTROL_ESCAPES: Final = {
    code: f"\\x{code:02x}" for code in (*range(0x20), 0x7F, *range(0x80, 0xA0))
} | UNSEEN_ESCAPES

#: The table for a line shown whole: a tab only moves the cursor, so it stays.
_SHOWN: Final = CONTROL_ESCAPES | {ord("\t"): "\t"}


def shown(line: str) -> str:
    """``line`` with every control character but the tab escaped."""
    return line.translate(_SHOWN)


def one_line(text: str | None, width: int) -> str:
    """``text`` as one line for a table cell or a progress line.

    Runs of whitespace, line breaks included, become one space. Control characters are then
    escaped, and a result wider than ``width`` terminal columns is cut, ending in ``…``
    (``table_fit.cut_columns``: a CJK character takes two columns, a combining mark none, and
    an escape is never cut in two). Empty for None.
    """
    if not text:
        return ""
    flat = " ".join(text.split())
    shown_flat = flat.translate(CONTROL_ESCAPES)
    if shown_flat.isascii() and len(shown_flat) <= width:  # the usual case: no count to make
        return shown_flat
    return cut_columns(flat, width, CONTROL_ESCAPES)


#: What a JSON encoder leaves as it is and a terminal acts on: DEL, the C1 controls (U+009B
#: is CSI to a terminal that reads 8-bit controls) and :data:`UNSEEN_ESCAPES`.
_JSON_UNSEEN: Final = re.compile(
    "[" + "".join(map(chr, (*range(0x7F, 0xA0), *sorted(UNSEEN_ESCAPES)))) + "]"
)


def json_shown(text: str) -> str:
    """JSON ``text`` with each character of :data:`_JSON_UNSEEN` written as its JSON escape
    (``\\u202e``): the same value to a JSON reader, and nothing a terminal acts on. Such a
    character can only be inside a JSON string, where an escape is valid."""
    return _JSON_UNSEEN.sub(lambda found: f"\\u{ord(found.group()):04x}", text)
