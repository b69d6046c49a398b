"""Performance reports over stored runs (``taskdaemon report``): a pure core.

``build_report(data, since, until)`` computes a ``Report`` from a ``ReportData`` provider:
the span store's aggregates (``tracking.aggregates.StoreReportData``) or runs rebuilt from any
span source (``RecordData``). ``render_report(report, fmt)`` writes it as a table, Markdown,
JSON or a self-contained HTML page with charts.

Definitions (percentile, critical path, regression): ``reporting._stats`` and
``reporting._build``; the user-facing description is docs/reports.md.

Modules:

* ``_model``: what a report holds (``Report``) and the ``ReportData`` protocol it is computed
  from.
* ``_build``: ``build_report``, the report computed from a provider's samples.
* ``_stats``: the arithmetic, pure: percentiles over sorted samples, a run's critical path.
* ``_records``: ``RecordData``, a provider over runs already rebuilt from any span source.
* ``_replays``: what a report counts of replays, the same from every source.
* ``_unended``: what a report says of the runs it leaves out because they had not ended.
* ``_render``: ``render_report``, a report written in each format, and its JSON.
* ``_text``: the cells and lines the table, Markdown and HTML formats share.
* ``_markdown``: a report as Markdown (``--format markdown`` and the HTML page's text).
* ``_html``: the HTML report, one self-contained file with inline charts.
* ``_charts``: the HTML report's charts, written as SVG text (no plotting library, no
  script).
"""

from taskdaemon.pipeline.reporting._build import DAY, REGRESSION_THRESHOLD, build_report
from taskdaemon.pipeline.reporting._model import (
    PipelineReport,
    PipelineSample,
    Regression,
    Report,
    ReportData,
    StageReport,
    StageSample,
)
from taskdaemon.pipeline.reporting._records import RecordData
from taskdaemon.pipeline.reporting._render import REPORT_FORMATS, render_report
from taskdaemon.pipeline.reporting._replays import FED, fed_stages, replay_note
from taskdaemon.pipeline.reporting._stats import (
    ChainStep,
    CriticalPath,
    CriticalStep,
    Fired,
    critical_chain,
    critical_path,
    percentile,
    run_critical_path,
    run_fired,
    run_upstream,
    stage_intervals,
)
from taskdaemon.pipeline.reporting._unended import Unended, unended_note

__all__ = [
    "DAY",
    "FED",
    "REGRESSION_THRESHOLD",
    "REPORT_FORMATS",
    "ChainStep",
    "CriticalPath",
    "CriticalStep",
    "Fired",
    "PipelineReport",
    "PipelineSample",
    "RecordData",
    "Regression",
    "Report",
    "ReportData",
    "StageReport",
    "StageSample",
    "Unended",
    "build_report",
    "critical_chain",
    "critical_path",
    "fed_stages",
    "percentile",
    "render_report",
    "replay_note",
    "run_critical_path",
    "run_fired",
    "run_upstream",
    "stage_intervals",
    "unended_note",
]
