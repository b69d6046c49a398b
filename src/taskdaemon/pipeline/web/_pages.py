"""The page's HTML: Jinja2 templates rendered with autoescaping, their filters, and the headers
every page carries (a strict Content Security Policy among them). The routes that answer with
a page are ``_app``'s; this module is what a page looks like once a route chose it, so that a
route reads as the choice and a template change stays here.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from starlette.responses import HTMLResponse, Response

from taskdaemon.pipeline.durations import format_run_duration, local_time, utc_offset
from taskdaemon.pipeline.terminal_text import UNSEEN_ESCAPES
from taskdaemon.pipeline.web._views import STATE_NAMES, cut, is_run_id

__all__ = ["CSP", "Pages"]

#: The Content-Security-Policy of every page: nothing inline, nothing from elsewhere.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
_PAGE_HEADERS = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
}
#: The characters of an error a stages table cell shows (the script cuts alike); the stage
#: panel shows it whole.
_CELL = 200


class Pages:
    """The templates of ``templates/`` with their filters; ``clock`` gives the time whose
    zone the page's times are written in."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.templates = Environment(
            loader=FileSystemLoader(Path(__file__).resolve().parent / "templates"),
            autoescape=select_autoescape(default=True, default_for_string=True),
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.templates.filters["when"] = local_time
        # an interrupted run's known part (``summary_json``'s ``lasted_at_least``)
        self.templates.filters["at_least"] = lambda seconds: format_run_duration(None, seconds)
        self.templates.filters["iso"] = _iso
        self.templates.filters["cell"] = _cell
        self.templates.filters["shown"] = _shown
        self.templates.tests["run_id"] = is_run_id

    def page(self, name: str, status: int = 200, **context: Any) -> Response:
        """The template ``name`` rendered with ``context`` as an HTML answer with the page
        headers."""
        # ``zone``: that of the times ``local_time`` writes (the server's), which the script
        # rewrites in the browser's zone, saying which.
        html = self.templates.get_template(name).render(
            states=STATE_NAMES, zone=utc_offset(self.clock()), **context
        )
        return HTMLResponse(html, status_code=status, headers=_PAGE_HEADERS)


def _cell(text: str) -> str:
    """``text`` cut to ``_CELL`` characters, the last an ellipsis."""
    return cut(text, _CELL) or ""


def _shown(text: str) -> str:
    """``text`` with its bidirectional controls and zero-width characters written as escapes
    (the script writes every text it draws alike, and the terminal too: ``terminal_text``)."""
    return text.translate(UNSEEN_ESCAPES)


def _iso(epoch: float | None) -> str:
    """Epoch seconds as ISO 8601 in UTC, for a ``<time datetime>`` (empty for None). The
    page's script shows every time in the browser's zone, the ones it fetches as well as
    these, so a time never changes zone when the page refreshes a row."""
    if epoch is None:
        return ""
    return datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")
