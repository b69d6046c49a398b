"""The web page: runs and run views, live by Server-Sent Events, served with the run API.

``taskdaemon serve`` and ``taskdaemon run --serve`` serve it at ``/`` beside the API, over this
process's engine (live runs, approve and reject) and the span store (history);
``taskdaemon ui [--source URL]`` serves it read-only over any span source. The templates and
the small script and style sheet ship in the package (no build step, nothing fetched from
elsewhere). Design notes: docs/web.md.

Modules:

* ``_app``: the routes (the runs page, the run page, their JSON and event-stream API), access
  and escaping.
* ``_pages``: the page's HTML: its templates, their filters and the headers every page
  carries.
* ``_runs_query``: the runs page's query: its filters, the links that page through the runs,
  and what an empty runs table says.
* ``_data``: where runs come from: this process's engine, and a span source.
* ``_views``: pure functions turning snapshots and records into what the page and its API
  answer.
* ``_streams``: the Server-Sent Event streams of live run state, bounded per client and in
  number.
* ``_live_document``: a live run's state document kept between changes, so that each delta is
  built from what changed.
* ``_deltas``: what changed between two live states of a run: the stream's deltas.
* ``_gzip_members``: each event stream one gzip member, whose chunks are compressed once and
  sent as the same bytes by every stream.
* ``_drawings``: one drawing of a run's DAG shared by every viewer while its states stay the
  same.
* ``_svg``: DOT drawn as SVG by Graphviz, bounded and cached.
* ``_logs``: the stage panel's logs, one stage's stored log records as a bounded live tail.
"""

from __future__ import annotations

from taskdaemon.pipeline.web._app import WebApp, WebOptions
from taskdaemon.pipeline.web._pages import CSP
from taskdaemon.pipeline.web._streams import StreamHub, StreamLimitError

__all__ = ["CSP", "StreamHub", "StreamLimitError", "WebApp", "WebOptions"]
