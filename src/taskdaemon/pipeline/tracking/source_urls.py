"""Span source URLs read as text: their scheme and the files they name.

The one place a source URL is cut into its parts, for the sources (``sources.open_source``),
for the writers of the embedded store, and for the readers of run logs (the web page's stage
panel, the replay prompt's ``logs STAGE``). No source is opened here. The schemes a source may
have are ``span_source_forms.SPAN_SOURCE_SCHEMES``.

File paths follow SQLAlchemy's convention: ``sqlite:///rel/path`` is relative to the working
directory, ``sqlite:////abs/path`` absolute; ``otlp-json://`` and ``dump://`` take the path as
written after ``://``. A relative store path whose first directory is missing here but exists
at the root (``sqlite:///tmp/x.db``) gets one warning, since a slash was likely lost: the
store would otherwise be made, silently, under the working directory. A reader, which makes no
store, puts the hint in its one error line instead (``sources.open_source``).
"""

from __future__ import annotations

import logging
from pathlib import Path

from taskdaemon.pipeline.errors import SpanSourceError, SpanSourceURLError
from taskdaemon.pipeline.frozen import frozen

__all__ = [
    "LogsPlace",
    "file_path",
    "logs_place",
    "lost_slash_hint",
    "scheme_of",
    "sqlite_path",
    "store_path",
]


def _shown(url: str) -> str:
    """``url`` as errors may show it (no password); imported on error only: the settings
    import this module on every command."""
    from taskdaemon.pipeline.tracking._remote import display_url  # noqa: PLC0415

    return display_url(url)


def _quoted(url: str) -> str:
    """:func:`_shown`, quoted as every message quotes a value (``quoting``)."""
    from taskdaemon.pipeline.quoting import quoted  # noqa: PLC0415 - as ``_shown``

    return quoted(_shown(url))


def scheme_of(url: str) -> str:
    """The scheme of ``url``, lower-cased; ``""`` when it has none (a plain path)."""
    return url.split("://", 1)[0].lower() if "://" in url else ""


def sqlite_path(url: str, *, warn: bool = True) -> Path:
    """``sqlite:///rel/path`` and ``sqlite:////abs/path`` (SQLAlchemy style), or a path whose
    first character is ``/`` after ``sqlite://``. ``warn``: log ``lost_slash_hint`` once."""
    rest = url.split("://", 1)[1]
    if not rest.startswith("/"):
        raise SpanSourceURLError(f"bad sqlite URL {_quoted(url)}: use sqlite:///PATH")
    path = rest[1:]
    if not path:
        raise SpanSourceURLError(f"bad sqlite URL {_quoted(url)}: no path")
    hint = lost_slash_hint(path) if warn and path not in _HINTED else None
    if hint is not None:
        _HINTED.add(path)
        logging.getLogger("taskdaemon.tracking").warning(
            "sqlite:///%s names %s under the working directory; %s", path, path, hint
        )
    return Path(path)


#: The relative store paths already warned about (once a process each).
_HINTED: set[str] = set()


def lost_slash_hint(path: str) -> str | None:
    """``sqlite:////tmp/x.db names /tmp/x.db`` when a relative store path reads as an absolute
    one with a slash lost (``sqlite:///tmp/x.db``): its first directory is missing here but
    exists at the root. The store would be made under the working directory, where nobody
    looks for it, or a reader finds none. None for a path that reads as meant."""
    if path.startswith("/") or Path(Path(path).parts[0]).exists():
        return None
    if not Path("/", Path(path).parts[0]).is_dir():
        return None
    return f"sqlite:////{path} names /{path}"


def file_path(url: str) -> Path:
    """The file of an ``otlp-json://`` or ``dump://`` URL: ``///abs/path`` → ``/abs/path``,
    ``//rel/path`` → ``rel/path``."""
    rest = url.split("://", 1)[1]
    if not rest:
        raise SpanSourceURLError(f"bad {scheme_of(url)} URL {_quoted(url)}: no path")
    return Path(rest)


def store_path(store: str | Path) -> Path:
    """The embedded store's file: a ``sqlite://`` URL's path, or ``store`` itself when it is a
    path; ``SpanSourceError`` for any other source, which keeps no run logs."""
    text = str(store)
    scheme = scheme_of(text)
    if not scheme:
        return Path(text)
    if scheme != "sqlite":
        raise SpanSourceError(
            f"{_shown(text)}: run logs are kept in the embedded store only (sqlite:///)"
        )
    return sqlite_path(text)


@frozen
class LogsPlace:
    """Where a source's run logs are: the embedded store's file, or a debug dump's archive."""

    path: Path
    dump: bool


def logs_place(url: str) -> LogsPlace | None:
    """Where the run logs of the source at ``url`` are kept; None for the sources that keep
    none (Tempo, Jaeger, OTLP files). ``SpanSourceError`` for a store or dump URL without a
    path."""
    scheme = scheme_of(url)
    if scheme == "sqlite":
        return LogsPlace(sqlite_path(url), dump=False)
    if scheme == "dump":
        return LogsPlace(file_path(url), dump=True)
    return None
