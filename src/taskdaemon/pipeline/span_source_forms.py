"""The span source URL forms: the schemes ``tracking.sources.open_source`` opens and the usage
line that errors and ``--help`` show.

Imports nothing: ``settings`` checks ``TASKDAEMON_SPAN_SOURCE`` with it, and every command's
``--source`` (``cli/options.py``) is checked with it while the parser is built, before a
command has loaded anything else.
"""

from __future__ import annotations

from typing import Final

__all__ = ["SPAN_SOURCE_SCHEMES", "SPAN_SOURCE_USAGE", "unknown_scheme"]

#: The span source URL schemes ``tracking.sources.open_source`` opens (``tracking.source_urls``
#: gives them to the sources).
SPAN_SOURCE_SCHEMES: Final = (
    "sqlite",
    "tempo+http",
    "tempo+https",
    "jaeger+http",
    "jaeger+https",
    "otlp-json",
    "dump",
)

#: The accepted forms, as errors name them.
SPAN_SOURCE_USAGE: Final = (
    "sqlite:///PATH, tempo+http://HOST:PORT, jaeger+http://HOST:PORT, otlp-json:///PATH or "
    "dump:///PATH.tar.gz"
)


def unknown_scheme(url: str) -> bool:
    """Whether ``url`` (stripped, not empty) names no scheme of :data:`SPAN_SOURCE_SCHEMES`."""
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    return scheme not in SPAN_SOURCE_SCHEMES
