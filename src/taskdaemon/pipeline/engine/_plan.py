"""The compiled trigger plan of a pipeline, built and checked once per pipeline object."""

from __future__ import annotations

import weakref

from taskdaemon.pipeline.errors import ExpressionError, PipelineError
from taskdaemon.pipeline.model import OnCompletion, Pipeline
from taskdaemon.pipeline.triggers import TriggerPlan

_PLANS: dict[int, tuple[weakref.ref[Pipeline], TriggerPlan]] = {}


def plan_for(pipeline: Pipeline) -> TriggerPlan:
    """The compiled plan of ``pipeline``, built once per pipeline object.

    PipelineError when the pipeline cannot run: duplicate stage names, a completion trigger on
    an unknown stage, a cycle, or an expression that does not compile. The cache holds the
    pipeline weakly: its entry goes when the pipeline does.
    """
    key = id(pipeline)
    cached = _PLANS.get(key)
    if cached is not None and cached[0]() is pipeline:
        return cached[1]
    names = pipeline.stage_map
    if len(names) != len(pipeline.stages):
        raise PipelineError(f"pipeline {pipeline.name!r} has duplicate stage names")
    for stage in pipeline.stages:
        for trigger in stage.triggers:
            if isinstance(trigger, OnCompletion) and trigger.stage not in names:
                raise PipelineError(
                    f"stage {stage.name!r} waits for the completion of unknown stage "
                    f"{trigger.stage!r}"
                )
    try:
        pipeline.topological_order  # noqa: B018 - raises on a cycle
    except ValueError as exc:
        raise PipelineError(str(exc)) from None
    try:
        plan = TriggerPlan.build(pipeline)
    except ExpressionError as exc:
        raise PipelineError(f"pipeline {pipeline.name!r}: {exc}") from None

    def forget(_ref: weakref.ref[Pipeline], key: int = key) -> None:
        _PLANS.pop(key, None)

    _PLANS[key] = (weakref.ref(pipeline, forget), plan)
    return plan
