"""``taskdaemon replay RUN --from STAGE`` of a fan-out some instances of failed: only those run
again, the others are reused from the record (``replayed``, linked to their original spans);
``--rerun-all`` runs them all. Real subprocesses, the store read back."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli_support import taskdaemon
from replay_fan_support import failed_once
from taskdaemon.pipeline import telemetry as t
from taskdaemon.pipeline.tracking.spans import SpanRecord
from taskdaemon.pipeline.tracking.store import SpanStore


def _replay(home: Path, *args: str) -> tuple[str, list[SpanRecord]]:
    """Replay with ``args``: the new run's id and its spans, read back from the store."""
    done = taskdaemon(home, "replay", *args, "-q", cwd=home)
    assert 0 == done.returncode, done.stdout + done.stderr
    new = done.stdout.strip()  # -q: the replay's run id alone
    with SpanStore(home / "spans.db") as store:
        return new, store.get_trace(new)


def _instances(spans: list[SpanRecord], stage: str) -> dict[int, SpanRecord]:
    return {
        span.attributes[t.STAGE_INSTANCE]: span
        for span in spans
        if span.attributes.get(t.CICD_TASK_NAME) == stage and t.STAGE_INSTANCE in span.attributes
    }


@pytest.mark.slow
def test_a_replay_from_a_fan_out_runs_only_the_instances_that_failed(home: Path) -> None:
    """Replayed from ``c``, only item 2 runs again; instances 0 and 2 are ``replayed`` (the
    record's ``success``), each linked to its own original span, and ``d`` gets the outputs of
    all three, the reused ones as recorded (after ``c``'s ``outputs:`` mapping, not mapped
    again). The stage reads ``success``, not the ``skipped`` of instances that disagree."""
    original = failed_once(home)
    with SpanStore(home / "spans.db") as store:
        recorded = _instances(store.get_trace(original), "c")
    new, spans = _replay(home, original, "--from", "c")
    shown = {
        instance: (
            span.attributes[t.STAGE_STATUS],
            span.attributes.get(t.STAGE_REPLAYED_STATUS),
            [
                (link.trace_id, link.span_id)
                for link in span.links
                if link.attributes.get(t.LINK_RELATION) == t.LINK_REPLAYED_FROM
            ],
        )
        for instance, span in _instances(spans, "c").items()
    }
    assert {
        0: ("replayed", "success", [(original, recorded[0].span_id)]),
        1: ("success", None, []),
        2: ("replayed", "success", [(original, recorded[2].span_id)]),
    } == shown
    assert ("2\n", "12\n") == (
        (home / "ran.txt").read_text(),
        (home / "sums.txt").read_text(),
    )
    with SpanStore(home / "spans.db") as store:
        stages = {stage.name: stage.status for stage in store.get_run(new).stages}
    assert {"a": "replayed", "c": "success", "d": "success"} == stages


@pytest.mark.slow
def test_rerun_all_runs_every_instance_again_and_dry_run_says_which(home: Path) -> None:
    """``--rerun-all`` runs the three items again, none ``replayed``; ``--dry-run`` says which
    instances the default reuses, and ``--verify`` compares only the one it ran (item 2, now a
    success: exit 3), not the reused ones as if they had run again."""
    original = failed_once(home)
    verified = taskdaemon(home, "replay", original, "--from", "c", "--verify", cwd=home)
    assert (3, "verify: 2 divergences in 1 execution run again") == (
        verified.returncode,
        verified.stdout.splitlines()[-1].split(" (")[0],
    ), verified.stdout
    (home / "ran.txt").write_text("")
    dry = taskdaemon(home, "replay", original, "--from", "c", "--dry-run", cwd=home)
    assert (
        "run   c: run 1 instance again (1: failure); reuse the recorded outputs of 2 instances "
        "(0, 2) where each gets the item and inputs it got (it will: every stage upstream of c "
        "is fed)"
    ) in dry.stdout.splitlines(), dry.stdout
    _, spans = _replay(home, original, "--from", "c", "--rerun-all")
    assert (["1", "2", "3"], {"success"}) == (
        sorted((home / "ran.txt").read_text().split()),
        {span.attributes[t.STAGE_STATUS] for span in _instances(spans, "c").values()},
    )
