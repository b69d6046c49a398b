"""recorded_pipeline: a stored run is drawn over the definition its run span recorded only when
that definition can have run. The hash proves nothing: whoever wrote the span store (a crafted
file, a buggy or hostile backend) wrote the hash too."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from cli_support import taskdaemon
from pipeline_engine_support import after, pipeline, stage
from pipeline_tracking_support import make_provider, write_example_run
from taskdaemon.pipeline import telemetry as t
from taskdaemon.pipeline.definition import sha256_text
from taskdaemon.pipeline.model import OnCondition, OnEvent, Pipeline, Stage
from taskdaemon.pipeline.records import RunRecord
from taskdaemon.pipeline.tracking import SpanStore, SqliteSpanProcessor
from taskdaemon.pipeline.visualization import dag_snapshot
from taskdaemon.pipeline.visualization._stored import recorded_pipeline
from taskdaemon.pipeline.visualization._terminal import stage_rows

NOTIFY = stage("notify", OnCondition("request.go"))


def _definition(*stages: Stage, **fields: Any) -> Pipeline:
    """The example run's pipeline (``write_example_run``) with ``stages`` after its own, as
    built in code: python stages without a handler, and an event type that no stage emits nor
    the pipeline declares (the program publishes it). A file could not say so; it ran."""
    return pipeline(
        stage("plan"),
        stage("build", *after("plan")),
        stage("test", OnEvent("build.ready")),
        stage("deploy", *after("test")),
        *stages,
        name="demo",
        **fields,
    )


def _renamed(definition: Pipeline, index: int, name: object) -> str:
    """``definition``'s text with stage ``index`` named ``name`` (of any JSON type)."""
    data = json.loads(definition.canonical_json)
    data["stages"][index]["name"] = name
    return json.dumps(data)


@contextmanager
def _stored(tmp_path: Path, text: str, *, end_run: bool = False) -> Iterator[RunRecord]:
    """The example run as read back from a store at ``tmp_path``/spans.db, its run span
    recording ``text`` as its definition with the hash of that text, and naming notify, which
    has no span. The store's writer stays open for the block: a run not ended reads as
    running, not interrupted."""
    db = tmp_path / "spans.db"
    provider, _ = make_provider(SqliteSpanProcessor(db))
    try:
        run_id = write_example_run(
            provider,
            end_run=end_run,
            root_attributes={
                t.PIPELINE_STAGES: ["plan", "build", "test", "deploy", "notify"],
                t.PIPELINE_DEFINITION: text,
                t.PIPELINE_DEFINITION_HASH: sha256_text(text),
            },
        )
        provider.force_flush()
        with SpanStore(db) as store:
            yield store.get_run(run_id)
    finally:
        provider.shutdown()


def _notify_waits_for(run: RunRecord) -> str:
    rows = stage_rows(dag_snapshot(recorded_pipeline(run), run), 0.0)
    return next(row.waiting_for for row in rows if row.stage == "notify")


def test_a_definition_built_in_code_is_used(tmp_path: Path) -> None:
    """A definition that ran, though no file could hold it, fills WAITING FOR."""
    definition = _definition(NOTIFY)
    with _stored(tmp_path, definition.canonical_json) as run:
        pass
    assert (recorded_pipeline(run), _notify_waits_for(run)) == (
        definition,
        "condition request.go",
    )


BIG = "x" * (16 * 1024 * 1024)

CRAFTED = {
    "a cycle": _definition(NOTIFY, stage("again", *after("again"))).canonical_json,
    "a trigger on a stage it lacks": _definition(
        NOTIFY, stage("late", *after("ghost"))
    ).canonical_json,
    "two stages of one name": _definition(NOTIFY, NOTIFY).canonical_json,
    "a name that is a number": _renamed(_definition(NOTIFY), 4, 4),
    "a name past the limit": _renamed(_definition(NOTIFY), 0, "p" * 129),
    "a zero timeout": _definition(
        stage("notify", OnCondition("request.go"), timeout=0.0)
    ).canonical_json,
    "more than 16 MiB": _definition(NOTIFY, description=BIG).canonical_json,
}


@pytest.mark.parametrize("text", CRAFTED.values(), ids=CRAFTED.keys())
def test_a_definition_that_cannot_have_run_is_not_used(tmp_path: Path, text: str) -> None:
    """Whatever its hash says, such a definition is not drawn over: the DAG comes from the
    spans alone, and notify, with no span, waits for ``unknown``."""
    with _stored(tmp_path, text) as run:
        pass
    assert (recorded_pipeline(run), _notify_waits_for(run)) == (None, "unknown")


@pytest.mark.parametrize(
    ("text", "notify"),
    [
        (_definition(NOTIFY).canonical_json, [{"kind": "on_condition"}]),
        (CRAFTED["a cycle"], []),
        (CRAFTED["a name that is a number"], []),
    ],
    ids=["sound", "a cycle", "a name that is a number"],
)
def test_dag_watch_draws_over_a_sound_definition_only(
    tmp_path: Path, text: str, notify: list[dict[str, str]]
) -> None:
    """``dag --run --watch`` of the ended run writes its drawing once, without a traceback:
    notify, skipped without a span, has its trigger from the definition only when the
    definition is sound."""
    out = tmp_path / "dag.json"
    with _stored(tmp_path, text, end_run=True) as run:
        done = taskdaemon(
            tmp_path / "home",
            *("dag", "--run", run.run_id, "--watch", "--format", "json", "-o", str(out)),
            *("--source", f"sqlite:///{tmp_path / 'spans.db'}"),
        )
    nodes = {node["name"]: node for node in json.loads(out.read_text())["nodes"]}
    kinds = [{"kind": trigger["kind"]} for trigger in nodes["notify"]["triggers"]]
    assert (done.returncode, done.stderr, kinds, "again" in nodes) == (0, "", notify, False)


def test_watch_of_a_run_with_a_mistyped_definition_is_drawn_from_its_spans(
    tmp_path: Path,
) -> None:
    """``watch`` of the ended run prints its stages' lines and its end: a stage name that is a
    number in the recorded definition was a traceback of the drawing."""
    with _stored(tmp_path, CRAFTED["a name that is a number"], end_run=True) as run:
        source = f"sqlite:///{tmp_path / 'spans.db'}"
        done = taskdaemon(tmp_path / "home", "watch", run.run_id, "--source", source)
    assert (done.returncode, done.stderr, done.stdout.splitlines()[-1]) == (
        0,
        "",
        f"run {run.run_id} of demo: success, 7.0s, 5/5 stages done",
    )
