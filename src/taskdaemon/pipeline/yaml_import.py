"""PyYAML, imported without compiling its slowest pattern the slow way.

Importing ``yaml`` compiles ``yaml.reader.Reader.NON_PRINTABLE``, a negated character class
whose ranges reach U+10FFFF: ``re`` spends more on it than on anything else at the start of
every command that reads a pipeline file (``validate``, ``dag``, ``run``). The same set of code
points written as what it matches (the few non-printable ranges) compiles several times faster
(benchmarks/README.md, "Sixth pass: `runs show` without orjson, PyYAML's slowest pattern,
`run`'s window profiled"). Before the first ``import yaml``, this module puts that pattern in
``re``'s cache under the key of PyYAML's pattern, so PyYAML's ``re.compile`` returns it.

Only what is matched is the same; the pattern's ``.pattern`` text differs (PyYAML only calls
``search``). ``tests/pipeline_yaml_import_test.py`` checks both sets over every code point. When
``re`` keeps no such cache (another Python), or ``yaml`` was already imported, nothing is seeded
and PyYAML compiles its own pattern as before. Modules on the CLI's start-up paths import
``yaml`` from here.
"""

from __future__ import annotations

import re
import sys

#: PyYAML's ``Reader.NON_PRINTABLE`` source, character for character (the cache key).
YAML_NON_PRINTABLE = "[^\x09\x0a\x0d\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]"
#: The code points that pattern matches, listed: its complement within U+0000..U+10FFFF.
NON_PRINTABLE = "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x84\x86-\x9f\ud800-\udfff\ufffe\uffff]"


def _seed() -> None:
    cache = getattr(re, "_cache", None)
    if "yaml" not in sys.modules and isinstance(cache, dict):
        cache.setdefault((str, YAML_NON_PRINTABLE, 0), re.compile(NON_PRINTABLE))


_seed()

import yaml  # noqa: E402 - after the seeding, which is this module's point

__all__ = ["NON_PRINTABLE", "YAML_NON_PRINTABLE", "yaml"]
