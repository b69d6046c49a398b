"""The prompt of ``taskdaemon replay RUN --step``: the debugger's prompt over a recorded run.

It is :class:`~._prompt.CommandPrompt`, the machinery of ``taskdaemon debug``'s prompt
(readline history in ``$TASKDAEMON_HOME/step_history``, Tab completion of commands and stage
names, ``help``, one-line errors, commands one a line from a pipe), over a
:class:`~taskdaemon.pipeline.replay.walk.RecordedWalk` instead of a live run. Nothing is
executed: ``next`` (or an empty line), ``prev`` and ``goto T`` move through the recorded
events, each move printing the event and every stage's state after it; ``where``, ``inputs
STAGE``, ``outputs STAGE`` and ``logs STAGE`` answer as the debugger's commands do, from the
record *at the current instant*. The debugger's commands that act on a live run (``continue``,
``set``, ``skip``...) are not offered: there is nothing to resume. Typed by habit, each is
refused saying so and how to move instead (an "unknown command" read as a typo), and ``step``
(``s``) is ``next``: walking a record event by event is what ``--step`` names.

``logs STAGE`` reads the stage's log records up to the current instant from where the run's
records are kept: the ``sqlite://`` store the spans come from, the dump's ``logs.otlp.json``
for ``dump://``, and for the other sources (Tempo, Jaeger, OTLP files, which carry no log
records) the embedded store of ``$TASKDAEMON_HOME`` when it has the run.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

from taskdaemon.pipeline.cli._prompt import CommandPrompt
from taskdaemon.pipeline.cli.terminal_width import summary_width
from taskdaemon.pipeline.errors import PipelineError, SpanSourceError
from taskdaemon.pipeline.records import stage_error
from taskdaemon.pipeline.replay.walk import RecordedWalk
from taskdaemon.pipeline.table_fit import MIN_GIVEN, text_columns, wrapped
from taskdaemon.pipeline.terminal_text import one_line
from taskdaemon.pipeline.tracking.log_read import StoredLog
from taskdaemon.pipeline.wording import counted, instance_counts, not_run_by_replay

__all__ = ["STEP_COMMANDS", "StepPrompt", "log_reader_for"]

#: Columns of a stage's skip reason or error ``where`` shows on a pipe (``logs STAGE`` has
#: them whole); on a terminal, what is left of its line, no fewer than ``MIN_GIVEN``.
_WHY_CHARS = 80

#: A stage's log records of the run: ``(run_id, stage) → rows`` (SpanSourceError when unread).
LogReader = Callable[[str, str], list[StoredLog]]

STEP_COMMANDS: dict[str, str] = {
    "next": "next (or an empty line): go to the next recorded event",
    "prev": "prev: go back to the previous event",
    "goto": "goto T: go to the last event at T from the run's start (12.5s, 1m30s, 500ms)",
    "where": "where: each stage's state at this instant",
    "inputs": "inputs STAGE: the inputs each started execution of STAGE ran with",
    "outputs": "outputs STAGE: STAGE's outputs so far, and its upstream stages' outputs",
    "logs": "logs STAGE: STAGE's executions and its log records up to this instant",
    "quit": "quit: leave (nothing runs, nothing is cancelled)",
    "help": "help: this list",
}
_STEP_ALIASES = {
    "n": "next",
    # ``--step`` walks event by event: a user of the debugger's prompt types ``step`` for that
    "step": "next",
    "s": "next",
    "p": "prev",
    "g": "goto",
    "q": "quit",
    "exit": "quit",
    "h": "help",
    "?": "help",
}
_MOVES = frozenset({"next", "prev", "goto"})
#: The debugger's commands that act on a live run (and their short forms), typed here by
#: habit: each is refused saying that nothing runs here and how to move instead.
_LIVE_ONLY = dict.fromkeys(
    ("continue", "c", "set", "skip", "retry", "break", "b", "delete", "info", "dump"),
    "acts on a live run; a recorded run is only walked here: 'next' goes to the next event, "
    "'goto T' to an instant",
)


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def log_reader_for(source_url: str, default_url: str) -> LogReader:
    """How ``logs STAGE`` reads records for spans from ``source_url`` (see the module
    docstring); ``default_url`` is the embedded store's URL for the other sources."""
    from taskdaemon.pipeline.tracking.log_read import run_log_records  # noqa: PLC0415
    from taskdaemon.pipeline.tracking.source_urls import logs_place  # noqa: PLC0415

    place = logs_place(source_url)  # the source was opened: its URL is sound
    if place is not None and place.dump:
        from taskdaemon.pipeline.tracking.dump_logs import dump_log_records  # noqa: PLC0415

        dump = place.path
        return lambda run, stage: dump_log_records(dump, run, stage=stage)
    store = source_url if place is not None else default_url

    def read(run_id: str, stage: str) -> list[StoredLog]:
        # A default that is not the embedded store says so here, when logs are asked for.
        return run_log_records(store, run_id, stage=stage)

    return read


class StepPrompt(CommandPrompt):
    """Step through ``walk``; ``run()`` prints the first event, then reads commands until the
    input ends or ``quit``."""

    COMMANDS = STEP_COMMANDS
    ALIASES = _STEP_ALIASES
    NOT_HERE = _LIVE_ONLY
    PROMPT = "(replay) "

    def __init__(
        self,
        walk: RecordedWalk,
        *,
        logs: LogReader | None = None,
        stdin: IO[str] | None = None,
        stdout: IO[str] | None = None,
        history: Path | None = None,
    ) -> None:
        super().__init__(stdin=stdin, stdout=stdout, history=history)
        self.walk = walk
        self._logs = logs
        # A terminal's columns (None on a pipe): ``where``'s reasons are cut to the room left
        # on their line, and the state line wraps between stages, not inside a name.
        self._width = summary_width(self._out)

    def run(self) -> None:
        """Say what is walked, show the first event, then take commands."""
        state = self.walk.state()
        replay = f", a replay of run {self.walk.replay_of}" if self.walk.replay_of else ""
        opening = (
            f"stepping through run {state.run_id} ({state.pipeline}{replay}), "
            f"{counted(len(self.walk.events), 'recorded event')}, nothing executed; "
            "'help' lists the commands"
        )
        for line in wrapped(opening, self._width):
            self._print(line)
        self.show()
        self.loop()

    def completion_words(self) -> Sequence[str]:
        """The run's stage names."""
        return self.walk.stage_names()

    def empty_line(self) -> None:
        """An empty line is ``next``."""
        self.execute("next")

    def after(self, command: str) -> None:
        """After a move, show where it landed."""
        if command in _MOVES:
            self.show()

    def show(self) -> None:
        """The current event and the state of the run and of every stage after it."""
        walk = self.walk
        state = walk.state()
        stages = "  ".join(f"{s.name}={walk.shown(s)[0]}" for s in state.stages)
        self._print(f"[{walk.index + 1}/{len(walk.events)}] +{walk.offset:.3f}s  {walk.event.what}")
        for line in wrapped(f"    run={state.status}  {stages}", self._width):
            self._print(line)

    # ------------------------------------------------------------------ commands

    def _do_next(self, args: Sequence[str]) -> None:
        self.walk.next()

    def _do_prev(self, args: Sequence[str]) -> None:
        self.walk.prev()

    def _do_goto(self, args: Sequence[str]) -> None:
        if len(args) != 1:
            raise PipelineError("usage: goto T (12.5s, 1m30s, 500ms or seconds)")
        self.walk.goto(args[0])

    def _do_quit(self, args: Sequence[str]) -> None:
        self.quit = True

    def _stage_arg(self, args: Sequence[str], usage: str) -> str:
        if len(args) != 1:
            raise PipelineError(f"usage: {usage}")
        self.walk.stage(args[0])  # an unknown stage is a one-line error naming the stages
        return args[0]

    def _do_where(self, args: Sequence[str]) -> None:
        walk = self.walk
        state = walk.state()
        original = walk.replay_of  # a replay's: what it did not run is said so, as live
        where = (
            f"run {state.run_id} {state.status} at +{walk.offset:.3f}s "
            f"(event {walk.index + 1} of {len(walk.events)}: {walk.event.what})"
            + (f"; replay of run {original}" if original else "")
        )
        for line in wrapped(where, self._width):
            self._print(line)
        width = max((len(stage.name) for stage in state.stages), default=5)
        for stage in state.stages:
            extra = []
            # Each instance's status is its last attempt's, as a live run's is.
            status, last = walk.shown(stage)
            if len(last) > 1:
                extra.append(instance_counts(last.values()))
            # ``a  replayed  (from run R)``, ``(...; reused from run R)``
            if original and (note := not_run_by_replay(last.values(), status, original)):
                extra.append(note)
            retries = max((a.attempts_made for a in stage.attempts), default=1)
            if retries > 1:
                extra.append(f"attempt {retries}")
            # Why it was skipped, else its error, as ``runs show``'s ERROR cell reads it.
            why = stage.skip_reason or stage_error(
                stage.status, stage.attempts, stage.cancel_reason
            )
            head = f"  {stage.name:<{width}}  {status}"
            if why:
                extra.append(one_line(why, self._why_columns(head, extra)))
            tail = f"  ({'; '.join(extra)})" if extra else ""
            self._print(f"{head}{tail}")

    def _why_columns(self, head: str, extra: Sequence[str]) -> int:
        """The columns a reason may take after ``head`` and the ``extra`` notes before it:
        ``_WHY_CHARS`` on a pipe, the rest of the terminal's line (``  (``, ``; `` between
        notes, ``)``) on a terminal, but never fewer than ``MIN_GIVEN``."""
        if self._width is None:
            return _WHY_CHARS
        taken = text_columns(head) + 3 + sum(len(note) + 2 for note in extra) + 1
        return max(MIN_GIVEN, self._width - taken)

    def _do_inputs(self, args: Sequence[str]) -> None:
        stage = self._stage_arg(args, "inputs STAGE")
        found = self.walk.inputs(stage)
        if len(found) == 1:
            self._print(_json(found[0][1]))
            return
        for task_run_id, inputs in found:
            self._print(f"  {task_run_id}: {_json(inputs)}")

    def _do_outputs(self, args: Sequence[str]) -> None:
        stage = self._stage_arg(args, "outputs STAGE")
        walk = self.walk
        record = walk.stage(stage)
        shown = walk.shown(record)[0]
        if record.attempts:
            found = walk.outputs(stage)
            if len(found) == 1:
                self._print(f"{stage} ({shown}): {_json(found[0][2])}")
            else:
                self._print(f"{stage} ({shown}):")
                for task_run_id, status, outputs in found:
                    self._print(f"  {task_run_id} ({status}): {_json(outputs)}")
        else:
            self._print(f"{stage} ({shown}): not started")
        for name in record.upstream:
            upstream = walk.stage(name)
            outputs = walk.outputs(name) if upstream.attempts else []
            last = outputs[-1][2] if outputs else None
            self._print(f"  upstream {name} ({walk.shown(upstream)[0]}): {_json(last)}")

    def _do_logs(self, args: Sequence[str], last: int = 40) -> None:
        stage = self._stage_arg(args, "logs STAGE")
        walk = self.walk
        record = walk.stage(stage)
        for attempt in record.attempts:
            error = f": {attempt.error}" if attempt.error else ""
            status = walk.attempt_status(attempt)
            self._print(f"  {attempt.task_run_id}: {status}{error}")
        if not record.attempts:
            self._print(f"  {stage} has not run yet ({record.status})")
        if self._logs is None:
            return
        try:
            rows = self._logs(walk.state().run_id, stage)
        except (SpanSourceError, OSError) as exc:
            self._print(f"  no log records: {str(exc).splitlines()[0]}")
            return
        now = walk.event.time_ns
        self._print_records([row for row in rows if row.time_ns <= now], last)
