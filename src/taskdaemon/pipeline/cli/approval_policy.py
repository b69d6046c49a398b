"""Approvals granted on the command line: ``--approve STAGE`` and ``--auto-approve``, as
``run`` and ``debug FILE`` take them.

``--approve STAGE`` grants the named stages' approvals as soon as they are asked (each must be
a stage with a manual approval trigger: checked before anything runs), ``--auto-approve``
grants all; the two exclude each other. Without either, a stage waiting for approval waits for
``taskdaemon approve`` over the run's control socket.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from collections.abc import Sequence
from typing import TYPE_CHECKING

from taskdaemon.pipeline.errors import PipelineError
from taskdaemon.pipeline.events import ApprovalRequested, EngineEvent
from taskdaemon.pipeline.model import Pipeline
from taskdaemon.pipeline.quoting import quote

if TYPE_CHECKING:  # the engine is imported when the run starts (start-up time)
    from taskdaemon.pipeline.engine import RunHandle

__all__ = ["ApprovalPolicy", "add_approval_options", "check_approvals"]


def add_approval_options(parser: argparse.ArgumentParser) -> None:
    """Add ``--approve STAGE`` (repeatable) and ``--auto-approve`` to ``parser``."""
    approvals = parser.add_mutually_exclusive_group()
    approvals.add_argument(
        "--approve",
        action="append",
        default=[],
        metavar="STAGE",
        help="grant this stage's approval when it is asked for; repeatable",
    )
    approvals.add_argument(
        "--auto-approve", action="store_true", help="grant every approval when it is asked for"
    )


def check_approvals(pipeline: Pipeline, stages: Sequence[str], command: str) -> list[str]:
    """One issue line per ``--approve`` stage that ``pipeline`` lacks or that has no manual
    approval trigger, headed ``taskdaemon COMMAND: `` as the command's other option errors."""
    issues = []
    for name in stages:
        stage = pipeline.stage_map.get(name)
        if stage is None:
            problem = f"no such stage (stages: {', '.join(pipeline.stage_map)})"
        elif not stage.awaits_approval:
            problem = "the stage has no manual approval trigger"
        else:
            continue
        issues.append(f"taskdaemon {command}: --approve {quote(name)}: {problem}")
    return issues


class ApprovalPolicy:
    """An engine observer granting approvals the user granted on the command line.

    The grant is scheduled on the event loop (never re-entering the engine from inside its
    event emission) once the run handle is known (``attach``).
    """

    def __init__(self, stages: Sequence[str] = (), *, approve_all: bool = False) -> None:
        self._stages = frozenset(stages)
        self._all = approve_all
        self._handle: RunHandle | None = None
        self._pending: list[str] = []

    def wants(self, stage: str) -> bool:
        """True if the command line grants ``stage``'s approval."""
        return self._all or stage in self._stages

    @property
    def grants(self) -> bool:
        """True if the command line grants any approval: only then does the policy observe
        the run (``build_observers``). An observer costs the engine a call per record it is
        offered and a ``wants_record`` question per kind it declines, every stage, and a
        policy that grants nothing would act on none of them."""
        return self._all or bool(self._stages)

    def attach(self, handle: RunHandle) -> None:
        """Start granting through ``handle`` (a RunHandle); grants asked before now go first."""
        self._handle = handle
        pending, self._pending = self._pending, []
        for stage in pending:
            self._grant(stage)

    def wants_record(self, kind: type) -> bool:
        """Only ``ApprovalRequested`` (the engine's ``wants_record`` hook): without this
        answer, every record the other observers decline would still be built for this one,
        which reads none of them."""
        return kind is ApprovalRequested

    def on_event(self, event: EngineEvent) -> None:
        """Grant the approval when ``event`` asks for one the command line allows."""
        if isinstance(event, ApprovalRequested) and self.wants(event.stage):
            if self._handle is None:
                self._pending.append(event.stage)
            else:
                asyncio.get_running_loop().call_soon(self._grant, event.stage)

    def _grant(self, stage: str) -> None:
        if self._handle is None:  # only called once attached
            return
        with contextlib.suppress(PipelineError):  # the run ended or the stage moved on meanwhile
            self._handle.approve(
                stage, by="cli --approve" if not self._all else "cli --auto-approve"
            )
