"""The OTLP exporters' header variables, checked before any exporter reads them.

``OTEL_EXPORTER_OTLP_HEADERS`` (and its ``_TRACES``, ``_METRICS`` and ``_LOGS`` forms) usually
holds a credential: ``Authorization=Bearer%20...``, ``x-api-key=...``. The OpenTelemetry SDK
parses it itself and, for a member that is not ``name=value`` (a token pasted in bare), logs a
warning holding that member's text and exports without it: the credential reached stderr (and
whatever collects it), and every export then failed at the collector, counted but with the
cause unsaid. Checked with the other settings (``settings``), a malformed member stops every
command at start in one line naming the variable and the member's position, never its text.

The rule is the SDK's liberal one (``opentelemetry.util.re``, after the OTLP exporter
specification): a key of token characters, ``=``, then a value of printable ASCII other than
``"``, ``,``, ``;`` and ``\\`` (URL-encoded, or a space as in ``Bearer xyz``); the SDK skips
empty members. The variables are read by their exact names, as the SDK reads them.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Final

__all__ = ["VARIABLES", "header_problems"]

VARIABLES: Final = tuple(
    f"OTEL_EXPORTER_OTLP{signal}_HEADERS" for signal in ("", "_TRACES", "_METRICS", "_LOGS")
)
_KEY: Final = r"[\x21\x23-\x27\x2a\x2b\x2d\x2e\x30-\x39\x41-\x5a\x5e-\x7a\x7c\x7e]+"
_VALUE: Final = r"[\x20\x21\x23-\x2b\x2d-\x3a\x3c-\x5b\x5d-\x7e]*"
_MEMBER: Final = re.compile(rf"{_KEY}[ \t]*=[ \t]*{_VALUE}")
_DELIMITER: Final = re.compile(r"[ \t]*,[ \t]*")
#: Positions of malformed members a problem names; past them it counts the rest. A variable
#: of 65,000 bad members (the 128 KiB the kernel allows one) was a 440 KB line of numbers.
NAMED_MEMBERS: Final = 10


def header_problems(environ: Mapping[str, str] = os.environ) -> list[tuple[str, str]]:
    """``(variable, why)`` for each header variable holding a member the SDK would not send;
    ``why`` gives positions only (the text may be a credential)."""
    problems = []
    for variable in VARIABLES:
        members = _DELIMITER.split(environ.get(variable, ""))
        bad = [
            str(number)
            for number, member in enumerate(members, 1)
            if member.strip() and not _MEMBER.fullmatch(member.strip())
        ]
        if bad:
            more = len(bad) - NAMED_MEMBERS
            named = ", ".join(bad[:NAMED_MEMBERS]) + (f" and {more} more" if more > 0 else "")
            problems.append(
                (
                    variable,
                    f"expected name=value pairs separated by commas, but member {named}"
                    f" of {len(members)} is not one (not shown: headers hold credentials)",
                )
            )
    return problems
