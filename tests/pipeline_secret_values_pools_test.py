"""``secret_values``' two pools: values declared secret (``declare_secrets``) stay masked until
their holders are released, whatever is learnt meanwhile; values learnt on the way share the
newest ``MASK_MAX_VALUES``, and those forgotten are counted and said; a hostile flood costs
the written forms of the kept values only."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from pipeline_engine_support import Resolver, pipeline, stage
from taskdaemon.pipeline import secret_values
from taskdaemon.pipeline.engine import Engine
from taskdaemon.pipeline.errors import PipelineError
from taskdaemon.pipeline.loops import StageContext
from taskdaemon.pipeline.redaction import REDACTED, redact_text
from taskdaemon.pipeline.secret_values import (
    ENVIRONMENT,
    MASK_MAX_DECLARED,
    MASK_MAX_VALUES,
    declare_secrets,
    forgotten_count,
    release_secrets,
    remember_secrets,
)

DECLARED = "declared-s3cr3t-1"


def _flood(count: int, prefix: str = "learnt") -> list[str]:
    """``count`` distinct texts learnt under ``tokens``, one stage output."""
    values = [f"{prefix}-{n:08d}" for n in range(count)]
    remember_secrets({"tokens": values})
    return values


def test_a_declared_value_outlives_any_flood_of_learnt_ones() -> None:
    assert declare_secrets({"api_key": DECLARED}, "run-1") is None
    for _ in range(3):  # one output of many, then one value at a time
        _flood(MASK_MAX_VALUES * 4)
    for n in range(MASK_MAX_VALUES + 1):
        remember_secrets({"token": f"one-by-one-{n:06d}"})
    assert REDACTED == redact_text(DECLARED)


def test_a_released_value_joins_the_learnt_ones_as_the_newest() -> None:
    """Released, a value is still masked, until newer learnt values push it out."""
    declare_secrets({"api_key": DECLARED}, "run-1")
    declare_secrets({"api_key": DECLARED}, "run-2")  # kept while one holder keeps it
    release_secrets("run-1")
    _flood(MASK_MAX_VALUES * 2)
    assert REDACTED == redact_text(DECLARED)
    release_secrets("run-2")
    release_secrets("run-2")  # released twice: nothing more
    values = _flood(MASK_MAX_VALUES - 1, "after")
    assert [REDACTED, REDACTED] == [redact_text(DECLARED), redact_text(values[0])]
    _flood(1, "one-more")
    assert DECLARED == redact_text(DECLARED)


def test_the_runs_declare_at_most_the_bound_and_the_environment_aside() -> None:
    """Past ``MASK_MAX_DECLARED`` values kept by runs, a declaration is refused whole and
    masks nothing; the environment's values, and values a run declared again, are not counted
    again."""
    assert declare_secrets({"password": [f"env-{n:08d}" for n in range(300)]}, ENVIRONMENT) is None
    kept = [f"kept-{n:08d}" for n in range(MASK_MAX_DECLARED - 1)]
    assert declare_secrets({"tokens": [*kept, "env-00000001"]}, "run-1") is None
    assert declare_secrets({"tokens": kept}, "run-2") is None
    refusal = declare_secrets({"tokens": ["one-too-many", "kept-00000001"]}, "run-3")
    assert (
        f"1 value declared secret, and the open runs keep {MASK_MAX_DECLARED}: at most "
        f"{MASK_MAX_DECLARED} are kept masked for a whole run"
    ) == refusal
    assert "one-too-many" == redact_text("one-too-many")
    release_secrets("run-1")
    assert declare_secrets({"token": "one-too-many"}, "run-3") is None  # run-2 still keeps 255


def test_values_forgotten_are_counted_and_said_at_each_doubling(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, "taskdaemon.pipeline.masking")
    _flood(MASK_MAX_VALUES + 1)
    _flood(2, "next")
    for n in range(5):
        remember_secrets({"token": f"later-{n:08d}"})
    said = [record.getMessage().split(" value")[0] for record in caplog.records]
    assert (8, ["1", "3", "4", "8"]) == (forgotten_count(), said)  # 2 and 3 at once
    assert caplog.records[0].getMessage().startswith("1 value learnt as secrets on the way")


def test_a_flood_makes_the_written_forms_of_the_kept_values_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Ten thousand texts in one output: the forms of ``MASK_MAX_VALUES`` are made, the rest
    forgotten at once, counted."""
    made: list[str] = []
    forms = secret_values.written_forms
    monkeypatch.setattr(secret_values, "written_forms", lambda v: made.append(v) or forms(v))
    values = _flood(10_000)
    masked = sum(redact_text(value) == REDACTED for value in values)
    assert (MASK_MAX_VALUES, 10_000 - MASK_MAX_VALUES, MASK_MAX_VALUES) == (
        len(made),
        forgotten_count(),
        masked,
    )


async def test_the_engine_keeps_a_request_s_secrets_until_its_run_ends() -> None:
    """While a run goes on, a handler returning more texts under ``tokens`` than are kept
    leaves the request's secret masked; once the run ended, the value is learnt, and newer ones
    push it out. A start refused (a run id in use) keeps nothing either."""
    seen: list[str] = []

    async def flood(ctx: StageContext) -> dict[str, Any]:
        _flood(MASK_MAX_VALUES * 2, ctx.run_id[:8])
        seen.append(redact_text(DECLARED))
        return {}

    async with Engine(resolver=Resolver({"a": flood})) as engine:  # type: ignore[dict-item]
        done = await engine.run(pipeline(stage("a")), {"api_key": DECLARED})
        _flood(MASK_MAX_VALUES, "after")
        shown = redact_text(DECLARED)
        with pytest.raises(PipelineError, match="already in use"):
            await engine.start_run(
                pipeline(stage("a")), {"token": "refused-s3cr3t"}, run_id=done.run_id
            )
        _flood(MASK_MAX_VALUES, "later")
    assert ([REDACTED], DECLARED, "refused-s3cr3t") == (seen, shown, redact_text("refused-s3cr3t"))
