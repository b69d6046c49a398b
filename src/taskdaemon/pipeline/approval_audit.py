"""The audit record of an approval granted or rejected, whichever way the decision came.

The HTTP API (``server.py``) and the control socket (``control.py``, behind ``taskdaemon
approve``) log the same record on the ``taskdaemon.audit`` logger, *after* the engine accepted
the decision: who decided, the stage, the run, and the decider's free text (``comment``, and a
rejection's ``reason``) as fields of their own. The text is bounded
(:data:`MAX_NOTE_CHARS`, refused beyond, never cut: a cut reason could say something else);
secrets in it are masked where the record is written, as in any log record (``logs.py``,
the span store's log writer).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Final

__all__ = ["MAX_NOTE_CHARS", "log_approved", "log_rejected", "note_field"]

#: The most characters a comment or a reason may have (the HTTP body and the socket alike).
MAX_NOTE_CHARS: Final = 4096

_audit = logging.getLogger("taskdaemon.audit")


def note_field(request: Mapping[str, Any], name: str) -> str:
    """The optional text field ``name`` of ``request`` ("" when absent or null); ValueError,
    in one line, when it is not a string or is longer than :data:`MAX_NOTE_CHARS`."""
    value = request.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a string")
    if len(value) > MAX_NOTE_CHARS:
        raise ValueError(f"{name} is longer than {MAX_NOTE_CHARS} characters")
    return value


def log_approved(run_id: str, stage: str, *, by: str, comment: str) -> None:
    """Log that ``by`` granted the approval ``stage`` of run ``run_id`` waited for."""
    _audit.info(
        "approval of %s granted by %s%s",
        stage,
        by,
        f" ({comment})" if comment else "",
        extra={"run_id": run_id, "stage": stage, "by": by, "comment": comment},
    )


def log_rejected(run_id: str, stage: str, *, by: str, reason: str, comment: str) -> None:
    """Log that ``by`` rejected it, and why."""
    _audit.info(
        "approval of %s rejected by %s: %s",
        stage,
        by,
        reason or "no reason given",
        extra={"run_id": run_id, "stage": stage, "by": by, "reason": reason, "comment": comment},
    )
