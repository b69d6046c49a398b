"""A server's API credentials, and where to sign in: shown in full only to a terminal.

Jupyter prints its sign-in URL, token included, so that its owner can open it with one click;
the project's rule is that a secret never reaches a log. Both hold here: the log line names the
URL and the 0600 file holding the token (``$TASKDAEMON_HOME/api-token.PORT``: this server's
own file, ``token_files``; ``ui-token.PORT`` for ``ui``), and the URL with the
token is written straight to stderr, outside logging, only when stderr is a terminal, that is
when the person who started the server is reading it. Captured stderr (a pipe, a file, a CI
log, a journal) and every log handler or exporter therefore never see the token.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TextIO
from urllib.parse import urlsplit

from taskdaemon.pipeline.forwarded_for import TrustedProxies, proxy_networks
from taskdaemon.pipeline.http_security import TOKEN_FILE_NAME, ApiAuth
from taskdaemon.pipeline.token_files import ServerTokenFiles, publish_token

if TYPE_CHECKING:
    from taskdaemon.pipeline.settings import Settings

__all__ = ["announce_sign_in", "api_auth", "publish_sign_in"]


def api_auth(settings: Settings) -> ApiAuth:
    """The API's credentials, ``serve``'s, ``run --serve``'s and ``ui``'s alike:
    ``TASKDAEMON_API_TOKEN`` if set, else a token generated now; the host of
    ``TASKDAEMON_API_PUBLIC_URL`` allowed, its https making the session cookie ``Secure``;
    the proxies of ``TASKDAEMON_API_TRUSTED_PROXY`` trusted (``forwarded_for``)."""
    principal = settings.api_user or None
    proxies = TrustedProxies(proxy_networks(settings.api_trusted_proxy))
    hosts, secure = settings.api_allowed_hosts, False
    if settings.api_public_url is not None:  # behind a proxy: its host, and https or not
        public = urlsplit(settings.api_public_url)
        hosts, secure = (*hosts, public.hostname or ""), public.scheme.lower() == "https"
    if settings.api_token is not None:
        return ApiAuth.configured(
            settings.api_token.get_secret_value(),
            principal=principal,
            allowed_hosts=hosts,
            secure_cookie=secure,
            trusted_proxies=proxies,
        )
    return ApiAuth.generate(
        principal=principal, allowed_hosts=hosts, secure_cookie=secure, trusted_proxies=proxies
    )


def publish_sign_in(
    log: logging.Logger,
    label: str,
    url: str,
    auth: ApiAuth,
    home: Path,
    *,
    file_name: str = TOKEN_FILE_NAME,
    written: Callable[[ServerTokenFiles], object] = lambda files: None,
    public: str | None = None,
) -> ServerTokenFiles | None:
    """Write a generated token to this server's 0600 files ``file_name.PORT`` (and
    ``file_name`` when no running server holds it: ``token_files``) under ``home``, the port
    that of ``url``, and say where to sign in; the files (for the caller to ``remove()`` when
    the server stops), or None: a configured token (neither written nor shown) or files that
    could not be written (one warning).

    ``written`` gets the files before the sign-in line is logged, so the caller registers
    their removal first: a stop that comes as soon as the line is read (a user's Ctrl-C, a
    supervisor's SIGTERM) cannot fall between the line and the registration and leave the
    files behind. ``public`` is ``TASKDAEMON_API_PUBLIC_URL`` (:func:`announce_sign_in`)."""
    if not auth.generated:
        announce_sign_in(log, label, url, None, None, public=public)
        return None
    files: ServerTokenFiles | None = None
    try:
        files = publish_token(home, auth.token, file_name, urlsplit(url).port or 0)
        written(files)
    except OSError as error:
        log.warning("cannot write the API token file under %s: %s", home, error)
    path = None if files is None else files.path
    announce_sign_in(log, label, url, auth.token, path, public=public)
    return files


def announce_sign_in(
    log: logging.Logger,
    label: str,
    url: str,
    token: str | None,
    token_file: Path | None,
    *,
    stream: TextIO | None = None,
    public: str | None = None,
) -> None:
    """Log ``label: url/`` and where the token is; show the token URL on a terminal.

    ``token`` is None for a configured ``TASKDAEMON_API_TOKEN`` (its owner already has it: it
    is never shown). ``token_file`` is None when the token could not be written to its file
    (a home this user may not write: root never meets one); with no terminal either, the line
    says the token is nowhere and how to choose one, where it said "on the terminal only" of
    a terminal there was not.

    ``public`` (``TASKDAEMON_API_PUBLIC_URL``: a proxy ending TLS in front of the server) is
    the address a user opens, so the line and the sign-in URL name it, not ``url``, which a
    browser elsewhere cannot reach. Decision: the line keeps ``url`` after it
    (``API: https://host/ (listening on http://127.0.0.1:PORT/; token in FILE)``): the
    proxy's operator points it there, a local check reads it, and its port names the token
    file; the sign-in URL on the terminal is the public one alone, the one to click.
    """
    shown, listening = url, ""
    if public is not None:
        shown, listening = public.rstrip("/"), f"listening on {url}/; "
    if token is None:
        # Not "token: NAME": the logs redact whatever follows "token:", the name included.
        log.info("%s: %s/ (%stoken from TASKDAEMON_API_TOKEN)", label, shown, listening)
        return
    out = sys.stderr if stream is None else stream
    try:
        interactive = out.isatty()
    except (AttributeError, ValueError):  # a closed or unusual stream: treat as captured
        interactive = False
    if token_file is not None:
        where = f"token in {token_file}"
    elif interactive:
        where = "token on the terminal only"
    else:
        where = "token shown nowhere: set TASKDAEMON_API_TOKEN to sign in"
    log.info("%s: %s/ (%s%s)", label, shown, listening, where)
    if interactive:
        # A terminal hung up since (closed by whoever read the line above) fails the write
        # (EIO): nobody is left to read the URL, and the hang-up's SIGHUP, on its way, stops
        # the server cleanly. Not a failure to serve (it was: exit 1, "cannot serve").
        with contextlib.suppress(OSError):
            out.write(f"  sign in: {shown}/?token={token}\n")
            out.flush()
