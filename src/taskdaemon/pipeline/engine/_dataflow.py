"""Data flow, pure: a stage's inputs from the run's context, its outputs from a handler's result.

Both are awaited: an expression evaluated in the CEL worker is waited for off the event loop
(``Expression.evaluate_async``).

The context is ``{"request", "stages": {name: {"status", "outputs"}}}`` plus ``event`` for an
event instance; the expressions are the ones the pipeline's plan compiled once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from taskdaemon.pipeline.bounded import BoundedInputError, check_unfolded
from taskdaemon.pipeline.engine._stage_state import Instance
from taskdaemon.pipeline.errors import ExpressionError, PipelineError
from taskdaemon.pipeline.expressions import MissingKeyError
from taskdaemon.pipeline.model import FAN_OUT_OUTPUTS
from taskdaemon.pipeline.triggers import CompiledStage, expression_context


class DataError(PipelineError):
    """A data-flow error (missing input/output, unresolvable loop): never retried, since the
    same data would fail the same way."""


async def resolve_inputs(
    cs: CompiledStage,
    event: Mapping[str, Any] | None,
    request: Mapping[str, Any],
    stages: Mapping[str, Any],
    publisher: str | None = None,
) -> dict[str, Any]:
    """The stage's inputs; DataError naming the first required input that cannot be read
    (``missing required input`` for a key the data lacks, ``cannot evaluate required input``
    for any other evaluation error).

    An optional input that cannot be read is left out. An event instance's input that reads
    ``stages.P``, ``P`` the stage that published its event (``publisher``), is refused,
    optional or not: ``P`` was running when it published, so what ``stages.P`` held when the
    instance started was a race with ``P``'s end (``{}`` while it ran, its outputs once it
    ended). The event's payload is what the publisher meant the instance to read.
    docs/architecture.md, "Run semantics".
    """
    inputs: dict[str, Any] = {}
    extra = None if event is None else {"event": event}
    if publisher is not None:
        for name, compiled, _ in cs.inputs:
            if compiled.refs is not None and publisher in compiled.refs:
                raise DataError(
                    f"input {name!r} reads stages.{publisher}, which published this instance's "
                    f"event while it ran: its outputs are final only when it ends; read the "
                    f"event's payload (event.<key>) instead"
                )
    for name, compiled, required in cs.inputs:
        expression = compiled.expression
        try:
            inputs[name] = await expression.evaluate_async(
                expression_context(expression, compiled.refs, request, stages, extra)
            )
        except ExpressionError as exc:
            if required:
                raise DataError(f"{_failed(exc)} required input {name!r}: {exc}") from None
    return inputs


async def map_outputs(
    cs: CompiledStage, result: Any, request: Mapping[str, Any]
) -> Mapping[str, Any]:
    """A handler's result as the stage's outputs.

    ``None`` is ``{}``, a non-mapping ``v`` is ``{"value": v}``; with an ``outputs:`` mapping
    the outputs are those expressions over ``result`` (and ``request``). DataError names the
    first required output that cannot be read (as :func:`resolve_inputs` names an input); an
    optional one is left out.
    """
    plain = plain_outputs(result)
    mappings = cs.outputs
    if mappings is None:
        return plain
    outputs: dict[str, Any] = {}
    context = {"result": plain, "request": request}
    for name, compiled, required in mappings:
        try:
            outputs[name] = await compiled.expression.evaluate_async(context)
        except ExpressionError as exc:
            if required:
                raise DataError(f"{_failed(exc)} required output {name!r}: {exc}") from None
    return outputs


def _failed(exc: ExpressionError) -> str:
    """How a required value failed: missing (the data lacks a key it reads), or not evaluable
    (a type error, a limit): only the first is the data's absence."""
    return "missing" if isinstance(exc, MissingKeyError) else "cannot evaluate"


def check_result(result: Any) -> None:
    """DataError when a handler's result nests deeper than ``bounded.DEFAULT_MAX_DEPTH`` (100)
    levels, as a value holding itself (``d["self"] = d``) does without end, or holds more than
    ``bounded.MAX_UNFOLDED_VALUES`` values once its shared sub-values are unfolded.

    Decision: such a result fails its attempt, never retried, rather than being passed on.
    A stage's outputs are data that later stages' expressions read, and the CEL binding
    converts what it is given recursively in native code: a cycle, or a nesting thousands
    deep, crashes the whole process there (a segmentation fault, no error and no stored end).
    The bound is the one every JSON this project reads is held to (``--input``, published
    payloads): outputs read back as JSON stay readable."""
    if result is not None:  # not its truth: an array's is an error
        try:
            check_unfolded(result)
        except BoundedInputError as exc:
            raise DataError(f"the handler's result {exc}") from None


def plain_outputs(result: Any) -> Mapping[str, Any]:
    """A handler's result as the outputs of a stage without an ``outputs:`` mapping (the first
    step of :func:`map_outputs`, which such a stage calls directly: no coroutine to await)."""
    if result is None:
        return {}
    if isinstance(result, Mapping):
        return result
    return {"value": result}


def stage_outputs(instances: Sequence[Instance]) -> Mapping[str, Any]:
    """``stages.X.outputs`` of a finished stage: the last attempt's outputs of its one
    instance, else ``{"instances": [those of each instance, in instance order]}``."""
    if len(instances) == 1:
        return instances[0].executions[-1].outputs
    (key,) = FAN_OUT_OUTPUTS
    return {key: [inst.executions[-1].outputs for inst in instances]}
