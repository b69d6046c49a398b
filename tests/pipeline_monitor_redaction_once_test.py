"""The definition's stage attributes are redacted once per definition, and still on every span."""

from __future__ import annotations

from pipeline_monitor_support import Feed, Telemetry
from taskdaemon.pipeline import telemetry as t
from taskdaemon.pipeline.model import Manual, OnCondition, Pipeline, Stage
from taskdaemon.pipeline.payloads import REDACTED
from taskdaemon.pipeline.state import RunStatus

TOKEN = "ghp_" + "T3st" * 9  # a GitHub token's shape, not a real one


def _pipeline() -> Pipeline:
    return Pipeline(
        name="secretive",
        stages=(
            Stage("first", "python", (Manual(approval_required=False),)),
            Stage("second", "python", (OnCondition(f'request.key == "{TOKEN}"'),)),
        ),
    )


def test_stage_spans_of_two_runs_carry_the_redacted_definition_and_their_own_run(
    tel: Telemetry,
) -> None:
    """A secret in a trigger reaches no stage span of either run of one definition (the
    attributes redacted once are shared), and each span names its own run, in the order the
    attributes always had: the definition's, the run id, then the execution's."""
    feed = Feed(tel, _pipeline())
    runs = []
    for _ in range(2):
        runs.append(feed.start_run())
        feed.start("second")
        feed.finish("second")
        feed.finish_run(RunStatus.SUCCESS)
    spans = [span for span in tel.spans() if span.name == t.stage_span_name("second")]
    assert len(spans) == 2
    for span, run_id in zip(spans, runs, strict=True):
        attributes = dict(span.attributes or {})
        assert TOKEN not in repr(attributes)
        assert REDACTED in attributes[t.STAGE_TRIGGERS][0]
        assert attributes[t.CICD_PIPELINE_RUN_ID] == run_id
        keys = list(attributes)
        assert keys[:2] == [t.CICD_PIPELINE_NAME, t.CICD_TASK_NAME]
        assert keys.index(t.STAGE_TRIGGER_MODE) + 1 == keys.index(t.CICD_PIPELINE_RUN_ID)
        assert keys.index(t.CICD_PIPELINE_RUN_ID) + 1 == keys.index(t.CICD_TASK_RUN_ID)
