"""The web page: runs and run views, live by Server-Sent Events, served with the run API.

``taskdaemon serve`` and ``taskdaemon run --serve`` serve it at ``/`` beside the API, over this
process's engine (live runs, approve and reject) and the span store (history);
``taskdaemon ui [--source URL]`` serves it read-only over any span source. Routes, access and
escaping: ``_app.py``; live streams and their bounds: ``_streams.py``; where runs come from:
``_data.py``; what the page shows: ``_views.py``. The templates and the small script and style
sheet ship in the package (no build step, nothing fetched from elsewhere). Design notes:
docs/web.md.
"""

from __future__ import annotations

from taskdaemon.pipeline.web._app import CSP, WebApp, WebOptions
from taskdaemon.pipeline.web._streams import StreamHub, StreamLimitError

__all__ = ["CSP", "StreamHub", "StreamLimitError", "WebApp", "WebOptions"]
