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


def test_a_declaration_masks_what_is_under_a_secret_key_or_all_when_hidden() -> None:
    assert declare_secrets({"note": "plain-text-1"}, "run-1") is None
    assert "plain-text-1" == redact_text("plain-text-1")
    declare_secrets({"note": "plain-text-2"}, "run-1", hidden=True)
    remember_secrets({"note": "plain-text-3"}, hidden=True)
    assert [REDACTED, REDACTED] == [redact_text("plain-text-2"), redact_text("plain-text-3")]


def test_listeners_are_told_each_run_s_values_once() -> None:
    """A value declared is told with its run's id; remembered again (declared or learnt), it
    was masked already and is not told again."""
    told: list[tuple[str, tuple[str, ...]]] = []

    def listener(run_id: str, forms: tuple[str, ...]) -> None:
        told.append((run_id, forms))

    secret_values.add_secret_listener(listener)
    try:
        declare_secrets({"api_key": DECLARED}, "run-1", "r1")
        remember_secrets({"token": DECLARED}, "r2")
        declare_secrets({"api_key": DECLARED}, "run-2", "r3")
    finally:
        secret_values.remove_secret_listener(listener)
    assert told == [("r1", secret_values.written_forms(DECLARED))]


def test_the_environment_declares_more_values_than_the_learnt_bound() -> None:
    values = [f"env-{n:08d}" for n in range(MASK_MAX_VALUES + 44)]
    declare_secrets({"password": values}, ENVIRONMENT)
    assert {REDACTED} == {redact_text(value) for value in values}
    assert forgotten_count() == 0


def test_the_environments_values_outlive_a_flood_of_learnt_ones(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``remember_environment_secrets`` declares them (``ENVIRONMENT``): not learnt ones, which
    a stage's output of many values under a secret key pushes out."""
    monkeypatch.setenv("DEPLOY_TOKEN", "Env9Secret7Value")
    secret_values.remember_environment_secrets()
    _flood(MASK_MAX_VALUES * 2)
    assert REDACTED == redact_text("Env9Secret7Value")


def test_a_flood_counts_each_value_it_pushes_out_once_and_never_a_declared_one() -> None:
    remember_secrets({"token": "learnt-before"})
    declare_secrets({"api_key": DECLARED}, "run-1")
    # One output's values all arrive at once; the walk takes a list's last items as its
    # oldest, so these two are the ones past the bound.
    remember_secrets({"tokens": [*_flood_values(MASK_MAX_VALUES), DECLARED, "learnt-before"]})
    assert (1, "learnt-before", REDACTED) == (
        forgotten_count(),
        redact_text("learnt-before"),
        redact_text(DECLARED),
    )
    _flood(MASK_MAX_VALUES + 1, "second")
    assert forgotten_count() == 1 + 1 + MASK_MAX_VALUES


def _flood_values(count: int) -> list[str]:
    return [f"flood-{n:08d}" for n in range(count)]


def test_a_flood_of_known_values_still_says_what_it_forgot(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, "taskdaemon.pipeline.masking")
    values = _flood_values(MASK_MAX_VALUES + 1)
    remember_secrets({"tokens": values})
    remember_secrets({"tokens": values})  # nothing new: the oldest forgotten again
    assert [r.getMessage() for r in caplog.records] == [
        f"{n} learnt as secrets on the way forgotten so far (the newest {MASK_MAX_VALUES} are "
        "kept): each is shown if printed again; declared secrets stay masked"
        for n in ("1 value", "2 values")
    ]


def test_a_released_value_that_pushes_one_out_says_so(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "taskdaemon.pipeline.masking")
    declare_secrets({"api_key": DECLARED}, "run-1")
    _flood(MASK_MAX_VALUES)
    assert caplog.records == []
    release_secrets("run-1")
    assert (forgotten_count(), len(caplog.records)) == (1, 1)


def test_a_value_holding_itself_is_walked_once() -> None:
    """A handler's result may hold itself: the walk ends, and a value beside a container met
    twice is still found."""
    looped: dict[str, Any] = {"token": "looped-s3cr3t"}
    looped["self"] = looped
    listed: list[Any] = ["listed-s3cr3t"]
    listed.append(listed)
    shared = {"x": 1}
    remember_secrets({"tokens": [looped, listed, "beside-s3cr3t", shared, shared]})
    shown = [redact_text(text) for text in ("looped-s3cr3t", "listed-s3cr3t", "beside-s3cr3t")]
    assert shown == [REDACTED] * 3


def test_a_new_registry_starts_with_nothing_kept_and_the_default_patterns(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The process's registry is made when the module loads; one made here is used the same
    way: no value, holder, listener or count yet, the default key patterns."""
    monkeypatch.setattr(secret_values, "_registry", secret_values._Registry())
    assert (forgotten_count(), secret_values.secret_key("api_key")) == (0, True)
    assert not secret_values.secret_key("name")
    told: list[str] = []
    secret_values.add_secret_listener(lambda run_id, forms: told.append(run_id))
    declare_secrets({"api_key": DECLARED}, "run-1", "r1")
    release_secrets("run-1")
    values = _flood(MASK_MAX_VALUES - 1)
    assert (told, redact_text(DECLARED), redact_text(values[0])) == (["r1"], REDACTED, REDACTED)
    _flood(1, "one-more")
    assert (forgotten_count(), redact_text(DECLARED)) == (1, DECLARED)
    secret_values.remember_environment_secrets()
    assert secret_values._registry.environment_read is not None
