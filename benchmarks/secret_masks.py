"""What masking secrets by value (``secret_values``) costs the texts taskdaemon records.

Times, side by side in one process, alternating rounds, with 0 values masked and with 8, 64
and 256 (``MASK_MAX_VALUES``) values of 24 characters remembered:

* ``lines``: ``redact_lines`` of batches of 100 distinct lines of a build log (what every read
  of a command's output pays in the store's and the OTLP log writers);
* ``texts``: ``redact_text`` of distinct short texts seen for the first time (what the monitor
  pays for an attribute value it has not seen before).

No line holds a masked value, the common case: each value is looked for and not found. Prints
the median microseconds per line or text and the ratio against no value masked.

``--escaped``: each value holds a quote, a space and a non-ASCII letter, which JSON, ``repr``
and URL-encoding write otherwise, so each brings its written forms
(``secret_values.written_forms``) to look for too: the worst case of those forms.

``--repeated``: the values are ``a`` × 8, ``a`` × 9, ... (as many as counted), and each line
and text is 200 ``a``: every value is found, many times over, in every line, in the lines
glued and in every text: the worst case of secrets of one repeated character.

    .venv/bin/python benchmarks/secret_masks.py [--rounds 7] [--lines 20000] [--escaped|--repeated]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

from taskdaemon.pipeline.redaction import redact_lines, redact_text
from taskdaemon.pipeline.secret_values import forget_secrets, remember_secrets

COUNTS = (0, 8, 64, 256)


def _lines(count: int, salt: int, repeated: bool) -> list[list[str]]:
    lines = (
        [REPEATED_LINE] * count
        if repeated
        else [
            f"INFO step {i} of {salt}: compiled src/module_{i % 97}.py in {i % 13}.{i % 7}s"
            for i in range(count)
        ]
    )
    return [lines[i : i + 100] for i in range(0, count, 100)]


def _texts(count: int, salt: int, repeated: bool) -> list[str]:
    # distinct texts (``redact_text`` remembers short clean ones): the 200 ``a`` and a number
    return [f"{REPEATED_LINE}{i}" if repeated else f"stage-{salt}-{i}" for i in range(count)]


#: A line and a text of ``--repeated``.
REPEATED_LINE = "a" * 200


def _remember(count: int, escaped: bool, repeated: bool) -> None:
    forget_secrets()
    if repeated:
        remember_secrets({"token": ["a" * (8 + i) for i in range(count)]})
        return
    tail = 'abc"d\u00e9 fghijk' if escaped else "abcdefghijklmno"
    for i in range(count):
        remember_secrets({"token": f"tok-{i:06d}-{tail}"})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--lines", type=int, default=20_000)
    parser.add_argument("--escaped", action="store_true", help="values that encodings change")
    parser.add_argument("--repeated", action="store_true", help="values of one character")
    args = parser.parse_args()
    per: dict[tuple[str, int], list[float]] = {}
    salt = 0
    for _ in range(args.rounds):
        for count in COUNTS:
            _remember(count, args.escaped, args.repeated)
            salt += 1
            cases: tuple[tuple[str, Callable[[Any], object], list[Any]], ...] = (
                ("lines", redact_lines, _lines(args.lines, salt, args.repeated)),
                ("texts", redact_text, _texts(args.lines, salt, args.repeated)),
            )
            for kind, call, items in cases:
                start = time.perf_counter()
                for item in items:
                    call(item)
                per.setdefault((kind, count), []).append(
                    (time.perf_counter() - start) / args.lines * 1e6
                )
    forget_secrets()
    for kind in ("lines", "texts"):
        base = statistics.median(per[(kind, 0)])
        cells = []
        for count in COUNTS:
            median = statistics.median(per[(kind, count)])
            cells.append(f"{count} values {median:.2f} µs ({median / base:.2f}x)")
        print(f"{kind}: " + ", ".join(cells))


if __name__ == "__main__":
    main()
