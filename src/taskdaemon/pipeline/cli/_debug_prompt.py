"""The debugger prompt of ``taskdaemon debug``: commands over the debug protocol.

The prompt speaks :mod:`~taskdaemon.pipeline.debug_ops` requests through ``call`` (a function
sending one request to the run's control socket and returning the answer, raising
``PipelineError`` with the run's one-line refusal), so the same prompt drives a run of this
process (``debug FILE``) and one of another (``debug attach RUN``).

The reading, history (``$TASKDAEMON_HOME/debug_history``), Tab completion of commands and
stage names, ``help`` and one-line errors come from :class:`~._prompt.CommandPrompt`, which
``replay --step`` shares (:mod:`._step_prompt`). On a pipe, it reads commands one per line,
echoes each after the prompt, and runs them in order.

After a command that resumes the run (``continue``, ``step``, ``skip``, ``retry``) the prompt
waits for the next stop (an execution paused, or the run's end) and reports it, like gdb;
when it resumed nothing, it first says that it waits, and for which approvals.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

from taskdaemon.pipeline.ascii_number import ascii_digits
from taskdaemon.pipeline.bounded import BoundedInputError, NotJSONError, loads_bounded
from taskdaemon.pipeline.cli._prompt import CommandPrompt, LinesAbove
from taskdaemon.pipeline.cli.terminal_state import keys_unechoed
from taskdaemon.pipeline.cli.terminal_width import summary_width
from taskdaemon.pipeline.errors import PipelineError, RunNotFoundError
from taskdaemon.pipeline.quoting import quote
from taskdaemon.pipeline.secret_values import remember_secrets, secret_key
from taskdaemon.pipeline.table_fit import wrapped
from taskdaemon.pipeline.wording import counted, instance_counts, not_run_by_replay

__all__ = ["COMMANDS", "DebugPrompt"]

Call = Callable[[dict[str, Any]], dict[str, Any]]

#: Each command with its one-line help (``help`` prints them).
COMMANDS: dict[str, str] = {
    "continue": "continue [STAGE]: resume what is paused (a stage's only) and leave step mode",
    "step": "step [STAGE]: run exactly the next ready execution, then pause again",
    "break": "break STAGE [if CEL] | break STAGE on failure | break on event TYPE: add one",
    "delete": "delete [N]: delete breakpoint N, or all that info breakpoints lists",
    "info": "info breakpoints: list the breakpoints",
    "where": "where: each stage's state: running, paused, waiting, queued...",
    "inputs": "inputs [STAGE]: the stage's resolved inputs (those it will run with)",
    "outputs": "outputs [STAGE]: the stage's outputs and its upstream stages' outputs",
    "env": "env [STAGE]: the environment a paused stage will see (secrets masked)",
    "set": "set [--secret] [STAGE] INPUT JSON: override an input of a paused stage before it "
    "runs (--secret: its value is masked in every output; without JSON, typed unseen)",
    "skip": "skip [STAGE]: skip a paused stage (what needs it is skipped too)",
    "retry": "retry [STAGE]: run a stage paused at its failure again",
    "logs": "logs [STAGE]: the stage's executions, errors and last log records",
    "dump": "dump [PATH]: write a debug dump of the run (.tar.gz)",
    "quit": "quit: cancel the run and leave",
    "help": "help: this list",
}
_ALIASES = {
    "c": "continue",
    "s": "step",
    "b": "break",
    "w": "where",
    "q": "quit",
    "exit": "quit",
    "h": "help",
    "?": "help",
}
_RESUMING = frozenset({"continue", "step", "skip", "retry"})
#: What a usage error of a command whose STAGE may be omitted adds.
_LEFT_OUT = "STAGE may be left out when one stage is paused"
#: Every form of ``break``, said whichever one was mistyped (``on failur`` is not ``if CEL``'s).
_BREAK_USAGE = "usage: break STAGE [on failure] [if CEL] | break on event TYPE"


class DebugPrompt(CommandPrompt):
    """One debugging conversation with one run. ``run()`` returns when the input ends or on
    ``quit``."""

    COMMANDS = COMMANDS
    ALIASES = _ALIASES
    INTERRUPTED = "interrupted ('quit' cancels the run, Ctrl-D lets it go on)"

    def __init__(
        self,
        call: Call,
        *,
        stdin: IO[str] | None = None,
        stdout: IO[str] | None = None,
        history: Path | None = None,
        by: str = "cli debug",
        above: LinesAbove | None = None,
    ) -> None:
        super().__init__(stdin=stdin, stdout=stdout, history=history, above=above)
        self._call = self._ended_aware(call)
        self._by = by
        # This prompt's name to the run: its breakpoints, and whether another prompt is on.
        self.client = f"{by} {secrets.token_hex(4)}"
        self._stages: list[str] = []
        self._run_id = ""
        self.done = False  # the run ended
        self.cancelled = False  # ``quit`` cancelled the run: ``debug attach`` exits 1 then

    def _ended_aware(self, call: Call) -> Call:
        """``call``, saying that the run ended when its process no longer serves it after this
        prompt joined it (``debug attach``: the run went on to its end elsewhere). The control
        socket's own answer asked whether its ``taskdaemon run`` was still running, with the
        same ``TASKDAEMON_HOME``: true, but no hint that the run had simply ended."""

        def ended_aware(request: dict[str, Any]) -> dict[str, Any]:
            try:
                return call(request)
            except RunNotFoundError:
                if not self._run_id:  # not joined yet: the run was never there
                    raise
                self.done = True
                raise PipelineError(self._ended_line()) from None

        return ended_aware

    def _ended_line(self) -> str:
        return (
            f"run {self._run_id} has ended: its process serves it no more "
            f"('taskdaemon runs show {self._run_id}' has its record)"
        )

    @property
    def run_id(self) -> str:
        """The id of the run this prompt joined ("" before it did)."""
        return self._run_id

    # ------------------------------------------------------------------ loop

    def run(self, *, first_stop: bool = True) -> None:
        """Report the first stop (with ``first_stop``, waiting for it; else what is paused
        now, or that nothing is), then read and run commands until the input ends or quit.

        ``debug attach`` does not wait: the run it joins may be hours from its next pause,
        and its user attached to set a breakpoint or look around now."""
        # Ctrl-D typed ahead, while the first stop is waited for, ends the input too.
        with self.keys_kept():
            # Attaches this prompt too: its pid tells the run when it is gone without detaching.
            state = self._call({"action": "state", "client": self.client, "pid": os.getpid()})
            self._stages = list(state["state"]["stages"])
            self._run_id = str(state["state"]["run_id"])
            opening = (
                f"debugging run {state['state']['run_id']} ({state['state']['pipeline']}); "
                "'help' lists the commands"
            )
            # Wrapped between words on a terminal: with the run id, it is 92 columns and more.
            self._print_prose(opening)
            if first_stop:
                self.wait()
            else:
                self._report_now()
            self.loop()

    def _report_now(self) -> None:
        answer = self._call({"action": "wait", "timeout": 0})
        if answer["paused"] or answer["done"]:
            self._report(answer)
        else:
            self._print(
                f"run {answer['status']}, nothing paused "
                "('continue' or 'step' waits for the next pause)"
            )

    def completion_words(self) -> Sequence[str]:
        """Stage names and the keywords of ``break`` and ``info``."""
        return [*self._stages, "breakpoints", "if", "on"]

    def after(self, command: str) -> None:
        """After a command that resumed the run, wait for the next stop."""
        if command in _RESUMING and not self.done:
            self.wait()

    def wait(self) -> None:
        """Wait until something is paused or the run ended, and say which.

        A run that ends as this prompt waits (``continue`` or ``skip`` of its last stage at
        ``debug attach``) may take its process, and the connection of the wait, with it before
        answering: the wait fails, and a second request tells that from a run that refused.

        Meanwhile the terminal does not echo keys (``terminal_state.keys_unechoed``, as under
        ``watch``'s table): a command typed ahead waits for the prompt, which shows it. Echoed,
        it landed among the progress lines, ``where    3.02s  gate  approved by root``."""
        with keys_unechoed(self._out):
            self._wait()

    def _wait(self) -> None:
        while True:
            try:
                answer = self._call({"action": "wait", "timeout": 5})
            except PipelineError:
                with contextlib.suppress(PipelineError):
                    self._call({"action": "state"})
                if not self.done:  # the run is still there: its refusal stands
                    raise
                self._print(self._ended_line())
                return
            if answer["paused"] or answer["done"]:
                self._report(answer)
                return

    def _report(self, answer: dict[str, Any]) -> None:
        """Print what a ``wait`` answer found: each pause, else the run's end."""
        if answer["paused"]:
            for line in _paused_lines(answer["paused"], summary_width(self._out)):
                self._print(line)
            return
        self.done = True
        error = f": {_flat(answer['error'])}" if answer.get("error") else ""
        self._print_prose(f"run ended {answer['status']}{error}")
        if self._interactive:  # it stays, for the ended run's outputs and logs: a new user
            self._print_prose("'quit' or Ctrl-D leaves this prompt")  # waited there, unsure

    def _resume(self, action: str, args: Sequence[str]) -> None:
        stage = args[0] if args else None
        if self.done:
            raise PipelineError("the run has ended")
        answer = self._call({"action": action, "stage": stage, "by": self._by})
        if not answer.get("resumed") and stage is not None:  # else it waited for ever
            raise PipelineError(f"{quote(stage)} is not paused ('where' lists what is)")
        if not answer.get("resumed"):  # ``continue`` or ``step`` with nothing paused
            now = self._call({"action": "wait", "timeout": 0})
            if now["done"]:  # it ended as the user read (a failure elsewhere): say so, no wait
                self._report(now)
                return
            self._print(
                f"nothing was paused: waiting for the next pause or the run's end{self._held()}"
            )

    def _held(self) -> str:
        """What else holds the run, for a prompt about to wait: the approvals it waits for,
        each with the command that grants it (else the wait looked like a hang)."""
        state = self._call({"action": "state"})["state"]
        waiting = [
            name for name, stage in state["stages"].items() if stage["approval"] == "requested"
        ]
        return "".join(
            f" ({name} waits for approval: taskdaemon approve {self._run_id} {name})"
            for name in waiting
        )

    def _do_continue(self, args: Sequence[str]) -> None:
        self._resume("continue", args)

    def _do_step(self, args: Sequence[str]) -> None:
        self._resume("step", args)

    def _do_skip(self, args: Sequence[str]) -> None:
        self._resume("skip", args)

    def _do_retry(self, args: Sequence[str]) -> None:
        self._resume("retry", args)

    def _do_help(self, args: Sequence[str]) -> None:
        super()._do_help(args)
        # Two lines: as one it was 132 columns, past a terminal of 80.
        self._print_prose(
            "STAGE#N: instance N of a fanned-out stage (numbered as in the progress lines)\n"
            "[STAGE] may be left out when one stage is paused"
        )

    def _do_break(self, args: Sequence[str]) -> None:
        request: dict[str, Any] = {"action": "break", "client": self.client}
        words = list(args)
        if words[:2] == ["on", "event"] and len(words) == 3:
            request.update(on=f"event:{words[2]}")
        elif not words:
            raise PipelineError(_BREAK_USAGE)
        else:
            request["stage"] = words[0]
            rest = words[1:]
            if rest[:2] == ["on", "failure"]:
                request["on"] = "failure"
                rest = rest[2:]
            if rest:
                if rest[0] != "if" or len(rest) < 2:
                    raise PipelineError(_BREAK_USAGE)
                # As typed: the argument split would take the quotes off a CEL string.
                request["when"] = self.rest_of_line(len(words) - len(rest) + 2)
        answer = self._call(request)
        self._print(f"breakpoint {answer['breakpoint']['description']}")

    def _do_delete(self, args: Sequence[str]) -> None:
        request: dict[str, Any] = {"action": "delete"}
        if args:
            number = args[0].removeprefix("#")
            if not ascii_digits(number) or len(number) > 9:  # int() reads ３, 1_0 and " 1"
                raise PipelineError(f"not a breakpoint number: {quote(args[0])}")
            request["id"] = int(number)
        answer = self._call(request)
        self._print(f"deleted {counted(answer['deleted'], 'breakpoint')}")

    def _do_info(self, args: Sequence[str]) -> None:
        if list(args) not in (["breakpoints"], ["break"], ["b"]):
            raise PipelineError("usage: info breakpoints")
        breakpoints = self._call({"action": "state"})["state"]["breakpoints"]
        if not breakpoints:
            self._print("no breakpoints")
        for bp in breakpoints:
            error = f"  (last error: {bp['last_error']})" if bp["last_error"] else ""
            self._print(f"{bp['description']}  hits {bp['hits']}{error}")

    def _do_where(self, args: Sequence[str]) -> None:
        state = self._call({"action": "state"})["state"]
        slots = state["slots"]
        mode = ", step mode" if state["stepping"] else ""
        original = state.get("replay_of")  # a replay's: what it did not run is said so
        replay = f"; replay of run {original}" if original else ""
        self._print(
            f"run {state['run_id']} {state['status']}{mode}{replay}; "
            f"slots {slots['size'] - slots['free']}/{slots['size']} in use"
        )
        width = max((len(name) for name in state["stages"]), default=5)
        for name, stage in state["stages"].items():
            extra = []
            if stage["instances"] and len(stage["instances"]) > 1:
                # The paused ones are named below, each with its STAGE#N.
                extra.append(instance_counts(stage["instances"]))
            if stage["pending_events"]:
                extra.append(f"{counted(stage['pending_events'], 'event')} waiting")
            if stage["approval"] == "requested":
                extra.append("waiting for approval")
            # ``a  replayed  (from run R)``, ``(...; reused from run R)``
            if original and (
                note := not_run_by_replay(stage["instances"], stage["status"], original)
            ):
                extra.append(note)
            tail = f"  ({'; '.join(extra)})" if extra else ""
            self._print(f"  {name:<{width}}  {stage['status']}{tail}")
        for line in _paused_lines(state["paused"], summary_width(self._out)):
            self._print(line)

    def _stage_arg(self, args: Sequence[str], usage: str) -> str:
        """The one STAGE argument, else the stage paused now when only one is (``continue`` and
        ``skip`` take it alike: at a breakpoint, ``inputs`` alone asked for a stage name)."""
        if not args:
            paused = {each["stage"] for each in self._call({"action": "state"})["state"]["paused"]}
            if len(paused) == 1:
                return str(paused.pop())
        if len(args) != 1:
            raise PipelineError(f"usage: {usage} ({_LEFT_OUT})")
        return args[0]

    def _do_inputs(self, args: Sequence[str]) -> None:
        stage = self._stage_arg(args, "inputs [STAGE]")
        seen = self._call({"action": "inspect", "stage": stage})["stage"]
        self._print(_json(seen["inputs"]))

    def _do_env(self, args: Sequence[str]) -> None:
        from taskdaemon.pipeline.debug_env import environment_lines  # noqa: PLC0415

        if len(args) > 1:
            raise PipelineError(f"usage: env [STAGE] ({_LEFT_OUT})")
        request = {"action": "env"} | ({"stage": args[0]} if args else {})
        for line in environment_lines(self._call(request)["env"]):
            self._print(line)

    def _do_outputs(self, args: Sequence[str]) -> None:
        stage = self._stage_arg(args, "outputs [STAGE]")
        seen = self._call({"action": "inspect", "stage": stage})["stage"]
        self._print(f"{stage} ({seen['status']}): {_json(seen['outputs'])}")
        if len(seen["instances"]) > 1 and "#" not in stage:  # each has its own, the stage's
            self._print(  # are its instances' once it ended: it read `work (paused): {}`
                f"  {counted(len(seen['instances']), 'instance')}: "
                f"'outputs {stage}#N' shows instance N's"
            )
        for name, upstream in seen["upstream"].items():
            self._print(f"  upstream {name} ({upstream['status']}): {_json(upstream['outputs'])}")
        for trigger in seen["triggers"]:
            self._print(f"  trigger {trigger['description']}: {trigger['state']}")
        if seen["pending_events"]:
            self._print(f"  events waiting: {_json(seen['pending_events'])}")

    def _set_words(self, args: Sequence[str]) -> tuple[bool, int]:
        """Whether ``set``'s ``args`` start with ``--secret``, and how many words come before
        its INPUT: ``--secret`` and STAGE, each when given. STAGE may be left out when one
        stage is paused, as the other commands' may: a word that names no stage of the run
        (``STAGE#N`` names one) is then the INPUT."""
        secret = bool(args) and args[0] == "--secret"
        given = len(args) > secret and args[secret].split("#", 1)[0] in self._stages
        return secret, secret + given

    def masked(self, line: str) -> str:
        """Also the value of a ``set`` that says it is secret (``--secret``) or names an input
        of a secret name (``api_token``): the echo on a pipe comes before the run is told,
        and a history line must not keep it, whatever its length (docs/debugging.md)."""
        words = line.split()
        if len(words) > 2 and self.ALIASES.get(words[0], words[0]) == "set":
            secret, before = self._set_words(words[1:])
            if len(words) > 2 + before and (secret or secret_key(words[1 + before])):
                return " ".join(words[: 2 + before]) + " [REDACTED]"
            if secret and len(words) == 2 + before:  # no value: it is typed unseen, next
                return line  # (redacted as text, ``--secret x`` read as a secret ``x``)
        return super().masked(line)

    def _do_set(self, args: Sequence[str]) -> None:
        secret, before = self._set_words(args)
        usage = "set [--secret] [STAGE] INPUT JSON"
        unseen = secret and len(args) == 1 + before  # its value typed unseen, next
        if len(args) < 2 + before and not unseen:
            raise PipelineError(
                f"usage: {usage} ({_LEFT_OUT}; --secret without JSON asks for it unseen)"
            )
        stage = args[secret] if before > secret else self._stage_arg((), usage)
        name = args[before]
        if unseen:
            value: Any = self._unseen_value(name)
        else:
            # The value as typed (``{"k": "v"}``, ``"text"``); else as the argument split
            # reads it, so that a value quoted whole (``'"text"'``) reads too.
            typed = self.rest_of_line(2 + before)
            value = _json_value(typed, " ".join(args[1 + before :]))
        request = {"action": "set", "stage": stage, "input": name, "value": value, "by": self._by}
        answer = self._call(request | ({"secret": True} if secret else {}))
        if secret:  # masked here too (after the run learnt it, with its id, in ``debug FILE``):
            remember_secrets(value, hidden=True)  # ``debug attach`` is another process
        # The run's answer holds the one input, its value redacted and its name masked when
        # it has a secret's shape (``redaction.masked_names``); an older process's, nothing.
        shown_name, shown = next(iter((answer.get("inputs") or {}).items()), (name, "[REDACTED]"))
        self._print(f"{stage}: input {shown_name} = {_json(shown)}")

    def _unseen_value(self, name: str) -> str:
        """The value of ``set --secret [STAGE] NAME``, typed unseen (``cli/hidden_value.py``).
        A line typed before the prompt first took the terminal (``keys_kept``) was shown as
        it was typed: it is taken as the value all the same, rather than run as a command."""
        from taskdaemon.pipeline.cli.hidden_value import read_unseen  # noqa: PLC0415

        if self._typed_ahead:
            typed = (self._typed_ahead.popleft() or "").removesuffix("\n")
            if not typed:
                raise PipelineError("not set: no value typed")
            return typed
        prompt = f"value for {name} (hidden): "
        if self._above is not None:  # a progress line shows above it, none of the keys
            self._above.reading(prompt, unseen=True)
        try:
            return read_unseen(
                prompt, self._out, interactive=self._interactive, waiting=self._signals.waiting
            )
        finally:
            if self._above is not None:
                self._above.reading(None)

    def _do_logs(self, args: Sequence[str]) -> None:
        stage = self._stage_arg(args, "logs [STAGE]")
        seen = self._call({"action": "inspect", "stage": stage})["stage"]
        # ``STAGE#N``: instance N's only (the run took the name, so N is a number). It listed
        # every instance as ``work#1.0``, ``work#1.1``..., and no record, none of stage "work#1".
        name, _, number = stage.partition("#")
        index = int(number) if number else None
        instances = [i for i in seen["instances"] if index in (None, i["instance"])]
        for instance in instances:
            self._print(
                f"  {name}.{instance['instance']}: {instance['status']} "
                f"({counted(instance['attempts'], 'attempt')})"
            )
        for paused in seen["paused"]:
            if paused["error"]:
                self._print(f"  error: {_flat(paused['error'])}")
        if not instances:
            self._print(f"  {stage} has not run yet")
        self._print_logs(name, index)

    def _print_logs(self, stage: str, instance: int | None, last: int = 40) -> None:
        """The last log records of ``stage`` (of its ``instance``, when given), read from the
        embedded store (the same home)."""
        from taskdaemon.pipeline.errors import SpanSourceError  # noqa: PLC0415
        from taskdaemon.pipeline.tracking.log_read import run_log_records  # noqa: PLC0415
        from taskdaemon.pipeline.tracking.sources import default_source_url  # noqa: PLC0415

        with contextlib.suppress(PipelineError):  # an older process: read what is stored
            self._call({"action": "sync"})
        try:
            rows = run_log_records(default_source_url(), self._run_id, stage=stage)
        except (SpanSourceError, OSError) as exc:
            self._print(f"  no log records: {str(exc).splitlines()[0]}")
            return
        if instance is not None:
            rows = [row for row in rows if row.instance == instance]
        self._print_records(rows, last)

    def _do_dump(self, args: Sequence[str]) -> None:
        # The run's process writes it, in its own working directory: a relative path is this
        # prompt's (``debug attach`` runs elsewhere), as for ``taskdaemon dump -o``.
        from taskdaemon.pipeline.dump import dump_output  # noqa: PLC0415

        path = dump_output(args[0]) if args else None
        # Said first, as SIGUSR1's dump says it (``cli/_dump_hook.py``): the answer comes once
        # the dump is written, up to a minute later. A process older than ``settling`` refuses
        # it, and its dump is asked all the same.
        with contextlib.suppress(PipelineError):
            seconds = self._call({"action": "settling"}).get("seconds")
            if seconds:
                self._print(f"waiting for telemetry to settle first ({seconds:g}s at most)")
        answer = self._call({"action": "dump", "path": path})
        missing = answer.get("missing")
        self._print(f"dump written to {answer['path']}" + (f" ({missing})" if missing else ""))

    def _do_quit(self, args: Sequence[str]) -> None:
        self.quit = True
        if self.done:
            return
        # Asked, not assumed: another client (debug attach, the web page) may have resumed
        # the run to its end since this prompt last waited.
        try:
            ended = self._call({"action": "state"})["done"]
        except PipelineError:
            if self.done:  # ended, its process gone: nothing to cancel, nothing to say
                return
            raise
        if not ended:
            self._call({"action": "cancel", "by": self._by})
            self.cancelled = True
            self._print("run cancelled")


def _json_value(typed: str, split: str) -> Any:
    """The JSON value of ``typed``, else of ``split``; PipelineError naming ``typed``."""
    for text in dict.fromkeys((typed, split)):
        try:
            return loads_bounded(text)
        except NotJSONError:
            continue
        except BoundedInputError as exc:  # json recurses: a deep value would crash the prompt
            raise PipelineError(f"value {exc}") from None
    raise PipelineError(f'not JSON: {quote(typed)} (a string is quoted: "text")')


def _flat(error: str) -> str:
    """An error on one line: a failed command's error ends with its stderr's last lines, and
    each line the prompt prints is one statement (``logs STAGE`` has the records whole)."""
    return " ".join(error.split())


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _paused_lines(paused: Sequence[dict[str, Any]], width: int | None) -> list[str]:
    """One line per paused execution, wrapped between words to a terminal's ``width`` as the
    opening line is, and whole: its error is what a reader came for. An instance of a
    fanned-out stage (one past its first, or one of several paused) shows its ``STAGE#N`` too:
    what the commands take to name it."""
    counts = Counter(p["stage"] for p in paused)
    # (``instance`` is missing from an older process's answer.)
    lines = (_paused_line(p, p.get("instance", 0) > 0 or counts[p["stage"]] > 1) for p in paused)
    return [part for line in lines for part in wrapped(line, width)]


def _paused_line(paused: dict[str, Any], named: bool = False) -> str:
    name = f" [{paused['stage']}#{paused.get('instance', 0)}]" if named else ""
    what = f"paused at {paused['task_run_id']}{name} ({paused['reason']})"
    if paused.get("error"):
        what += f": {_flat(paused['error'])}"
    if paused.get("overridden"):
        what += f" [overridden: {', '.join(paused['overridden'])}]"
    return what
