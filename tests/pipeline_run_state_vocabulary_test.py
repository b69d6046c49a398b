"""run_state's vocabulary pinned member by member, and its pure rules at their edges.

mutmut does not mutate module-level constants, so the status sets and the precedence order are
held here directly: each change to them must be a decision made in this file too.
"""

from __future__ import annotations

import itertools

import pytest

from taskdaemon.pipeline.records import approval_waits
from taskdaemon.pipeline.state import StageStatus
from taskdaemon.pipeline.status_rules import (
    ACTIVE_STAGE_STATUSES,
    ENDED_STAGE_STATUSES,
    FAILED_STAGE_STATUSES,
    INTERRUPTED,
    NOT_STARTED_STAGE_STATUSES,
    OPEN_RUN_STATUSES,
    RUN_RECORD_STATUSES,
    STAGE_PRECEDENCE,
    TERMINAL_STAGE_STATUSES,
    awaiting_approval,
    exception_type_name,
    failure_error_type,
    is_failed,
    not_reached_reason,
    run_failed,
    stage_status_of,
)

PRECEDENCE = (
    "paused",
    "running",
    "interrupted",
    "retrying",
    "queued",
    "failure",
    "timeout",
    "cancelled",
)


def test_the_status_sets_have_the_documented_members() -> None:
    """Each status set holds exactly the statuses docs/run-state.md lists for it."""
    assert INTERRUPTED == "interrupted"
    assert FAILED_STAGE_STATUSES == {"failure", "timeout"}
    assert ENDED_STAGE_STATUSES == {"success", "failure", "timeout", "cancelled"}
    assert TERMINAL_STAGE_STATUSES == {"success", "failure", "timeout", "cancelled", "skipped"}
    assert NOT_STARTED_STAGE_STATUSES == {"pending", "waiting"}
    assert ACTIVE_STAGE_STATUSES == {"waiting", "queued", "running", "retrying", "paused"}
    assert OPEN_RUN_STATUSES == {"running", "paused", "interrupted"}


def test_run_record_statuses_are_listed_in_their_display_order() -> None:
    """The statuses a run record can have, in the order ``runs list --status`` offers them."""
    assert RUN_RECORD_STATUSES == (
        "running",
        "success",
        "failure",
        "cancelled",
        "interrupted",
        "paused",
    )


def test_every_stage_status_is_either_terminal_active_or_pending() -> None:
    """The stage sets partition the stage statuses: nothing is both done and in progress."""
    assert not TERMINAL_STAGE_STATUSES & ACTIVE_STAGE_STATUSES
    assert TERMINAL_STAGE_STATUSES | ACTIVE_STAGE_STATUSES | {"pending"} == set(StageStatus)


def test_the_precedence_is_the_documented_order() -> None:
    """In-flight states first, then the failures worst first (docs/run-state.md)."""
    assert STAGE_PRECEDENCE == PRECEDENCE


@pytest.mark.parametrize(("better", "worse"), list(itertools.combinations(PRECEDENCE, 2)))
def test_an_earlier_status_names_a_stage_whose_instances_disagree(better: str, worse: str) -> None:
    """Of two instances, the one whose status comes first in the precedence names the stage,
    whichever instance it is."""
    assert stage_status_of([(0, worse), (1, better)]) == better
    assert stage_status_of([(0, better), (1, worse)]) == better


@pytest.mark.parametrize("status", PRECEDENCE)
def test_a_ranked_status_beats_success_and_skipped(status: str) -> None:
    """A stage with one instance in a ranked status and others succeeded or skipped has it."""
    assert stage_status_of([(0, "success"), (1, status), (2, "skipped")]) == status


def test_instances_without_a_ranked_status() -> None:
    """Unranked statuses that agree name the stage; a mix of them is ``skipped``."""
    assert stage_status_of([(0, "success"), (1, "success"), (2, "success")]) == "success"
    assert stage_status_of([(3, "skipped"), (1, "skipped")]) == "skipped"
    assert stage_status_of([(0, "success"), (1, "skipped")]) == "skipped"
    assert stage_status_of([(0, "pending"), (1, "success")]) == "skipped"
    assert stage_status_of([(5, "waiting")]) == "waiting"


def test_only_each_instances_last_attempt_counts() -> None:
    """An instance's earlier, failed attempts do not name the stage once it succeeded."""
    assert stage_status_of([(0, "failure"), (1, "success"), (0, "success")]) == "success"
    assert stage_status_of([(0, "success"), (1, "timeout"), (1, "success")]) == "success"
    assert stage_status_of([(0, "success"), (1, "success"), (1, "cancelled")]) == "cancelled"
    assert stage_status_of(iter([(0, "timeout"), (0, "running")])) == "running"


def test_failed_statuses() -> None:
    """``failure`` and ``timeout`` are failed; no other status is."""
    assert [s for s in (*StageStatus, INTERRUPTED) if is_failed(s)] == ["failure", "timeout"]


def test_a_run_failed_when_one_execution_did() -> None:
    """One failed or timed-out execution fails the run; cancelled or skipped ones do not."""
    assert run_failed(["success", "timeout"])
    assert run_failed(iter(["failure"]))
    assert not run_failed(["success", "cancelled", "skipped"])
    assert not run_failed([])


def _awaiting(records: list[tuple[str, bool]]) -> frozenset[str]:
    """The stages awaiting an approval after ``(stage, is_request)`` records, one a second, as
    the live state and the stored record both ask it: waits first, then the open ones."""
    return awaiting_approval(approval_waits((s, r, float(i)) for i, (s, r) in enumerate(records)))


def test_an_approval_is_awaited_until_its_latest_record_answers_it() -> None:
    """A request awaits; an answer ends it; a later request awaits again; no records, none."""
    assert frozenset() == _awaiting([])
    assert frozenset() == _awaiting([("a", False)])
    assert {"b"} == _awaiting([("a", True), ("b", True), ("a", False)])
    assert {"a"} == _awaiting([("a", False), ("a", True)])
    assert {"a"} == _awaiting([("a", True), ("a", False), ("a", True)])
    assert {"a"} == _awaiting([("a", True), ("a", True)])  # a repeated request: one wait
    assert frozenset() == _awaiting([("a", True), ("a", True), ("a", False)])


class Outer:
    class BrokenError(Exception):
        """An exception class nested in another, with a qualified name."""


def test_exception_type_names() -> None:
    """A builtin exception is named bare, any other by module and qualified name."""
    assert exception_type_name(ValueError("x")) == "ValueError"
    assert exception_type_name(Outer.BrokenError()) == f"{__name__}.Outer.BrokenError"


def test_exception_type_name_of_a_class_without_a_module() -> None:
    """A class whose module is empty is named by its qualified name alone, no leading dot."""
    nameless = type("Nameless", (Exception,), {"__module__": ""})
    assert exception_type_name(nameless()) == "Nameless"


def test_failure_error_types() -> None:
    """``timeout`` wins; else the exception's class; else the type given; else ``_OTHER``."""
    assert failure_error_type("timeout", ValueError(), "Given") == "timeout"
    assert failure_error_type("failure", Outer.BrokenError(), "Given") == "Outer.BrokenError"
    assert failure_error_type("failure", None, "Given") == "Given"
    assert failure_error_type("failure", None, None) == "_OTHER"
    assert failure_error_type("failure", None, "") == "_OTHER"


def test_the_reason_of_a_stage_the_run_never_reached() -> None:
    """The reason names the status the run ended with."""
    assert not_reached_reason("cancelled") == "not reached: the run ended (cancelled)"
