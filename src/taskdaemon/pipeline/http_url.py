"""The one check of an http(s) URL a client is about to dial: its scheme, a host the resolver
can encode and a port that is a number. The OTLP endpoints and Grafana's URL (``settings``,
checked at start) and the remote span sources (``tracking.sources.open_source``,
``tempo+http://`` and the like) use it, so one mistake reads the same wherever it is made.

Checked before any connection because neither place would otherwise say it well: the OTLP
exporters only log a failed export (a typo'd ``http://127..1:4318`` lost every span while the
run succeeded), and the HTTP client's resolver fails a host with an empty or overlong label
with a ``UnicodeError``, a traceback at the first query.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Final
from urllib.parse import SplitResult, urlsplit

from taskdaemon.pipeline.quoting import quote
from taskdaemon.pipeline.redaction import REDACTED

__all__ = ["HTTP_SCHEMES", "http_url", "user_part"]

#: The schemes of a plain http(s) URL.
HTTP_SCHEMES: Final = ("http", "https")
#: A host the HTTP client (httpx) reads as an IPv4 address, and refuses unless it is one.
_IPV4_STYLE: Final = re.compile(r"[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+")


def http_url(url: str, schemes: tuple[str, ...] = HTTP_SCHEMES) -> SplitResult:
    """``url`` (surrounding spaces ignored) cut into its parts when its scheme is one of
    ``schemes``, it holds no white space (``urlsplit`` would drop a tab or line break unseen)
    and it names a host the resolver can encode and, if any, a port from 0 to 65535. Else
    ``ValueError``, one line: what is wrong, then the URL quoted without its user part
    (:func:`_shown`)."""
    text = url.strip()
    scheme, separator, _ = text.partition("://")
    if not separator or scheme.lower() not in schemes:
        kinds = " or ".join(f"{name}://" for name in schemes)
        raise ValueError(f"must be an {kinds} URL, not {_shown(url)}")
    if any(character.isspace() for character in text):
        raise _refusal("it has white space inside", url)
    try:
        parts = urlsplit(text)
    except ValueError:  # a bracket left open, or not around an IPv6 address
        raise _refusal("its host is not a host name nor an IPv6 address in brackets", url) from None
    try:
        parts.port  # noqa: B018 - the property is the check
    except ValueError:
        raise _refusal("its port is not a number from 0 to 65535", url) from None
    if not parts.hostname:
        raise _refusal("it has no host", url)
    try:
        parts.hostname.encode("idna")  # as the resolver will
    except UnicodeError:
        raise _refusal("its host name's labels are 1 to 63 characters", url) from None
    _check_as_the_client(parts.hostname, url)
    return parts


def _check_as_the_client(host: str, url: str) -> None:
    """Refuse ``host`` where the HTTP client would (``httpx``: an ``InvalidURL`` traceback at
    the first query): four numbers that are no IPv4 address (``999.0.0.1``, ``1.2.3.04``), and
    a name beyond ASCII that IDNA 2008 refuses, which Python's older codec above maps to one
    (a zero-width or soft-hyphen character in it: ``127.\\ufeff1``). ``idna``, the client's
    own package, is imported only for such a name: the settings' check runs at every start."""
    if _IPV4_STYLE.fullmatch(host):
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            raise _refusal("its host is not an IPv4 address", url) from None
    elif not host.isascii():
        import idna  # noqa: PLC0415 - see the docstring

        try:
            idna.encode(host)
        except idna.IDNAError:
            raise _refusal("its host is not an internationalised domain name", url) from None


def _refusal(what: str, url: str) -> ValueError:
    """The error saying ``what`` is wrong with ``url``, quoted only now (:func:`_shown`)."""
    return ValueError(f"{what}, in {_shown(url)}")


def _shown(url: str) -> str:
    """``url`` quoted (``quoting.quote``: redacted, cut), all it holds from its scheme's
    ``://`` (else its start) to its last ``@`` shown as ``[REDACTED]``, but a user before a
    ``:`` (``user:[REDACTED]@``, as every other view shows a URL's password). An API token is as
    often pasted as the user alone (``http://glsa_s3cret@collector:4318``), which the general
    redaction leaves, since a user name (``git@``) is usually no secret; and a refused URL may
    be no URL at all: a password holding a ``/`` (``http://u:pa/ss@host``), or a slash short
    (``http:/u:pw@host``), was shown whole, the general redaction's shape not matching it. A
    URL a setting refused is no place to show any of these."""
    scheme, separator, rest = url.partition("://")
    if not separator:
        scheme, rest = "", url
    user, at, host = rest.rpartition("@")
    if at:
        name, colon, _ = user.partition(":")
        user = f"{name}:{REDACTED}" if colon else REDACTED
        url = f"{scheme}{separator}{user}@{host}"
    return quote(url)


def user_part(url: str) -> str | None:
    """What stands before the last ``@`` of ``url``'s authority (``user`` or
    ``user:password``; ``""`` for ``http://@host``), or None when it has no ``@`` there (one
    in its path, query or fragment does not count)."""
    _, separator, rest = url.partition("://")
    end = min((rest.find(mark) for mark in "/?#" if mark in rest), default=len(rest))
    user, at, _ = rest[:end].rpartition("@")
    return user if separator and at else None
