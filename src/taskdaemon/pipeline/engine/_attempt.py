"""Attempts of a stage instance: worker slots, the pause gate, the handler call under its
timeout, retries with backoff, and the records of each attempt.

* **Worker slots**: every attempt holds one from just before the pause gate until its handler
  returned.
* **Timeouts**: ``stage.timeout or pipeline.timeout`` per attempt; on expiry the handler task is
  cancelled and the attempt ends ``timeout``. A handler raising ``StageTimeoutError`` ends its
  attempt ``timeout`` too, its message the error: a deadline of its own passed (a replay's
  stand-in for a recorded timeout, ``replay/run.py``); a plain ``TimeoutError`` from a handler
  is a failure (a socket's, say), not the stage's timeout.
* **Retries**: ``stage.retry``, else ``pipeline.retry`` under ``error_strategy: retry``, else one
  attempt. A failed or timed-out attempt ``n < max_attempts`` is followed by the injected
  ``sleep(backoff.delay(n))`` and attempt ``n + 1``; a data error is never retried.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Mapping
from inspect import isawaitable
from types import CoroutineType
from typing import Any

from taskdaemon.pipeline._sync_pool import child_exit_code
from taskdaemon.pipeline.engine._callbacks import Callbacks, LazyEnvironment
from taskdaemon.pipeline.engine._context_builder import new_context
from taskdaemon.pipeline.engine._dataflow import (
    DataError,
    check_result,
    map_outputs,
    plain_outputs,
    resolve_inputs,
)
from taskdaemon.pipeline.engine._makers import stage_finished, stage_queued, stage_started
from taskdaemon.pipeline.engine._results import MappedOutputs, StageGateRequest
from taskdaemon.pipeline.engine._run_base import RunBase
from taskdaemon.pipeline.engine._stage_state import (
    CANCELLED,
    EMPTY,
    FAILED,
    FAILURE,
    QUEUED,
    RETRYING,
    RUNNING,
    SKIPPED,
    SUCCESS,
    TIMEOUT,
    TRANSITIONS,
    Execution,
    Instance,
    StageRun,
    move,
)
from taskdaemon.pipeline.errors import StageTimeoutError, redacted_bounded_text
from taskdaemon.pipeline.events import (
    StageQueued,
    StageRetrying,
    TaskRunRef,
)
from taskdaemon.pipeline.execution import enter_execution, leave_execution
from taskdaemon.pipeline.foreign_text import handler_error_text
from taskdaemon.pipeline.loops import Handler
from taskdaemon.pipeline.model import Stage
from taskdaemon.pipeline.redaction import redact_text
from taskdaemon.pipeline.secret_values import remember_secrets
from taskdaemon.pipeline.state import RunStatus, StageStatus

logger = logging.getLogger(__name__)
# What an ``async def`` handler returns: known at once, before ``isawaitable``'s ABC checks.
_COROUTINE = CoroutineType


class Attempts(RunBase):
    """The run's part that runs attempts: queue one, run every attempt of an instance."""

    __slots__ = ()  # the run's fields: ``RunBase.__slots__``

    def queue(self, srt: StageRun, inst: Instance, attempt: int) -> Execution:
        """Queue attempt ``attempt`` of ``inst`` (it waits for a worker slot)."""
        if QUEUED not in TRANSITIONS[inst.status]:
            move(srt, inst, QUEUED)  # raises: the move is refused
        inst.status = QUEUED  # move(srt, inst, QUEUED), checked inline
        ctx = self.ctx
        now = ctx.clock()
        ex = Execution(attempt, now, f"{srt.name}.{inst.index}.{attempt}")
        inst.executions.append(ex)
        if ctx.observed and ctx.wants_record(StageQueued):
            ctx.emit(
                stage_queued(  # every field by position, in its order (``_makers``)
                    self.run_id,
                    self.name,  # pipeline
                    srt.name,  # stage
                    inst.index,  # instance
                    attempt,
                    now,  # at
                    ex.task_run_id,
                )
            )
        return ex

    def handler_for(self, stage: Stage) -> Handler:
        """The stage's handler, resolved once per run; DataError when there is none."""
        handler = self.handlers.get(stage.name)
        if handler is None:
            try:
                # The engine's resolver, asked of it once a run rather than once a stage (a
                # frame each time): it is made once and never replaced.
                resolver = self.resolver
                if resolver is None:
                    resolver = self.resolver = self.ctx.resolver()
                handler = resolver.resolve(self.pipeline, stage)
            except Exception as exc:
                raise DataError(f"cannot resolve loop {stage.loop!r}: {exc}") from exc
            self.handlers[stage.name] = handler
        return handler

    async def execute(self, srt: StageRun, inst: Instance) -> None:
        """Run every attempt of one instance; never raises (outcomes go to the run)."""
        ctx = self.ctx
        stage = srt.cs.stage
        timeout = stage.timeout if stage.timeout is not None else self.pipeline.timeout
        # The stage's own retry policy, else the pipeline's under ``error_strategy: retry``.
        policy = stage.retry if stage.retry is not None else self.default_retry
        max_attempts = policy.max_attempts if policy is not None else 1
        ex = inst.executions[-1]
        slots = self.slots
        try:
            while True:
                retry_now = False
                # ``slots.take()`` and ``slots.release()`` inline for the usual case, a free slot
                # and nobody waiting: a frame each, every attempt (``_slots.py`` is the rule).
                if slots.free > 0 and not slots.waiters:
                    slots.free -= 1
                else:
                    await slots.wait()
                try:
                    status, exception = await self.attempt(srt, inst, ex, timeout)
                    debugger = ctx.debugger
                    if status in FAILED and debugger is not None:
                        # A failure breakpoint: before the error strategy acts (engine/_debug.py)
                        retry_now = await debugger.failed(self, srt, inst, ex)
                finally:
                    if slots.waiters:
                        slots.release()  # handed to the first waiter still waiting
                    else:
                        slots.free += 1
                attempt = ex.attempt
                will_retry = retry_now or (
                    status in FAILED
                    and attempt < max_attempts
                    and not isinstance(exception, DataError)
                    and self.stopping is None
                )
                self.finished(
                    srt, inst, ex, status=status, exception=exception, will_retry=will_retry
                )
                if not will_retry:
                    if status not in TRANSITIONS[inst.status]:
                        move(srt, inst, status)  # raises: the move is refused
                    inst.status = status  # move(srt, inst, status), checked inline
                    break
                delay = 0.0 if retry_now or policy is None else policy.backoff.delay(attempt)
                move(srt, inst, RETRYING)
                if ctx.observed:
                    ctx.emit(
                        StageRetrying(
                            run_id=self.run_id,
                            pipeline=self.name,
                            stage=srt.name,
                            instance=inst.index,
                            attempt=attempt,
                            task_run_id=ex.task_run_id,
                            delay=delay,
                            error=ex.error or "",
                            error_type=ex.error_type or "",
                            at=ctx.clock(),
                        )
                    )
                await ctx.sleep(delay)
                ex = self.queue(srt, inst, attempt + 1)
        except asyncio.CancelledError:
            if inst.status is CANCELLED:
                return  # stop() already ended this queued execution
            if inst.status is QUEUED or inst.status is RUNNING:
                ex = inst.executions[-1]
                self.finished(
                    srt,
                    inst,
                    ex,
                    status=CANCELLED,
                    exception=None,
                    will_retry=False,
                    error=self.cancelled_error(),
                )
            move(srt, inst, CANCELLED)
        except Exception as exc:
            # A bug in the engine or an observer hook that escaped its guard: end the run
            # rather than leave it waiting forever for this instance.
            logger.exception("internal error in stage %r of run %s", srt.name, self.run_id)
            last = inst.executions[-1]
            last.status = FAILURE
            last.error = redact_text(f"internal error: {exc!r}")
            last.error_type = type(exc).__qualname__
            inst.status = FAILURE
            if self.stopping is None:
                self.first_failure = self.first_failure or f"stage {srt.name!r}: {last.error}"
                self.stop(RunStatus.FAILURE, self.first_failure, srt.name)
        try:
            self.instance_ended(srt, inst)
        except Exception as exc:
            # The run's own bookkeeping broke while it moved on (a bug, or an injected clock
            # that raises): nothing can finish the run any more, so fail its waiters now.
            logger.exception("internal error ending stage %r of run %s", srt.name, self.run_id)
            self.abort(exc)
        # Nothing cancels an ended instance: let its task go once it returns, rather than
        # keep every finished task of the run (and asyncio's weak set of tasks) to its end.
        inst.task = None

    async def attempt(
        self, srt: StageRun, inst: Instance, ex: Execution, limit: float | None
    ) -> tuple[StageStatus, BaseException | None]:
        """One attempt, holding a worker slot. Returns its status and exception."""
        ctx = self.ctx
        stage = srt.cs.stage
        name = srt.name
        tid = ex.task_run_id
        data_error: DataError | None = None
        inputs: Mapping[str, Any]
        try:
            inputs = EMPTY
            if srt.cs.inputs:
                publisher = (
                    inst.fired_by[0].stage if inst.event is not None and inst.fired_by else None
                )
                inputs = await resolve_inputs(
                    srt.cs, inst.event, self.request, self.stages_ctx, publisher
                )
                # An input named api_key is a secret wherever it goes.
                remember_secrets(inputs, self.run_id)
        except DataError as exc:
            inputs, data_error = {}, exc
        gate = ctx.pause_gate
        paused = 0.0
        debugger = ctx.debugger
        if gate is not None and (
            debugger is None or debugger.may_pause(self.run_id, name, inst.event)
        ):
            decision = await gate(
                StageGateRequest(
                    run_id=self.run_id,
                    pipeline=self.name,
                    stage=name,
                    instance=inst.index,
                    attempt=ex.attempt,
                    task_run_id=tid,
                    loop=stage.loop,
                    inputs=inputs,
                    event=inst.event,
                )
            )
            if decision is not None:
                paused = ex.paused = decision.paused
                if decision.skip:
                    return SKIPPED, None
                if decision.inputs is not None:
                    inputs, data_error = decision.inputs, None
                    remember_secrets(inputs, self.run_id)
        if debugger is not None:  # what a failure pause shows of the attempt (engine/_debug.py)
            ex.inputs = inputs
        if RUNNING not in TRANSITIONS[inst.status]:
            move(srt, inst, RUNNING)  # raises: the move is refused
        inst.status = RUNNING  # move(srt, inst, RUNNING), checked inline
        now = ctx.clock()
        ex.running = now
        ex.status = RUNNING
        ex.started = True
        environment: Mapping[str, str] = EMPTY
        loop = self.loop
        if ctx.observed:
            previous = TaskRunRef(name, inst.index, ex.attempt - 1) if ex.attempt > 1 else None
            started = stage_started(  # every field by position, in its order (``_makers``)
                self.run_id,
                self.name,  # pipeline
                name,  # stage
                inst.index,  # instance
                ex.attempt,
                tid,  # task_run_id
                stage.loop,
                now,  # at
                ex.queued,  # queued_at
                srt.considered_at if srt.considered_at is not None else self.started_at,
                inputs,
                inst.fired_by,
                previous,  # previous_attempt
                inst.triggers,
                inst.event,
                paused,
            )
            ctx.emit(started)
            if ctx.env_hooks:
                environment = LazyEnvironment(ctx, started, loop)
        if not srt.started:
            self.first_start(srt, now)
        if data_error is not None:
            return FAILURE, _failed(ex, data_error)
        callbacks = Callbacks(self, srt, inst, ex, loop)
        context = new_context(  # every field by position, in its order (``_context_builder``)
            self.run_id,
            self.name,  # pipeline
            name,  # stage
            stage.loop,
            inst.index,  # instance
            ex.attempt,
            inputs,
            callbacks.publish,
            callbacks.report_process,
            callbacks.report_usage,
            callbacks.report_cpu,
            limit,  # timeout
            inst.event,
            environment,
            self.workspace,
            stage.command,
        )
        deadline = None
        # The handler's own code (its log records above all) knows which execution it serves.
        token = enter_execution(context)
        pid = _process.pid
        try:
            handler = self.handler_for(stage)
            if limit is None:  # no timeout: spare the Timeout object on the hot path
                result: Any = handler(context)
                if type(result) is _COROUTINE or isawaitable(result):
                    result = await result
                _exit_if_forked(pid)
            else:
                deadline = asyncio.timeout(limit)
                async with deadline:
                    result = handler(context)
                    if type(result) is _COROUTINE or isawaitable(result):
                        result = await result
                _exit_if_forked(pid)
                when = deadline.when()
                if when is not None and when <= self.loop.time():
                    # Past its deadline with no await the cancellation could reach: an async
                    # handler that blocked the loop (``time.sleep``). Its time is up all the
                    # same, and what it returned late is not its outputs.
                    ex.error = f"timed out after {limit:g}s"
                    ex.error_type = "TimeoutError"
                    return TIMEOUT, TimeoutError(ex.error)
            check_result(result)
            cs = srt.cs
            if type(result) is MappedOutputs:  # outputs recorded after their mapping
                ex.outputs = dict(result)
            elif cs.outputs is not None:
                # The mapping may rename a secret key's value or drop the key (``t:
                # result.token``): the result's own secrets are learnt before its outputs.
                remember_secrets(result, self.run_id)
                ex.outputs = await map_outputs(cs, result, self.request)
            elif type(result) is dict:  # what the python loop type returns: a mapping as is
                ex.outputs = result  # plain_outputs' answer, without its call and ABC check
            else:
                ex.outputs = plain_outputs(result)
            if ex.outputs:  # before the next stage, or a record, carries a secret of them on
                remember_secrets(ex.outputs, self.run_id)
        except TimeoutError as exc:
            _exit_if_forked(pid, exc)
            if deadline is None or not deadline.expired():
                return FAILURE, _failed(ex, exc)
            ex.error = f"timed out after {limit:g}s"
            ex.error_type = "TimeoutError"
            return TIMEOUT, exc
        except StageTimeoutError as exc:  # the handler's own deadline (module docstring)
            _exit_if_forked(pid, exc)
            _failed(ex, exc)
            ex.error_type = "TimeoutError"  # as the engine's own deadline says it
            return TIMEOUT, exc
        except Exception as exc:
            _exit_if_forked(pid, exc)
            return FAILURE, _failed(ex, exc)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            _exit_if_forked(pid, exc)
            # The handler's own ``SystemExit``, ``KeyboardInterrupt``, ``GeneratorExit`` or bare
            # ``BaseException`` (a sync handler's comes from its worker thread: no signal is
            # ever delivered there): the attempt fails. Let through, it ended the task with
            # the instance still running, and the run waited for it for ever.
            return FAILURE, _failed(ex, exc)
        finally:
            leave_execution(token)
        return SUCCESS, None

    def finished(
        self,
        srt: StageRun,
        inst: Instance,
        ex: Execution,
        *,
        status: StageStatus,
        exception: BaseException | None,
        will_retry: bool,
        error: str | None = None,
    ) -> None:
        """Attempt ``ex`` ended ``status``: note it and emit ``StageFinished``."""
        ctx = self.ctx
        # A failure breakpoint set ``ended`` when the handler failed: the pause is not run time.
        now = ex.ended if ex.ended is not None else ctx.clock()
        ex.ended = now
        ex.status = status
        if error is not None and ex.error is None:
            ex.error = error
            ex.error_type = "CancelledError"
        cancelled = status is CANCELLED and self.stopping is not None
        if cancelled:
            ex.cancel_cause = self.cancel_cause
        if ctx.observed:
            ctx.emit(
                stage_finished(  # every field by position, in its order (``_makers``)
                    self.run_id,
                    self.name,  # pipeline
                    srt.name,  # stage
                    inst.index,  # instance
                    ex.attempt,
                    ex.task_run_id,
                    status,
                    now,  # at
                    ex.outputs,
                    ex.error,
                    ex.error_type,
                    exception,
                    will_retry,
                    # cpu_seconds: a process tree's reported usage, else the handler thread's.
                    ex.cpu if ex.cpu is not None else ex.thread_cpu,
                    ex.memory,  # peak_memory_bytes
                    self.cancel_reason if cancelled else None,  # cancel_reason
                    ex.cancel_cause,
                )
            )


def _failed(ex: Execution, exc: BaseException) -> BaseException:
    """Note a failed attempt's error on ``ex`` and return ``exc``."""
    # The message reaches results, the CLI, /api and every view: never with a secret in it.
    ex.error = redacted_bounded_text(handler_error_text(exc), redact_text) or type(exc).__name__
    ex.error_type = "PipelineError" if isinstance(exc, DataError) else type(exc).__qualname__
    return exc


class _Process:
    """This process's id, kept current across ``os.fork`` (``register_at_fork``): read for
    each attempt without a system call."""

    pid = os.getpid()


_process = _Process()
os.register_at_fork(after_in_child=lambda: setattr(_process, "pid", os.getpid()))


def _exit_if_forked(pid: int, error: BaseException | None = None) -> None:
    """End this process at once when it is not ``pid`` (the engine's process that called the
    handler): an async handler that ran ``os.fork()`` and returned, or raised ``error``, in both
    processes. Exit code 0, or ``error``'s as Python gives it (``_sync_pool.child_exit_code``).

    Decision: the child is a copy of taskdaemon whose other threads (the monitor's, the span
    store's) did not survive the fork; carrying on as an engine, it waited for ever on a lock
    one of them held, with the command's stdout and stderr open, so a caller reading them
    (``taskdaemon run ... | tee``) never saw their end. A handler's child that means to live
    on does its work before returning, as a ``multiprocessing`` child does. A process forked
    before its attempts start (a pre-forking server's worker) runs them as its own."""
    if _process.pid != pid:
        os._exit(child_exit_code(error))
