"""The debugger's request protocol, shared by the control socket and the HTTP routes.

A request is a JSON object with an ``action``; the answer is ``{"ok": true, ...}`` or ``{"ok":
false, "error": "one line"}``. :class:`DebugOps` answers them for one run of an engine, turning
debug mode on at the first request (so any run can be debugged once someone attaches, and a run
nobody attaches to never has a gate). Breakpoints set through it belong to that run.
Its ``state`` lists, and its ``delete`` (one by number, or all) deletes, the breakpoints that
apply to its run: the run's own and those of the run's pipeline (``--break``,
``TASKDAEMON_BREAKPOINTS``, the Python API's ``pipeline=``), never another run's.
:meth:`DebugOps.answer` raises instead of answering ``ok`` false, so that the HTTP routes can
tell a malformed request from a missing stage and from what the run refuses now.

Actions (fields in brackets are optional)::

    state [client] [pid]                the run as the debugger sees it (DebugSession.state);
                                        with ``client``, that prompt attaches
    wait [timeout]                      until something is paused or the run ended (≤ 30 s)
    continue|step|skip|retry [stage]    resume (see DebugSession)
    set stage input value [secret]      override an input of a paused execution; with
                                        ``secret`` true, its value is masked everywhere
    inspect stage                       inputs, upstream outputs, triggers, pending events
    env [stage]                         the environment a paused execution's stage will see
                                        (``debug_env``; the one paused stage when none is named)
    break [stage] [when] [on] [client]  add a breakpoint (on: start, failure, event:TYPE of
                                        a type the stage, or some stage, listens for)
    delete [id]                         delete one breakpoint, or all of this run's
    detach [client] [all]               a prompt leaves (see below), leave step mode, resume
    dump [path]                         write a debug dump (when the process can)
    settling                            ``seconds``: how long a dump asked now would first wait
                                        for telemetry to load, at most (0: it would not wait);
                                        a prompt says so before its ``dump``
    sync                                flush the process's log handlers into the store
    cancel                              cancel the run (a prompt's ``quit``)

``by`` (who; text of at most 4,096 characters, as the control socket's ``by`` of an approval) is
recorded on ``breakpoint.resumed`` and ``input.override``, and for ``cancel`` in the run's error
(``run cancelled by <who>``) and on the pauses it ends.

Every answer shows run data as the spans hold it: inputs, outputs, overrides and waiting
events' payloads redacted by key and shape (``redact_patterns``, the CLI's
``TASKDAEMON_REDACT_PATTERNS``), and the texts that may quote them (errors, pause reasons,
breakpoint conditions, trigger descriptions) by shape. An input's name is text there, as
in the definition's span, so one of a secret's shape is masked (``masked_names``: a user who
``set``s it knows it from the file). The answers go to a terminal, to another
process over the control socket and to any holder of the API token; the run itself still gets
the values as they are.

Several prompts can drive one run (``debug FILE`` and ``debug attach`` from other terminals).
A prompt names itself with ``client`` (and its process with ``pid``) on its first ``state``
(it attaches) and on each ``break``; its ``detach`` deletes the breakpoints it set (not
another prompt's, nor the ``--break`` ones of the run's command line) and resumes the run
only when no other prompt is attached (a prompt whose process is gone is not): one prompt
leaving must not pull the run from under another at a pause. ``detach`` with ``all`` (the
run's own ``debug FILE`` prompt at the end of its input) or without ``client`` (an older
client) deletes every breakpoint of the run and resumes it, as before. While a prompt is
attached, a pause of the run is not bound by ``serve --break-timeout``
(``DebugSession.unattended_limit``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

from taskdaemon.pipeline.approval_audit import note_field
from taskdaemon.pipeline.errors import (
    DebugRequestError,
    PipelineError,
    StageNotFoundError,
    TaskdaemonError,
)
from taskdaemon.pipeline.quoting import quote
from taskdaemon.pipeline.redaction import DEFAULT_REDACT_PATTERNS, masked_names, redact, redact_text
from taskdaemon.pipeline.secret_values import (
    MASK_MAX_CHARS,
    MASK_MIN_CHARS,
    declare_secrets,
    unmaskable,
)

if TYPE_CHECKING:
    from taskdaemon.pipeline.engine import DebugSession, Engine
    from taskdaemon.pipeline.model import Pipeline

__all__ = ["ACTIONS", "DebugOps", "check_condition", "flush_log_handlers", "refusal_text"]

ACTIONS = (
    "state",
    "wait",
    "continue",
    "step",
    "skip",
    "retry",
    "set",
    "inspect",
    "env",
    "break",
    "delete",
    "detach",
    "dump",
    "settling",
    "sync",
    "cancel",
)
_MAX_WAIT = 30.0
#: Keys of an answer whose values are run data (a stage's inputs and outputs, an override,
#: waiting events' payloads): redacted by key and by shape, as captured payloads are.
_DATA_KEYS = frozenset({"inputs", "outputs", "pending_events", "value"})
#: Keys of an answer whose values are text that may quote run data: redacted by shape.
_TEXT_KEYS = frozenset({"error", "last_error", "reason", "when", "description"})

#: Writes a dump of a run (to the path given, else to the default place): its answer has the
#: ``path`` written and, when the dump lacks something (the spans), ``missing``: what and why.
DumpWriter = Callable[[str, str | None], Awaitable[dict[str, str]]]


def flush_log_handlers() -> None:
    """Flush the root logger's handlers (the store's log writer among them), so that what was
    logged so far can be read from the store."""
    for handler in list(logging.getLogger().handlers):
        with contextlib.suppress(Exception):  # a handler's own failure is not the debugger's
            handler.flush()


def refusal_text(exc: PipelineError) -> str:
    """What a refused request is told: the error's text, which may quote run data (a pause
    reason, a condition), redacted by shape."""
    return redact_text(str(exc))


def _text(request: Mapping[str, Any], key: str, *, required: bool = False) -> str | None:
    value = request.get(key)
    if value is None or value == "":
        if required:
            raise DebugRequestError(f"'{key}' is required")
        return None
    if not isinstance(value, str):
        raise DebugRequestError(f"'{key}' must be a string")
    return value


def _by(request: Mapping[str, Any]) -> str:
    """Who ``request`` names, else ``debugger``: bounded by ``note_field``, as the control
    socket bounds an approval's and a cancel's ``by`` (it reaches the run's error and spans)."""
    try:
        return note_field(request, "by") or "debugger"
    except ValueError as exc:
        raise DebugRequestError(str(exc)) from None


def check_condition(pipeline: Pipeline, stage: str | None, when: str | None, on: str) -> None:
    """DebugRequestError when condition ``when`` of a breakpoint on ``stage`` (``on`` its
    kind) reads a stage ``pipeline`` does not have, or an input ``stage`` does not declare
    (not for an event breakpoint, whose ``inputs`` are empty): it could never hold. Only the
    paths :func:`~taskdaemon.pipeline.cel_paths.read_paths` can tell are checked, and only in
    a condition that compiles: one that does not is ``set_breakpoint``'s to refuse, with the
    parser's reason."""
    if not when:
        return
    from taskdaemon.pipeline.cel_paths import read_paths  # noqa: PLC0415 - with a condition
    from taskdaemon.pipeline.expressions import (  # noqa: PLC0415
        BREAKPOINT_VARIABLES,
        compile_expression,
    )

    try:
        compile_expression(when, BREAKPOINT_VARIABLES)
    except TaskdaemonError:
        return
    paths = read_paths(when, ("stages", "inputs")) or {}
    for name in paths.get("stages") or {}:
        if name not in pipeline.stage_map:
            known = ", ".join(pipeline.stage_map)
            raise DebugRequestError(
                f"breakpoint condition reads stage {quote(name)}, which the pipeline does not "
                f"have (stages: {known})"
            )
    if stage is None or on.startswith("event:"):
        return
    declared = [mapping.name for mapping in pipeline.stage_map[stage].inputs]
    for name in paths.get("inputs") or {}:
        if name not in declared:
            raise DebugRequestError(
                f"breakpoint condition reads input {quote(name)}, which stage {quote(stage)} "
                f"does not declare (inputs: {', '.join(declared) or 'none'})"
            )


def _check_listened(pipeline: Pipeline, stage: str | None, event_type: str) -> None:
    """DebugRequestError unless ``stage`` (any stage when None) listens for ``event_type``: an
    event breakpoint pauses the executions such an event starts, so on a type nothing listens
    for it could never pause (an empty type is ``set_breakpoint``'s to refuse)."""
    if not event_type:
        return
    if stage is not None:
        listened = pipeline.stage_map[stage].event_types
        if event_type not in listened:
            raise DebugRequestError(
                f"stage {quote(stage)} does not listen for event {quote(event_type)} "
                f"(it listens for: {', '.join(listened) or 'none'})"
            )
        return
    types = dict.fromkeys(t for s in pipeline.stages for t in s.event_types)
    if event_type not in types:
        raise DebugRequestError(
            f"no stage listens for event {quote(event_type)} (events: {', '.join(types) or 'none'})"
        )


class DebugOps:
    """Answers debugger requests for run ``run_id`` of ``engine`` (on the engine's loop)."""

    def __init__(
        self,
        engine: Engine,
        run_id: str,
        *,
        dump: DumpWriter | None = None,
        redact_patterns: tuple[str, ...] = DEFAULT_REDACT_PATTERNS,
    ) -> None:
        self._engine = engine
        self.run_id = run_id
        self._dump = dump
        self._patterns = redact_patterns
        self._clients: dict[str, int | None] = {}  # the prompts attached, with their pids
        self._set_by: dict[int, str] = {}  # breakpoint id -> the prompt that set it

    @property
    def session(self) -> DebugSession:
        """The engine's debug session (debug mode goes on at first use)."""
        return self._engine.with_debug(True)

    async def __call__(self, request: Mapping[str, Any]) -> dict[str, Any]:
        """Answer one request with ``ok`` true or false (the control socket's form); never
        raises."""
        try:
            return {"ok": True, **await self.answer(request)}
        except PipelineError as exc:
            return {"ok": False, "error": refusal_text(exc)}

    async def answer(self, request: Mapping[str, Any]) -> dict[str, Any]:
        """The answer to one request (without ``ok``), redacted. Raises what the HTTP routes
        tell apart: DebugRequestError for a malformed request (400), StageNotFoundError for a
        stage the run does not have and RunNotFoundError (404), PipelineError for what the
        run refuses now (409); the client is told :func:`refusal_text`."""
        action = request.get("action")
        if action not in ACTIONS:
            raise DebugRequestError(f"unknown action {quote(str(action))} ({', '.join(ACTIONS)})")
        return self._redacted(await self._answer(str(action), request))

    def _redacted(self, answer: dict[str, Any]) -> dict[str, Any]:
        """``answer`` with its run data and texts redacted (see the module docstring). Only
        the values under the known keys are: a map keyed by stage names (``stages``,
        ``upstream``) is walked, never redacted by a stage's name."""

        def walk(value: Any) -> Any:
            if isinstance(value, dict):
                return {key: entry(key, item) for key, item in value.items()}
            if isinstance(value, list):
                return [walk(item) for item in value]
            return value

        def entry(key: Any, value: Any) -> Any:
            if key == "inputs" and isinstance(value, dict):  # an input's name is text here
                return masked_names(redact(value, self._patterns))
            if key in _DATA_KEYS:
                return redact(value, self._patterns)
            if key in _TEXT_KEYS and isinstance(value, str):
                return redact_text(value)
            return walk(value)

        return {key: entry(key, value) for key, value in answer.items()}

    def done(self) -> bool:
        """True once the run ended."""
        return self._engine.get_run(self.run_id).done

    async def _answer(self, action: str, request: Mapping[str, Any]) -> dict[str, Any]:
        session = self.session
        run_id = self.run_id
        by = _by(request)
        stage = _text(request, "stage")
        handle = self._engine.get_run(run_id)
        if action == "state":
            if (client := _text(request, "client")) is not None:
                pid = request.get("pid")
                self._clients[client] = pid if isinstance(pid, int) and pid > 0 else None
                session.attended[run_id] = self._attached  # holds the unattended bound off
            return {"state": session.state(run_id), "done": handle.done}
        if action == "wait":
            return await self._wait(request)
        if action == "continue":
            return {"resumed": session.continue_(run_id, stage, by=by)}
        if action == "step":
            stepped = session.step(run_id, stage, by=by)
            return {"resumed": None if stepped is None else stepped.as_dict()}
        if action == "skip":
            return {"resumed": session.skip(run_id, stage, by=by).as_dict()}
        if action == "retry":
            return {"resumed": session.retry(run_id, stage, by=by).as_dict()}
        if action == "set":
            name = _text(request, "input", required=True)
            assert name is not None
            if "value" not in request:
                raise DebugRequestError("'value' is required")
            value = request["value"]
            secret = request.get("secret", False)
            if not isinstance(secret, bool):
                raise DebugRequestError("'secret' must be true or false")
            if secret and (why := unmaskable(value)) is not None:
                raise DebugRequestError(
                    f"not set: a secret is masked by its text wherever it goes, texts of "
                    f"{MASK_MIN_CHARS} to {MASK_MAX_CHARS} characters and whole numbers of as "
                    f"many digits, and this value holds {why}"
                )
            # Known as a secret before the override's event, log record and answer carry it:
            # a value marked secret, or one set on an input of a secret name (``api_token``),
            # declared: kept masked until the run ends (``secret_values``).
            declared = value if secret else {name: value}
            if (refusal := declare_secrets(declared, run_id, run_id, hidden=secret)) is not None:
                raise DebugRequestError(f"not set: this value holds {refusal}")
            if stage is None and len({p.stage for p in session.paused(run_id)}) > 1:
                # as the prompt's ``set``: an override must not guess which stage it is for
                raise PipelineError("cannot override an input: several stages are paused: name one")
            session.override(run_id, stage, name, value, by=by)
            return {"inputs": {name: value}}  # as the stage will see it, redacted
        if action == "inspect":
            return {"stage": session.inspect(run_id, stage or "")}
        if action == "env":
            return {"env": self._environment(stage)}
        if action == "break":
            if stage is not None and stage not in handle.pipeline.stage_map:
                known = ", ".join(handle.pipeline.stage_map)
                raise StageNotFoundError(f"no stage {quote(stage)} (stages: {known})")
            on = _text(request, "on") or "start"
            if on.startswith("event:"):
                _check_listened(handle.pipeline, stage, on[6:])
            when = _text(request, "when")
            check_condition(handle.pipeline, stage, when, on)
            bp = session.set_breakpoint(stage, when, on, run_id=run_id)
            if (client := _text(request, "client")) is not None:
                self._set_by[bp.id] = client
            return {"breakpoint": bp.as_dict()}

        if action == "delete":
            return {"deleted": self._delete(request.get("id"))}
        if action == "sync":
            await asyncio.get_running_loop().run_in_executor(None, flush_log_handlers)
            return {}
        if action == "cancel":
            session.cancel(run_id, by)
            return {}
        if action == "detach":
            return self._detach(_text(request, "client"), bool(request.get("all")), by)
        if action == "settling":  # a writer that never waits has nothing to say (_dump_hook)
            settling = getattr(self._dump, "settling", None)
            return {"seconds": settling() if callable(settling) else 0}
        if self._dump is None:
            raise PipelineError("this process cannot write debug dumps")
        return dict(await self._dump(run_id, _text(request, "path")))

    def _detach(self, client: str | None, everything: bool, by: str) -> dict[str, Any]:
        if client is None or everything:
            deleted = self._delete(None)
        else:
            mine = [
                bp.id
                for bp in self.session.breakpoints(self.run_id)
                if self._set_by.get(bp.id) == client
            ]
            deleted = sum(self.session.delete_breakpoint(number) for number in mine)
        self._clients.pop(client or "", None)
        if client is not None and not everything and self._attached():
            # Another prompt is at work (at a pause, perhaps): leave the run to it.
            return {"deleted": deleted, "resumed": 0}
        return {"deleted": deleted, "resumed": self.session.continue_(self.run_id, by=by)}

    def _environment(self, stage: str | None) -> dict[str, Any]:
        """The ``env`` answer (``debug_env``) for the paused execution of ``stage`` (``STAGE``
        or ``STAGE#N``; None: the only one paused), redacted with this run's patterns."""
        from taskdaemon.pipeline.debug_env import stage_environment  # noqa: PLC0415

        handle = self._engine.get_run(self.run_id)
        if stage is not None and stage.split("#", 1)[0] not in handle.pipeline.stage_map:
            known = ", ".join(handle.pipeline.stage_map)
            raise StageNotFoundError(f"no stage {quote(stage)} (stages: {known})")
        paused = self.session.paused(self.run_id)
        if stage is not None:
            paused = [p for p in paused if stage in (p.stage, f"{p.stage}#{p.instance}")]
        if len({p.stage for p in paused}) != 1:
            what = f"stage {quote(stage)} is not paused" if stage else "nothing is paused"
            if stage is None and paused:
                what = "several stages are paused: name one"
            raise PipelineError(f"no environment to show: {what} (env shows a paused stage's)")
        return stage_environment(handle.pipeline, handle._run.workspace, paused[0], self._patterns)

    def _attached(self) -> bool:
        """Whether a prompt is still attached: one whose process is gone (killed, its terminal
        closed) never detached, and must not hold the run paused for ever."""
        for client, pid in list(self._clients.items()):
            if pid is None:
                continue
            try:
                os.kill(pid, 0)  # the socket is a Unix one: the prompt is on this machine
            except ProcessLookupError:
                del self._clients[client]
            except OSError:
                pass  # another user's process: it exists
        return bool(self._clients)

    def _delete(self, breakpoint_id: Any) -> int:
        session = self.session
        if breakpoint_id is None:
            mine = [bp.id for bp in session.breakpoints(self.run_id)]
            for number in mine:
                session.delete_breakpoint(number)
            return len(mine)
        if not isinstance(breakpoint_id, int) or isinstance(breakpoint_id, bool):
            raise DebugRequestError("'id' must be an integer")
        if breakpoint_id not in {bp.id for bp in session.breakpoints(self.run_id)}:
            # Another run's: this run's prompt must not take it from under that run's.
            raise PipelineError(f"run {self.run_id} has no breakpoint #{breakpoint_id}")
        return session.delete_breakpoint(breakpoint_id)

    async def _wait(self, request: Mapping[str, Any]) -> dict[str, Any]:
        timeout = request.get("timeout", _MAX_WAIT)
        if not isinstance(timeout, int | float) or isinstance(timeout, bool) or timeout < 0:
            raise DebugRequestError("'timeout' must be a number of seconds")
        session = self.session
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(session.wait_paused(self.run_id), min(timeout, _MAX_WAIT))
        handle = self._engine.get_run(self.run_id)
        return {
            "paused": [p.as_dict() for p in session.paused(self.run_id)],
            "done": handle.done,
            "status": str(handle.status),
            "error": handle.snapshot().error if handle.done else None,
        }
