"""The run log's lean path: a stage's start and end written as lifecycle rows at once.

Decision: within a turn with neither TRACE nor DEBUG on (``taskdaemon run``'s default), a
stage's start and end take a lean path (``run_log._LEAN``): the loggers' levels are asked once a
turn with where the rows go (a level changed while a turn is under way holds from the next turn,
as for the handlers, ``run_log_emit``; the monitor already asks the hook's ``takes`` once a
turn), and the lifecycle row is built at once, not through ``_emit``'s general form. Why: the
general path costs a stage's records several Python calls each (three ``isEnabledFor``,
``_emit``, the level's number and name, the span's id, the attributes' memo lookup), the larger
part of the run log's work on the monitor's thread. Exact: the row is the one ``_emit`` builds
(the same values, message, level name and redacted attributes: the test of the rows pins it),
and any record the lean path cannot write directly (another handler wants it, no valid span, an
id missing) goes the general way. Two things are remembered: the last span context's formatted
id (a stage's two rows carry the same context, an immutable tuple) and the attributes' JSON by
the record's values when they are strings (equal values, equal redacted JSON: ``log_rows``).
"""

from __future__ import annotations

import logging
from typing import Any, Final

from opentelemetry.trace import SpanContext

from taskdaemon.pipeline._record_queue import turn as _turn
from taskdaemon.pipeline.events import StageFinished, StageStarted
from taskdaemon.pipeline.log_levels import TRACE, severity_number
from taskdaemon.pipeline.log_rows import encoded_attributes
from taskdaemon.pipeline.run_log_emit import UNKNOWN, RunLogEmitter
from taskdaemon.pipeline.run_log_scope import DECISION_LOGGER, EVENT_LOGGER, LIFECYCLE_LOGGER
from taskdaemon.pipeline.status_rules import FAILED_STAGE_STATUSES

__all__ = ["LeanRunLog", "status_and_error"]

_lifecycle = logging.getLogger(LIFECYCLE_LOGGER)
_decision = logging.getLogger(DECISION_LOGGER)
_event = logging.getLogger(EVENT_LOGGER)
_OFF: Any = object()  # the logger drops records at that level
#: Attribute texts ``RunLog`` remembers at most (``RunLog._attributes``).
_TEXTS_MAX: Final = 256


def status_and_error(status: str, error: str | None) -> str:
    """``status`` and its error, the status said once: a stop's error already begins with it
    (``cancelled: run cancelled``), and a bare one is the status itself (``cancelled``)."""
    if not error or error == status:
        return status
    return error if error.startswith(f"{status}: ") else f"{status}: {error}"


class LeanRunLog(RunLogEmitter):
    """The lean path of ``run_log.RunLog``, its base class (see the module docstring)."""

    #: The runs under way that are replays (``RunLog`` keeps it): their stages go the general way.
    _replays: dict[str, str]

    def __init__(self) -> None:
        super().__init__()
        # The lifecycle-only path (``_lean``): the turn's token and, when neither TRACE nor
        # DEBUG is on, the answers for the lifecycle logger by level (``_lifecycle_answer``).
        self._lean: tuple[object, dict[int, Any] | None] = (UNKNOWN, None)
        # The last span context whose id a direct row carries, and that id formatted.
        self._span: Any = UNKNOWN
        self._span_hex = ""
        # Remembered attribute texts, by the record's event name and its other values.
        self._texts: dict[tuple[Any, ...], str] = {}

    def _general(self, event: StageStarted | StageFinished, span: SpanContext | None) -> None:
        """The record of ``event`` written the general way (``RunLog``'s handler of it)."""
        raise NotImplementedError

    def _begin_turn(self, token: list[Any]) -> tuple[object, dict[int, Any] | None]:
        """The turn's lean state: lifecycle answers to fill when neither TRACE nor DEBUG is
        on (then a stage's start and end write lifecycle records only), else None."""
        lean = not _event.isEnabledFor(TRACE) and not _decision.isEnabledFor(logging.DEBUG)
        state: tuple[object, dict[int, Any] | None] = (token, {} if lean else None)
        self._lean = state
        return state

    def _lifecycle_answer(self, answers: dict[int, Any], level: int) -> Any:
        """What a lifecycle record at ``level`` takes this turn: ``_OFF`` when the logger
        drops it, else its sink (None: the ``logging`` path), severity number and level name;
        kept in ``answers`` for the rest of the turn."""
        if not _lifecycle.isEnabledFor(level):
            answer: Any = _OFF
        else:
            sink = self._sink(_lifecycle, level, _turn.token)
            answer = (sink, severity_number(level), logging.getLevelName(level))
        answers[level] = answer
        return answer

    def _attributes(self, key: tuple[Any, ...], fields: dict[str, Any]) -> dict[str, Any] | str:
        """``fields``' JSON when the writer has it already (``log_rows.encoded_attributes``),
        remembered by ``key`` (the record's event name and other values, each a string or
        None: equal keys are equal fields, whose redacted JSON is the same); else ``fields``."""
        text = encoded_attributes(fields)
        if text is None:
            return fields
        if len(self._texts) >= _TEXTS_MAX:
            self._texts.clear()
        self._texts[key] = text
        return text

    def _span_hex_of(self, span: SpanContext | None) -> str | None:
        """``span``'s id as a row stores it, or None when it has none (not valid). The last
        one is remembered: a stage's two rows carry the same span context, an immutable
        tuple, so the same object has the same id."""
        if span is None or not span.is_valid:
            return None
        self._span = span
        self._span_hex = text = format(span.span_id, "016x")
        return text

    def _lean_row(
        self,
        answers: dict[int, Any],
        event: StageStarted | StageFinished,
        span: SpanContext | None,
    ) -> None:
        """``_stage_started`` or ``_stage_finished`` when only lifecycle records are on
        (``_LEAN``): the row ``_emit`` builds, kept with the turn's other rows for its sink
        (module doc). One method for both, not two that share their checks: the same lines
        once, and no call of a third to keep the row."""
        if isinstance(event, StageStarted):
            level = logging.INFO
        else:
            status = str(event.status)
            if status in FAILED_STAGE_STATUSES:
                level = logging.WARNING if event.will_retry else logging.ERROR
            else:
                level = logging.WARNING if status == "cancelled" else logging.INFO
        answer = answers.get(level) or self._lifecycle_answer(answers, level)
        if answer is _OFF:
            return
        span_hex = self._span_hex if span is self._span else self._span_hex_of(span)
        sink = answer[0]
        stage, instance, attempt = event.stage, event.instance, event.attempt
        if (
            sink is None
            or span_hex is None
            or stage is None
            or instance is None
            or attempt is None
            or (self._replays and event.run_id in self._replays)
        ):
            # The logging path, ids to be stamped, or a replay's stage, perhaps fed.
            self._general(event, span)
            return
        # The attributes' JSON is remembered by the record's values when each is a string or
        # None (``_attributes``); the body is ``_emit``'s ``message % args``, the same text.
        key: tuple[Any, ...]
        attributes: dict[str, Any] | str | None
        if isinstance(event, StageStarted):
            loop = event.loop
            key = ("stage.started", loop)
            attributes = self._texts.get(key) if type(loop) is str else None
            if attributes is None:
                attributes = self._attributes(key, {"event": "stage.started", "loop": loop})
            body = "stage %s started (attempt %d)" % (event.task_run_id, attempt)  # noqa: UP031
        else:
            error_type = event.error_type
            key = ("stage.finished", status, error_type)
            attributes = (
                self._texts.get(key) if error_type is None or type(error_type) is str else None
            )
            if attributes is None:
                fields = {"event": "stage.finished", "status": status, "error_type": error_type}
                attributes = self._attributes(key, fields)
            outcome = status_and_error(status, event.error)
            body = "stage %s finished: %s" % (event.task_run_id, outcome)  # noqa: UP031
        if sink is not self._rows_sink:
            self._hand_over()
            self._rows_sink = sink
        pipeline = event.pipeline
        self._rows.append(
            (
                event.run_id,
                int(event.at * 1e9),
                answer[1],
                answer[2],
                pipeline if isinstance(pipeline, str) else pipeline.name,
                stage,
                instance,
                attempt,
                span_hex,
                LIFECYCLE_LOGGER,
                body,
                attributes,
            )
        )
