"""What a report counts of a replay (``taskdaemon replay RUN --from STAGE``), in every source.

A replay's *fed* stage executions (status ``replayed``: their handler did not run, they returned
the recorded outputs at once) did no work: they are not executions of their stage, so no stage
figure counts them (executions, failures, retries, durations, queue waits, CPU, memory).

A replay that fed at least one execution covers only the part of the pipeline it re-ran, so its
length is not a run's length: it is left out of every run figure (runs, success and failure
rates, run percentiles, the median and slowest run, the critical shares' denominator and
numerators), and the report's notes say how many were left out. The stages it did re-run are
today's code running for real: they count like any other execution. A replay that fed nothing
(``--from`` the first stage) is a whole run and counts as one. See docs/reports.md, "Replays".
"""

from __future__ import annotations

from typing import Final

from taskdaemon.pipeline import telemetry as t
from taskdaemon.pipeline.records import RunRecord

__all__ = ["FED", "fed_stages", "replay_note"]

#: The status of a fed execution, and the status the store's run aggregates give a replay that
#: fed stages (counted apart, never as a run).
FED: Final = t.STATUS_REPLAYED


def fed_stages(run: RunRecord) -> bool:
    """Whether ``run`` is a replay that fed at least one ended stage execution."""
    return any(
        attempt.status == FED and attempt.end is not None
        for stage in run.stages
        for attempt in stage.attempts
    )


def replay_note(pipeline: str, replays: int) -> str:
    """The report's note for ``replays`` replays of ``pipeline`` left out of its run figures."""
    noun = "replay" if replays == 1 else "replays"
    return (
        f"{pipeline}: {replays} {noun} that fed recorded stages left out of the run figures "
        '(their re-run stages are counted; see docs/reports.md, "Replays")'
    )
