"""Data flow: what a stage's failure says when a required input or output cannot be read, and
the secrets of a result an ``outputs:`` mapping reads."""

from __future__ import annotations

from typing import Any

import pytest

from pipeline_engine_support import Resolver, pipeline, stage
from taskdaemon.pipeline.engine import Engine
from taskdaemon.pipeline.loops import StageContext
from taskdaemon.pipeline.model import InputMapping, OutputMapping
from taskdaemon.pipeline.redaction import REDACTED, redact_text

pytestmark = pytest.mark.timeout(10)


async def _noop(ctx: StageContext) -> dict[str, Any]:
    return {"n": "text"}


async def _error(p: Any, request: dict[str, Any]) -> str:
    async with Engine(resolver=Resolver({"a": _noop})) as engine:
        result = await engine.run(p, request)
    (execution,) = result.executions["a"]
    return str(execution.error)


async def test_a_type_error_in_a_required_input_is_not_called_missing() -> None:
    """An input whose CEL fails on a type error is "cannot evaluate", not "missing"."""
    p = pipeline(stage("a", inputs=(InputMapping("n", "request.n + 1"),)))
    expected = "cannot evaluate required input 'n': 'request.n + 1': Unsupported operation"
    actual = await _error(p, {"n": "abc"})
    assert expected == actual[: len(expected)]


async def test_an_absent_key_in_a_required_input_is_still_missing() -> None:
    """An input whose CEL reads a key the request lacks is a missing required input."""
    p = pipeline(stage("a", inputs=(InputMapping("n", "request.n + 1"),)))
    expected = "missing required input 'n': 'request.n + 1': no such key 'n'"
    assert expected == await _error(p, {})


async def test_a_type_error_in_a_required_output_is_not_called_missing() -> None:
    """An output whose CEL fails on a type error is "cannot evaluate", not "missing"."""
    p = pipeline(stage("a", outputs=(OutputMapping("m", "result.n + 1"),)))
    expected = "cannot evaluate required output 'm': 'result.n + 1': Unsupported operation"
    actual = await _error(p, {})
    assert expected == actual[: len(expected)]


async def _returns_a_token(ctx: StageContext) -> dict[str, Any]:
    return {"token": "renamed-s3cr3t-42"}


async def test_a_secret_an_outputs_mapping_renames_is_masked_after_the_stage() -> None:
    """``t: result.token`` puts the handler's ``token`` under a key no pattern names: the
    value is still masked from the stage's end on, in its outputs and everywhere after."""
    p = pipeline(stage("a", outputs=(OutputMapping("t", "result.token"),)))
    async with Engine(resolver=Resolver({"a": _returns_a_token})) as engine:
        result = await engine.run(p, {})
    (execution,) = result.executions["a"]
    assert ({"t": "renamed-s3cr3t-42"}, f"got {REDACTED}") == (
        execution.outputs,
        redact_text("got renamed-s3cr3t-42"),
    )
